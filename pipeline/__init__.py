"""Segments.ai release exporter: options, config, graph wiring and the entry point."""

import logging
import os

EXAMPLE_RELEASE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "example", "release.json")

# Known-harmless startup messages of Beam 2.77 (BEAM-NOTES §1, §2), printed once per process.
_HARMLESS = ("apitools not found", "No semi_persistent_directory found")


def _drop_harmless(record: logging.LogRecord) -> bool:
    message = str(record.msg)
    return not any(text in message for text in _HARMLESS)


logging.getLogger().addFilter(_drop_harmless)
