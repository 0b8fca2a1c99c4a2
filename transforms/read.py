"""ReadRelease: stream the release on a worker and emit selected samples."""

from __future__ import annotations

import logging
import pickle

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from transforms import release, storage
from transforms.model.types import FAILED, ManifestRow
from transforms.state import chunking
from transforms.summary.progress import Ticker
from transforms.write import start_with

_LOGGER = logging.getLogger(__name__)
ROWS = "rows"


class _CountingReadFn(beam.DoFn):
    """The readers' shared counters and progress ticks."""

    def __init__(self, progress_dir: str | None):
        self._ticker = Ticker(progress_dir)
        self._read = Metrics.counter("export", "samples_read")
        self._selected = Metrics.counter("export", "samples_selected")
        self._skipped = Metrics.counter("export", "samples_skipped")
        self._failed = Metrics.counter("export", "samples_failed")

    def _row(self, row: ManifestRow) -> pvalue.TaggedOutput:
        """A sample that never reaches the export step: counted, ticked, tagged ROWS."""
        self._ticker.tick()
        (self._failed if row.status == FAILED else self._skipped).inc()
        return pvalue.TaggedOutput(ROWS, row)


class _ReadReleaseFn(_CountingReadFn):
    """release URI -> Sample; ROWS gets ManifestRow for filtered, skipped and malformed."""

    def __init__(self, info: release.ReleaseInfo, selection: release.Selection,
                 progress_dir: str | None = None):
        super().__init__(progress_dir)
        self._info = info
        self._selection = selection

    def process(self, uri: str):
        read = selected = 0
        with storage.open_release(uri) as stream:
            for d in release.decide(stream, self._info, self._selection):
                read += 1
                self._read.inc()
                if d.selected:
                    selected += 1
                    self._selected.inc()
                if d.sample is not None:
                    yield d.sample
                else:
                    yield self._row(chunking.decision_row(d))
        self._ticker.close()
        _LOGGER.info("read %d samples, %d selected", read, selected)


class ReadRelease(beam.PTransform):
    """PBegin, or the token of `BeginExport` (the release is then read once the previous
    export is replaced) -> Sample (selected, in any order); ROWS gets ManifestRow."""

    def __init__(self, uri: str, info: release.ReleaseInfo, selection: release.Selection,
                 progress_dir: str | None = None):
        super().__init__()
        self._uri, self._info, self._selection = uri, info, selection
        self._progress_dir = progress_dir

    def expand(self, start):
        return (
            start_with(start, "Uri", self._uri)
            | "Stream" >> beam.ParDo(_ReadReleaseFn(
                self._info, self._selection, self._progress_dir)).with_outputs(
                ROWS, main="samples")
        )


class _ReadChunkFn(_CountingReadFn):
    """chunk file -> Sample with its final stem; ROWS gets the chunk's other ManifestRows."""

    def __init__(self, stems_path: str, progress_dir: str | None = None):
        super().__init__(progress_dir)
        self._stems_path = stems_path

    def process(self, path: str):
        stems = pickle.loads(storage.read_bytes(self._stems_path))
        for kind, item, selected in chunking.chunk_items(path, stems):
            self._read.inc()
            if selected:
                self._selected.inc()
            yield item if kind == "sample" else self._row(item)
        self._ticker.close()


class ReadChunk(beam.PTransform):
    """PBegin -> Sample (one chunk of a chunked run, with final stems); ROWS gets
    ManifestRow. The chunk file is written by `chunking.split` in the launcher."""

    def __init__(self, chunk_path: str, stems_path: str, progress_dir: str | None = None):
        super().__init__()
        self._chunk_path, self._stems_path = chunk_path, stems_path
        self._progress_dir = progress_dir

    def expand(self, pbegin):
        return (
            pbegin
            | "Path" >> beam.Create([self._chunk_path])
            | "Stream" >> beam.ParDo(_ReadChunkFn(
                self._stems_path, self._progress_dir)).with_outputs(ROWS, main="samples")
        )
