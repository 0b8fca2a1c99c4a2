"""Times the segments-ai SDK on a release; run with the SDK's own interpreter.

    SDK_PYTHON benchmarks/sdk_runner.py RELEASE_JSON OUT_DIR CACHE_DIR FORMAT[,FORMAT...]

Imports nothing from this project (the SDK lives in its own environment: it needs
Pillow < 12). Prints one JSON object: load (download + decode, 16 threads, as the SDK does)
and each export's wall and CPU seconds, plus the peak RSS.
"""

import json
import os
import resource
import sys
import time


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def main() -> None:
    release, out, cache, formats = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4].split(",")
    from segments import SegmentsDataset
    from segments.utils import export_dataset

    result = {"formats": {}}
    w0, c0 = time.monotonic(), _cpu()
    dataset = SegmentsDataset(release, labelset="ground-truth", segments_dir=cache, preload=True)
    result["load"] = {"wall_s": time.monotonic() - w0, "cpu_s": _cpu() - c0}
    result["samples"] = len(dataset)
    result["crashed"] = {}
    for fmt in formats:
        w0, c0 = time.monotonic(), _cpu()
        try:
            export_dataset(dataset, export_folder=os.path.join(out, fmt), export_format=fmt)
        except Exception as e:  # the SDK's own bugs (spec §5): report, time the others
            result["crashed"][fmt] = f"{type(e).__name__}: {e}"[:200]
            continue
        result["formats"][fmt] = {"wall_s": time.monotonic() - w0, "cpu_s": _cpu() - c0}
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result))


if __name__ == "__main__":
    main()
