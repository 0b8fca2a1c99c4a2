"""Release layouts: the header of every known release file normalised to `ReleaseInfo`.

Contract:
  * Three layouts are read and normalised to one model (`ReleaseInfo` + `Sample`):
    - "v2" (current): `dataset.{task_type, task_attributes.categories, labelsets[], samples[]}`;
    - "transitional" (late 2020): `dataset.labelsets` is a dict keyed by labelset name whose
      values carry `attributes.categories`;
    - "v1" (2020, seed 002): `tasks` (list, or dict keyed by task name; top level or under
      `dataset`) and `samples` (top level or under `dataset`); labels are keyed by task name,
      so each task is a labelset.
  * Every problem of the header is a `ReleaseError` naming the field; task types this
    exporter cannot export are refused with what to use instead.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any

from transforms.model import errors
from transforms.model.types import FORMATS_BY_TASK, Category
from transforms.release.census import Census
from transforms.release.scan import SAMPLE_ARRAYS, Duplicates
from transforms.release.selection import Selection
from transforms.release.splits import SplitPlan
from transforms.release.values import brief, is_int

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
}
# What a user can do instead, by the kind of task type refused.
_INSTEAD = ("export it with the segments-ai SDK or from the Segments.ai web app; this "
            "exporter writes image formats only")


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
    # From the header scan, so that every reader decides alike (see the contract):
    duplicates: Duplicates = Duplicates()
    oversized: tuple[int, ...] = ()  # positions of samples over MAX_VALUE_BYTES of JSON
    max_depth: int = 0  # deepest nesting of arrays/objects in the file (the top level is 1)
    census: Census | None = None  # label statuses and metadata, when the run filters
    splits: SplitPlan | None = None  # --split: planned on the launcher over the whole release

    @property
    def formats(self) -> tuple[str, ...]:
        return FORMATS_BY_TASK[self.task_type]


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
            f"dataset.task_type: {brief(task_type)} cannot be exported ({why});"
            f" supported: {supported}"
            + (f"; {_INSTEAD}" if task_type in _UNSUPPORTED_TASKS else "")
        )
    categories = parse_categories(cats_raw, cats_field)

    prefixes = [p for p in SAMPLE_ARRAYS if p in header]
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
        duplicates=header.get(array + ".duplicates", Duplicates()),
        oversized=tuple(header.get(array + ".oversized", ())),
        max_depth=int(header.get("max_depth", 0)),
        census=header.get(array + ".census"),
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
        if not is_int(cid):
            raise errors.ReleaseError(f"{f}.id: expected an integer, got {brief(cid)}")
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
