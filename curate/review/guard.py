"""What stands between the review app and a request it should not serve.

- Host check: on a loopback address only ``Host`` headers naming loopback exactly are
  served (``localhost``, ``[::1]``, a whole IPv4 literal in 127.0.0.0/8, or the configured
  host; no port or the served port), so a web page cannot reach the app through DNS
  rebinding (``127.0.0.1.evil.example`` is a name the attacker's DNS answers).
- Access token: when the app listens on another address, every request must carry the
  token the app printed (``?token=`` once, then an HttpOnly cookie, or an
  ``X-Review-Token`` header); anything else is refused with 403.
- Forms: every POST must carry the per-process form token the pages embed, and a
  cross-site ``Origin`` is refused, so another site cannot write labels.
- Headers: a Content-Security-Policy that runs only the app's own inline script (by nonce)
  and loads nothing from elsewhere, ``nosniff``, no referrer to other sites, no framing.

Rows are model output; escaping them is the templates' job (Jinja autoescape); the policy
is a second wall should a value ever slip through.
"""
from __future__ import annotations

import ipaddress
import re
import secrets
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

LOOPBACK_NAMES = {"localhost", "::1", "[::1]"}
COOKIE = "curate_review_token"
HEADER = b"x-review-token"
HOST_HEADER = re.compile(r"(\[[0-9a-f:.]+\]|[^\[\]:\s]+)(?::(\d{1,5}))?")


def is_loopback(host: str) -> bool:
    """Whether ``host`` (no port) is loopback: ``localhost``, ``::1`` or a whole IPv4
    literal in 127.0.0.0/8 (``127.0.0.1.evil.example`` is not)."""
    host = host.lower()
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        return False


def _headers(scope) -> dict[bytes, bytes]:
    return {k.lower(): v for k, v in scope.get("headers", [])}


def _bracketed(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def security_headers(nonce: str) -> dict[str, str]:
    policy = (f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'unsafe-inline'; "
              "img-src 'self' data:; form-action 'self'; base-uri 'none'; "
              "frame-ancestors 'none'")
    return {"Content-Security-Policy": policy, "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "same-origin", "X-Frame-Options": "DENY",
            "Cache-Control": "no-store"}


class Guard:
    """ASGI middleware applying the rules in the module docstring."""

    def __init__(self, app, *, token: str | None, loopback: bool, host: str = "127.0.0.1"):
        self.app, self.token, self.loopback = app, token, loopback
        self.host = _bracketed(host.lower())
        self.form_token = secrets.token_urlsafe(16)

    def served_host(self, scope, header: str) -> bool:
        """Whether a ``Host`` header names this app: a loopback name or the configured host,
        with no port or the port the app listens on."""
        match = HOST_HEADER.fullmatch(header.lower())
        if match is None:
            return False
        name, port = match.groups()
        served = (scope.get("server") or (None, None))[1]
        if port is not None and served is not None and int(port) != served:
            return False
        return is_loopback(name) or name == self.host

    def _token_of(self, scope, headers) -> tuple[str | None, bool]:
        """The token the request carries, and whether it came in the URL."""
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        if query.get("token"):
            return query["token"][0], True
        if HEADER in headers:
            return headers[HEADER].decode("latin-1"), False
        cookie = SimpleCookie(headers.get(b"cookie", b"").decode("latin-1"))
        return (cookie[COOKIE].value if COOKIE in cookie else None), False

    def refusal(self, scope) -> tuple[str | None, bool]:
        """Why the request is refused (None: served), and whether to set the cookie."""
        headers = _headers(scope)
        host = headers.get(b"host", b"").decode("latin-1")
        if self.loopback and not self.served_host(scope, host):
            return "this review app answers on its loopback address only", False
        if self.token is None:
            return None, False
        given, in_url = self._token_of(scope, headers)
        if given is None or not secrets.compare_digest(given, self.token):
            return ("this review app needs the token it printed when it started "
                    "(open the address it printed)"), False
        return None, in_url

    def cross_site(self, scope) -> bool:
        origin = _headers(scope).get(b"origin")
        if origin is None:
            return False
        if origin == b"null":
            return True
        host = _headers(scope).get(b"host", b"").decode("latin-1")
        return urlsplit(origin.decode("latin-1")).netloc != host

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        why, set_cookie = self.refusal(scope)
        if why is None and scope["method"] == "POST" and self.cross_site(scope):
            why = "a form from another site cannot write to this review app"
        if why is not None:
            return await _plain(send, 403, f"forbidden: {why}\n")
        scope.setdefault("state", {})["form_token"] = self.form_token
        if not set_cookie:
            return await self.app(scope, receive, send)

        async def send_with_cookie(message):
            if message["type"] == "http.response.start":
                cookie = f"{COOKIE}={self.token}; HttpOnly; SameSite=Strict; Path=/"
                message["headers"] = [*message.get("headers", []),
                                      (b"set-cookie", cookie.encode("latin-1"))]
            await send(message)

        return await self.app(scope, receive, send_with_cookie)


async def _plain(send, status: int, text: str) -> None:
    body = text.encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
