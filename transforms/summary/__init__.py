"""What a run tells its user: the run report, the manifest and failure list, the preview,
and the progress of local runs.

`report` (report.json and the terminal table, from a combiner of per-sample rows),
`manifest` (manifest Parquet shards and failures.jsonl), `preview` (preview.png),
`progress` (workers tick, the launcher shows a progress bar).

Pure Python: imports `transforms.model` and `transforms.formats`, never Beam. Imported by
`state`, the Beam adapters and `pipeline`.
"""
