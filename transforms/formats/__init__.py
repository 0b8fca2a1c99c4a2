"""The export formats, and the one pass over a sample that computes all of them.

`sample_export` (every format's artifacts for one segmentation sample from one decoded id
map), `bitmap` (PNG bitmaps -> id maps, image headers), `instances` (areas, boxes, RLE of
every instance in one pass), `png` (the label-picture PNG writer), `contours` (polygons of
a mask), `vector` (boxes, polygons, points), `sequence` (image sequences), `coco` (COCO
documents assembled from parts), `yolo` (data.yaml). Each module opens with its contract.

Pure Python: imports `transforms.model` only (and numpy, Pillow, pycocotools), never Beam
(tests/unit/test_layering.py checks it). Imported by `summary`, `state`, the Beam adapters
and `pipeline`. A new format goes here.
"""
