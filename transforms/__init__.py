"""Beam adapters around the pure `transforms.formats` package.

The adapters are imported lazily so that `import transforms.formats...` never loads Apache
Beam (pure format logic must be usable without it).
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
