"""ExportConfig: built-in defaults < YAML config < command-line flags, validated up front."""

from __future__ import annotations

import dataclasses
import difflib
import os
from typing import Any

import yaml

from pipeline import EXAMPLE_RELEASE
from transforms import release
from transforms.model.types import FORMATS
from transforms.release.splits import DEFAULT_SALT
from transforms.state import chunking


class ConfigError(ValueError):
    """A setting is invalid; the message names it."""


@dataclasses.dataclass(frozen=True)
class ExportConfig:
    release: str = EXAMPLE_RELEASE
    output: str = "out"
    formats: tuple[str, ...] | None = None  # None: every format the task type supports
    labelset: str | None = None
    filter_by: tuple[str, ...] | None = None
    filter_by_metadata: tuple[tuple[str, Any], ...] = ()
    images: str = "copy"
    id_increment: int = 0
    instance_png: str = "gray16"
    coco_segmentation: str = "rle"  # rle | polygon: coco-instance of bitmap releases
    coco_shard_size: int = 1000
    manifest_rows_per_shard: int = 100_000
    http_timeout: float = 30.0
    http_attempts: int = 5
    max_failures: int | None = None  # exit 3 when more samples fail than this
    max_failure_ratio: float | None = None  # ... or more than this share of selected samples
    chunk_samples: int | str = "auto"  # local runs: samples per chunk; 0 = one chunk
    allow_local_files: bool = False  # read file://, absolute and out-of-folder local paths
    stuff_as_instances: bool = False  # stuff categories as objects in the instance formats
    split: str | None = None  # e.g. "train=0.8,val=0.1,test=0.1" (`release.splits`)
    split_salt: str = DEFAULT_SALT
    split_by_metadata: str | None = None  # metadata key naming each sample's split
    split_missing: str = "error"  # error | hash: a sample without that metadata key
    shard_mb: float = 500  # hf-parquet and webdataset: target shard size in MiB

    @property
    def split_spec(self) -> release.SplitSpec | None:
        """The requested splits, or None without --split."""
        if self.split is None:
            return None
        names, ratios = release.parse_ratios(self.split)
        return release.SplitSpec(names, ratios, self.split_salt, self.split_by_metadata,
                                 self.split_missing)

    def chunk_size(self, local: bool) -> int:
        """Samples per chunk for this run (0: the release in one pipeline)."""
        if self.chunk_samples == "auto":
            return chunking.AUTO_CHUNK_SAMPLES if local else 0
        return int(self.chunk_samples)

    @property
    def selection(self) -> release.Selection:
        return release.Selection(self.labelset, self.filter_by, self.filter_by_metadata)


_FIELDS = {f.name for f in dataclasses.fields(ExportConfig)}


def _names(value: Any, where: str, choices, normalise, what: str, plural: str
           ) -> tuple[str, ...]:
    """A list setting (a comma-separated string or a list) of names from `choices`, each
    `normalise`d, without repeats; an unknown or missing name is a ConfigError."""
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, (list, tuple)):
        raise ConfigError(f"{where}: expected a comma-separated string or a list")
    out = []
    for item in items:
        given = str(item).strip()
        name = normalise(given)
        if not name:
            continue
        if name not in choices:
            raise ConfigError(f"{where}: unknown {what} {given!r}{_did_you_mean(name, choices)} "
                              f"({plural}: {', '.join(choices)})")
        if name not in out:
            out.append(name)
    if not out:
        raise ConfigError(f"{where}: no {what} given")
    return tuple(out)


def _formats(value: Any, where: str) -> tuple[str, ...]:
    return _names(value, where, FORMATS, lambda n: n.replace("_", "-"), "format", "formats")


def _statuses(value: Any, where: str) -> tuple[str, ...]:
    return _names(value, where, release.LABEL_STATUSES,
                  lambda n: n.upper().replace("-", "_"), "label status", "statuses")


def _did_you_mean(value: str, choices) -> str:
    match = difflib.get_close_matches(value, list(choices), n=1, cutoff=0.6)
    return f"; did you mean {match[0]}?" if match else ""


def _normalise(raw: dict[str, Any], name) -> dict[str, Any]:
    """`name(key)`: how a message names the setting (`--formats`, `FILE: formats`)."""
    out = dict(raw)
    if "formats" in out and out["formats"] is not None:
        out["formats"] = _formats(out["formats"], name("formats"))
    if "filter_by" in out and out["filter_by"] is not None:
        out["filter_by"] = _statuses(out["filter_by"], name("filter_by"))
    if isinstance(out.get("split"), dict):  # YAML: split: {train: 0.8, val: 0.2}
        out["split"] = ",".join(f"{k}={v}" for k, v in out["split"].items())
    if isinstance(out.get("chunk_samples"), str) and out["chunk_samples"].strip().isdigit():
        out["chunk_samples"] = int(out["chunk_samples"])
    if "filter_by_metadata" in out:
        value = out["filter_by_metadata"] or ()
        if isinstance(value, dict):
            value = tuple(value.items())
        elif isinstance(value, (list, tuple)) and all(isinstance(v, str) for v in value):
            value = release.parse_metadata_filters(list(value))
        else:
            raise ConfigError(f"{name('filter_by_metadata')}: expected a mapping or KEY=VALUE list")
        out["filter_by_metadata"] = tuple(value)
    return out


def load_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as f:
            data = yaml.safe_load(f) or {}
    except FileNotFoundError:
        raise ConfigError(f"--config: no such file: {path}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"--config: {path} is not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {path} must hold a mapping of settings")
    unknown = sorted(set(data) - _FIELDS)
    if unknown:
        raise ConfigError(
            f"--config: unknown setting {unknown[0]!r} in {path} (known: {', '.join(sorted(_FIELDS))})")
    return _normalise(data, lambda key: f"{path}: {key}")


def load(flags: dict[str, Any]) -> ExportConfig:
    """`flags`: the export flags as parsed (None = not given)."""
    values: dict[str, Any] = {}
    if flags.get("config"):
        values.update(load_yaml(flags["config"]))
    cli = {k: v for k, v in flags.items() if k in _FIELDS and v is not None}
    values.update(_normalise(cli, lambda key: f"--{key}"))
    cfg = ExportConfig(**values)
    _validate(cfg)
    if not cfg.output.startswith(("gs://", "s3://")):
        cfg = dataclasses.replace(cfg, output=os.path.abspath(cfg.output))
    if "://" not in cfg.release:
        cfg = dataclasses.replace(cfg, release=os.path.abspath(cfg.release))
    return cfg


_TYPES = {"images": str, "instance_png": str, "coco_segmentation": str, "output": str, "release": str, "id_increment": int,
          "coco_shard_size": int, "manifest_rows_per_shard": int,
          "http_attempts": int, "http_timeout": (int, float), "split_salt": str,
          "split_missing": str, "shard_mb": (int, float)}

MIN_SHARD_MB, MAX_SHARD_MB = 0.01, 1 << 20  # 10 KiB .. 1 TiB


def _validate(cfg: ExportConfig) -> None:
    for name, kind in _TYPES.items():
        value = getattr(cfg, name)
        if isinstance(value, bool) or not isinstance(value, kind):
            raise ConfigError(f"{name}: expected {_kind_name(kind)}, got {value!r}")
    if cfg.labelset is not None and not isinstance(cfg.labelset, str):
        raise ConfigError(f"labelset: expected a string, got {cfg.labelset!r}")
    if cfg.images not in ("copy", "none"):
        raise ConfigError(f"images: expected copy or none, got {cfg.images!r}")
    if cfg.instance_png not in ("gray16", "rgb24"):
        raise ConfigError(f"instance_png: expected gray16 or rgb24, got {cfg.instance_png!r}")
    if cfg.coco_segmentation not in ("rle", "polygon"):
        raise ConfigError(
            f"coco_segmentation: expected rle or polygon, got {cfg.coco_segmentation!r}")
    for name in ("coco_shard_size", "manifest_rows_per_shard", "http_attempts"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name}: expected a positive integer")
    if cfg.max_failures is not None and (isinstance(cfg.max_failures, bool)
                                         or not isinstance(cfg.max_failures, int)
                                         or cfg.max_failures < 0):
        raise ConfigError("max_failures: expected a non-negative integer")
    if cfg.max_failure_ratio is not None and (
            isinstance(cfg.max_failure_ratio, bool)
            or not isinstance(cfg.max_failure_ratio, (int, float))
            or not 0 <= cfg.max_failure_ratio <= 1):
        raise ConfigError("max_failure_ratio: expected a number between 0 and 1")
    if not isinstance(cfg.stuff_as_instances, bool):
        raise ConfigError(
            f"stuff_as_instances: expected true or false, got {cfg.stuff_as_instances!r}")
    if not isinstance(cfg.allow_local_files, bool):
        raise ConfigError(f"allow_local_files: expected true or false, got {cfg.allow_local_files!r}")
    chunk = cfg.chunk_samples
    if chunk != "auto" and (isinstance(chunk, bool) or not isinstance(chunk, int) or chunk < 0):
        raise ConfigError(f"chunk_samples: expected auto, 0 or a positive integer, got {chunk!r}")
    if cfg.http_timeout <= 0:
        raise ConfigError("http_timeout: expected a positive number of seconds")
    if not cfg.output:
        raise ConfigError("--output: empty path")
    _validate_splits(cfg)


def _validate_splits(cfg: ExportConfig) -> None:
    if cfg.split is not None:
        if not isinstance(cfg.split, str):
            raise ConfigError(f"split: expected NAME=RATIO pairs, got {cfg.split!r}")
        try:
            release.parse_ratios(cfg.split)
        except ValueError as e:
            raise ConfigError(f"--split: {e}") from None
    if cfg.split_missing not in ("error", "hash"):
        raise ConfigError(f"--split_missing: expected error or hash, got {cfg.split_missing!r}")
    if cfg.split_by_metadata is not None:
        if not isinstance(cfg.split_by_metadata, str) or not cfg.split_by_metadata:
            raise ConfigError("--split_by_metadata: expected a metadata key")
        if cfg.split is None:
            raise ConfigError("--split_by_metadata: also give --split with the split names "
                              "(and the ratios for samples without the key), e.g. "
                              "--split train=0.8,val=0.2")
    if not MIN_SHARD_MB <= cfg.shard_mb <= MAX_SHARD_MB:
        raise ConfigError(f"--shard_mb: expected {MIN_SHARD_MB}..{MAX_SHARD_MB} (MiB per "
                          f"shard), got {cfg.shard_mb}")


def _kind_name(kind) -> str:
    return "a number" if isinstance(kind, tuple) else {str: "a string", int: "an integer"}[kind]
