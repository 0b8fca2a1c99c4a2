"""Flex Template entry point: the export `python -m pipeline` runs, on DataflowRunner.

Dataflow's launcher runs this file (FLEX_TEMPLATE_PYTHON_PY_FILE in dataflow/Dockerfile) with
the template's parameters as `--name=value` flags, plus its own (--project, --region,
--temp_location, --template_location, ...). Two adaptations, then `pipeline.run.main`:

* on/off flags arrive as `--validate=false` / `--allow_local_files=true`: `true` becomes the
  bare flag, `false` drops it (argparse refuses a value after an on/off flag);
* with no --runner, DataflowRunner (this image exists to launch Dataflow jobs; Beam's default
  would export on the launcher VM).

The package itself (`pipeline`, `transforms`) is installed in the image, and staged for the
workers with --setup_file (FLEX_TEMPLATE_PYTHON_SETUP_FILE).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from pipeline.cli import program
from pipeline.options import ExportOptions
from pipeline.run import main


def _switches() -> frozenset[str]:
    parser = argparse.ArgumentParser(add_help=False)
    ExportOptions._add_argparse_args(parser)
    return frozenset(a.option_strings[0] for a in parser._actions if a.nargs == 0)


def flex_args(argv: Sequence[str]) -> list[str]:
    """Template-style arguments -> the command line's. Raises ValueError on a bad switch."""
    switches = _switches()
    out = []
    for arg in argv:
        flag, sep, value = arg.partition("=")
        if sep and flag in switches:
            if value.strip().lower() == "true":
                out.append(flag)
            elif value.strip().lower() not in ("false", ""):
                raise ValueError(f"{flag}: expected true or false, got {value!r}")
            continue
        out.append(arg)
    if not any(a == "--runner" or a.startswith("--runner=") for a in out):
        out.append("--runner=DataflowRunner")
    return out


if __name__ == "__main__":
    try:
        args = flex_args(sys.argv[1:])
    except ValueError as e:  # as the command line: one line, exit code 2, nothing done
        print(f"{program()}: error: {e}", file=sys.stderr)
        sys.exit(2)
    main(args)
