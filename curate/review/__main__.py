"""python -m curate.review RUN_DIR [--host H] [--port P] [--sample N] [--seed S]"""
from __future__ import annotations

import argparse
import secrets
import socket
import sys
from pathlib import Path

from ..errors import CurateError
from .guard import is_loopback

EPILOG = """\
Browse every row of a finished run (kept, rejected, errored, replaced) with its lineage and
training text, and label the judge's verdicts to measure how well it agrees with you.
Labels are saved as you make them to RUN_DIR/review/labels.csv (the format
curate.review.alignment.read_review reads); nothing else is written outside RUN_DIR/review/.

The app listens on 127.0.0.1 by default. With --host set to another address it prints a
token in its address, and refuses every request without it.
"""


def parse_args(argv) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m curate.review", description="Review a run folder in the browser.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run", help="a run folder written by python -m curate.pipeline")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1; others need the token)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0: any free)")
    parser.add_argument("--sample", type=int, default=None,
                        help="label a seeded sample of N judged rows (default: all of them)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the labelling order")
    args = parser.parse_args(argv)
    if args.sample is not None and args.sample < 1:
        parser.error("--sample must be a positive integer")
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    return args


def listen(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as error:
        sock.close()
        raise CurateError(f"cannot listen on {host}:{port}: {error.strerror or error}; "
                          f"choose another --port (0: any free one)") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def make_server(app):
    """uvicorn's server for ``app``. ``log_config=None`` leaves the process's logging alone:
    uvicorn's default configures logging with ``dictConfig``, which closes every handler
    already installed (a notebook's own, or one that libraries such as absl add on import)."""
    import uvicorn

    return uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning",
                                         access_log=False, lifespan="off"))


def main(argv=None) -> int:
    args = parse_args(argv)
    loopback = is_loopback(args.host)
    token = None if loopback else secrets.token_urlsafe(24)
    try:
        folder = Path(args.run)
        if not folder.exists():
            raise CurateError(f"{args.run}: no such folder")
        if not folder.is_dir():
            raise CurateError(f"{args.run}: not a folder; give the run folder (the one with "
                              "manifest.json)")
        from .app import create_app

        app = create_app(folder, sample=args.sample, seed=args.seed, token=token,
                         loopback=loopback, host=args.host)
        sock = listen(args.host, args.port)
    except CurateError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError, TypeError) as error:  # a damaged run folder
        print(f"error: {args.run}: cannot read this run folder ({type(error).__name__}: "
              f"{' '.join(str(error).split())[:300]})", file=sys.stderr)
        return 2
    shown = f"[{args.host}]" if ":" in args.host else args.host
    link = f"http://{shown}:{sock.getsockname()[1]}/" + (f"?token={token}" if token else "")
    print(f"reviewing {folder} at {link}", flush=True)
    if token:
        print("every request needs this token (it is in the address above)", flush=True)
    unsaved = app.state.review.store.write_problem()
    if unsaved and app.state.review.judges:
        print(f"{unsaved}: browsing works, labelling does not", flush=True)
    print("Ctrl+C to stop", flush=True)
    server = make_server(app)
    try:
        server.run(sockets=[sock])
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
