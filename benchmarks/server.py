"""A static file server on 127.0.0.1 for tests and benchmarks (real HTTP, loopback only).

It answers `Range: bytes=a-b` requests with 206 and the slice, as object stores do, and
counts them (`range_requests`) so tests can see that only headers were fetched.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import threading

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # keep test and benchmark output readable
        pass

    def do_GET(self):
        match = _RANGE.match(self.headers.get("Range", ""))
        path = self.translate_path(self.path)
        if match is None or not os.path.isfile(path):
            return super().do_GET()
        with open(path, "rb") as f:
            data = f.read()
        start = int(match.group(1))
        end = min(int(match.group(2)) if match.group(2) else len(data) - 1, len(data) - 1)
        if start >= len(data):
            self.send_response(416)
            self.send_header("Content-Range", f"bytes */{len(data)}")
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        self.server.range_requests += 1
        body = data[start:end + 1]
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(path))
        self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        return None


class StaticServer:
    """Serves `root` on an ephemeral loopback port; use as a context manager."""

    def __init__(self, root: str):
        handler = functools.partial(_QuietHandler, directory=root)
        self._httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._httpd.daemon_threads = True
        self._httpd.range_requests = 0
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/"

    @property
    def range_requests(self) -> int:
        return self._httpd.range_requests

    def __enter__(self) -> StaticServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()
