"""The command line, strictly: every argument is a flag the exporter or Beam knows.

Beam's own option parser drops what it does not know with a warning and goes on with the
defaults (`--dryrun` would run a real export, `python -m pipeline my_release.json` would
export the bundled example). Here, before anything else, the arguments are parsed against
every flag Beam and the exporter define; an unknown flag, a positional argument, a flag
without its value, an invalid choice or a flag given twice (unless it collects values)
raises `UsageError` with one line naming it and the closest valid flag.
"""

from __future__ import annotations

import argparse
import difflib
import os
import sys
from collections.abc import Sequence

from apache_beam.options import pipeline_options as beam_options

from pipeline.options import COLLECTING_ACTIONS, ExportOptions


class UsageError(ValueError):
    """The command line itself is wrong; the message names the argument."""


def program() -> str:
    """The program as the user called it: `segments-export` or `python -m pipeline`."""
    name = os.path.basename(sys.argv[0]) if sys.argv and sys.argv[0] else ""
    if not name or name in ("__main__.py", "-m", "-c"):
        return "python -m pipeline"
    return name


class _Parser(beam_options._BeamArgumentParser):  # noqa: SLF001  (Beam's parser: its flags' types)
    def error(self, message: str):
        raise UsageError(message)


def parser() -> argparse.ArgumentParser:
    """Every flag of every Beam options class and of the exporter, as Beam collects them."""
    p = _Parser(allow_abbrev=False, add_help=False)
    classes: dict[str, type] = {}
    for cls in beam_options.PipelineOptions.__subclasses__():
        classes.setdefault(str(cls), cls)
    classes.setdefault(str(ExportOptions), ExportOptions)
    for cls in classes.values():
        cls._add_argparse_args(p)  # noqa: SLF001
    return p


def _closest(name: str, flags: list[str], ours: list[str]) -> str:
    """ ' (did you mean --x?)' or ''."""
    plain = name.replace("-", "_")
    guess = "--" + plain.lstrip("_")
    if guess in flags and guess != name:
        return f" (did you mean {guess}?)"
    for pool, cutoff in ((ours, 0.7), (flags, 0.75)):
        match = difflib.get_close_matches(guess, pool, n=1, cutoff=cutoff)
        if match:
            return f" (did you mean {match[0]}?)"
    return ""


def check(argv: Sequence[str]) -> None:
    """Raises UsageError for the first argument neither Beam nor the exporter accepts."""
    p = parser()
    flags = sorted(s for a in p._actions for s in a.option_strings)  # noqa: SLF001
    ours_parser = argparse.ArgumentParser(add_help=False)
    ExportOptions._add_argparse_args(ours_parser)  # noqa: SLF001
    ours = sorted(s for a in ours_parser._actions for s in a.option_strings)  # noqa: SLF001
    try:
        _, unknown = p.parse_known_args(list(argv))
    except UsageError as e:
        raise UsageError(_argparse_message(str(e))) from None
    for arg in unknown:
        if arg == "--":
            raise UsageError("'--': nothing may follow it; give every option as a flag")
        if arg.startswith("-"):
            name = arg.split("=", 1)[0]
            raise UsageError(f"{name}: unknown flag{_closest(name, flags, ours)}")
        hint = (f" (the release is given with --release {arg})"
                if arg.endswith((".json", ".json.gz", ".gz")) else "")
        raise UsageError(f"{arg!r}: unexpected argument; every setting is a --flag{hint}")
    seen: dict[str, str] = {}
    actions = p._option_string_actions  # noqa: SLF001
    for arg in argv:
        if not arg.startswith("--"):
            continue
        name = arg.split("=", 1)[0]
        action = actions.get(name)
        if action is None or isinstance(action, COLLECTING_ACTIONS):
            continue
        if action.dest in seen:
            first = seen[action.dest]
            again = "" if first == name else f" (as {first} and {name})"
            raise UsageError(f"{name}: given more than once{again}; give it once")
        seen[action.dest] = name


def _argparse_message(message: str) -> str:
    """argparse's 'argument --images: invalid choice: ...' as '--images: invalid choice ...'."""
    if message.startswith("argument "):
        message = message[len("argument "):]
        flag, _, rest = message.partition(": ")
        return f"{flag.split('/')[0]}: {rest}"
    return message
