"""ExportSamples: fetch, decode and export every format of each sample in one DoFn."""

from __future__ import annotations

import dataclasses
import errno
import logging
import os

import apache_beam as beam
import numpy as np
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from transforms import storage
from transforms.formats import bitmap, sequence, vector
from transforms.formats.sample_export import ExportSettings, export_sample
from transforms.model import errors, paths
from transforms.model.types import EXPORTED, FAILED, ManifestRow, Sample
from transforms.state import incremental, ledger
from transforms.summary import preview
from transforms.summary.progress import Ticker

_LOGGER = logging.getLogger(__name__)
ROWS = "rows"
PREVIEW = "preview"
LEDGER = "ledger"


@dataclasses.dataclass(frozen=True)
class ExportJob:
    release_uri: str
    output: str
    settings: ExportSettings
    copy_images: bool = True
    http_timeout: float = 30.0
    http_attempts: int = 5
    allow_local_files: bool = False
    progress_dir: str | None = None  # local runs: where workers tick (transforms.summary.progress)


# Errors caused by this sample's own name or files, not by the machine.
_PER_SAMPLE_WRITE_ERRORS = (errno.ENAMETOOLONG, errno.EISDIR, errno.ENOTDIR, errno.EEXIST,
                            errno.EINVAL, errno.EILSEQ)


def _failed(sample: Sample, e: errors.SampleError, job: ExportJob) -> ManifestRow:
    return ManifestRow(sample.position, sample.uuid, sample.name, FAILED,
                       image_id=sample.image_id, reason=e.reason, stage=e.stage,
                       image_url=_source_url(sample), metadata=sample.metadata,
                       split=sample.split)


def _coco_url(url: str | None) -> str | None:
    """COCO's `coco_url`: an absolute remote image URL (as Segments.ai releases have them)
    without its secrets; None for a relative URL or a local path (the manifest's image_url
    keeps those as the release gives them)."""
    return storage.public_url(url) if url and storage.is_remote(url) else None


def _source_url(sample: Sample) -> str | None:
    """The manifest's `image_url` (a sequence's: its first frame's): the image's URL as the
    release gives it (relative ones stay relative to the release), without secrets."""
    url = sample.image_url
    if url is None and sample.frames:
        url = sample.frames[0].image_url
    return storage.public_url(url)


HEADER_BYTES = 1 << 16  # enough for the size (and EXIF) of nearly every image file


def _vector_sample(sample: Sample, job: ExportJob, fetcher: storage.Fetcher,
                   whole: bool | None = None):
    """(SampleOutput, whole image bytes or None, extension, (width, height)).

    The image size is read from the image's first bytes (an HTTP Range request) unless the
    image is copied or previewed anyway (`whole`); a header that does not fit is fetched
    whole.
    """
    if not sample.image_url:
        raise errors.FetchError("image: no URL (the image size is needed for vector labels)")
    if whole is None:
        whole = job.copy_images or sample.index < preview.PREVIEW_SAMPLES
    data = fetcher.fetch(sample.image_url, "image", limit=None if whole else HEADER_BYTES)
    try:
        w, h = bitmap.image_size(data)
    except errors.BitmapError:
        if whole or len(data) < HEADER_BYTES:
            raise
        data = fetcher.fetch(sample.image_url, "image")
        w, h = bitmap.image_size(data)
    ext = paths.image_extension(sample.image_url, sample.name) or bitmap.image_extension(data)
    out = vector.export_vector_sample(sample, w, h, job.settings, ext,
                                      coco_url=_coco_url(sample.image_url))
    return out, (data if whole else None), ext, (w, h)


def _sequence_sample(sample: Sample, job: ExportJob, fetcher: storage.Fetcher):
    """(SampleOutput with every frame's files, images included, first frame's image bytes
    or None, first frame's id map or None) of a sequence (`sequence`). A frame that cannot
    be fetched or read fails the whole sample, its reason naming the frame."""
    outs, first, thumb_map = [], None, None
    previewed = sample.index < preview.PREVIEW_SAMPLES
    for j in range(len(sample.frames)):
        frame = sequence.frame_sample(sample, j)
        try:
            out, data, ext, size = _vector_sample(frame, job, fetcher,
                                                  whole=job.copy_images or (previewed and j == 0))
        except errors.SampleError as e:
            raise type(e)(f"frame {j + 1}: {e.reason}") from e
        if j == 0 and previewed:
            first, thumb_map = data, preview.rasterize(frame, *size)
        if job.copy_images:
            rel = paths.image_path(frame.stem, ext)
            out.files.insert(0, (rel, data))
            out.artifacts.insert(0, ("image", rel))
        outs.append(out)
    return sequence.merge_frames(sample, outs), first, thumb_map


def _image_header(sample: Sample, fetcher: storage.Fetcher, warnings: list[str]) -> bytes | None:
    """The first HEADER_BYTES of a segmentation sample's image when it is not copied: one
    Range request, to check the bitmap's size against the image's. The image is not needed
    to export the bitmap, so a fetch failure is a warning, not a failure."""
    try:
        return fetcher.fetch(sample.image_url, "image", limit=HEADER_BYTES)
    except errors.SampleError as e:
        warnings.append(f"image size not checked: {e.reason}")
        return None


def _thumbnail(sample: Sample, id_map, categories: dict[int, int], job: ExportJob,
               image_bytes: bytes | None):
    """(index, name, thumbnail) for preview.png; `categories` maps id_map values."""
    tax = job.settings.taxonomy
    cats = {k: c for k, c in categories.items() if tax.position(c) >= 0}
    caption = sample.name if sample.split is None else f"[{sample.split}] {sample.name}"
    return sample.index, caption, preview.thumbnail(id_map, cats, tax, image_bytes)


def export_one(sample: Sample, job: ExportJob, fetcher: storage.Fetcher):
    """Sample -> (ManifestRow, coco part or None, preview or None); files written.

    The preview is (index, name, thumbnail) for the first selected samples (preview.png).
    """
    if sample.frames is not None:
        try:
            out, first_image, id_map = _sequence_sample(sample, job, fetcher)
            thumb = None
            if id_map is not None:
                anns = sample.frames[0].annotations
                thumb = _thumbnail(sample, id_map,
                                   {k: a.category_id for k, a in enumerate(anns, 1)},
                                   job, first_image)
        except errors.SampleError as e:
            return _failed(sample, e, job), None, None
        return _write(sample, job, out, None, "", thumb)
    if job.settings.vector:
        try:
            out, image_bytes, ext, size = _vector_sample(sample, job, fetcher)
            thumb = None
            if sample.index < preview.PREVIEW_SAMPLES:
                thumb = _thumbnail(sample, preview.rasterize(sample, *size),
                                   {k: a.category_id for k, a in enumerate(sample.annotations, 1)},
                                   job, image_bytes)
        except errors.SampleError as e:
            return _failed(sample, e, job), None, None
        return _write(sample, job, out, image_bytes if job.copy_images else None, ext, thumb)
    try:
        if not sample.bitmap_url and sample.annotations:
            raise errors.BitmapError("label has annotations but no segmentation bitmap URL")
        warnings = []
        bitmap_bytes = fetcher.fetch(sample.bitmap_url, "bitmap") if sample.bitmap_url else None
        # The image is fetched to copy it, or to size an empty label that has no bitmap.
        need_image = bitmap_bytes is None or (job.copy_images and sample.image_url)
        image_bytes = fetcher.fetch(sample.image_url, "image") if need_image else None
        if job.copy_images and not sample.image_url:
            warnings.append("sample has no image URL; no image copied")
        if bitmap_bytes is None:
            w, h = bitmap.image_size(image_bytes)
            id_map = np.zeros((h, w), np.uint32)  # an empty label: nothing drawn
        else:
            id_map = bitmap.decode_id_map(bitmap_bytes)
        ext = paths.image_extension(sample.image_url, sample.name)
        if image_bytes is not None:
            ext = ext or bitmap.image_extension(image_bytes)
        header = image_bytes
        if header is None and bitmap_bytes is not None and sample.image_url:
            header = _image_header(sample, fetcher, warnings)
        if header is not None:
            try:  # only to compare sizes: an unreadable header is a warning, not a failure
                iw, ih = bitmap.image_size(header)
            except errors.BitmapError as e:
                warnings.append(f"image size not checked: {e.reason}")
            else:
                if (ih, iw) != id_map.shape:
                    warnings.append(f"image and bitmap sizes differ: image {iw}x{ih}, bitmap "
                                    f"{id_map.shape[1]}x{id_map.shape[0]}")
        out = export_sample(sample, id_map, job.settings, ext, warnings,
                            coco_url=_coco_url(sample.image_url))
        thumb = None
        if sample.index < preview.PREVIEW_SAMPLES:
            thumb = _thumbnail(sample, id_map, {a.id: a.category_id for a in sample.annotations},
                               job, image_bytes)
    except errors.SampleError as e:
        return _failed(sample, e, job), None, None
    return _write(sample, job, out, image_bytes if job.copy_images else None, ext, thumb)


def _write(sample: Sample, job: ExportJob, out, image_bytes: bytes | None, ext: str, thumb):
    """Writes the sample's files, all or nothing; (ManifestRow, coco part, preview)."""
    files = list(out.files)
    artifacts = list(out.artifacts)
    if image_bytes is not None:
        rel = paths.image_path(sample.stem, ext)
        files.insert(0, (rel, image_bytes))
        artifacts.insert(0, ("image", rel))
    written = []
    try:
        for rel, data in files:
            storage.write_bytes(storage.join(job.output, rel), data)
            written.append(rel)
    except OSError as e:
        if e.errno not in _PER_SAMPLE_WRITE_ERRORS:
            raise  # disk full, permissions, I/O errors: the run cannot go on
        for done in written:  # all or nothing per sample
            storage.remove_tree(storage.join(job.output, done))
        reason = f"cannot write {rel}: {os.strerror(e.errno)}"
        return _failed(sample, errors.WriteError(reason), job), None, None
    row = ManifestRow(sample.position, sample.uuid, sample.name, EXPORTED,
                      image_id=sample.image_id, num_instances=out.num_instances,
                      artifacts=tuple(artifacts), warnings=tuple(out.warnings),
                      category_stats=out.category_stats, left_out=tuple(out.left_out),
                      image_url=_source_url(sample), metadata=sample.metadata,
                      file_sizes=tuple((fmt, len(data)) for (fmt, _), (_, data)
                                       in zip(artifacts, files)), split=sample.split)
    part = (sample.index, out.coco_image, tuple(out.coco_annotations), out.panoptic_annotation,
            tuple(out.keypoint_annotations), sample.split)
    return row, part, thumb


class _ExportSampleFn(beam.DoFn):
    """Sample -> coco part (index, image JSON, annotation JSONs, panoptic JSON, keypoint
    annotation JSONs, split); ROWS gets ManifestRow (exported or failed)."""

    def __init__(self, job: ExportJob):
        self._job = job
        self._fetcher = None
        self._ticker = Ticker(job.progress_dir)
        self._exported = Metrics.counter("export", "samples_exported")
        self._failed = Metrics.counter("export", "samples_failed")
        self._instances = Metrics.counter("export", "instances_exported")
        self._warned = Metrics.counter("export", "samples_with_warnings")

    def setup(self):
        self._fetcher = storage.Fetcher(self._job.release_uri, timeout=self._job.http_timeout,
                                        attempts=self._job.http_attempts,
                                        allow_local_files=self._job.allow_local_files)

    def teardown(self):
        if self._fetcher is not None:
            self._fetcher.close()
        self._ticker.close()

    def process(self, sample: Sample):
        row, part, thumb = export_one(sample, self._job, self._fetcher)
        self._ticker.tick()
        if thumb is not None:
            yield pvalue.TaggedOutput(PREVIEW, thumb)
        if part is None:
            self._failed.inc()  # named once, in the run's summary and failures.jsonl
        else:
            self._exported.inc()
            self._instances.inc(row.num_instances)
            if row.warnings:
                self._warned.inc()
            yield part
        yield pvalue.TaggedOutput(ROWS, row)
        key = incremental.sample_key(sample) if part is not None else None
        yield pvalue.TaggedOutput(LEDGER, ledger.entry(row, part, thumb, key))


class ExportSamples(beam.PTransform):
    """Sample -> coco parts; ROWS gets one ManifestRow per sample, PREVIEW thumbnails of the
    first samples, LEDGER each sample's `ledger.entry`. Files are written here."""

    def __init__(self, job: ExportJob):
        super().__init__()
        self._job = job

    def expand(self, samples):
        return samples | "Export" >> beam.ParDo(_ExportSampleFn(self._job)).with_outputs(
            ROWS, PREVIEW, LEDGER, main="parts")
