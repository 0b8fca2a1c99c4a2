"""Image sequences (`image-vector-sequence`): every frame exported as an image of its own.

Contract:
  * Frame j (0-based) of a sample is the image `{stem}-{j + 1:05d}` (`frame_stem`): the
    sample's collision-free stem, a dash and the 1-based frame number, at least five
    digits (the SDK's name for a frame without a name). The release's frame `name` is never
    used for files (the SDK writes every frame named null to `{stem}-None` and keeps the
    last). Names are collision-free: stems are unique over the release, and the suffix
    after the last `-` is always the frame number, so two frames share a name only if they
    share sample and number.
  * Each frame is exported like an image of a `vector` release (`vector`), with its own
    size from its own image header, its own extension (from its URL, else the sample name,
    else its bytes) and the label frame at the same position; label frames beyond the
    sample's frames have no image and are left out, counted in the warnings.
  * COCO (coco-instance, and coco-keypoints for the points): one image per frame, id
    `Sample.frame_image_id(j)` (dense over the frames of the
    samples to export, in release order; see `types`), `file_name` `{frame stem}{ext}`.
    YOLO: `labels/{frame stem}.txt` per frame. Tracking (`track_id`) is not exported.
  * A sample is exported whole or not at all: one frame whose image is missing, has no URL
    or cannot be read fails the sample (its other frames are not written).
"""

from __future__ import annotations

import dataclasses

from transforms.formats.sample_export import SampleOutput
from transforms.model.types import Sample


def frame_stem(stem: str, j: int) -> str:
    return f"{stem}-{j + 1:05d}"


def frame_sample(sample: Sample, j: int) -> Sample:
    """Frame j as a single-image sample: its image URL, annotations, stem and COCO id."""
    frame = sample.frames[j]
    return dataclasses.replace(sample, index=sample.frame_image_id(j) - 1,
                               stem=frame_stem(sample.stem, j), image_url=frame.image_url,
                               annotations=frame.annotations, frames=None, frame_base=0)


def merge_frames(sample: Sample, outs: list[SampleOutput]) -> SampleOutput:
    """One sample's output from its frames' outputs (in frame order). Counted warnings
    (`reason: N`) are summed over the frames and name them (`...: 3 (frames 1, 2)`), the
    others are prefixed with their frame (`frame 3: ...`); frames are 1-based."""
    notes: list[str] = []
    if sample.extra_label_frames:
        notes.append(f"label frames without an image (left out): {sample.extra_label_frames}")
    stats: dict[int, list[int]] = {}
    images, bodies, keypoints, files, artifacts = [], [], [], [], []
    instances = 0
    counted: dict[str, list] = {}  # "reason: N" warnings, summed over the frames
    for j, out in enumerate(outs):
        for w in out.warnings:
            text, _, n = w.rpartition(": ")
            if text and n.isdigit():
                c = counted.setdefault(text, [0, []])
                c[0] += int(n)
                c[1].append(str(j + 1))
            else:
                notes.append(f"frame {j + 1}: {w}")
        if out.coco_image is not None:
            images.append(out.coco_image)
        bodies += out.coco_annotations
        keypoints += out.keypoint_annotations
        files += out.files
        artifacts += out.artifacts
        instances += out.num_instances
        for c, n, px in out.category_stats:
            s = stats.setdefault(c, [0, 0])
            s[0] += n
            s[1] += px
    notes += [f"{text}: {n} (frame{'s' if len(js) > 1 else ''} {', '.join(js)})"
              for text, (n, js) in counted.items()]
    # Several image objects in one part: the COCO fragments are comma-joined texts.
    return SampleOutput(files, ",".join(images) or None, bodies, None, instances, notes,
                        artifacts, tuple((c, n, px) for c, (n, px) in sorted(stats.items())),
                        keypoint_annotations=keypoints)
