"""Output paths: safe, collision-free, deterministic, SDK-compatible names.

Contract:
  * A sample's *stem* is its name without the extension, folders kept (`a/b.jpg` -> `a/b`),
    as the SDK does, but made safe: `\\` is a separator too; empty, `.` and `..` components,
    drive letters, NUL/control characters and characters Windows forbids are removed or
    replaced; components are cut to 120 bytes (plus a hash of the full component); an empty
    result becomes `sample`. No stem can name a path outside the output folder.
  * A folder never has a file's name: every per-sample file ends with a known extension
    (an image of unknown format is copied as `{stem}.bin`), and a folder component that ends
    with one gets `_` (`d.jpg/e.jpg` -> `d.jpg_/e`). So no sample's file can be another
    sample's folder or file, whatever order the samples are written in.
  * Stems are unique case-insensitively (macOS/Windows file systems): samples whose stems
    collide are ordered by index; the first keeps its stem, the others get `__{image_id}`
    (see `unique_stems`).
    The collision group is keyed by the stem with every trailing `__<digits>[_<digits>]`
    removed, so a generated name and any literal name it could equal share one group.
  * Per-sample files (relative to OUT), with `{ls}` the labelset:
      images/{stem}{ext}                                   original image bytes
      coco-panoptic/{stem}_label_{ls}_coco-panoptic.png
      labels/{stem}.txt                                    YOLO (Ultralytics layout)
      labels-seg/{stem}.txt      yolo-seg when yolo is exported too (else labels/{stem}.txt)
      instance/{stem}_label_{ls}_instance.png
      semantic/{stem}_label_{ls}_semantic.png
      instance-color/{stem}_label_{ls}_instance_colored.png
      semantic-color/{stem}_label_{ls}_semantic_colored.png
"""

from __future__ import annotations

import hashlib
import posixpath
import re
import unicodedata
import urllib.parse
from collections.abc import Iterable

_MAX_COMPONENT_BYTES = 120
_FORBIDDEN = re.compile(r'[<>:"|?*\x00-\x1f\x7f-\x9f]')
# Generated suffixes (`__{image_id}` and `__{image_id}_{k}`), possibly repeated.
_SUFFIX = re.compile(r"(__\d+(_\d+)?)+$")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul"} | {f"com{i}" for i in range(10)} | {
    f"lpt{i}" for i in range(10)
}
_IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".heic", ".heif",
               ".avif", ".jxl", ".jp2"}
UNKNOWN_IMAGE_EXT = ".bin"  # the copied image's extension when its format is unknown
# Every per-sample file name ends with one of these (case-insensitively); folders never do.
_FILE_EXTS = tuple(sorted(_IMAGE_EXTS | {".txt", UNKNOWN_IMAGE_EXT}))

COCO_INSTANCE_JSON = "coco-instance.json"
COCO_KEYPOINTS_JSON = "coco-keypoints.json"
COCO_PANOPTIC_JSON = "coco-panoptic.json"
YOLO_DATA_YAML = "data.yaml"
FAILURES = "failures.jsonl"
MANIFEST_DIR = "manifest"
TEMP_DIR = ".tmp-export"
STATE_DIR = ".export-state"  # the ledger of sample results (`ledger`), for --only_failed
REPORT = "report.json"
RUN = "run.json"  # this run's wall time, rate and runner: the one file that differs between runs
PREVIEW = "preview.png"

SPLIT_NAMES = ("train", "val", "test")
COCO_FORMATS = ("coco-instance", "coco-keypoints", "coco-panoptic")
HF_DIR = "hf"
WEBDATASET_DIR = "webdataset"

# Everything an export writes at the top of OUT (a rerun replaces exactly these).
OWNED = (TEMP_DIR, STATE_DIR, COCO_INSTANCE_JSON, COCO_KEYPOINTS_JSON, COCO_PANOPTIC_JSON,
         "coco-panoptic",
         YOLO_DATA_YAML, "labels", "labels-seg", "images", "instance", "semantic", "instance-color",
         "semantic-color", MANIFEST_DIR, FAILURES, REPORT, RUN, PREVIEW, HF_DIR, WEBDATASET_DIR,
         *(f"{fmt}-{s}.json" for fmt in COCO_FORMATS for s in SPLIT_NAMES),
         *(f"{s}.txt" for s in SPLIT_NAMES))


def coco_document(fmt: str, split: str | None) -> str:
    """The key of a COCO document: its format, and with --split its split
    (`coco-instance-train`); also its file name without `.json`."""
    return fmt if split is None else f"{fmt}-{split}"


def coco_document_parts(doc: str) -> tuple[str, str | None]:
    """(format, split or None) of a document key."""
    for fmt in COCO_FORMATS:
        if doc == fmt:
            return fmt, None
        if doc.startswith(fmt + "-"):
            return fmt, doc[len(fmt) + 1:]
    raise ValueError(f"not a COCO document: {doc!r}")


def coco_json(doc: str) -> str:
    """The file of a COCO document (relative to OUT)."""
    return f"{doc}.json"

_PER_SAMPLE = {
    "coco-panoptic": ("coco-panoptic", "_label_{ls}_coco-panoptic.png"),
    "yolo": ("labels", ".txt"),
    "yolo-seg": ("labels-seg", ".txt"),
    "instance": ("instance", "_label_{ls}_instance.png"),
    "semantic": ("semantic", "_label_{ls}_semantic.png"),
    "instance-color": ("instance-color", "_label_{ls}_instance_colored.png"),
    "semantic-color": ("semantic-color", "_label_{ls}_semantic_colored.png"),
}


def _clean_component(part: str, limit: int = _MAX_COMPONENT_BYTES) -> str:
    part = unicodedata.normalize("NFC", part)
    part = _FORBIDDEN.sub("_", part).strip(" .")
    if part.lower().split(".")[0] in _WINDOWS_RESERVED:
        part = "_" + part
    raw = part.encode("utf-8")
    if len(raw) > limit:
        digest = hashlib.sha1(raw).hexdigest()[:10]
        part = raw[: limit - 11].decode("utf-8", "ignore") + "~" + digest
    return part


def sample_stem(name: str) -> str:
    """The safe relative stem of a sample name (no extension, folders kept)."""
    parts = [p for p in re.split(r"[\\/]+", name)]
    if parts and re.fullmatch(r"[A-Za-z]:", parts[0] or ""):
        parts = parts[1:]  # drive letter
    if parts:
        last = parts[-1]
        root, ext = posixpath.splitext(last)
        parts[-1] = root if root else last
    clean = [c for c in (_clean_component(p) for p in parts if p not in ("", ".", "..")) if c]
    folders = [c + "_" if c.casefold().endswith(_FILE_EXTS) else c for c in clean[:-1]]
    return "/".join(folders + clean[-1:]) or "sample"


def collision_key(stem: str) -> str:
    return _SUFFIX.sub("", stem).casefold()


def unique_stems(members: Iterable[tuple[int, str]]) -> dict[int, str]:
    """{index: stem} for one collision group of (index, stem) pairs; deterministic.

    Literal names first: the lowest index of each case-insensitive name keeps it. The others
    get `{stem}__{image_id}` (then `_2`, `_3`, ... if even that is taken), so a generated name
    never displaces a sample's own name.
    """
    taken: set[str] = set()
    out: dict[int, str] = {}
    losers = []
    for index, stem in sorted(members):
        if stem.casefold() in taken:
            losers.append((index, stem))
        else:
            taken.add(stem.casefold())
            out[index] = stem
    for index, stem in losers:
        candidate, k = f"{stem}__{index + 1}", 1
        while candidate.casefold() in taken:
            k += 1
            candidate = f"{stem}__{index + 1}_{k}"
        taken.add(candidate.casefold())
        out[index] = candidate
    return out


def image_extension(url: str | None, name: str) -> str:
    """The image file's extension: from the URL path (as the SDK does), else the name."""
    for candidate in (urllib.parse.urlsplit(url or "").path, name):
        ext = posixpath.splitext(candidate.replace("\\", "/"))[1].lower()
        if ext in _IMAGE_EXTS:
            return ext
    return ""


def image_path(stem: str, ext: str) -> str:
    return f"images/{image_file_name(stem, ext)}"


def image_file_name(stem: str, ext: str) -> str:
    """COCO `file_name`: relative to the images folder; `ext` '' (unknown format) -> `.bin`."""
    return f"{stem}{ext or UNKNOWN_IMAGE_EXT}"


def safe_labelset(labelset: str) -> str:
    """The labelset as one file-name component (it comes from the release file)."""
    # At most 64 bytes: a 120-byte stem + "_label_" + labelset + the longest suffix
    # ("_coco-panoptic.png") stays within the usual 255-byte file-name limit.
    return _clean_component(re.sub(r"[\\/]", "_", labelset), limit=64) or "labelset"


def sample_file(fmt: str, stem: str, labelset: str) -> str:
    folder, suffix = _PER_SAMPLE[fmt]
    ls = safe_labelset(labelset)
    return f"{folder}/{stem}{suffix.format(ls=ls)}"


def yolo_seg_file(stem: str, formats) -> str:
    """yolo-seg labels: `labels/` (where Ultralytics looks, beside `images/`) unless `yolo`
    is exported too and holds the boxes there; then `labels-seg/`."""
    return f"{'labels-seg' if 'yolo' in formats else 'labels'}/{stem}.txt"


def per_sample_formats() -> tuple[str, ...]:
    return tuple(_PER_SAMPLE)
