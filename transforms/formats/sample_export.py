"""Every format's artifacts for one sample, from one decoded id map, in one pass.

Contract:
  * An *exported instance* is an annotation whose id has pixels in the bitmap and whose
    category is in the taxonomy. Every format shows exactly the exported instances (the
    instance formats those of the categories they keep, below); all other
    pixels (background, orphan ids, unknown categories) are 0 / black / VOID. Empty
    annotations, orphan ids and unknown categories become per-sample warnings.
  * Instance formats (coco-instance, yolo, yolo-seg) show the exported instances of the
    categories they keep (`Taxonomy.instance_categories`: stuff categories are left out
    unless --stuff_as_instances); the pictures and coco-panoptic show every exported one.
  * The COCO image object is `{id, file_name, height, width}`, plus `coco_url`, the image's
    URL with every secret removed, when the sample has one.
  * coco-instance: one annotation body per exported instance, in annotation-list order, with
    `image_id`, `category_id`, `bbox` [x, y, w, h] (integer pixel extents), compressed-RLE
    `segmentation`, `area` (pixels), `iscrowd` 0, and the object `attributes` when present.
    The `id` is added later (global, dense, in image order). With `coco_segmentation=
    "polygon"`, `segmentation` is `[[x1, y1, ...], ...]` instead: one polygon per connected
    component with its holes spliced in (`contours.coco_polygons`; pycocotools rasterises
    it back to exactly the mask); `bbox` and `area` stay the mask's.
  * coco-panoptic: things get one segment per instance, stuff one segment per category
    (areas summed, boxes united). Segment id = R + 256*G + 65536*B of its PNG colour: stuff
    uses the category's unique stuff colour; the k-th instance of a thing category uses its
    category colour for k = 0, then deterministic offsets (blake2b of category and k),
    skipping colours already used in the image. No randomness: same input, same ids.
  * yolo: `class xc yc w h` with the YOLO class (`Taxonomy.yolo_class`), normalised by the bitmap size,
    six decimals, one line per exported instance; an image with none gets an empty file.
  * yolo-seg: `class x1 y1 x2 y2 ...`, one line per exported instance: all its connected
    components and holes in one polygon (`contours.yolo_points`, Ultralytics' segment
    format), normalised, six decimals; `labels/` or, with `yolo` too, `labels-seg/`.
  * instance: 16-bit gray PNG of instance ids; a sample with an id > 65535 has its instance
    PNG left out (`SampleOutput.left_out`, with a warning naming --instance_png rgb24; its
    other formats are exported) unless `instance_png="rgb24"`, which writes RGB with
    id = R + 256*G + 65536*B.
  * A format that cannot hold a sample's data leaves out that one file, never the sample:
    the sample fails only for faults of its own (unreadable bitmap, malformed label).
  * semantic: category id + id_increment, 8-bit (16-bit for the whole export if needed).
  * instance-color: COLORMAP[(id - 1) % 36] on the full id (no uint8 wrap-around).
  * semantic-color: the category's colour (Taxonomy.color).
  * Nothing here mutates the id map.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np

from transforms.formats import contours
from transforms.formats.bitmap import id_to_rgb
from transforms.formats.instances import InstanceTable, compact_labels, instance_table
from transforms.formats.png import RowChanges, encode_lut_png
from transforms.model import errors, paths
from transforms.model.taxonomy import COLORMAP, Taxonomy, rgb_id
from transforms.model.types import SHARD_FORMATS, Sample

_MAX_LISTED = 10  # ids listed in one warning
# Why a format's file was left out of a sample, and what keeps it: the warning's first part.
LEFT_OUT = {
    "instance": "instance PNG left out (ids above 65535 need --instance_png rgb24)",
}


def dumps(obj) -> str:
    """The one JSON serialisation used for every output document."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


@dataclasses.dataclass(frozen=True)
class ExportSettings:
    formats: tuple[str, ...]
    labelset: str
    taxonomy: Taxonomy
    instance_png: str = "gray16"  # gray16 | rgb24
    coco_segmentation: str = "rle"  # rle | polygon (bitmap releases' coco-instance)
    vector: bool = False  # a vector task type (boxes, polygons): no bitmap
    separate_keypoints: bool = False  # points go to coco-keypoints, not coco-instance


@dataclasses.dataclass
class SampleOutput:
    """What one sample contributes; files are (path relative to OUT, bytes)."""

    files: list[tuple[str, bytes]]
    coco_image: str | None  # JSON object text (coco-instance and coco-panoptic images[])
    coco_annotations: list[str]  # JSON object texts without "id"
    panoptic_annotation: str | None  # JSON object text
    num_instances: int
    warnings: list[str]
    artifacts: list[tuple[str, str]]  # (format, relative path)
    category_stats: tuple[tuple[int, int, int], ...] = ()  # (category, instances, pixels)
    left_out: list[str] = dataclasses.field(default_factory=list)  # formats that cannot hold it
    keypoint_annotations: list[str] = dataclasses.field(default_factory=list)  # coco-keypoints


def image_object(image_id: int, file_name: str, height: int, width: int,
                 coco_url: str | None) -> str:
    """The COCO image object's JSON text (see the contract)."""
    image = {"id": image_id, "file_name": file_name, "height": height, "width": width}
    if coco_url:
        image["coco_url"] = coco_url
    return dumps(image)


def _ids(values) -> str:
    values = sorted(int(v) for v in values)
    head = ", ".join(map(str, values[:_MAX_LISTED]))
    return head + (f" and {len(values) - _MAX_LISTED} more" if len(values) > _MAX_LISTED else "")


def export_sample(
    sample: Sample,
    id_map: np.ndarray,
    settings: ExportSettings,
    image_ext: str,
    warnings: list[str] | None = None,
    coco_url: str | None = None,
) -> SampleOutput:
    """All artifacts of `settings.formats` for one sample. Raises FormatError."""
    tax = settings.taxonomy
    formats = set(settings.formats)
    table = instance_table(id_map)
    exported, notes = _exported_instances(sample, table, tax)
    instances = [(a, row) for a, row in exported if tax.yolo_class(a.category_id) >= 0]
    out = SampleOutput([], None, [], None, len(exported), list(warnings or []) + notes, [],
                       _category_stats(exported, table))
    # The shard formats carry each sample's COCO image and annotations too.
    coco_instance = bool(formats & {"coco-instance", *SHARD_FORMATS})
    if coco_instance or "coco-panoptic" in formats:
        out.coco_image = image_object(sample.image_id,
                                      paths.image_file_name(sample.stem, image_ext),
                                      table.height, table.width, coco_url)
    polygons = settings.coco_segmentation == "polygon" and coco_instance
    shapes = (_instance_shapes(id_map, instances, table, polygons, "yolo-seg" in formats)
              if polygons or "yolo-seg" in formats else [])
    if coco_instance:
        if polygons:
            segs = ["[" + ",".join("[" + ",".join(map(str, p)) + "]" for p in coco) + "]"
                    for coco, _ in shapes]
        else:
            segs = [f'{{"size":[{table.height},{table.width}],"counts":{json.dumps(r["counts"])}}}'
                    for r in table.rles([row for _, row in instances])]
        out.coco_annotations = [_coco_annotation(sample, ann, table, row, seg)
                                for (ann, row), seg in zip(instances, segs)]

    def emit(fmt: str, data: bytes) -> None:
        rel = paths.sample_file(fmt, sample.stem, settings.labelset)
        out.files.append((rel, data))
        out.artifacts.append((fmt, rel))

    segments, colors = (_panoptic_segments(exported, table, tax) if "coco-panoptic" in formats
                        else ([], {}))
    luts = _picture_tables(formats, exported, table, settings, colors, out)
    if luts:
        # Every picture is a small table looked up at each pixel of one label map; the PNG
        # writer needs only where labels change between rows, computed once for all.
        changes = RowChanges(compact_labels(id_map, table.ids))
        for fmt, lut in luts:
            emit(fmt, encode_lut_png(changes, lut))
    if "coco-panoptic" in formats:
        out.panoptic_annotation = dumps(  # the SDK's key order
            {"segments_info": segments,
             "file_name": paths.sample_file("coco-panoptic", sample.stem,
                                            settings.labelset).split("/", 1)[1],
             "image_id": sample.image_id})
    if "yolo" in formats:
        emit("yolo", _yolo_lines(instances, table, tax).encode("ascii"))
    if "yolo-seg" in formats:
        rel = paths.yolo_seg_file(sample.stem, formats)
        lines = [f"{tax.yolo_class(ann.category_id)} "
                 f"{contours.yolo_text(points, table.width, table.height)}\n"
                 for (ann, _), (_, points) in zip(instances, shapes)]
        out.files.append((rel, "".join(lines).encode("ascii")))
        out.artifacts.append(("yolo-seg", rel))
    return out


def _instance_shapes(id_map: np.ndarray, exported, table: InstanceTable, coco: bool,
                     yolo: bool) -> list[tuple[list | None, np.ndarray | None]]:
    """(COCO polygons, YOLO boundary-pixel polygon) per exported instance, traced once on
    the instance's bounding box."""
    out = []
    for ann, row in exported:
        x0, y0, x1, y1 = (int(table.x0[row]), int(table.y0[row]), int(table.x1[row]),
                          int(table.y1[row]))
        mask = id_map[y0:y1 + 1, x0:x1 + 1] == ann.id
        comps = contours.components(contours.trace(mask))
        out.append((contours.coco_polygons(mask, x0, y0, comps) if coco else None,
                    contours.yolo_points(mask, x0, y0, comps) if yolo else None))
    return out


def _exported_instances(sample: Sample, table: InstanceTable, tax: Taxonomy):
    """([(annotation, table row)] in annotation order, warnings) - see the contract."""
    exported, empty, unknown = [], [], []
    for ann in sample.annotations:
        row = table.lookup(ann.id)
        if row < 0:
            empty.append(ann.id)
        elif tax.position(ann.category_id) < 0:
            unknown.append(ann.id)
        else:
            exported.append((ann, row))
    orphans = set(table.ids.tolist()) - {a.id for a in sample.annotations}
    notes = []
    if empty:
        notes.append(f"annotations without pixels: {_ids(empty)}")
    if unknown:
        notes.append(f"annotations with a category not in the taxonomy: {_ids(unknown)}")
    if orphans:
        notes.append(f"bitmap ids without an annotation (left out): {_ids(orphans)}")
    return exported, notes


def _category_stats(exported, table: InstanceTable) -> tuple[tuple[int, int, int], ...]:
    stats: dict[int, list[int]] = {}
    for ann, row in exported:
        s = stats.setdefault(ann.category_id, [0, 0])
        s[0] += 1
        s[1] += int(table.area[row])
    return tuple((c, n, px) for c, (n, px) in sorted(stats.items()))


def _picture_tables(formats: set[str], exported, table: InstanceTable, settings: ExportSettings,
                    panoptic_colors: dict[int, tuple[int, int, int]], out: SampleOutput
                    ) -> list[tuple[str, np.ndarray]]:
    """(format, lookup table indexed by table row + 1; row 0 is background) per picture;
    a picture that cannot hold the sample is left out (`out.left_out`, with a warning)."""
    tax = settings.taxonomy
    n = len(table) + 1
    ids = np.zeros(n, np.int64)
    rows = [row + 1 for _, row in exported]
    for ann, row in exported:
        ids[row + 1] = ann.id
    luts = []
    if "instance" in formats:
        big = ids[ids > 0xFFFF]
        if settings.instance_png == "gray16" and big.size:
            out.left_out.append("instance")
            out.warnings.append(f"{LEFT_OUT['instance']}: ids {_ids(big)}")
        else:
            luts.append(("instance", _instance_lut(ids, settings.instance_png)))
    if "semantic" in formats:
        lut = np.zeros(n, tax.semantic_dtype)
        for ann, row in exported:
            lut[row + 1] = tax.semantic_value(ann.category_id)
        luts.append(("semantic", lut))
    if "instance-color" in formats:
        lut = np.zeros((n, 3), np.uint8)
        for r in rows:
            lut[r] = COLORMAP[(int(ids[r]) - 1) % len(COLORMAP)]
        luts.append(("instance-color", lut))
    if "semantic-color" in formats:
        lut = np.zeros((n, 3), np.uint8)
        for ann, row in exported:
            lut[row + 1] = tax.color(ann.category_id)
        luts.append(("semantic-color", lut))
    if "coco-panoptic" in formats:
        lut = np.zeros((n, 3), np.uint8)
        for row, color in panoptic_colors.items():
            lut[row + 1] = color
        luts.append(("coco-panoptic", lut))
    return luts


def _yolo_lines(exported, table: InstanceTable, tax: Taxonomy) -> str:
    lines = []
    h, w = table.height, table.width
    for ann, row in exported:
        x0, y0, bw, bh = table.bbox_xywh(row)
        lines.append(f"{tax.yolo_class(ann.category_id)} {(x0 + bw / 2) / w:.6f} "
                     f"{(y0 + bh / 2) / h:.6f} {bw / w:.6f} {bh / h:.6f}\n")
    return "".join(lines)


def _coco_annotation(sample: Sample, ann, table: InstanceTable, row: int, seg: str) -> str:
    # Formatted directly (json.dumps per annotation is the slowest part with many
    # instances); equal to dumps() of the same dict, which the unit tests check. `seg`: the
    # segmentation's JSON text (RLE object or polygon lists).
    x, y, w, h = table.bbox_xywh(row)
    text = (
        f'{{"image_id":{sample.image_id},"category_id":{ann.category_id},'
        f'"bbox":[{x},{y},{w},{h}],"segmentation":{seg},"area":{int(table.area[row])},'
        f'"iscrowd":0'
    )
    if ann.attributes:
        text += ',"attributes":' + dumps(dict(ann.attributes))
    return text + "}"


def _instance_lut(ids: np.ndarray, mode: str) -> np.ndarray:
    if mode == "rgb24":
        return id_to_rgb(ids.astype(np.uint32))
    return ids.astype(np.uint16)


def _offset(category_id: int, k: int) -> tuple[int, int, int]:
    digest = hashlib.blake2b(f"{category_id}:{k}".encode(), digest_size=3).digest()
    return tuple(b % 61 - 30 for b in digest)  # type: ignore[return-value]


def _thing_color(base, category_id: int, used: set[int], start: int) -> tuple[tuple[int, int, int], int]:
    """(colour, candidate index) of the first free candidate at or after `start`.

    Candidate 0 is the category colour, candidate k its k-th deterministic offset. The
    caller keeps a cursor per category, so an image with n instances costs O(n) hashes.
    """
    for k in range(start, 1 << 20):
        if k == 0:
            color = tuple(base)
        else:
            d = _offset(category_id, k)
            color = tuple(min(255, max(0, base[i] + d[i])) for i in range(3))
        if rgb_id(color) not in used:
            return color, k
    # The category's neighbourhood is full (> ~200k instances in one image): any free id.
    for value in range(1, 1 << 24):
        if value not in used:
            return (value & 255, (value >> 8) & 255, value >> 16), 1 << 20
    raise errors.FormatError("no free panoptic segment id left in this image")


def _panoptic_segments(exported, table: InstanceTable, tax: Taxonomy):
    used = set(tax.stuff_ids) | {0}
    segments: list[dict] = []
    stuff_segment: dict[int, dict] = {}
    cursor: dict[int, int] = {}  # next candidate colour per thing category
    colors: dict[int, tuple[int, int, int]] = {}
    for ann, row in exported:
        cat = tax.category(ann.category_id)
        x0, y0, x1, y1 = (int(table.x0[row]), int(table.y0[row]), int(table.x1[row]),
                          int(table.y1[row]))
        area = int(table.area[row])
        if not cat.has_instances:
            color = tax.stuff_color(cat.id)
            colors[row] = color
            seg = stuff_segment.get(cat.id)
            if seg is None:
                seg = {"id": rgb_id(color), "category_id": cat.id, "bbox": [x0, y0, x1, y1],
                       "area": area, "iscrowd": 0}
                stuff_segment[cat.id] = seg
                segments.append(seg)
            else:
                b = seg["bbox"]
                seg["bbox"] = [min(b[0], x0), min(b[1], y0), max(b[2], x1), max(b[3], y1)]
                seg["area"] += area
            continue
        color, k = _thing_color(tax.color(cat.id), cat.id, used, cursor.get(cat.id, 0))
        cursor[cat.id] = k + 1
        used.add(rgb_id(color))
        colors[row] = color
        segments.append({"id": rgb_id(color), "category_id": cat.id,
                         "bbox": [x0, y0, x1, y1], "area": area, "iscrowd": 0})
    for seg in segments:  # inclusive extents -> COCO [x, y, w, h]
        x0, y0, x1, y1 = seg["bbox"]
        seg["bbox"] = [x0, y0, x1 - x0 + 1, y1 - y0 + 1]
    return segments, colors
