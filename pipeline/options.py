"""Command-line flags of the exporter (Beam's own flags, e.g. --runner, pass through)."""

from __future__ import annotations

import argparse

from apache_beam.options import pipeline_options as beam_options
from apache_beam.options.pipeline_options import PipelineOptions

from transforms.model.types import FORMATS


class _FlattenAppend(argparse.Action):
    """`--filter_by_metadata a=1 b=2` and repeated flags both collect into one list."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = list(getattr(namespace, self.dest, None) or [])
        current.extend(values if isinstance(values, list) else [values])
        setattr(namespace, self.dest, current)


class _CommaJoin(argparse.Action):
    """`--formats a --formats b` is `--formats a,b` (comma-separated lists combine)."""

    def __call__(self, parser, namespace, values, option_string=None):
        current = getattr(namespace, self.dest, None)
        setattr(namespace, self.dest, f"{current},{values}" if current else values)


# Actions that collect repeated flags instead of replacing the earlier value (pipeline.cli).
COLLECTING_ACTIONS = (argparse._AppendAction, argparse._AppendConstAction,  # noqa: SLF001
                      argparse._ExtendAction, argparse._CountAction,  # noqa: SLF001
                      _FlattenAppend, _CommaJoin, beam_options._DictUnionAction)  # noqa: SLF001


class ExportOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        g = parser.add_argument_group("export")
        g.add_argument("--release", default=None,
                       help="Release JSON (.json or .json.gz): local path, http(s)://, gs:// or "
                            "s3:// URL. Default: the bundled example release.")
        g.add_argument("--output", default=None,
                       help="Output folder, local or gs:// / s3://. Default: ./out")
        g.add_argument("--config", default=None,
                       help="YAML file with any of these settings; flags override it.")
        g.add_argument("--formats", default=None, action=_CommaJoin,
                       help="Comma-separated formats: " + ",".join(FORMATS)
                            + ". Default: every format the task type supports except yolo-seg "
                              "(polygon tracing: ask for it).")
        g.add_argument("--labelset", default=None,
                       help="Labelset to export. Default: ground-truth (first task for "
                            "legacy releases).")
        g.add_argument("--filter_by", default=None, action=_CommaJoin,
                       help="Comma-separated label statuses to keep, e.g. LABELED,REVIEWED; "
                            "UNLABELED selects samples without a label. Default: all.")
        g.add_argument("--filter_by_metadata", nargs="+", action=_FlattenAppend, default=None,
                       metavar="KEY=VALUE",
                       help="Keep samples whose metadata has KEY equal to VALUE (all pairs must "
                            "match). VALUE is read as JSON when it parses (n=1 is a number, "
                            "s='\"1\"' a string), else as text.")
        g.add_argument("--images", choices=("copy", "none"), default=None,
                       help="copy: copy each image's original bytes to OUT/images (default); "
                            "none: leave images out.")
        g.add_argument("--id_increment", type=int, default=None,
                       help="Added to category ids in semantic PNGs (default 0; use 1 for "
                            "0-based taxonomies).")
        g.add_argument("--instance_png", choices=("gray16", "rgb24"), default=None,
                       help="gray16: 16-bit instance PNGs, a sample with an id > 65535 fails "
                            "(default); rgb24: RGB PNGs with id = R + 256*G + 65536*B.")
        g.add_argument("--coco_segmentation", choices=("rle", "polygon"), default=None,
                       help="coco-instance segmentation of bitmap releases: rle (compressed "
                            "RLE, default) or polygon ([[x1, y1, ...], ...] per connected "
                            "component, holes spliced in; bbox and area stay the mask's).")
        g.add_argument("--stuff_as_instances", action="store_true", default=None,
                       help="Also export stuff categories (has_instances: false, e.g. road, "
                            "sky) as objects in coco-instance, yolo and yolo-seg, as the "
                            "segments-ai SDK does (default: only in the semantic, panoptic "
                            "and PNG formats, as Mask R-CNN and YOLO training expects).")
        g.add_argument("--coco_shard_size", type=int, default=None,
                       help="Samples per COCO fragment shard (default 1000).")
        g.add_argument("--manifest_rows_per_shard", type=int, default=None,
                       help="Rows per manifest Parquet file (default 100000).")
        g.add_argument("--chunk_samples", default=None, metavar="auto|0|N",
                       help="Local runs: export the release in consecutive chunks of N samples, "
                            "one pipeline each, merged into one export (byte-identical to an "
                            "unchunked run), so memory stays bounded by the chunk. auto "
                            "(default): 2000 on local runners, off on Dataflow; 0: off.")
        g.add_argument("--http_timeout", type=float, default=None,
                       help="Seconds per HTTP request (default 30).")
        g.add_argument("--max_failures", type=int, default=None,
                       help="Exit with code 3 when more samples than this fail (every other "
                            "sample is still exported). Default: no limit.")
        g.add_argument("--max_failure_ratio", type=float, default=None,
                       help="Exit with code 3 when more than this share (0..1) of the selected "
                            "samples fail. Default: no limit.")
        g.add_argument("--only_failed", action="store_true", default=False,
                       help="Re-export only the samples that failed in the previous export in "
                            "--output, and update that export in place (every global file is "
                            "rebuilt; the result equals a full export in which they succeeded). "
                            "Needs the same release and options as the previous export.")
        g.add_argument("--since", default=None, metavar="PREVIOUS_OUT",
                       help="Incremental export: update the previous export in PREVIOUS_OUT (the "
                            "same folder as --output) to --release, exporting only the samples "
                            "that changed or are new since (unchanged samples keep their files, "
                            "removed samples' files are deleted; the result equals a full "
                            "export). Needs the same options as the previous export.")
        g.add_argument("--validate", action="store_true", default=False,
                       help="After the export, re-open every output with the readers users load "
                            "it with (python -m pipeline.validate) and exit 1 on any problem.")
        g.add_argument("--allow_local_files", action="store_true", default=None,
                       help="Also read assets from file:// URLs, absolute local paths and "
                            "relative paths outside the release's folder (default: refused per "
                            "sample; a local release reads relative paths inside its folder, a "
                            "remote release no local file at all).")
        g.add_argument("--log_level", default=None, type=str.upper,
                       choices=("DEBUG", "INFO", "WARNING", "ERROR"),
                       help="Show log messages of this level and above, Beam's own included "
                            "(default: the exporter's progress and summary, and errors only).")
        g.add_argument("--http_attempts", type=int, default=None,
                       help="Attempts per HTTP fetch, retrying 429/5xx/resets (default 5).")
        g.add_argument("--split", default=None, metavar="train=R,val=R,test=R",
                       help="Split the samples into train/val/test by a salted hash of their "
                            "uuid (stable across runs and release versions); ratios sum to 1. "
                            "Writes one COCO document per split, YOLO split lists, a split "
                            "column in the manifest and split shards. Default: no split.")
        g.add_argument("--split_salt", default=None,
                       help="Salt of the split hash (default segments-split-v1); another salt "
                            "gives another split.")
        g.add_argument("--split_by_metadata", default=None, metavar="KEY",
                       help="Take each sample's split from its metadata value KEY (one of the "
                            "--split names); see --split_missing for samples without it.")
        g.add_argument("--split_missing", choices=("error", "hash"), default=None,
                       help="With --split_by_metadata, a sample without KEY: error (exit 2 "
                            "before any work, default) or hash (split by --split's ratios).")
        g.add_argument("--shard_mb", type=float, default=None,
                       help="hf-parquet and webdataset: target shard size in MiB, 0.01 to "
                            "1048576 (default 500).")
