"""Beam adapters around the pure `transforms.formats` package."""

from transforms.coco import WriteCocoDocument
from transforms.export import ExportSamples
from transforms.names import AssignStems
from transforms.read import ReadRelease
from transforms.write import WriteFailures, WriteManifest

__all__ = [
    "AssignStems",
    "ExportSamples",
    "ReadRelease",
    "WriteCocoDocument",
    "WriteFailures",
    "WriteManifest",
]
