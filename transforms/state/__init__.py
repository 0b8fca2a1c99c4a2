"""What an export keeps between runs and between the pipelines of one run: the ledger of
every sample's result, chunked runs, and incremental exports.

`ledger` (OUT/.export-state: every sample's result, for --only_failed and --since, and the
rebuild of every global file from it), `chunking` (a large release as consecutive chunks,
merged into one export), `incremental` (--since: which samples changed, and the combined
ledger).

Pure Python: imports every package below it (`model`, `storage`, `release`, `formats`,
`summary`), never Beam. Imported by the Beam adapters and `pipeline`. A new run mode's
bookkeeping goes here.
"""
