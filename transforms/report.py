"""WriteReport and WritePreview: the run's summary files."""

from __future__ import annotations

import pickle

import apache_beam as beam
from apache_beam.pvalue import AsList

from transforms import storage
from transforms.model import paths
from transforms.model.taxonomy import Taxonomy
from transforms.summary import preview, report
from transforms.summary.report import ReportAccumulator

REPORT = paths.REPORT
PREVIEW = paths.PREVIEW


class _ReportCombineFn(beam.CombineFn):
    """Adapter around the pure, order-independent ReportAccumulator."""

    def __init__(self, header: dict | None):
        self._acc, self._header = ReportAccumulator(), header  # None: output the accumulator

    def create_accumulator(self):
        return self._acc.create()

    def add_input(self, acc, row):
        return self._acc.add(acc, row)

    def merge_accumulators(self, accs):
        return self._acc.merge(accs)

    def extract_output(self, acc):
        return acc if self._header is None else self._acc.finalize(acc, self._header)


def _write_json(summary: dict, path: str) -> str:
    storage.write_bytes(path, report.report_bytes(summary))
    return path


class WriteReport(beam.PTransform):
    """ManifestRow -> OUT/report.json (one small dict via a combiner of small aggregates)."""

    def __init__(self, output: str, header: dict):
        super().__init__()
        self._path, self._header = storage.join(output, REPORT), header

    def expand(self, rows):
        return (rows
                | "Summarise" >> beam.CombineGlobally(_ReportCombineFn(self._header))
                | "Write" >> beam.Map(_write_json, self._path))


def _write_preview(path: str, taxonomy: Taxonomy, thumbs) -> str:
    storage.write_bytes(path, preview.sheet_bytes(thumbs, taxonomy))
    return path


class WritePreview(beam.PTransform):
    """(index, name, thumbnail) -> OUT/preview.png, thumbnails in release order."""

    def __init__(self, output: str, taxonomy: Taxonomy):
        super().__init__()
        self._path, self._taxonomy = storage.join(output, PREVIEW), taxonomy

    def expand(self, thumbs):
        return (thumbs.pipeline
                | "Path" >> beam.Create([self._path])
                | "Write" >> beam.Map(_write_preview, self._taxonomy, thumbs=AsList(thumbs)))


def _write_pickle(obj, path: str) -> str:
    storage.write_bytes(path, pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL))
    return path


class WriteReportPart(beam.PTransform):
    """ManifestRow -> one chunk's report accumulator (pickle), merged by the launcher."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, rows):
        return (rows
                | "Summarise" >> beam.CombineGlobally(_ReportCombineFn(None))
                | "Write" >> beam.Map(_write_pickle, self._path))


class WritePreviewPart(beam.PTransform):
    """(index, name, thumbnail) -> one chunk's thumbnails (pickle), merged by the launcher."""

    def __init__(self, path: str):
        super().__init__()
        self._path = path

    def expand(self, thumbs):
        return (thumbs.pipeline
                | "Path" >> beam.Create([self._path])
                | "Write" >> beam.Map(lambda path, ts: _write_pickle(sorted(ts, key=lambda t: t[0]),
                                                                     path),
                                      ts=AsList(thumbs)))
