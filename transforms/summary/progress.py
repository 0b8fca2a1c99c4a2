"""Progress of local runs: workers tick, the launcher watches.

Local runners execute the SDK workers as processes on this machine, and the FnApiRunner
returns metrics only when the job ends (so do Beam's Flink and Spark job servers). So each
worker (DoFn instance) appends one byte per sample to its own file in a temporary folder
outside the output, and the launcher sums the file sizes once a second. This works
wherever the SDK workers run on the launcher's machine: local runs, Prism, and a Flink or
Spark cluster on this machine with LOOPBACK workers or an EXTERNAL worker pool here. A
worker that cannot open the folder (on another machine) just does not tick. Outputs are
unaffected. On Dataflow the `export` counters (samples_read / exported / failed /
skipped) show the same progress live; on a remote Flink or Spark cluster, their web UIs.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import uuid

_LOGGER = logging.getLogger("pipeline")


class Ticker:
    """One per DoFn instance; safe to pickle (the file is opened lazily in the worker)."""

    def __init__(self, folder: str | None):
        self._folder = folder
        self._file = None

    def tick(self, n: int = 1) -> None:
        if self._folder is None:
            return
        if self._file is None:
            try:
                self._file = open(os.path.join(self._folder, f"{os.getpid()}-{uuid.uuid4().hex}"),
                                  "ab")
            except OSError:  # a worker on another machine: no progress from it, no failure
                self._folder = None
                return
        self._file.write(b"." * n)
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __getstate__(self):
        return {"_folder": self._folder, "_file": None}


def count(folder: str) -> int:
    """Samples ticked so far in `folder`."""
    total = 0
    with os.scandir(folder) as entries:
        for entry in entries:
            try:
                total += entry.stat().st_size
            except FileNotFoundError:
                pass
    return total


def line(done: int, total: int, elapsed: float | None, width: int = 30) -> str:
    """`[#####.....] 120/1000 samples  40.0/s  ETA 22s`; `elapsed` is the time since the
    first sample was done (None before: no rate or ETA is shown until there is one)."""
    done = min(done, total) if total else done
    frac = done / total if total else 1.0
    bar = "#" * int(frac * width) + "." * (width - int(frac * width))
    head = f"[{bar}] {done}/{total} samples"
    if not done or not elapsed or elapsed < 2.0:
        return head + ("  starting" if not done else "")
    rate = done / elapsed
    eta = max(0.0, (total - done) / rate)
    eta_text = f"{int(eta // 60)}m{int(eta % 60):02d}s" if eta >= 60 else f"{eta:.0f}s"
    return f"{head}  {rate:.1f}/s  ETA {eta_text}"


_CLEAR = "\r\033[K"  # carriage return, erase the line
_LOCK = threading.RLock()  # a log line may be emitted while the bar is being drawn
_ACTIVE: list[Monitor] = []  # the monitor drawing a bar on the terminal, if any


class BarAwareHandler(logging.StreamHandler):
    """A log handler that erases the progress bar before a message and draws it again
    after, so that a message never ends up glued to the bar."""

    def emit(self, record: logging.LogRecord) -> None:
        with _LOCK:
            bar = _ACTIVE[-1] if _ACTIVE else None
            if bar is not None and bar.tty and bar.stream is self.stream:
                self.stream.write(_CLEAR)
            super().emit(record)
            if bar is not None:
                bar.redraw()


class Monitor:
    """A daemon thread showing the progress of `total` samples ticked into `folder`: a bar
    redrawn every second on a terminal (erased when done), a log line every `log_every`
    seconds otherwise."""

    def __init__(self, folder: str, total: int, stream=None, log_every: float = 10.0):
        self._folder, self._total = folder, total
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._log_every = log_every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._text = ""
        self._first = None  # when the first sample was done

    def __enter__(self) -> Monitor:
        with _LOCK:
            _ACTIVE.append(self)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        with _LOCK:
            _ACTIVE.remove(self)
            if self.tty and self._text:
                self.stream.write(_CLEAR)  # the summary follows; no stale bar above it
                self.stream.flush()

    def redraw(self) -> None:
        """Draws the last text again (the caller holds the lock)."""
        if self.tty and self._text:
            self.stream.write("\r" + self._text)
            self.stream.flush()

    def _run(self) -> None:
        last_log = time.monotonic()
        while not self._stop.wait(1.0):
            now = time.monotonic()
            done = count(self._folder)
            if done and self._first is None:
                self._first = now - 1.0  # it happened within the last second
            text = line(done, self._total, None if self._first is None else now - self._first)
            if self._total and done >= self._total:
                text += "  finishing (COCO documents, manifest)"
            with _LOCK:
                self._text = text
                if self.tty:
                    self.stream.write(_CLEAR + text)
                    self.stream.flush()
            if not self.tty and now - last_log >= self._log_every:
                _LOGGER.info("progress %s", text)  # outside the lock: the handler takes it
                last_log = now
