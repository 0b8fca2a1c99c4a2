"""Peak memory of a command and every process it starts (Linux /proc, sampled)."""

from __future__ import annotations

import os
import resource
import subprocess
import threading
import time

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        ppid = int(stat[stat.rindex(b")") + 2:].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _rss(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            return int(f.read().split()[1]) * _PAGE
    except OSError:
        return 0


def _hwm(pid: int) -> int:
    """The process's own peak RSS so far (VmHWM), so short peaks between samples count."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _cpu(pid: int) -> tuple[int, float] | None:
    """(start time, own user + system CPU seconds) of a process, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[19]), (int(fields[11]) + int(fields[12])) / tick


class TreeSampler:
    """Samples the summed RSS of `pid` and its descendants every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.2):
        self._pid, self._interval = pid, interval
        self._stop = threading.Event()
        self.peak_total = 0  # bytes, all processes together
        self.peak_single = 0  # bytes, the largest process
        self.peak_root = 0  # bytes, the command's own process (e.g. the Beam launcher)
        # CPU seconds of every process of the tree, each one's latest own utime + stime:
        # worker processes that are never waited for do not reach getrusage's children.
        self._cpu: dict[tuple[int, int], float] = {}
        self._thread = threading.Thread(target=self._run, daemon=True)

    @property
    def cpu_s(self) -> float:
        """CPU seconds of every process seen (up to one interval short per process)."""
        return sum(self._cpu.values())

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        available = os.path.isdir("/proc")
        while available and not self._stop.is_set():
            tree, todo, total, single = _children(), [self._pid], 0, 0
            while todo:
                pid = todo.pop()
                total += _rss(pid)
                cpu = _cpu(pid)
                if cpu is not None:
                    self._cpu[(pid, cpu[0])] = cpu[1]
                single = max(single, _hwm(pid))
                todo.extend(tree.get(pid, ()))
            self.peak_root = max(self.peak_root, _hwm(self._pid))
            self.peak_total = max(self.peak_total, total)
            self.peak_single = max(self.peak_single, single)
            self._stop.wait(self._interval)


def run_measured(cmd: list[str], **kwargs) -> dict:
    """Runs `cmd`; wall time, CPU, and peak RSS: of the largest process (its VmHWM) and of
    all its processes together (sampled). Raises CalledProcessError on failure."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            **kwargs)
    with TreeSampler(proc.pid) as sampler:
        out, err = proc.communicate()
    wall = time.monotonic() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise subprocess.CalledProcessError(proc.returncode, cmd, out, err)
    return {
        "wall_s": wall,
        "cpu_s": (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime),
        "peak_rss_mb_largest_process": sampler.peak_single / 2**20,
        "peak_rss_mb_all_processes": sampler.peak_total / 2**20,
        "peak_rss_mb_launcher": sampler.peak_root / 2**20,
        "cpu_s_all_processes": sampler.cpu_s,
        "stdout": out,
        "stderr": err,
    }
