"""Segments.ai release exporter: options, config, graph wiring and the entry point."""

import logging
import os
import sys
import warnings

# `python -m pipeline` puts the current folder first on sys.path, and ML projects often hold
# a `transforms.py` or `transforms/` of their own, which would then be imported instead of
# ours (here and in every worker). Outside a clone of this project the current folder is
# taken off the path before anything of ours is imported. (A `pipeline.py` in the current
# folder is found before this package: use `segments-export`, which never looks there.)
_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _drop_cwd() -> None:
    cwd = os.getcwd()
    if os.path.abspath(cwd) == _ROOT:
        return
    sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != cwd]


_drop_cwd()

EXAMPLE_RELEASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "example", "release.json")

# Known-harmless startup messages of Beam (BEAM-NOTES §1, §2), printed once per process.
# Beam 2.70's TFRecord module warns at import that crcmod is missing: it is only needed
# there (not used here) when google-crc32c, installed with the [gcp] extra, is absent.
_HARMLESS = ("apitools not found", "No semi_persistent_directory found",
             "crcmod package not found")


def _drop_harmless(record: logging.LogRecord) -> bool:
    message = str(record.msg)
    return not any(text in message for text in _HARMLESS)


logging.getLogger().addFilter(_drop_harmless)

# Beam 2.70 caps grpcio below 1.66 (its job servers are the newest Maven Central serves; see
# the README's runner table), and the Google client libraries that [gcp] brings warn on
# import, in every process, that grpcio below 1.83 lacks post-quantum TLS and will no
# longer be supported from 2027. Nothing to act on until Beam moves: keep it off the
# terminal.
warnings.filterwarnings("ignore", message=r".*grpcio.*", category=FutureWarning,
                        module=r"google\.")


class _Once(logging.Filter):
    """Lets a message starting with one of `prefixes` through once per process."""

    def __init__(self, *prefixes: str):
        super().__init__()
        self._prefixes, self._seen = prefixes, set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = str(record.msg)
        for prefix in self._prefixes:
            if message.startswith(prefix):
                if prefix in self._seen:
                    return False
                self._seen.add(prefix)
        return True


# gcsfs (2026.x) asks the Storage Control API for each bucket's layout (zonal or
# hierarchical) and, when it cannot tell (no permission, an emulator), falls back to the
# JSON API used for ordinary buckets, warning on every file operation.
logging.getLogger("gcsfs").addFilter(_Once("Could not determine bucket type",
                                           "Error: Bucket"))
