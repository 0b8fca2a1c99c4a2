"""Vector labels (`bboxes`, `vector`, `keypoints`, sequences) to coco-instance, coco-keypoints and YOLO.

Contract:
  * Coordinates are pixels of the image as displayed (EXIF orientation applied), origin at
    the top-left corner, x right, y down; the image size comes from the image's header.
  * bbox `[[x0, y0], [x1, y1]]`: corners sorted (reversed corners are fixed), then clipped to
    the image `[0, W] x [0, H]`.
  * polygon: clipped to the image (Sutherland-Hodgman); its box is the clipped polygon's
    extent and its area the clipped polygon's (shoelace) area.
  * A shape with no area inside the image (zero-size box, polygon outside the image or with
    fewer than 3 corners) is dropped with a warning; so are annotations whose category is not
    in the taxonomy, `polyline` annotations (no COCO or YOLO shape holds a line) and
    unknown types.
  * point (`vector`, `keypoints`, sequences): one COCO keypoint annotation per point, in
    coco-keypoints (vector and sequence releases, `ExportSettings.separate_keypoints`: so
    that coco-instance holds only objects a detector can find) or in coco-instance
    (keypoints releases, points only), as one
    keypoint of its category (the category lists `keypoints: [its name]`, `skeleton: []`):
    `keypoints [x, y, 2]` (visible), `num_keypoints` 1, `bbox [x, y, 0, 0]` (the extent of
    its keypoints, as pycocotools computes it for results), `iscrowd` 0 and `area` = W * H
    of the image: OKS divides by the object's area, which a lone point does not have, so
    its scale is the image's (an error of about 12% of sqrt(W * H) gives OKS 0.5 with
    sigma 0.05). A point outside the image `[0, W] x [0, H]` is dropped with a warning.
    YOLO has no line for a point (detection needs a box, pose a box per object): points
    are counted in the warnings of samples exported to yolo.
  * coco-instance: `{image_id, category_id, bbox [x, y, w, h], area, iscrowd 0}`, plus
    `segmentation` `[[x1, y1, x2, y2, ...]]` for polygons (boxes carry none: evaluate masks
    on the annotations that have one), plus the object `attributes` when present. Numbers
    are rounded to 1/1000 pixel, so equal inputs give equal text.
  * yolo: one `class xc yc w h` line per exported box or polygon (its box), normalised to
    [0, 1], six decimals, the YOLO class (`Taxonomy.yolo_class`: every category of a shape
    release); a sample gets a file even when empty.
  * yolo-seg: one `class x1 y1 x2 y2 ...` line per exported polygon (its clipped corners) or
    box (its four corners, clockwise from the top-left), coordinates divided by the image
    size (the continuous coordinates, as Ultralytics' convert_coco writes COCO polygons),
    six decimals; `labels/{stem}.txt`, or `labels-seg/` when `yolo` is exported too.
"""

from __future__ import annotations

from collections.abc import Sequence

from transforms.formats.sample_export import ExportSettings, SampleOutput, dumps, image_object
from transforms.model import paths
from transforms.model.types import SHARD_FORMATS, Annotation, Sample

Point = tuple[float, float]
SHAPES = ("bbox", "polygon")


def _r(v: float) -> float | int:
    """1/1000 pixel, and integers printed without a fraction."""
    v = round(v, 3) + 0.0  # -0.0 -> 0.0
    return int(v) if v.is_integer() else v


def clip_box(points: Sequence[Point], width: float, height: float) -> tuple[float, float, float, float] | None:
    """(x0, y0, x1, y1) sorted and clipped to the image, or None when it has no area."""
    (ax, ay), (bx, by) = points[0], points[1]
    x0, x1 = sorted((ax, bx))
    y0, y1 = sorted((ay, by))
    x0, x1 = max(0.0, x0), min(float(width), x1)
    y0, y1 = max(0.0, y0), min(float(height), y1)
    if x1 - x0 <= 0 or y1 - y0 <= 0:
        return None
    return x0, y0, x1, y1


def _clip_edge(poly: list[Point], inside, cross) -> list[Point]:
    out: list[Point] = []
    for i, cur in enumerate(poly):
        prev = poly[i - 1]
        if inside(cur):
            if not inside(prev):
                out.append(cross(prev, cur))
            out.append(cur)
        elif inside(prev):
            out.append(cross(prev, cur))
    return out


def clip_polygon(points: Sequence[Point], width: float, height: float) -> list[Point]:
    """The polygon clipped to the image rectangle (Sutherland-Hodgman)."""
    poly = list(points)

    def at_x(x):
        return lambda p, q: (x, p[1] + (q[1] - p[1]) * (x - p[0]) / (q[0] - p[0]))

    def at_y(y):
        return lambda p, q: (p[0] + (q[0] - p[0]) * (y - p[1]) / (q[1] - p[1]), y)

    for inside, cross in ((lambda p: p[0] >= 0, at_x(0.0)),
                          (lambda p: p[0] <= width, at_x(float(width))),
                          (lambda p: p[1] >= 0, at_y(0.0)),
                          (lambda p: p[1] <= height, at_y(float(height)))):
        if not poly:
            break
        poly = _clip_edge(poly, inside, cross)
    return poly


def polygon_area(poly: Sequence[Point]) -> float:
    n = len(poly)
    return abs(sum(poly[i][0] * poly[(i + 1) % n][1] - poly[(i + 1) % n][0] * poly[i][1]
                   for i in range(n))) / 2.0


def clipped_shape(ann: Annotation, width: int, height: int):
    """(box (x0, y0, x1, y1), area, polygon or None) inside the image, or a reason to drop."""
    if ann.type == "bbox":
        if len(ann.points) != 2:
            return f"bbox with {len(ann.points)} points"
        box = clip_box(ann.points, width, height)
        if box is None:
            return "box with no area inside the image"
        return box, (box[2] - box[0]) * (box[3] - box[1]), None
    if ann.type == "polygon":
        poly = clip_polygon(ann.points, width, height) if len(ann.points) >= 3 else []
        area = polygon_area(poly) if len(poly) >= 3 else 0.0
        if area <= 0:
            return "polygon with no area inside the image"
        xs, ys = [p[0] for p in poly], [p[1] for p in poly]
        return (min(xs), min(ys), max(xs), max(ys)), area, poly
    return f"{ann.type} annotations are not exported"


def keypoint(ann: Annotation, width: int, height: int) -> Point | str:
    """(x, y) of a point annotation inside the image, or a reason to drop it."""
    if len(ann.points) != 1:
        return f"point with {len(ann.points)} points"
    x, y = ann.points[0]
    if not (0 <= x <= width and 0 <= y <= height):
        return "point outside the image"
    return x, y


def keypoint_body(image_id: int, ann: Annotation, point: Point, width: int,
                  height: int) -> dict:
    """The COCO keypoint annotation of one point (see the contract), without its id."""
    x, y = _r(point[0]), _r(point[1])
    body = {"image_id": image_id, "category_id": ann.category_id, "bbox": [x, y, 0, 0],
            "area": width * height, "iscrowd": 0, "keypoints": [x, y, 2], "num_keypoints": 1}
    if ann.attributes:
        body["attributes"] = dict(ann.attributes)
    return body


def export_vector_sample(sample: Sample, width: int, height: int, settings: ExportSettings,
                         image_ext: str, warnings: list[str] | None = None,
                         coco_url: str | None = None) -> SampleOutput:
    """coco-instance, coco-keypoints and yolo artifacts of one vector sample (see the
    contract)."""
    tax = settings.taxonomy
    formats = set(settings.formats)
    if formats & set(SHARD_FORMATS):  # the shard formats carry the COCO annotations too
        formats.add("coco-instance")
    notes = list(warnings or [])
    dropped: dict[str, int] = {}
    bodies, keypoints, lines, seg_lines, stats = [], [], [], [], {}
    points_to = "coco-keypoints" if settings.separate_keypoints else "coco-instance"
    points_not_in_yolo = 0
    for ann in sample.annotations:
        if tax.position(ann.category_id) < 0:
            reason = "a category not in the taxonomy"
        elif ann.type == "point":
            point = keypoint(ann, width, height)
            if isinstance(point, str):
                dropped[point] = dropped.get(point, 0) + 1
                continue
            stats.setdefault(ann.category_id, [0, 0])[0] += 1
            if points_to in formats:
                body = dumps(keypoint_body(sample.image_id, ann, point, width, height))
                (keypoints if settings.separate_keypoints else bodies).append(body)
            points_not_in_yolo += 1
            continue
        else:
            shape = clipped_shape(ann, width, height)
            reason = shape if isinstance(shape, str) else None
        if reason is not None:
            dropped[reason] = dropped.get(reason, 0) + 1
            continue
        (x0, y0, x1, y1), area, poly = shape
        s = stats.setdefault(ann.category_id, [0, 0])
        s[0] += 1
        s[1] += round(area)
        if "coco-instance" in formats:
            body = {"image_id": sample.image_id, "category_id": ann.category_id,
                    "bbox": [_r(x0), _r(y0), _r(x1 - x0), _r(y1 - y0)]}
            if poly is not None:
                body["segmentation"] = [[_r(v) for p in poly for v in p]]
            body["area"] = _r(area)
            body["iscrowd"] = 0
            if ann.attributes:
                body["attributes"] = dict(ann.attributes)
            bodies.append(dumps(body))
        lines.append(f"{tax.yolo_class(ann.category_id)} {(x0 + x1) / 2 / width:.6f} "
                     f"{(y0 + y1) / 2 / height:.6f} {(x1 - x0) / width:.6f} "
                     f"{(y1 - y0) / height:.6f}\n")
        if "yolo-seg" in formats:
            seg_lines.append(yolo_seg_line(tax.yolo_class(ann.category_id), (x0, y0, x1, y1),
                                           poly, width, height))
    for reason, n in sorted(dropped.items()):
        notes.append(f"annotations left out ({reason}): {n}")
    if points_not_in_yolo and formats & {"yolo", "yolo-seg"}:
        notes.append(f"points left out of yolo (a point has no box): {points_not_in_yolo}")
    out = SampleOutput([], None, bodies, None, len(lines) + points_not_in_yolo, notes, [],
                       tuple((c, n, px) for c, (n, px) in sorted(stats.items())),
                       keypoint_annotations=keypoints)
    if formats & {"coco-instance", "coco-keypoints"}:
        out.coco_image = image_object(sample.image_id,
                                      paths.image_file_name(sample.stem, image_ext),
                                      height, width, coco_url)
    if "yolo" in formats:
        rel = paths.sample_file("yolo", sample.stem, settings.labelset)
        out.files.append((rel, "".join(lines).encode("ascii")))
        out.artifacts.append(("yolo", rel))
    if "yolo-seg" in formats:
        rel = paths.yolo_seg_file(sample.stem, formats)
        out.files.append((rel, "".join(seg_lines).encode("ascii")))
        out.artifacts.append(("yolo-seg", rel))
    return out


def yolo_seg_line(cls: int, box: tuple[float, float, float, float], poly: list[Point] | None,
                  width: int, height: int) -> str:
    """One Ultralytics segment line for a clipped box (`poly` None) or polygon."""
    if poly is None:
        x0, y0, x1, y1 = box
        poly = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    coords = " ".join(f"{min(1.0, max(0.0, x / width)):.6f} {min(1.0, max(0.0, y / height)):.6f}"
                      for x, y in poly)
    return f"{cls} {coords}\n"
