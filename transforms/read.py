"""ReadRelease: stream the release on a worker and emit selected samples."""

from __future__ import annotations

import logging

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from transforms.formats import errors, release, storage
from transforms.formats.types import FAILED, SKIPPED, ManifestRow
from transforms.progress import Ticker

_LOGGER = logging.getLogger(__name__)
ROWS = "rows"


class _ReadReleaseFn(beam.DoFn):
    """release URI -> Sample; ROWS gets ManifestRow for filtered, skipped and malformed."""

    def __init__(self, info: release.ReleaseInfo, selection: release.Selection,
                 progress_dir: str | None = None):
        self._info = info
        self._selection = selection
        self._ticker = Ticker(progress_dir)  # rows that never reach the export step
        self._read = Metrics.counter("export", "samples_read")
        self._selected = Metrics.counter("export", "samples_selected")
        self._skipped = Metrics.counter("export", "samples_skipped")
        self._failed = Metrics.counter("export", "samples_failed")

    def process(self, uri: str):
        info, selection = self._info, self._selection
        index = read = 0
        with storage.open_release(uri) as stream:
            for position, raw in enumerate(release.iter_raw_samples(stream, info.samples_prefix)):
                read += 1
                self._read.inc()
                uuid, name = release.identity(raw, position)
                try:
                    status = release.sample_status(raw, info.labelset)
                except errors.SampleError as e:
                    self._failed.inc()
                    self._ticker.tick()
                    yield pvalue.TaggedOutput(ROWS, ManifestRow(
                        position, uuid, name, FAILED, reason=e.reason, stage=e.stage))
                    continue
                reason = release.filter_reason(raw, status, selection)
                if reason is not None:
                    self._skipped.inc()
                    self._ticker.tick()
                    yield pvalue.TaggedOutput(ROWS, ManifestRow(position, uuid, name, SKIPPED,
                                                                reason=reason))
                    continue
                self._selected.inc()
                image_id = index + 1
                reason = release.skip_reason(raw, info.labelset)
                if reason is not None:
                    self._skipped.inc()
                    self._ticker.tick()
                    yield pvalue.TaggedOutput(ROWS, ManifestRow(
                        position, uuid, name, SKIPPED, image_id=image_id, reason=reason))
                else:
                    try:
                        yield release.parse_sample(raw, position, index, info)
                    except errors.SampleError as e:
                        self._failed.inc()
                        self._ticker.tick()
                        yield pvalue.TaggedOutput(ROWS, ManifestRow(
                            position, uuid, name, FAILED, image_id=image_id, reason=e.reason,
                            stage=e.stage))
                index += 1
        self._ticker.close()
        _LOGGER.info("read %d samples, %d selected", read, index)


class ReadRelease(beam.PTransform):
    """PBegin -> Sample (selected, in any order); ROWS gets ManifestRow."""

    def __init__(self, uri: str, info: release.ReleaseInfo, selection: release.Selection,
                 progress_dir: str | None = None):
        super().__init__()
        self._uri, self._info, self._selection = uri, info, selection
        self._progress_dir = progress_dir

    def expand(self, pbegin):
        return (
            pbegin
            | "Uri" >> beam.Create([self._uri])
            | "Stream" >> beam.ParDo(_ReadReleaseFn(
                self._info, self._selection, self._progress_dir)).with_outputs(
                ROWS, main="samples")
        )
