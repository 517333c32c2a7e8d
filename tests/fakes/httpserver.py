"""A static file server on 127.0.0.1 with HTTP range requests (as GDAL's /vsicurl needs).

Python's ``http.server`` ignores ``Range``; this handler answers ``206 Partial
Content`` for single ranges, ``HEAD`` with the length, and can serve chosen files
truncated (a corrupt scene) so the per-scene skip policy is exercised over HTTP.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socketserver import BaseServer
from typing import TypeVar
from urllib.parse import unquote, urlparse

S = TypeVar("S", bound=BaseServer)
_RANGE = re.compile(r"bytes=(\d*)-(\d*)$")


class RangeServer(ThreadingHTTPServer):
    """Serves ``root``; ``truncate`` maps URL paths to the share of bytes served."""

    daemon_threads = True

    def __init__(self, root: Path, truncate: dict[str, float] | None = None) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.root = root.resolve()
        self.truncate = dict(truncate or {})
        self.requests: list[tuple[str, str, str | None]] = []

    @property
    def url(self) -> str:
        """Base URL, no trailing slash."""
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(BaseHTTPRequestHandler):
    server: RangeServer
    timeout = 10  # a stuck client never holds a handler thread for long

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _body(self) -> bytes | None:
        rel = unquote(urlparse(self.path).path).lstrip("/")
        path = (self.server.root / rel).resolve()
        if self.server.root not in path.parents or not path.is_file():
            return None
        data = path.read_bytes()
        share = self.server.truncate.get("/" + rel)
        return data[: int(len(data) * share)] if share is not None else data

    def do_HEAD(self) -> None:
        self._serve(head=True)

    def do_GET(self) -> None:
        self._serve(head=False)

    def _serve(self, head: bool) -> None:
        rng = self.headers.get("Range")
        self.server.requests.append((self.command, self.path, rng))
        data = self._body()
        if data is None:
            self.send_error(404)
            return
        status, start, end = 200, 0, len(data) - 1
        if rng:
            m = _RANGE.match(rng.strip())
            if not m or (not m.group(1) and not m.group(2)):
                self.send_error(416)
                return
            if m.group(1):
                start = int(m.group(1))
                end = min(int(m.group(2)) if m.group(2) else len(data) - 1, len(data) - 1)
            else:  # suffix range: the last N bytes
                start = max(0, len(data) - int(m.group(2)))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            status = 206
        self.send_response(status)
        ctype = "application/json" if self.path.endswith(".json") else "image/tiff"
        self.send_header("Content-Type", ctype)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(end - start + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.end_headers()
        if not head:
            self.wfile.write(data[start : end + 1])


@contextmanager
def running(server: S) -> Iterator[S]:
    """Serve ``server`` from a background thread for the duration of the block."""
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def serve(root: Path, truncate: dict[str, float] | None = None) -> Iterator[RangeServer]:
    """Run a :class:`RangeServer` on 127.0.0.1 for the duration of the block."""
    with running(RangeServer(root, truncate)) as server:
        yield server
