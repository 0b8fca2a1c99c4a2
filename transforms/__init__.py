"""The export's steps: thin Beam adapters (PTransforms, DoFns, CombineFns) over pure packages.

Pure packages (never import Apache Beam; tests/unit/test_layering.py checks each one),
from the bottom up; each imports only those before it:

    model     the internal model and error classes every layer shares
    storage   URLs, fetching (HTTP with retries, fsspec), atomic writes, listings
    release   reading release files: layouts, checks, selection, sample parsing
    formats   the export formats and the per-sample pass that computes them
    summary   run report, manifest, preview, progress
    state     the ledger, chunked runs, incremental exports

Beam adapters (this folder's modules: `read`, `names`, `export`, `coco`, `write`,
`report`) wrap them, one step each, and are imported lazily below, so that importing a
pure package never loads Beam. `pipeline` wires the adapters into the job graph.
"""

import importlib

_EXPORTS = {
    "AssignStems": "transforms.names",
    "ExportSamples": "transforms.export",
    "ReadRelease": "transforms.read",
    "WriteCocoDocument": "transforms.coco",
    "WriteFailures": "transforms.write",
    "WriteManifest": "transforms.write",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'transforms' has no attribute {name!r}")
