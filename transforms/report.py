"""WriteReport and WritePreview: the run's summary files."""

from __future__ import annotations

import json

import apache_beam as beam
from apache_beam.pvalue import AsList

from transforms.formats import paths, preview, storage
from transforms.formats.report import ReportAccumulator
from transforms.formats.taxonomy import Taxonomy

REPORT = paths.REPORT
PREVIEW = paths.PREVIEW


class _ReportCombineFn(beam.CombineFn):
    """Adapter around the pure, order-independent ReportAccumulator."""

    def __init__(self, header: dict):
        self._acc, self._header = ReportAccumulator(), header

    def create_accumulator(self):
        return self._acc.create()

    def add_input(self, acc, row):
        return self._acc.add(acc, row)

    def merge_accumulators(self, accs):
        return self._acc.merge(accs)

    def extract_output(self, acc):
        return self._acc.finalize(acc, self._header)


def _write_json(report: dict, path: str) -> str:
    text = json.dumps(report, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    storage.write_bytes(path, text.encode("utf-8"))
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
    ordered = [(name, thumb) for _, name, thumb in sorted(thumbs, key=lambda t: t[0])]
    storage.write_bytes(path, preview.contact_sheet(ordered, taxonomy))
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
