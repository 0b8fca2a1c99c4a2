"""Progress of local runs: workers tick, the launcher watches.

Local runners execute the SDK workers as processes on this machine, and the FnApiRunner
returns metrics only when the job ends. So each worker (DoFn instance) appends one byte per
sample to its own file in a temporary folder outside the output, and the launcher sums the
file sizes once a second. Outputs are unaffected. On Dataflow the `export` counters
(samples_read / exported / failed / skipped) show the same progress live.
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
            self._file = open(os.path.join(self._folder, f"{os.getpid()}-{uuid.uuid4().hex}"), "ab")
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


def line(done: int, total: int, elapsed: float, width: int = 30) -> str:
    """`[#####.....] 120/1000 samples  40.0/s  ETA 22s`."""
    done = min(done, total) if total else done
    frac = done / total if total else 1.0
    bar = "#" * int(frac * width) + "." * (width - int(frac * width))
    rate = done / elapsed if elapsed > 0 else 0.0
    eta = max(0.0, (total - done) / rate) if rate > 0 else 0.0
    eta_text = f"{int(eta // 60)}m{int(eta % 60):02d}s" if eta >= 60 else f"{eta:.0f}s"
    return f"[{bar}] {done}/{total} samples  {rate:.1f}/s  ETA {eta_text}"


class Monitor:
    """A daemon thread printing progress of `total` samples ticked into `folder`."""

    def __init__(self, folder: str, total: int, stream=None, log_every: float = 10.0):
        self._folder, self._total = folder, total
        self._stream = stream or sys.stderr
        self._tty = hasattr(self._stream, "isatty") and self._stream.isatty()
        self._log_every = log_every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._started = time.monotonic()

    def __enter__(self) -> Monitor:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        text = line(count(self._folder), self._total, time.monotonic() - self._started)
        if self._tty:
            self._stream.write("\r" + text + "\n")
            self._stream.flush()
        else:
            _LOGGER.info("progress %s", text)

    def _run(self) -> None:
        last_log = time.monotonic()
        while not self._stop.wait(1.0):
            now = time.monotonic()
            done = count(self._folder)
            text = line(done, self._total, now - self._started)
            if self._total and done >= self._total:
                text += "  finishing (COCO documents, manifest)"
            if self._tty:
                self._stream.write("\r" + text)
                self._stream.flush()
            elif now - last_log >= self._log_every:
                _LOGGER.info("progress %s", text)
                last_log = now
