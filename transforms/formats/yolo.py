"""YOLO (Ultralytics) dataset files.

Contract:
  * Layout: `images/{stem}{ext}` and `labels/{stem}.txt` side by side (Ultralytics finds a
    label by replacing `/images/` with `/labels/`), plus `data.yaml` at the output root.
  * `data.yaml` lists the classes as `names: {index: name}` with 0-based contiguous indexes in
    the release's category order; `train` and `val` point at `images` (no `path`, so
    Ultralytics resolves them against the folder holding data.yaml).
  * Label lines are `class xc yc w h`, normalised to [0, 1], six decimals.
"""

from __future__ import annotations

import json

from transforms.model.taxonomy import Taxonomy


def data_yaml(taxonomy: Taxonomy) -> bytes:
    lines = [
        "# YOLO dataset written by segments-beam-export (Ultralytics layout).",
        "train: images",
        "val: images",
        f"nc: {len(taxonomy.categories)}",
        "names:",
    ]
    for i, c in enumerate(taxonomy.categories):
        lines.append(f"  {i}: {json.dumps(c.name, ensure_ascii=False)}")
    return ("\n".join(lines) + "\n").encode("utf-8")
