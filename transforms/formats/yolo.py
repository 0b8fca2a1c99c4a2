"""YOLO (Ultralytics) dataset files.

Contract:
  * Layout: `images/{stem}{ext}` and `labels/{stem}.txt` side by side (Ultralytics finds a
    label by replacing `/images/` with `/labels/`), plus `data.yaml` at the output root.
  * `data.yaml` lists the classes as `names: {index: name}` with 0-based contiguous indexes in
    the release's category order, over the categories the instance formats keep
    (`Taxonomy.instance_categories`: no stuff unless --stuff_as_instances); `train` and
    `val` point at `images` (no `path`, so Ultralytics resolves them against the folder
    holding data.yaml). With --split, each requested split (`train`, `val`, `test`) names
    its list `{split}.txt` instead: one `./images/{stem}{ext}` line per image of the
    split's exported samples. With `--images none` a comment says where the images must go.
  * Label lines are `class xc yc w h`, normalised to [0, 1], six decimals.
"""

from __future__ import annotations

import json

from transforms.model.taxonomy import Taxonomy


def split_list(split: str) -> str:
    """The list of a split's images, at the output root (`./images/...` lines)."""
    return f"{split}.txt"


def data_yaml(taxonomy: Taxonomy, splits: tuple[str, ...] = (),
              images_copied: bool = True) -> bytes:
    """With `splits`, `train`/`val`/`test` name each split's list (`split_list`); no `path`:
    Ultralytics then resolves them against data.yaml's folder, wherever the export is
    (a relative `path` would be resolved against the working directory)."""
    lines = ["# YOLO dataset written by segments-beam-export (Ultralytics layout)."]
    if not images_copied:
        lines += [
            "# The images are not in this export (--images none): put each one at",
            "# images/<file name> next to labels/ (the manifest's image_url column says where",
            "# each comes from, and coco-instance.json's images[].file_name its file name).",
        ]
    if splits:
        lines += [f"{s}: {split_list(s)}" for s in splits]
    else:
        lines += ["train: images", "val: images"]
    lines += [f"nc: {len(taxonomy.instance_categories)}", "names:"]
    for i, c in enumerate(taxonomy.instance_categories):
        lines.append(f"  {i}: {json.dumps(c.name, ensure_ascii=False)}")
    return ("\n".join(lines) + "\n").encode("utf-8")
