"""Serve a review app on a free loopback port in a background thread (tests, screenshots),
and fetch its pages as a client that does not follow redirects."""
from __future__ import annotations

import contextlib
import re
import threading
import time
import urllib.error
import urllib.request
from urllib.parse import urlencode

from curate.review.__main__ import listen, make_server


@contextlib.contextmanager
def served(app, host: str = "127.0.0.1"):
    """Yield the base URL of ``app`` served by uvicorn until the block ends."""
    sock = listen(host, 0)
    server = make_server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        raise RuntimeError("the review app did not start within 10 s")
    try:
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


OPENER = urllib.request.build_opener(_NoRedirect)


def fetch(url: str, form: dict | None = None, headers: dict | None = None):
    """(status, headers, body) of one request; redirects are not followed."""
    data = urlencode(form).encode() if form is not None else None
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with OPENER.open(request, timeout=30) as response:
            return response.status, response.headers, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read().decode()


def form_token(page: str) -> str:
    return re.search(r'name="form_token" value="([^"]+)"', page).group(1)
