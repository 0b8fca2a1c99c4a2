"""Segments.ai release files: layout detection, validation, selection, sample parsing.

Contract:
  * Three layouts are read and normalised to one model (`ReleaseInfo` + `Sample`):
    - "v2" (current): `dataset.{task_type, task_attributes.categories, labelsets[], samples[]}`;
    - "transitional" (late 2020): `dataset.labelsets` is a dict keyed by labelset name whose
      values carry `attributes.categories`;
    - "v1" (2020, seed 002): `tasks` (list, or dict keyed by task name; top level or under
      `dataset`) and `samples` (top level or under `dataset`); labels are keyed by task name,
      so each task is a labelset.
  * The header (everything but the samples) is read with a streaming scan of the whole file:
    memory stays flat, a truncated or invalid file is caught before any work starts, and the
    number of samples is known up front. Samples are then streamed one at a time.
  * Selection follows the SDK (`SegmentsDataset`): a sample's status is
    `labels[labelset].label_status`, or "UNLABELED" when the label is null **or missing**
    (the SDK raises KeyError there); `filter_by` matches case-insensitively; each
    `filter_by_metadata` pair must be present and equal (Python `==`, so "1" != 1) in the
    sample's metadata (a null metadata matches nothing instead of crashing). Status filter
    first, then metadata. The index among selected samples gives `image_id = index + 1`.
  * A selected sample whose label or label attributes are null is *skipped* (it keeps its
    index, as in the SDK). A sample whose JSON is malformed *fails* with the field named.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping
from typing import IO, Any

import ijson

from transforms.formats import errors
from transforms.formats.types import (
    FORMATS_BY_TASK,
    VECTOR_TASKS,
    Annotation,
    Category,
    Sample,
)

MAX_INSTANCE_ID = (1 << 24) - 1
UNLABELED = "UNLABELED"
DEFAULT_LABELSET = "ground-truth"
DEFAULT_OWNER = "unknown"

# Known task types that this exporter cannot export, with the reason shown to the user.
_UNSUPPORTED_TASKS = {
    "pointcloud-segmentation": "point-cloud releases have no image export format",
    "pointcloud-cuboid": "point-cloud releases have no image export format",
    "pointcloud-vector": "point-cloud releases have no image export format",
    "pointcloud-segmentation-sequence": "point-cloud releases have no image export format",
    "pointcloud-cuboid-sequence": "point-cloud releases have no image export format",
    "pointcloud-vector-sequence": "point-cloud releases have no image export format",
    "multisensor-sequence": "multi-sensor releases have no image export format",
    "image-segmentation-sequence": "sequence bitmaps have no export format yet",
    "keypoints": "keypoint releases are not supported yet",
    "image-vector-sequence": "vector sequences are not supported yet",
}

# Header fields collected by the scan (ijson prefixes). Samples are never built here.
_HEADER_PREFIXES = frozenset(
    {
        "name",
        "description",
        "dataset",  # only to detect a non-object `dataset`
        "dataset.name",
        "dataset.owner",
        "dataset.description",
        "dataset.task_type",
        "dataset.task_attributes",
        "dataset.labelsets",
        "dataset.tasks",
        "tasks",
    }
)
_SAMPLE_ARRAYS = ("dataset.samples", "samples")
_VALUE_EVENTS = frozenset({"start_map", "start_array", "string", "number", "boolean", "null"})


@dataclasses.dataclass(frozen=True)
class Selection:
    """Which samples to export (CLI `--labelset`, `--filter_by`, `--filter_by_metadata`)."""

    labelset: str | None = None  # None: "ground-truth" (v2) or the first task (v1)
    filter_by: tuple[str, ...] | None = None  # upper-cased statuses; None keeps all
    filter_by_metadata: tuple[tuple[str, Any], ...] = ()


@dataclasses.dataclass(frozen=True)
class ReleaseInfo:
    """Everything about a release except its samples; small, built on the launcher."""

    name: str
    dataset_name: str
    owner: str
    task_type: str
    layout: str  # v2 | transitional | v1
    labelsets: tuple[str, ...]
    labelset: str
    categories: tuple[Category, ...]
    samples_prefix: str  # ijson prefix of sample items, e.g. "dataset.samples.item"
    sample_count: int

    @property
    def formats(self) -> tuple[str, ...]:
        return FORMATS_BY_TASK[self.task_type]


# --------------------------------------------------------------------------- header scan


def scan_header(stream: IO[bytes]) -> dict[str, Any]:
    """Streams the whole file once; returns header values keyed by ijson prefix.

    Adds `"<array>.count"` for each samples array found. Raises `ReleaseError` for invalid
    or truncated JSON (naming the byte offset the parser had read up to) or a non-object top
    level.
    """
    stream = _CountingReader(stream)
    header: dict[str, Any] = {}
    builder = None
    depth = 0
    key = ""
    first = True
    try:
        for prefix, event, value in ijson.parse(stream, use_float=True):
            if first:
                first = False
                if event != "start_map":
                    raise errors.ReleaseError("release file: the top level must be a JSON object")
            if builder is not None:
                builder.event(event, value)
                if event in ("start_map", "start_array"):
                    depth += 1
                elif event in ("end_map", "end_array"):
                    depth -= 1
                if depth == 0:
                    header[key] = builder.value
                    builder = None
                continue
            if event not in _VALUE_EVENTS:
                continue
            if prefix in _SAMPLE_ARRAYS:
                header[prefix] = event  # "start_array" expected; anything else is reported
                header.setdefault(prefix + ".count", 0)
            elif prefix.endswith(".item") and prefix[:-5] in _SAMPLE_ARRAYS:
                header[prefix[:-5] + ".count"] += 1
            elif prefix == "dataset":
                header[prefix] = event
            elif prefix in _HEADER_PREFIXES:
                if event in ("start_map", "start_array"):
                    builder = ijson.ObjectBuilder()
                    builder.event(event, value)
                    depth, key = 1, prefix
                else:
                    header[prefix] = value
    except ijson.JSONError as e:
        raise errors.ReleaseError(
            f"release file is not valid JSON (error at or before byte {stream.count}):"
            f" {_short(e)}") from None
    return header


class _CountingReader:
    """A binary stream wrapper counting the bytes handed to the parser."""

    def __init__(self, stream: IO[bytes]):
        self._stream = stream
        self.count = 0

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self.count += len(data)
        return data


def _short(e: Exception, limit: int = 200) -> str:
    text = " ".join(str(e).split())  # yajl pads its message with a caret line
    text = text.replace("(right here) ------^", "").strip()
    return text if len(text) <= limit else text[:limit] + "..."


def release_info(header: Mapping[str, Any], selection: Selection) -> ReleaseInfo:
    """Detects the layout, validates the header and the selection; names the bad field."""
    if "dataset" in header and header["dataset"] != "start_map":
        raise errors.ReleaseError("dataset: expected an object")
    tasks = header.get("tasks", header.get("dataset.tasks"))
    labelsets_raw = header.get("dataset.labelsets")
    if tasks is not None and "dataset.task_type" not in header:
        layout = "v1"
    elif isinstance(labelsets_raw, Mapping):
        layout = "transitional"
    else:
        layout = "v2"

    if layout == "v1":
        tasks_field = "tasks" if "tasks" in header else "dataset.tasks"
        task_list = _v1_tasks(tasks, tasks_field)
        labelsets = tuple(name for name, _ in task_list)
        labelset = selection.labelset or labelsets[0]
        _check_labelset(labelset, labelsets)
        task = dict(task_list)[labelset]
        task_field = f"{tasks_field}[{labelsets.index(labelset)}]"
        task_type = _require_str(task, "task_type", task_field)
        cats_raw = _dig(task, ("attributes", "categories"), task_field)
        cats_field = f"{task_field}.attributes.categories"
        dataset_name = _opt_str(header, "dataset.name") or _opt_str(header, "name") or "dataset"
    else:
        task_type = _require_header_str(header, "dataset.task_type")
        dataset_name = _require_header_str(header, "dataset.name")
        if layout == "transitional":
            labelsets = tuple(str(k) for k in labelsets_raw)
            labelset = selection.labelset or DEFAULT_LABELSET
            _check_labelset(labelset, labelsets)
            cats_field = f"dataset.labelsets.{labelset}.attributes.categories"
            cats_raw = _dig(labelsets_raw[labelset], ("attributes", "categories"), cats_field)
        else:
            if labelsets_raw is None:
                raise errors.ReleaseError("dataset.labelsets: missing")
            if not isinstance(labelsets_raw, list):
                raise errors.ReleaseError("dataset.labelsets: expected a list")
            names = []
            for i, ls in enumerate(labelsets_raw):
                if not isinstance(ls, Mapping) or not isinstance(ls.get("name"), str):
                    raise errors.ReleaseError(f"dataset.labelsets[{i}].name: expected a string")
                names.append(ls["name"])
            labelsets = tuple(names)
            labelset = selection.labelset or DEFAULT_LABELSET
            _check_labelset(labelset, labelsets)
            attrs = header.get("dataset.task_attributes")
            if not isinstance(attrs, Mapping):
                raise errors.ReleaseError("dataset.task_attributes: expected an object")
            cats_raw = attrs.get("categories")
            cats_field = "dataset.task_attributes.categories"

    if task_type not in FORMATS_BY_TASK:
        supported = ", ".join(FORMATS_BY_TASK)
        why = _UNSUPPORTED_TASKS.get(task_type, "unknown task type")
        raise errors.ReleaseError(
            f"dataset.task_type: {task_type!r} cannot be exported ({why}); supported: {supported}"
        )
    categories = parse_categories(cats_raw, cats_field)

    prefixes = [p for p in _SAMPLE_ARRAYS if p in header]
    preferred = "dataset.samples" if layout != "v1" else None
    array = preferred if preferred in prefixes else (prefixes[0] if prefixes else None)
    if array is None:
        raise errors.ReleaseError("dataset.samples: missing")
    if header[array] != "start_array":
        raise errors.ReleaseError(f"{array}: expected a list of samples")
    release_name = _opt_str(header, "name")
    if release_name is None and layout != "v1":
        raise errors.ReleaseError("name: missing (the release name)")
    return ReleaseInfo(
        name=release_name or "release",
        dataset_name=dataset_name,
        owner=_opt_str(header, "dataset.owner") or DEFAULT_OWNER,
        task_type=task_type,
        layout=layout,
        labelsets=labelsets,
        labelset=labelset,
        categories=categories,
        samples_prefix=array + ".item",
        sample_count=int(header[array + ".count"]),
    )


def _v1_tasks(tasks: Any, field: str) -> list[tuple[str, Mapping[str, Any]]]:
    if isinstance(tasks, Mapping):
        items = [(str(k), v) for k, v in tasks.items()]
    elif isinstance(tasks, list):
        items = []
        for i, t in enumerate(tasks):
            if not isinstance(t, Mapping) or not isinstance(t.get("name"), str):
                raise errors.ReleaseError(f"{field}[{i}].name: expected a string")
            items.append((t["name"], t))
    else:
        raise errors.ReleaseError(f"{field}: expected a list or an object")
    if not items:
        raise errors.ReleaseError(f"{field}: no tasks")
    for name, t in items:
        if not isinstance(t, Mapping):
            raise errors.ReleaseError(f"{field}.{name}: expected an object")
    return items


def _check_labelset(labelset: str, labelsets: tuple[str, ...]) -> None:
    if labelset not in labelsets:
        available = ", ".join(labelsets) or "none"
        raise errors.ReleaseError(
            f"--labelset: no labelset named {labelset!r} in this release (available: {available})"
        )


def _dig(obj: Any, keys: tuple[str, ...], field: str) -> Any:
    for k in keys:
        if not isinstance(obj, Mapping):
            raise errors.ReleaseError(f"{field}: expected an object")
        obj = obj.get(k)
    return obj


def _opt_str(header: Mapping[str, Any], key: str) -> str | None:
    v = header.get(key)
    return v if isinstance(v, str) and v else None


def _require_header_str(header: Mapping[str, Any], key: str) -> str:
    if key not in header:
        raise errors.ReleaseError(f"{key}: missing")
    v = header[key]
    if not isinstance(v, str):
        raise errors.ReleaseError(f"{key}: expected a string, got {type(v).__name__}")
    return v


def _require_str(obj: Mapping[str, Any], key: str, field: str) -> str:
    v = obj.get(key)
    if not isinstance(v, str):
        raise errors.ReleaseError(f"{field}.{key}: expected a string")
    return v


def parse_categories(raw: Any, field: str) -> tuple[Category, ...]:
    """Validates the taxonomy; every problem names `field[i].key`."""
    if raw is None:
        raise errors.ReleaseError(f"{field}: missing")
    if not isinstance(raw, list):
        raise errors.ReleaseError(f"{field}: expected a list")
    out, seen = [], set()
    for i, c in enumerate(raw):
        f = f"{field}[{i}]"
        if not isinstance(c, Mapping):
            raise errors.ReleaseError(f"{f}: expected an object")
        cid = c.get("id")
        if not _is_int(cid):
            raise errors.ReleaseError(f"{f}.id: expected an integer, got {cid!r}")
        cid = int(cid)
        if cid in seen:
            raise errors.ReleaseError(f"{f}.id: duplicate category id {cid}")
        seen.add(cid)
        name = c.get("name")
        if not isinstance(name, str):
            raise errors.ReleaseError(f"{f}.name: expected a string")
        has_instances = c.get("has_instances")
        if has_instances is not None and not isinstance(has_instances, bool):
            raise errors.ReleaseError(f"{f}.has_instances: expected true, false or null")
        out.append(
            Category(
                id=cid,
                name=name,
                color=_parse_color(c.get("color"), f + ".color"),
                has_instances=bool(has_instances),
                raw=tuple(c.items()),
            )
        )
    return tuple(out)


def _parse_color(raw: Any, field: str) -> tuple[int, int, int] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or len(raw) not in (3, 4):
        raise errors.ReleaseError(f"{field}: expected 3 or 4 numbers (RGB or RGBA)")
    rgb = []
    for v in raw[:3]:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 <= v <= 255:
            raise errors.ReleaseError(f"{field}: values must be numbers in [0, 255], got {raw}")
        rgb.append(int(math.floor(v + 0.5)))  # fractional colours are rounded, not rejected
    return (rgb[0], rgb[1], rgb[2])


def _is_int(v: Any) -> bool:
    if isinstance(v, bool):
        return False
    return isinstance(v, int) or (isinstance(v, float) and v.is_integer())


# --------------------------------------------------------------------------- samples


def iter_raw_samples(stream: IO[bytes], prefix: str) -> Iterator[Any]:
    """Yields sample items one at a time (C backend; floats as float, not Decimal)."""
    return ijson.items(stream, prefix, use_float=True)


def sample_status(raw: Any, labelset: str) -> str:
    """The SDK's status: label_status, or UNLABELED for a null or missing label."""
    if not isinstance(raw, Mapping):
        raise errors.SampleSchemaError(f"sample: expected an object, got {type(raw).__name__}")
    labels = raw.get("labels")
    if labels is None:
        return UNLABELED
    if not isinstance(labels, Mapping):
        raise errors.SampleSchemaError("labels: expected an object keyed by labelset")
    label = labels.get(labelset)
    if label is None:
        return UNLABELED
    if not isinstance(label, Mapping):
        raise errors.SampleSchemaError(f"labels.{labelset}: expected an object or null")
    status = label.get("label_status")
    if not isinstance(status, str):
        raise errors.SampleSchemaError(f"labels.{labelset}.label_status: expected a string")
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


def skip_reason(raw: Mapping[str, Any], labelset: str) -> str | None:
    """Why a selected sample has nothing to export (the SDK skips these too)."""
    label = (raw.get("labels") or {}).get(labelset)
    if label is None:
        return "no label in this labelset"
    if label.get("attributes") is None:
        return f"label attributes are null (status {label.get('label_status')})"
    return None


def parse_sample(raw: Mapping[str, Any], position: int, index: int, info: ReleaseInfo) -> Sample:
    """A selected, labelled raw sample -> Sample. Raises SampleSchemaError naming the field."""
    uuid, name = identity(raw, position)
    ls = info.labelset
    label = raw["labels"][ls]
    attrs = label["attributes"]
    base = f"labels.{ls}.attributes"
    if not isinstance(attrs, Mapping):
        raise errors.SampleSchemaError(f"{base}: expected an object")
    anns_raw = attrs.get("annotations")
    if anns_raw is None:
        anns_raw = []
    if not isinstance(anns_raw, list):
        raise errors.SampleSchemaError(f"{base}.annotations: expected a list")
    vector = info.task_type in VECTOR_TASKS
    annotations, seen = [], set()
    for i, a in enumerate(anns_raw):
        f = f"{base}.annotations[{i}]"
        if not isinstance(a, Mapping):
            raise errors.SampleSchemaError(f"{f}: expected an object")
        aid, cid = a.get("id"), a.get("category_id")
        if vector:  # ids only name objects here; they index no bitmap
            if aid is not None and not _is_int(aid):
                raise errors.SampleSchemaError(f"{f}.id: expected an integer, got {aid!r}")
        elif not _is_int(aid) or not 1 <= aid <= MAX_INSTANCE_ID:
            raise errors.SampleSchemaError(
                f"{f}.id: expected an integer in 1..{MAX_INSTANCE_ID}, got {aid!r}"
            )
        if not _is_int(cid):
            raise errors.SampleSchemaError(f"{f}.category_id: expected an integer, got {cid!r}")
        aid = int(aid) if aid is not None else 0
        if not vector:
            if aid in seen:
                raise errors.SampleSchemaError(f"{f}.id: duplicate annotation id {aid}")
            seen.add(aid)
        obj_attrs = a.get("attributes")
        kind, points = (_vector_shape(a, f) if vector else (None, ()))
        annotations.append(
            Annotation(
                id=aid,
                category_id=int(cid),
                attributes=tuple(obj_attrs.items()) if isinstance(obj_attrs, Mapping) else None,
                type=kind,
                points=points,
            )
        )
    bitmap = attrs.get("segmentation_bitmap")
    bitmap_url = bitmap.get("url") if isinstance(bitmap, Mapping) else None
    sample_attrs = raw.get("attributes")
    image = sample_attrs.get("image") if isinstance(sample_attrs, Mapping) else None
    image_url = image.get("url") if isinstance(image, Mapping) else None
    return Sample(
        index=index,
        position=position,
        uuid=uuid,
        name=name,
        image_url=image_url if isinstance(image_url, str) and image_url else None,
        label_status=str(label.get("label_status", "")).upper(),
        annotations=tuple(annotations),
        bitmap_url=bitmap_url if isinstance(bitmap_url, str) and bitmap_url else None,
    )


def _vector_shape(a: Mapping[str, Any], field: str) -> tuple[str, tuple[tuple[float, float], ...]]:
    """(type, points) of a vector annotation; every point a finite [x, y] pair."""
    kind = a.get("type")
    if not isinstance(kind, str):
        raise errors.SampleSchemaError(f"{field}.type: expected a string, got {kind!r}")
    raw = a.get("points")
    if not isinstance(raw, list):
        raise errors.SampleSchemaError(f"{field}.points: expected a list of [x, y] points")
    points = []
    for k, p in enumerate(raw):
        if (not isinstance(p, list) or len(p) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           and math.isfinite(v) for v in p)):
            raise errors.SampleSchemaError(f"{field}.points[{k}]: expected [x, y] numbers, got {p!r}")
        points.append((float(p[0]), float(p[1])))
    return kind, tuple(points)


@dataclasses.dataclass(frozen=True)
class Decision:
    """What happens to one sample of the release (the reader's and --dry_run's rules)."""

    position: int
    uuid: str
    name: str
    status: str | None  # label status; None when the sample is too malformed to tell
    sample: Sample | None = None  # set when the sample is to be exported
    skipped: str | None = None  # reason, when skipped (filtered out, no label, ...)
    failed: errors.SampleError | None = None  # when malformed
    image_id: int | None = None  # selected samples keep their number even when skipped

    @property
    def selected(self) -> bool:
        return self.image_id is not None


def decide(stream: IO[bytes], info: ReleaseInfo, selection: Selection) -> Iterator[Decision]:
    """Streams the samples and decides each one's fate, in release order."""
    index = 0
    for position, raw in enumerate(iter_raw_samples(stream, info.samples_prefix)):
        uuid, name = identity(raw, position)
        try:
            status = sample_status(raw, info.labelset)
        except errors.SampleError as e:
            yield Decision(position, uuid, name, None, failed=e)
            continue
        reason = filter_reason(raw, status, selection)
        if reason is not None:
            yield Decision(position, uuid, name, status, skipped=reason)
            continue
        image_id = index + 1
        reason = skip_reason(raw, info.labelset)
        if reason is not None:
            yield Decision(position, uuid, name, status, skipped=reason, image_id=image_id)
        else:
            try:
                sample = parse_sample(raw, position, index, info)
            except errors.SampleError as e:
                yield Decision(position, uuid, name, status, failed=e, image_id=image_id)
            else:
                yield Decision(position, uuid, name, status, sample=sample, image_id=image_id)
        index += 1


def plan(stream: IO[bytes], info: ReleaseInfo, selection: Selection) -> dict[str, Any]:
    """What an export would do, without fetching anything (`--dry_run`): `decide` counted."""
    statuses: dict[str, int] = {}
    skipped: dict[str, int] = {}
    malformed: list[str] = []
    to_export = failing = 0
    for d in decide(stream, info, selection):
        if d.status is not None:
            statuses[d.status] = statuses.get(d.status, 0) + 1
        if d.skipped is not None:
            skipped[d.skipped] = skipped.get(d.skipped, 0) + 1
        elif d.failed is not None:
            failing += 1
            malformed.append(f"#{d.position}: {d.failed.reason}")
        else:
            to_export += 1
    return {"samples": info.sample_count, "statuses": dict(sorted(statuses.items())),
            "to_export": to_export, "skipped": dict(sorted(skipped.items())),
            "malformed": failing, "malformed_examples": malformed[:10]}


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
