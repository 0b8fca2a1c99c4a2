"""A loopback HTTP server that injects faults, for fault-injection tests and benchmarks.

`FaultServer(root)` serves the files under `root` on 127.0.0.1 (an ephemeral port, HTTP/1.1
keep-alive, as object stores) and decides, for each request, whether to answer normally or
with a fault. Every decision is a function of (seed, path, attempt number), never of thread
timing, so a test run injects the same faults on every run and in every runner mode.
Query strings (signed URLs) are accepted and ignored: faults key on the path alone.

Transient faults (`TRANSIENT`, heal on a later attempt):
  429          status 429 with `Retry-After: 0`
  429-wait     status 429 with `Retry-After: 1`
  500 502 503  the status, no Retry-After
  reset        the connection is reset (RST) before any response
  truncate     a 200 whose body is cut short of its Content-Length, then an orderly close
  reset-body   a 200 whose body is cut by a connection reset
  slow         nothing is sent for `latency` seconds (above the client's timeout), then close
  stall        headers and half the body, then nothing for `latency` seconds, then close

Permanent faults (`PERMANENT`, every attempt): 404, 403, garbage (200 with bytes that start
like a PNG and are not one), html (200 with an HTML error page).

Where faults happen:
  * `rate` / `kinds` / `match`: each attempt on a path starting with one of `match` fails with
    probability `rate`, the kind drawn from `kinds`; attempts numbered `max_faults` and above
    on a path always succeed, so a client with more attempts than that always gets through.
  * `script[path]`: the kinds of the first attempts on `path`, in order (then normal);
    `""` in the list is a normal answer.
  * `permanent[path]`: a permanent fault on every attempt.
These are keyword settings of the constructor and of `reset(**settings)`, which also forgets
every request (attempt numbers start from 0 again), e.g. between two runs.

Observation: `hits` lists every request (`Hit`: path, attempt, fault, status, time);
`faults()` counts injected faults by kind, `served()` lists them, and `planned(paths)` says
which a run fetching `paths` must meet (from the settings alone). `hold(prefix, nth)`
returns a `Hold` whose `reached` event fires when the nth request on a path starting with
`prefix` arrives; that request's response waits until `Hold.release()` (or the server
stops).
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import http.server
import mimetypes
import os
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
from collections.abc import Iterable, Mapping
from typing import Self

TRANSIENT = ("429", "429-wait", "500", "502", "503", "reset", "truncate", "reset-body", "slow",
             "stall")
PERMANENT = ("404", "403", "garbage", "html")
# Transient kinds that cost no waiting: the default random mix of a fast test.
QUICK = ("429", "500", "502", "503", "reset", "truncate", "reset-body")

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")
GARBAGE_PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
HTML_ERROR = (b"<!DOCTYPE html><html><head><title>Error</title></head>"
              b"<body><h1>Service unavailable</h1><p>Please try again later.</p></body></html>")


@dataclasses.dataclass(frozen=True)
class Hit:
    path: str  # without the query string
    query: str
    attempt: int  # 0 for the first request on this path
    fault: str  # "" for a normal answer
    status: int | None  # the status line sent (206 for a Range answer); None: no response
    time: float  # time.monotonic() when the request arrived


class Hold:
    """Holds the nth request on a path starting with `prefix` until `release()`."""

    def __init__(self, prefix: str, nth: int):
        self.prefix, self.nth = prefix, nth
        self.seen = 0
        self.path: str | None = None
        self.reached = threading.Event()
        self._released = threading.Event()

    def release(self) -> None:
        self._released.set()

    def kill_when_reached(self, proc: subprocess.Popen, what: str) -> int:
        """Kills `proc`'s process group (a CLI started with `start_new_session=True` and the
        workers it started) once the held request arrives, then lets the request go; returns
        the exit status. Fails when the request never comes (`what` names it)."""
        try:
            assert self.reached.wait(120), f"the run never asked for {what}"
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate(timeout=60)
        finally:
            self.release()
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
        return proc.returncode


def roll(seed: int, path: str, attempt: int) -> tuple[float, int]:
    """(uniform number in [0, 1), an integer) drawn from (seed, path, attempt)."""
    digest = hashlib.blake2b(f"{seed}\0{path}\0{attempt}".encode(), digest_size=16).digest()
    return int.from_bytes(digest[:8], "big") / 2 ** 64, int.from_bytes(digest[8:], "big")


class FaultServer:
    """Serves `root` on 127.0.0.1 with deterministic fault injection; a context manager."""

    def __init__(self, root: str, **settings):
        self.root = os.path.abspath(root)
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.reset(**settings)
        self._httpd = _HTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.owner = self
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    def reset(self, seed: int = 0, rate: float = 0.0, kinds: Iterable[str] = QUICK,
              match: Iterable[str] = ("/",), max_faults: int = 2, latency: float = 1.0,
              script: Mapping[str, Iterable[str]] | None = None,
              permanent: Mapping[str, str] | None = None) -> None:
        """New fault settings; every request is forgotten (attempts count from 0 again)."""
        kinds, script = tuple(kinds), {p: tuple(k) for p, k in (script or {}).items()}
        for kind in kinds + tuple(k for ks in script.values() for k in ks if k):
            if kind not in TRANSIENT:
                raise ValueError(f"unknown transient fault {kind!r}")
        for kind in (permanent or {}).values():
            if kind not in PERMANENT:
                raise ValueError(f"unknown permanent fault {kind!r}")
        with self._lock:
            self.seed, self.rate, self.kinds = seed, rate, kinds
            self.match, self.max_faults, self.latency = tuple(match), max_faults, latency
            self.script, self.permanent = script, dict(permanent or {})
            self.hits: list[Hit] = []
            self._attempts: collections.Counter[str] = collections.Counter()
            self._holds: list[Hold] = []

    # ------------------------------------------------------------------ control

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/"

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stopping.set()
        for h in self._holds:
            h.release()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join()

    def hold(self, prefix: str, nth: int = 1) -> Hold:
        h = Hold(prefix, nth)
        with self._lock:
            self._holds.append(h)
        return h

    def fault_for(self, path: str, attempt: int) -> str:
        """The fault (or "") of attempt number `attempt` on `path`: pure, no state."""
        if path in self.permanent:
            return self.permanent[path]
        if path in self.script:
            kinds = self.script[path]
            return kinds[attempt] if attempt < len(kinds) else ""
        if self.rate and attempt < self.max_faults and path.startswith(self.match):
            u, k = roll(self.seed, path, attempt)
            if u < self.rate:
                return self.kinds[k % len(self.kinds)]
        return ""

    def planned(self, paths: Iterable[str]) -> list[tuple[str, int, str]]:
        """(path, attempt, fault) of every fault a client meets that fetches each of `paths`
        once, retrying until it succeeds: what a run must have been served, whatever its
        runner or thread timing."""
        out = []
        for path in paths:
            attempt = 0
            while (fault := self.fault_for(path, attempt)) and fault not in PERMANENT:
                out.append((path, attempt, fault))
                attempt += 1
        return sorted(out)

    # ------------------------------------------------------------------ observation

    def served(self) -> list[tuple[str, int, str]]:
        """(path, attempt, fault) of every fault injected so far, sorted."""
        with self._lock:
            return sorted((h.path, h.attempt, h.fault) for h in self.hits if h.fault)

    def faults(self) -> collections.Counter[str]:
        """Injected faults by kind."""
        with self._lock:
            return collections.Counter(h.fault for h in self.hits if h.fault)

    def requests(self, path: str) -> list[Hit]:
        with self._lock:
            return sorted((h for h in self.hits if h.path == path), key=lambda h: h.attempt)

    def counts(self) -> collections.Counter[tuple[str, int | None]]:
        """Requests by (path, status sent; None for a connection-level fault)."""
        with self._lock:
            return collections.Counter((h.path, h.status) for h in self.hits)

    # ------------------------------------------------------------------ handler side

    def _begin(self, path: str, query: str, ranged: bool) -> tuple[str, Hold | None]:
        with self._lock:
            attempt = self._attempts[path]
            self._attempts[path] += 1
            fault = self.fault_for(path, attempt)
            if fault:
                status = _STATUS[fault]
            else:
                status = 200 if os.path.isfile(self._file(path) or "") else 404
            if status == 200 and ranged and fault in ("", "truncate", "reset-body", "stall"):
                status = 206
            self.hits.append(Hit(path, query, attempt, fault, status, time.monotonic()))
            held = None
            for h in self._holds:
                if path.startswith(h.prefix) and not h.reached.is_set():
                    h.seen += 1
                    if h.seen == h.nth:
                        h.path = path
                        held = h
            return fault, held

    def _file(self, path: str) -> str | None:
        rel = os.path.normpath(path.lstrip("/"))
        if rel.startswith("..") or os.path.isabs(rel):
            return None
        return os.path.join(self.root, rel)


# The status line each fault sends (None: no response at all).
_STATUS = {"429": 429, "429-wait": 429, "500": 500, "502": 502, "503": 503, "404": 404,
           "403": 403, "truncate": 200, "reset-body": 200, "stall": 200, "garbage": 200,
           "html": 200, "reset": None, "slow": None}


class _HTTPServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    owner: FaultServer

    def handle_error(self, request, client_address):  # resets and kills are the point
        pass


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes: with Nagle's algorithm, a kept-alive
    # connection then waits for the client's delayed ACK, ~40 ms per response.
    disable_nagle_algorithm = True
    server: _HTTPServer

    def log_message(self, *args):
        pass

    def do_GET(self):
        owner = self.server.owner
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        match = _RANGE.match(self.headers.get("Range", ""))
        fault, held = owner._begin(path, split.query, match is not None)
        if held is not None:
            held.reached.set()
            # Answer once the test releases it; a stopping server drops the request.
            while not held._released.wait(0.1):
                if owner._stopping.is_set():
                    break
            if owner._stopping.is_set():
                return self._reset()
        if fault == "reset":
            return self._reset()
        if fault == "slow":
            owner._stopping.wait(owner.latency)
            self.close_connection = True
            return None
        if fault in ("429", "429-wait", "500", "502", "503", "404", "403"):
            headers = {"Retry-After": "1" if fault == "429-wait" else "0"} if fault.startswith(
                "429") else {}
            return self._send(int(fault[:3]), b"error %s\n" % fault[:3].encode(), "text/plain",
                              headers)
        if fault == "garbage":
            return self._send(200, GARBAGE_PNG, "image/png")
        if fault == "html":
            return self._send(200, HTML_ERROR, "text/html")
        local = owner._file(path)
        if local is None or not os.path.isfile(local):
            return self._send(404, b"not found\n", "text/plain")
        with open(local, "rb") as f:
            body = f.read()
        ctype = mimetypes.guess_type(local)[0] or "application/octet-stream"
        status, headers = 200, {}
        if match:  # as object stores do: 206 and the slice
            start = int(match.group(1))
            end = min(int(match.group(2)) if match.group(2) else len(body) - 1, len(body) - 1)
            if start >= len(body):
                return self._send(416, b"", ctype, {"Content-Range": f"bytes */{len(body)}"})
            status, headers = 206, {"Content-Range": f"bytes {start}-{end}/{len(body)}"}
            body = body[start:end + 1]
        if fault in ("truncate", "reset-body", "stall"):
            self._head(status, len(body), ctype, headers)
            self.wfile.write(body[: len(body) // 2])
            self.wfile.flush()
            if fault == "stall":
                owner._stopping.wait(owner.latency)
            if fault == "reset-body":
                return self._reset()
            self.close_connection = True
            return None
        return self._send(status, body, ctype, headers)

    def _head(self, status: int, length: int, ctype: str, headers=None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(length))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()

    def _send(self, status: int, body: bytes, ctype: str, headers=None) -> None:
        self._head(status, len(body), ctype, headers)
        self.wfile.write(body)

    def _reset(self) -> None:
        """Closes the connection with a TCP reset (SO_LINGER 0) instead of a FIN."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass
