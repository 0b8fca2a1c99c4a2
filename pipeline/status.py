"""Whether a folder holds a finished export that `--since` and `--only_failed` can continue.

    python -m pipeline.status OUT        (OUT local, gs:// or s3://)

Prints one line saying what OUT holds; exit code 0 when it is a finished export made by
this exporter's ledger version (so `--since OUT --output OUT` can update it), 1 when it is
not (empty, missing, unfinished, or made by an older version: export it in full). Nothing
is written. A scheduled job uses it to choose between a first export and an update:

    if python -m pipeline.status "$OUT" >/dev/null; then ARGS+=(--since "$OUT"); fi
"""

from __future__ import annotations

import argparse
import json
import sys

from transforms import storage
from transforms.model import paths
from transforms.state import ledger


def status(out: str) -> tuple[bool, str]:
    """(finished export that --since can update, one line saying what `out` holds)."""
    where = storage.redact(out)
    state = ledger.read_state(out)
    if state is None:
        held = [e for e in _entries(out) if e in paths.OWNED]
        if held:
            return False, (f"{where}: an unfinished or interrupted export (no ledger state); "
                           "export it in full")
        return False, f"{where}: no export here"
    generation, fp = state
    if fp.version != ledger.VERSION:
        return False, (f"{where}: an export made by ledger version {fp.version}; this exporter "
                       f"writes version {ledger.VERSION}: export it in full")
    try:
        report = json.loads(storage.read_bytes(storage.join(out, paths.REPORT)))
        samples = report["samples"]
        what = (f"release {report['release'].get('name')!r}: {samples['exported']} exported, "
                f"{samples['failed']} failed, {samples['skipped']} skipped")
    except (OSError, ValueError, KeyError, TypeError):
        what = "no readable report.json"
    settings = dict(fp.settings)
    return True, (f"{where}: a finished export ({what}; formats "
                  f"{', '.join(settings.get('formats') or [])}; ledger generation "
                  f"{generation}); --since {where} --output {where} updates it")


def _entries(out: str) -> list[str]:
    try:
        return storage.check_output(out, paths.OWNED)
    except ValueError:
        return []


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m pipeline.status", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output", help="an export's output folder (local, gs:// or s3://)")
    args = ap.parse_args(argv)
    finished, line = status(args.output)
    print(line)
    sys.exit(0 if finished else 1)


if __name__ == "__main__":
    main()
