"""hf-parquet: Hugging Face `datasets` Parquet shards with embedded images, and a dataset card.

Contract:
  * Layout: `hf/data/{split}-{k:05d}-of-{n:05d}.parquet` (Hugging Face's own shard naming;
    the split `val` is named `validation`, the name `datasets` and the Transformers
    scripts look for), `hf/README.md` (dataset card: YAML `configs` with each split's
    files, `dataset_info` with the features and each split's examples, then the label map
    with colours) and `hf/id2label.json` (`{"value": name}` for every semantic pixel value
    0..max; values that are no category are `background` (0) or `unused-{v}`, so
    `num_labels = len(id2label)` covers every pixel value, as SegFormer-style scripts
    need).
  * One row per exported sample, in release order, with these columns (those of formats
    not exported are left out):
      image            the image bytes (`exif.aligned_image`), `{bytes, path}` (HF `Image`)
      label            the semantic PNG (`semantic`), as exported
      instance         the instance PNG (16-bit gray, or RGB with --instance_png rgb24)
      panoptic         the COCO panoptic PNG
      instance_color, semantic_color   the colour PNGs
      objects          list of {id, category_id, bbox, area, iscrowd, segmentation}: the
                       sample's coco-instance annotations with their ids in the split's
                       document (`coco-instance-{split}.json`, or coco-instance.json);
                       `segmentation` is its JSON text (RLE object or polygon lists; null for
                       boxes)
      segments_info    coco-panoptic's segments of the image, JSON text (with coco-panoptic)
      name, uuid, image_id, width, height, metadata (the sample's metadata as JSON text)
    `path` is the file's path relative to the export folder. Pictures are the exported PNG
    files byte for byte, so decoding gives the exported pixels (16-bit instance ids stay
    16-bit: PIL mode I;16).
  * The schema carries `datasets`' feature metadata (`huggingface` key), so
    `load_dataset` decodes the picture columns as images with no arguments.
  * EXIF: `datasets` applies a JPEG's EXIF orientation when it decodes an image; the
    masks are in the image's displayed orientation, so decoded image and masks line up.
    The image is the original file, except where the orientation would turn it away from
    its masks (`exif.aligned_image`).
  * Row groups of `ROW_GROUP_ROWS` rows; zstd for every column. Bytes depend only on the rows.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

from transforms.model.taxonomy import Taxonomy

ROW_GROUP_ROWS = 64  # a row group holds whole images: 64 1080p samples are ~30 MB
DATA_DIR = "data"
CARD = "README.md"
ID2LABEL = "id2label.json"

# Picture format -> column, in column order.
PICTURE_COLUMNS = (
    ("semantic", "label"),
    ("instance", "instance"),
    ("coco-panoptic", "panoptic"),
    ("instance-color", "instance_color"),
    ("semantic-color", "semantic_color"),
)

_IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
_OBJECT = pa.struct([("id", pa.int64()), ("category_id", pa.int64()),
                     ("bbox", pa.list_(pa.float64())), ("area", pa.float64()),
                     ("iscrowd", pa.int64()), ("segmentation", pa.string())])


def _value(dtype: str) -> dict:
    return {"dtype": dtype, "_type": "Value"}


_OBJECT_FEATURE = {"feature": {
    "id": _value("int64"), "category_id": _value("int64"),
    "bbox": {"feature": _value("float64"), "_type": "List"}, "area": _value("float64"),
    "iscrowd": _value("int64"), "segmentation": _value("string")}, "_type": "List"}


def split_name(split: str) -> str:
    """The Hugging Face name of a split (`val` -> `validation`)."""
    return "validation" if split == "val" else split


def shard_name(split: str, shard: int, shards: int) -> str:
    return f"{DATA_DIR}/{split_name(split)}-{shard:05d}-of-{shards:05d}.parquet"


def columns(formats: Sequence[str]) -> list[tuple[str, pa.DataType, dict]]:
    """(column, Arrow type, `datasets` feature) of a shard, in order."""
    cols = [("image", _IMAGE, {"_type": "Image"})]
    cols += [(col, _IMAGE, {"_type": "Image"}) for fmt, col in PICTURE_COLUMNS if fmt in formats]
    cols.append(("objects", pa.list_(_OBJECT), _OBJECT_FEATURE))
    if "coco-panoptic" in formats:
        cols.append(("segments_info", pa.string(), _value("string")))
    cols += [("name", pa.string(), _value("string")), ("uuid", pa.string(), _value("string")),
             ("image_id", pa.int64(), _value("int64")), ("width", pa.int64(), _value("int64")),
             ("height", pa.int64(), _value("int64")),
             ("metadata", pa.string(), _value("string"))]
    return cols


def schema(formats: Sequence[str]) -> pa.Schema:
    cols = columns(formats)
    features = {"info": {"features": {name: feature for name, _, feature in cols}}}
    return pa.schema([(name, kind) for name, kind, _ in cols],
                     metadata={"huggingface": json.dumps(features)})


_DECODER = json.JSONDecoder()
_SEGMENTATION = '"segmentation":'


def objects(bodies: Sequence[str], first_id: int) -> list[dict]:
    """coco-instance annotation texts (without id) -> the `objects` column, ids from
    `first_id`. `segmentation` is the annotation's own JSON text for it (the top-level key
    comes before `attributes` in every annotation text)."""
    out = []
    for k, (body, ann) in enumerate(zip(bodies, json.loads("[" + ",".join(bodies) + "]"))):
        seg = None
        if "segmentation" in ann:
            start = body.index(_SEGMENTATION) + len(_SEGMENTATION)
            seg = body[start:_DECODER.raw_decode(body, start)[1]]
        out.append({"id": first_id + k, "category_id": ann["category_id"],
                    "bbox": [float(v) for v in ann["bbox"]], "area": float(ann["area"]),
                    "iscrowd": int(ann.get("iscrowd", 0)), "segmentation": seg})
    return out


class ShardWriter:
    """Streams rows (dicts keyed by column) into one Parquet shard, `ROW_GROUP_ROWS` at a time."""

    def __init__(self, out: IO[bytes], formats: Sequence[str]):
        self._schema = schema(formats)
        self._writer = pq.ParquetWriter(out, self._schema, compression="zstd")
        self._rows: list[dict] = []
        self.rows = 0

    def add(self, row: Mapping[str, Any]) -> None:
        self._rows.append(dict(row))
        self.rows += 1
        if len(self._rows) >= ROW_GROUP_ROWS:
            self._flush()

    def _flush(self) -> None:
        if self._rows or not self.rows:
            self._writer.write_table(pa.Table.from_pylist(self._rows, schema=self._schema))
        self._rows = []

    def close(self) -> None:
        self._flush()
        self._writer.close()


def id2label(taxonomy: Taxonomy) -> dict[str, str]:
    """{semantic pixel value: name} for every value 0..max (see the contract)."""
    names = {int(taxonomy.semantic_value(c.id)): c.name for c in taxonomy.categories}
    top = max(names, default=0)
    return {str(v): names.get(v, "background" if v == 0 else f"unused-{v}")
            for v in range(top + 1)}


def card(dataset: str, release: str, taxonomy: Taxonomy, formats: Sequence[str],
         splits: Mapping[str, tuple[int, int, int]], task: str) -> bytes:
    """hf/README.md. `splits`: {split: (shards, examples, bytes)} in split order; bytes are
    the records' sizes (embedded files and annotation text), what the shards hold."""
    lines = ["---", f"pretty_name: {json.dumps(f'{dataset} ({release})')}",
             "task_categories:", f"- {task}", "configs:", "- config_name: default",
             "  data_files:"]
    for split in splits:
        lines += [f"  - split: {split_name(split)}", f"    path: {DATA_DIR}/{split_name(split)}-*"]
    lines += ["dataset_info:", "  features:"]
    for name, _, feature in columns(formats):
        lines += [f"  - name: {name}"] + _feature_yaml(feature, 4)
    lines += ["  splits:"]
    for split, (_, examples, size) in splits.items():
        lines += [f"  - name: {split_name(split)}", f"    num_bytes: {size}",
                  f"    num_examples: {examples}"]
    lines += ["---", "", f"# {dataset} ({release})", "",
              "Exported from Segments.ai by segments-beam-export.", "",
              "| split | examples | shards |", "|---|---|---|"]
    lines += [f"| {split_name(s)} | {e} | {n} |" for s, (n, e, _) in splits.items()]
    lines += ["", "## Labels", "",
              f"`label` pixel values (`{ID2LABEL}` maps every value, for `num_labels`):", "",
              "| value | category id | name | colour |", "|---|---|---|---|"]
    for c in taxonomy.categories:
        r, g, b = taxonomy.color(c.id)
        lines.append(f"| {int(taxonomy.semantic_value(c.id))} | {c.id} | {c.name} "
                     f"| #{r:02x}{g:02x}{b:02x} |")
    lines += ["", "`objects[].category_id` is the category id; `instance` pixels are instance "
              "ids (16-bit, or R + 256 G + 65536 B in RGB); `panoptic` pixels encode "
              "`segments_info` ids as R + 256 G + 65536 B.", ""]
    return "\n".join(lines).encode("utf-8")


def _feature_yaml(feature: dict, indent: int) -> list[str]:
    pad = " " * indent
    kind = feature["_type"]
    if kind == "Image":
        return [f"{pad}dtype: image"]
    if kind == "Value":
        return [f"{pad}dtype: {feature['dtype']}"]
    inner = feature["feature"]
    if inner.get("_type") == "Value":
        return [f"{pad}list: {inner['dtype']}"]
    out = [f"{pad}list:"]
    for name, sub in inner.items():
        out += [f"{pad}- name: {name}"] + _feature_yaml(sub, indent + 2)
    return out
