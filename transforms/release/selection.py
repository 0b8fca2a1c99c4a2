"""Which samples an export selects, and why it leaves the others out.

Contract:
  * Selection follows the SDK (`SegmentsDataset`): a sample's status is
    `labels[labelset].label_status`, or "UNLABELED" when the label is null **or missing**
    (the SDK raises KeyError there); `filter_by` matches case-insensitively; each
    `filter_by_metadata` pair must be present and equal (Python `==`, so "1" != 1) in the
    sample's metadata (a null metadata matches nothing instead of crashing). Status filter
    first, then metadata. The index among selected samples gives `image_id = index + 1`.
  * A selected sample whose label or label attributes are null is *skipped* (it keeps its
    index, as in the SDK). `metadata` is only read by `filter_by_metadata`: any non-object
    value there matches nothing, like null.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from typing import Any

from transforms.model import errors
from transforms.release.values import json_kind

UNLABELED = "UNLABELED"
# The statuses Segments.ai stores (VERIFIED where the dataset enables it), and UNLABELED,
# the status of a sample without a label.
LABEL_STATUSES = ("LABELED", "LABELING_IN_PROGRESS", "REVIEWED", "REVIEWING_IN_PROGRESS",
                  "REJECTED", "PRELABELED", "SKIPPED", "VERIFIED", UNLABELED)


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which samples to export (CLI `--labelset`, `--filter_by`, `--filter_by_metadata`)."""

    labelset: str | None = None  # None: "ground-truth" (v2) or the first task (v1)
    filter_by: tuple[str, ...] | None = None  # upper-cased statuses; None keeps all
    filter_by_metadata: tuple[tuple[str, Any], ...] = ()


def sample_status(raw: Any, labelset: str) -> str:
    """The SDK's status: label_status, or UNLABELED for a null or missing label."""
    if not isinstance(raw, Mapping):
        raise errors.SampleSchemaError(f"sample: expected an object, got {json_kind(raw)}")
    labels = raw.get("labels")
    if labels is None:
        return UNLABELED
    if not isinstance(labels, Mapping):
        raise errors.SampleSchemaError(
            f"labels: expected an object keyed by labelset, got {json_kind(labels)}")
    label = labels.get(labelset)
    if label is None:
        return UNLABELED
    if not isinstance(label, Mapping):
        raise errors.SampleSchemaError(
            f"labels.{labelset}: expected an object or null, got {json_kind(label)}")
    status = label.get("label_status")
    if not isinstance(status, str):
        raise errors.SampleSchemaError(
            f"labels.{labelset}.label_status: expected a string, got {json_kind(status)}")
    return status.upper()


def filter_reason(raw: Mapping[str, Any], status: str, selection: Selection) -> str | None:
    """Why the selection drops this sample, or None when it is selected."""
    if selection.filter_by is not None and status not in selection.filter_by:
        return f"filtered out by --filter_by (status {status})"
    if selection.filter_by_metadata:
        metadata = raw.get("metadata")
        if not isinstance(metadata, Mapping):
            return "filtered out by --filter_by_metadata (no metadata)"
        for key, value in selection.filter_by_metadata:
            if key not in metadata or metadata[key] != value:
                return f"filtered out by --filter_by_metadata ({key})"
    return None


def identity(raw: Any, position: int) -> tuple[str, str]:
    """(uuid, name) for reports, tolerant of any junk."""
    if not isinstance(raw, Mapping):
        return "", f"#{position}"
    uuid = raw.get("uuid")
    name = raw.get("name")
    uuid = uuid if isinstance(uuid, str) else ("" if uuid is None else str(uuid))
    name = name if isinstance(name, str) and name else (uuid or f"#{position}")
    return uuid, name


def check_identity(raw: Mapping[str, Any]) -> None:
    """`uuid` and `name` are strings when present (missing or null: `identity` falls back)."""
    for key in ("uuid", "name"):
        value = raw.get(key)
        if value is not None and not isinstance(value, str):
            raise errors.SampleSchemaError(f"{key}: expected a string, got {json_kind(value)}")


def skip_reason(raw: Mapping[str, Any], labelset: str) -> str | None:
    """Why a selected sample has nothing to export (the SDK skips these too)."""
    label = (raw.get("labels") or {}).get(labelset)
    if label is None:
        return "no label in this labelset"
    if label.get("attributes") is None:
        return f"label attributes are null (status {label.get('label_status')})"
    return None


def parse_metadata_filters(pairs: list[str]) -> tuple[tuple[str, Any], ...]:
    """CLI `key=value` pairs. The value is read as JSON when it parses (`n=1` is the number
    1, `ok=true` a boolean, `s="1"` the string "1"), else taken as a plain string."""
    import json

    out = []
    for pair in pairs:
        if "=" not in pair:
            raise errors.ReleaseError(f"--filter_by_metadata: expected key=value, got {pair!r}")
        key, text = pair.split("=", 1)
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        out.append((key, value))
    return tuple(out)


def metadata_text(raw: Any) -> str | None:
    """The sample's `metadata` as compact JSON text (keys sorted), None when missing or
    null: what the manifest keeps, whatever its shape."""
    if not isinstance(raw, Mapping) or raw.get("metadata") is None:
        return None
    return json.dumps(raw["metadata"], sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def image_url(raw: Any) -> str | None:
    """`attributes.image.url` when it is a string (for the manifest of samples that are not
    exported; an exported sample's URL is checked by `samples.parse_sample`)."""
    attrs = raw.get("attributes") if isinstance(raw, Mapping) else None
    image = attrs.get("image") if isinstance(attrs, Mapping) else None
    url = image.get("url") if isinstance(image, Mapping) else None
    return url if isinstance(url, str) and url else None
