"""`python -m pipeline.validate OUT`: re-open an export and print a verdict per format."""

from __future__ import annotations

import argparse
import os
import sys

import pipeline.validate as validate_pkg
from pipeline.validate import print_report, validate
from transforms import storage


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m pipeline.validate", description=validate_pkg.__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("output", help="an export's output folder (local, gs:// or s3://)")
    ap.add_argument("--eval_images", type=int, default=1000,
                    help="images evaluated by COCOeval (the structural checks cover all)")
    args = ap.parse_args(argv)
    remote = bool(storage.scheme(args.output))
    if not (storage.walk_files(args.output) if remote else os.path.isdir(args.output)):
        print(f"error: {storage.redact(args.output)}: no such folder", file=sys.stderr)
        sys.exit(2)
    report = validate(args.output, args.eval_images)
    print_report(report)
    sys.exit(0 if report.ok else 1)


if __name__ == "__main__":
    main()
