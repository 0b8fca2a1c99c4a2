"""Per-category tables every format derives from the release's categories.

Contract:
  * semantic value = category id + `id_increment`; 8-bit PNGs unless a value exceeds 255,
    in which case the semantic PNGs of the whole export are 16-bit (decided once, up front).
  * semantic colour = the category's own RGB colour, keyed by category **id**; categories
    without a colour get `COLORMAP[position % 36]` (position in the release's list, the SDK's
    fallback).
  * Instance formats (coco-instance, yolo, yolo-seg) leave out stuff categories (`stuff`:
    `has_instances: false`) unless `instances_keep_stuff` (--stuff_as_instances, or a shape
    release, whose every shape is an object): `instance_categories`.
  * YOLO class = the category's 0-based position among `instance_categories` (contiguous).
  * Panoptic: `isthing` = has_instances (missing/null -> stuff). Each stuff category gets a
    colour (= its segment id) unique among stuff categories and never black: its own colour
    when free, otherwise the next free colour from `COLORMAP`, then a deterministic scan.
  * Annotations whose category id is not in the taxonomy are left out of every
    category-based output and reported as a per-sample warning.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import numpy as np

from transforms.model.types import Category

# The SDK's (panopticapi's) 36-colour map, RGB.
COLORMAP: tuple[tuple[int, int, int], ...] = (
    (0, 113, 188), (216, 82, 24), (236, 176, 31), (125, 46, 141), (118, 171, 47),
    (76, 189, 237), (161, 19, 46), (255, 0, 0), (255, 127, 0), (190, 190, 0), (0, 255, 0),
    (0, 0, 255), (170, 0, 255), (84, 84, 0), (84, 170, 0), (84, 255, 0), (170, 84, 0),
    (170, 170, 0), (170, 255, 0), (255, 84, 0), (255, 170, 0), (255, 255, 0), (0, 84, 127),
    (0, 170, 127), (0, 255, 127), (84, 0, 127), (84, 84, 127), (84, 170, 127),
    (84, 255, 127), (170, 0, 127), (170, 84, 127), (170, 170, 127), (170, 255, 127),
    (255, 0, 127), (255, 84, 127), (255, 170, 127),
)


def rgb_id(c: Sequence[int]) -> int:
    return int(c[0]) + 256 * int(c[1]) + 65536 * int(c[2])


@dataclasses.dataclass(frozen=True)
class Taxonomy:
    categories: tuple[Category, ...]
    id_increment: int = 0
    instances_keep_stuff: bool = False

    def __post_init__(self):
        by_id = {c.id: i for i, c in enumerate(self.categories)}
        object.__setattr__(self, "_pos", by_id)
        object.__setattr__(self, "_stuff", _stuff_colors(self.categories))
        kept = tuple(c for c in self.categories if self.instances_keep_stuff or not c.stuff)
        object.__setattr__(self, "instance_categories", kept)
        object.__setattr__(self, "_class", {c.id: i for i, c in enumerate(kept)})

    def position(self, category_id: int) -> int:
        """0-based position in the release's list, -1 if unknown."""
        return self._pos.get(category_id, -1)

    def yolo_class(self, category_id: int) -> int:
        """0-based position among `instance_categories` (the YOLO class), -1 if the category
        is unknown or left out of the instance formats."""
        return self._class.get(category_id, -1)

    def category(self, category_id: int) -> Category | None:
        p = self._pos.get(category_id)
        return None if p is None else self.categories[p]

    def color(self, category_id: int) -> tuple[int, int, int]:
        """Semantic colour of a known category."""
        p = self._pos[category_id]
        c = self.categories[p].color
        return c if c is not None else COLORMAP[p % len(COLORMAP)]

    def semantic_value(self, category_id: int) -> int:
        return category_id + self.id_increment

    @property
    def semantic_dtype(self) -> np.dtype:
        top = max((c.id + self.id_increment for c in self.categories), default=0)
        return np.dtype(np.uint8) if top <= 255 else np.dtype(np.uint16)

    def stuff_color(self, category_id: int) -> tuple[int, int, int]:
        return self._stuff[category_id]

    @property
    def stuff_ids(self) -> frozenset[int]:
        """Segment ids taken by stuff categories (never used for things)."""
        return frozenset(rgb_id(c) for c in self._stuff.values())

    def panoptic_color(self, category_id: int) -> tuple[int, int, int]:
        """A stuff category's unique segment colour, a thing category's semantic colour."""
        c = self.category(category_id)
        return self._stuff[c.id] if not c.has_instances else self.color(c.id)


def _stuff_colors(categories: Sequence[Category]) -> dict[int, tuple[int, int, int]]:
    taken: set[int] = {0}
    out = {}
    palette = iter(COLORMAP)
    scan = 0x010101
    for p, c in enumerate(categories):
        if c.has_instances:
            continue
        color = c.color if c.color is not None else COLORMAP[p % len(COLORMAP)]
        while rgb_id(color) in taken:
            nxt = next(palette, None)
            if nxt is None:  # palette exhausted: walk the colour cube deterministically
                scan += 0x0F0B07
                nxt = ((scan >> 16) & 255, (scan >> 8) & 255, scan & 255)
            color = nxt
        taken.add(rgb_id(color))
        out[c.id] = tuple(int(v) for v in color)
    return out
