"""Serve a review app on a free loopback port in a background thread (tests, screenshots)."""
from __future__ import annotations

import contextlib
import threading
import time

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
