"""Error classes.

Three kinds, handled differently by the pipeline:

* `ReleaseError`: the release file or the options are unusable. Raised on the launcher
  before any work starts; the message names the offending field.
* `SampleError` subclasses: one sample cannot be exported (bad bitmap, 404, ...). The sample
  goes to the failure report with `stage` and `reason`; the export goes on.
* anything else is a bug or an exhausted transient fault and propagates (Beam retries).
"""

from __future__ import annotations


class ReleaseError(ValueError):
    """The release file (or the selection asked of it) cannot be exported at all."""


class SampleError(Exception):
    """One sample cannot be exported. `stage` says where it failed."""

    stage = "export"

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class SampleSchemaError(SampleError):
    stage = "read"


class FetchError(SampleError):
    """A permanent fetch failure (404, 403, refused URL, exhausted retries)."""

    stage = "fetch"


class BitmapError(SampleError):
    """The segmentation bitmap cannot be decoded or does not fit the image."""

    stage = "decode"


class WriteError(SampleError):
    """A file of this sample cannot be written (its name, or a file/folder clash)."""

    stage = "write"


class FormatError(SampleError):
    """A format cannot represent this sample (e.g. an instance id above 65535 in 16 bits)."""

    stage = "export"
