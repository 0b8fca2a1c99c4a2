"""Writes dataflow/metadata.json, the Flex Template's parameters, from the export's flags.

    python dataflow/make_metadata.py        # after adding or changing a flag in pipeline/options.py

Every flag of `pipeline.options.ExportOptions` becomes one template parameter: its name, its
help text (the flag's own `help`, or the template-specific text below), whether it is optional
and regexes that Dataflow checks when the template is launched, before any worker starts. A flag
missing from `_LABELS` stops this script, so no flag can be forgotten;
tests/e2e/test_dataflow.py fails when metadata.json differs from what this script writes.

Values arrive as `--name=value` (Flex Templates have no bare flags): `dataflow/launcher.py`
turns `true`/`false` for the on/off flags into the flag or nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
METADATA = os.path.join(HERE, "metadata.json")
sys.path.insert(0, os.path.dirname(HERE))  # run from a checkout without installing

from pipeline.options import ExportOptions
from transforms.model.types import FORMATS

NAME = "Segments.ai release export"
DESCRIPTION = (
    "Exports a Segments.ai release to COCO instance, COCO panoptic, YOLO and PNG label formats "
    "(the segments-beam-export pipeline). Writes the formats, a manifest, failures.jsonl and "
    "report.json to the output folder; a failed sample is listed there, never fatal.")

_LABELS = {
    "release": "Release file",
    "output": "Output folder",
    "config": "Settings file (YAML, in the image)",
    "formats": "Formats",
    "labelset": "Labelset",
    "filter_by": "Label statuses to keep",
    "filter_by_metadata": "Metadata filter (KEY=VALUE)",
    "images": "Images",
    "id_increment": "Semantic id increment",
    "instance_png": "Instance PNG encoding",
    "coco_segmentation": "COCO instance segmentation (rle or polygon)",
    "coco_shard_size": "Samples per COCO fragment",
    "manifest_rows_per_shard": "Rows per manifest Parquet file",
    "chunk_samples": "Chunk size (local runs only)",
    "http_timeout": "HTTP timeout (seconds)",
    "http_attempts": "HTTP attempts per fetch",
    "max_failures": "Failure budget (samples)",
    "max_failure_ratio": "Failure budget (share of samples)",
    "only_failed": "Only the failed samples (not in templates)",
    "since": "Incremental update of an export (not in templates)",
    "validate": "Validate (command line only)",
    "allow_local_files": "Allow local files",
    "stuff_as_instances": "Stuff categories as objects in the instance formats",
    "log_level": "Log level of the launcher",
    "split": "Train/val/test split ratios",
    "split_salt": "Split hash salt",
    "split_by_metadata": "Split from this metadata key",
    "split_missing": "Sample without the split metadata key",
    "shard_mb": "Shard size (MiB) of hf-parquet and webdataset",
}

_REQUIRED = {"release", "output"}

# Where the template differs from a command-line run, its own help text.
_HELP = {
    "release": "The release JSON (.json or .json.gz) as a gs://, http(s):// or s3:// URL, "
               "e.g. gs://my-bucket/releases/flowers-v1.0.json or the release's signed URL. "
               "Read by the launcher (header) and by one worker (samples).",
    "output": "Output folder on Cloud Storage, e.g. gs://my-bucket/exports/flowers-v1.0. "
              "The workers' service account needs write access.",
    "config": "A YAML settings file inside the template image, e.g. "
              "/template/configs/dataflow.yaml (the repository's configs/ folder is copied "
              "there); parameters override it.",
    "filter_by_metadata": "Keep samples whose metadata has KEY equal to VALUE, e.g. "
                          "camera=front. VALUE is read as JSON when it parses (n=1 is a "
                          "number). One pair here; several pairs go in the settings file "
                          "(filter_by_metadata).",
    "chunk_samples": "Local runs only: Dataflow exports the release in one job. Leave empty "
                     "(auto, which is off on Dataflow) or 0.",
    "max_failures": "The job's run report counts failures; a template launch cannot turn them "
                    "into an exit code. Accepted for parity with the command line (report.json "
                    "and failures.jsonl list every failed sample).",
    "max_failure_ratio": "As max_failures, as a share (0..1) of the selected samples.",
    "only_failed": "Not available in a template launch: completing an earlier export runs "
                   "several pipelines from one process. Use the command line "
                   "(python -m pipeline --only_failed ... --runner DataflowRunner). Must be "
                   "false.",
    "since": "Not available in a template launch: an incremental export runs several "
             "pipelines from one process. Use the command line (python -m pipeline --since "
             "OUT --output OUT ... --runner DataflowRunner). Leave it empty.",
    "validate": "Not available in a template launch (nothing waits for the job): once it has "
                "finished, run python -m pipeline.validate gs://BUCKET/OUT, which copies the "
                "export to a temporary local folder and checks it. Must be false.",
    "allow_local_files": "Also read assets from file:// URLs and absolute local paths. A "
                         "remote release never reads local files otherwise; on Dataflow "
                         "there are none to read, so leave it false.",
}

_NUMBER = r"^[0-9]+$"
_BOOLEAN = r"^(true|false)$"
_REGEXES = {
    "release": [r"^(gs|s3|https?)://[^\n\r]+$"],
    "output": [r"^gs://[^/\n\r]+/[^\n\r]*$"],
    "config": [r"^[^\n\r]+\.ya?ml$"],
    "formats": ["^({0})(,({0}))*$".format("|".join(FORMATS))],
    "filter_by": [r"^[A-Za-z_]+(,[A-Za-z_]+)*$"],
    "filter_by_metadata": [r"^[^=\n\r]+=[^\n\r]*$"],
    "id_increment": [r"^-?[0-9]+$"],
    "chunk_samples": [r"^(auto|0)$"],
    "http_timeout": [r"^[0-9]+(\.[0-9]+)?$"],
    "max_failure_ratio": [r"^(0(\.[0-9]+)?|1(\.0+)?)$"],
    "only_failed": [r"^false$"],
    "since": [r"^$"],
    "validate": [r"^false$"],
    "shard_mb": [r"^[0-9]+(\.[0-9]+)?$"],
    "split_salt": [r"^[^\n\r]+$"],
    "split_by_metadata": [r"^[^\n\r]+$"],
    "split": [r"^(train|val|test)=[0-9.]+(,(train|val|test)=[0-9.]+)*$"],
}


def export_flags() -> list[argparse.Action]:
    """The flags `pipeline/options.py` defines, in its order."""
    parser = argparse.ArgumentParser(add_help=False)
    ExportOptions._add_argparse_args(parser)
    return [a for a in parser._actions if a.option_strings]


def switch_flags() -> frozenset[str]:
    """Names of the on/off flags (given bare on the command line, true/false in a template)."""
    return frozenset(a.dest for a in export_flags() if a.nargs == 0)


def _parameter(action: argparse.Action) -> dict:
    name = action.dest
    if name not in _LABELS:
        raise SystemExit(f"dataflow/make_metadata.py: give --{name} a label in _LABELS")
    param: dict = {"name": name, "label": _LABELS[name],
                   "helpText": _HELP.get(name, action.help), "isOptional": name not in _REQUIRED}
    if action.nargs == 0:
        param["regexes"] = _REGEXES.get(name, [_BOOLEAN])
        param["paramType"] = "BOOLEAN"
    elif action.choices:
        param["regexes"] = ["^({})$".format("|".join(action.choices))]
        param["paramType"] = "ENUM"
        param["enumOptions"] = [{"value": c} for c in action.choices]
    elif action.type in (int, float):
        param["regexes"] = _REGEXES.get(name, [_NUMBER])
        param["paramType"] = "NUMBER"
    else:
        if name in _REGEXES:
            param["regexes"] = _REGEXES[name]
        param["paramType"] = "GCS_WRITE_FOLDER" if name == "output" else "TEXT"
    return param


def metadata() -> dict:
    return {"name": NAME, "description": DESCRIPTION, "streaming": False,
            "parameters": [_parameter(a) for a in export_flags()]}


def render() -> str:
    return json.dumps(metadata(), indent=2, ensure_ascii=False) + "\n"


if __name__ == "__main__":
    with open(METADATA, "w", encoding="utf-8") as f:
        f.write(render())
    print(f"wrote {METADATA}")
