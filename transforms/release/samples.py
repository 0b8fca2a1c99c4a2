"""One raw sample of the release -> `Sample`, every field checked.

Contract:
  * A sample whose JSON is malformed *fails* with the field named (stage "read"): a field
    present with the wrong type (`name`, `uuid`, `labels`, the label, `label_status`, label
    `attributes`, `annotations` and their items, `segmentation_bitmap` and its `url`, sample
    `attributes`, `attributes.image` and its `url`) fails the sample; a missing or null one
    keeps its fallback (name -> uuid -> `#position`, no URL).
  * Shape task types (`bboxes`, `vector`, `keypoints`, `image-vector-sequence`) have no
    bitmap. A sequence sample's frames come from `attributes.frames` (image URL, optional
    name) with the label's `attributes.frames` at the same positions; the samples to
    export number their frames in release order (`Sample.frame_base`), so frame image ids
    are dense and every reader (the run's, the chunked split's) gives the same.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from transforms.model import errors
from transforms.model.types import SEQUENCE_TASKS, SHAPE_TASKS, Annotation, Frame, Sample
from transforms.release.layouts import ReleaseInfo
from transforms.release.selection import identity
from transforms.release.values import brief, is_int, json_kind

MAX_INSTANCE_ID = (1 << 24) - 1


def parse_sample(raw: Mapping[str, Any], position: int, index: int, info: ReleaseInfo,
                 frame_base: int = 0) -> Sample:
    """A selected, labelled raw sample -> Sample. Raises SampleSchemaError naming the field.

    Sequences (`image-vector-sequence`): the sample's `attributes.frames[j].image.url` and
    `name`, with the label's `attributes.frames[j].annotations`; `frame_base` as in
    `types.Sample`.
    """
    uuid, name = identity(raw, position)
    ls = info.labelset
    label = raw["labels"][ls]
    attrs = label["attributes"]
    base = f"labels.{ls}.attributes"
    if not isinstance(attrs, Mapping):
        raise errors.SampleSchemaError(f"{base}: expected an object, got {json_kind(attrs)}")
    vector = info.task_type in SHAPE_TASKS
    status = str(label.get("label_status", "")).upper()
    sample_attrs = _optional_object(raw, "attributes", "attributes")
    metadata = metadata_text(raw.get("metadata"))
    if info.task_type in SEQUENCE_TASKS:
        frames, extra = _frames(sample_attrs, attrs, base)
        return Sample(index=index, position=position, uuid=uuid, name=name, image_url=None,
                      label_status=status, annotations=(), bitmap_url=None, frames=frames,
                      frame_base=frame_base, extra_label_frames=extra, metadata=metadata)
    annotations = _annotations(attrs, base, vector)
    bitmap_url = None
    if not vector:  # vector labels have no bitmap: whatever is there is not read
        bitmap_url = _optional_url(attrs, "segmentation_bitmap", base)
    image_url = _optional_url(sample_attrs, "image", "attributes")
    return Sample(
        index=index,
        position=position,
        uuid=uuid,
        name=name,
        image_url=image_url,
        label_status=status,
        annotations=annotations,
        bitmap_url=bitmap_url,
        metadata=metadata,
    )


def metadata_text(metadata: Any) -> str | None:
    """The sample's metadata as compact JSON (keys in the release's order), None when absent
    or null."""
    if metadata is None:
        return None
    return json.dumps(metadata, ensure_ascii=False, separators=(",", ":"))


def _annotations(attrs: Mapping[str, Any], base: str, vector: bool) -> tuple[Annotation, ...]:
    """`attrs.annotations` (missing or null: none), each checked, naming the field."""
    anns_raw = attrs.get("annotations")
    if anns_raw is None:
        anns_raw = []
    if not isinstance(anns_raw, list):
        raise errors.SampleSchemaError(
            f"{base}.annotations: expected a list, got {json_kind(anns_raw)}")
    annotations, seen = [], set()
    for i, a in enumerate(anns_raw):
        f = f"{base}.annotations[{i}]"
        if not isinstance(a, Mapping):
            raise errors.SampleSchemaError(f"{f}: expected an object, got {json_kind(a)}")
        aid, cid = a.get("id"), a.get("category_id")
        if vector:  # ids only name objects here; they index no bitmap
            if aid is not None and not is_int(aid):
                raise errors.SampleSchemaError(f"{f}.id: expected an integer, got {brief(aid)}")
        elif not is_int(aid) or not 1 <= aid <= MAX_INSTANCE_ID:
            raise errors.SampleSchemaError(
                f"{f}.id: expected an integer in 1..{MAX_INSTANCE_ID}, got {brief(aid)}"
            )
        if not is_int(cid):
            raise errors.SampleSchemaError(
                f"{f}.category_id: expected an integer, got {brief(cid)}")
        aid = int(aid) if aid is not None else 0
        if not vector:
            if aid in seen:
                raise errors.SampleSchemaError(f"{f}.id: duplicate annotation id {aid}")
            seen.add(aid)
        obj_attrs = a.get("attributes")
        if obj_attrs is not None and not isinstance(obj_attrs, Mapping):
            raise errors.SampleSchemaError(
                f"{f}.attributes: expected an object or null, got {json_kind(obj_attrs)}")
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
    return tuple(annotations)


def _frames(sample_attrs: Mapping[str, Any], attrs: Mapping[str, Any],
            base: str) -> tuple[tuple[Frame, ...], int]:
    """(frames, label frames without a sample frame) of a sequence: one frame per
    `attributes.frames` item of the sample, with the annotations of the label frame at the
    same position. Label frames beyond the sample's frames have no image: they are not
    read, only counted (the export reports them)."""
    raw_frames = sample_attrs.get("frames")
    if not isinstance(raw_frames, list):
        raise errors.SampleSchemaError(
            f"attributes.frames: expected a list of frames, got {json_kind(raw_frames)}")
    label_frames = attrs.get("frames")
    if label_frames is None:
        label_frames = []
    if not isinstance(label_frames, list):
        raise errors.SampleSchemaError(
            f"{base}.frames: expected a list, got {json_kind(label_frames)}")
    frames = []
    for j, fr in enumerate(raw_frames):
        field = f"attributes.frames[{j}]"
        if not isinstance(fr, Mapping):
            raise errors.SampleSchemaError(f"{field}: expected an object, got {json_kind(fr)}")
        name = fr.get("name")
        if name is not None and not isinstance(name, str):
            raise errors.SampleSchemaError(f"{field}.name: expected a string, got {json_kind(name)}")
        annotations: tuple[Annotation, ...] = ()
        if j < len(label_frames) and label_frames[j] is not None:
            lf = label_frames[j]
            if not isinstance(lf, Mapping):
                raise errors.SampleSchemaError(
                    f"{base}.frames[{j}]: expected an object, got {json_kind(lf)}")
            annotations = _annotations(lf, f"{base}.frames[{j}]", True)
        frames.append(Frame(image_url=_optional_url(fr, "image", field),
                            name=name, annotations=annotations))
    return tuple(frames), len(label_frames) - len(frames) if len(label_frames) > len(frames) else 0


def _optional_object(obj: Mapping[str, Any], key: str, field: str) -> Mapping[str, Any]:
    """obj[key] when it is an object, {} when missing or null; anything else fails."""
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise errors.SampleSchemaError(f"{field}: expected an object, got {json_kind(value)}")
    return value


def _optional_url(obj: Mapping[str, Any], key: str, field: str) -> str | None:
    """obj[key].url: None when the object or its url is missing, null or ""; a value of
    another type fails, naming the field."""
    url = _optional_object(obj, key, f"{field}.{key}").get("url")
    if url is not None and not isinstance(url, str):
        raise errors.SampleSchemaError(f"{field}.{key}.url: expected a string, got {json_kind(url)}")
    return url or None


def _vector_shape(a: Mapping[str, Any], field: str) -> tuple[str, tuple[tuple[float, float], ...]]:
    """(type, points) of a vector annotation; every point a finite [x, y] pair."""
    kind = a.get("type")
    if not isinstance(kind, str):
        raise errors.SampleSchemaError(f"{field}.type: expected a string, got {brief(kind)}")
    raw = a.get("points")
    if not isinstance(raw, list):
        raise errors.SampleSchemaError(f"{field}.points: expected a list of [x, y] points")
    points = []
    for k, p in enumerate(raw):
        if (not isinstance(p, list) or len(p) != 2
                or not all(isinstance(v, (int, float)) and not isinstance(v, bool)
                           and math.isfinite(v) for v in p)):
            raise errors.SampleSchemaError(
                f"{field}.points[{k}]: expected [x, y] numbers, got {brief(p)}")
        points.append((float(p[0]), float(p[1])))
    return kind, tuple(points)
