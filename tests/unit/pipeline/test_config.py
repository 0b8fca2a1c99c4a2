"""Unit tests for pipeline/config.py: defaults < YAML config < command-line flags.

Defaults are the ones documented in the flags' help (pipeline/options.py) and the README.
"""

from __future__ import annotations

import os

import pytest

from pipeline import EXAMPLE_RELEASE, config
from transforms import release

ALL_FORMATS = (
    "coco-instance", "coco-panoptic", "yolo", "instance", "semantic", "instance-color",
    "semantic-color",
)

FLAG_NAMES = (
    "release", "output", "config", "formats", "labelset", "filter_by", "filter_by_metadata",
    "images", "id_increment", "instance_png", "coco_shard_size", "manifest_rows_per_shard",
    "http_timeout", "http_attempts",
)


def flags(**given):
    """The flags dict as the launcher builds it: every export flag, None when not given."""
    out = {name: None for name in FLAG_NAMES}
    out.update(given)
    return out


def yaml_file(tmp_path, text, name="export.yaml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def config_error(**given) -> str:
    with pytest.raises(config.ConfigError) as exc:
        config.load(flags(**given))
    return str(exc.value)


# --------------------------------------------------------------------------- defaults


def test_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = config.load(flags())
    assert cfg.release == EXAMPLE_RELEASE
    assert os.path.isabs(cfg.release)
    assert cfg.output == os.path.join(str(tmp_path), "out")  # ./out, made absolute
    assert cfg.formats is None  # every format the task type supports
    assert cfg.labelset is None  # ground-truth / first task, decided by the release
    assert cfg.filter_by is None  # keep all
    assert cfg.filter_by_metadata == ()
    assert cfg.images == "copy"
    assert cfg.id_increment == 0
    assert cfg.instance_png == "gray16"
    assert cfg.coco_shard_size == 1000
    assert cfg.manifest_rows_per_shard == 100_000
    assert cfg.http_timeout == 30
    assert cfg.http_attempts == 5
    assert cfg.chunk_samples == "auto"


def test_empty_flags_dict_same_as_all_none(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config.load({}) == config.load(flags())


def test_selection_property():
    cfg = config.load(flags(labelset="predictions", filter_by="labeled", filter_by_metadata=["n=1"]))
    assert cfg.selection == release.Selection("predictions", ("LABELED",), (("n", 1),))


# --------------------------------------------------------------------------- YAML and precedence


def test_yaml_values_applied(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = yaml_file(
        tmp_path,
        """
release: gs://bucket/releases/v1.json
output: gs://bucket/exports/v1
formats: [coco-instance, semantic]
labelset: predictions
filter_by: [labeled, Reviewed]
images: none
id_increment: 1
instance_png: rgb24
coco_shard_size: 50
manifest_rows_per_shard: 10
http_timeout: 12.5
http_attempts: 2
""",
    )
    cfg = config.load(flags(config=path))
    assert cfg.release == "gs://bucket/releases/v1.json"
    assert cfg.output == "gs://bucket/exports/v1"
    assert cfg.formats == ("coco-instance", "semantic")
    assert cfg.labelset == "predictions"
    assert cfg.filter_by == ("LABELED", "REVIEWED")
    assert cfg.images == "none"
    assert cfg.id_increment == 1
    assert cfg.instance_png == "rgb24"
    assert cfg.coco_shard_size == 50
    assert cfg.manifest_rows_per_shard == 10
    assert cfg.http_timeout == 12.5
    assert cfg.http_attempts == 2


def test_cli_overrides_yaml(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = yaml_file(
        tmp_path,
        "images: none\nformats: yolo\nlabelset: predictions\nhttp_attempts: 2\n"
        "filter_by: labeled\nfilter_by_metadata: {split: train}\n",
    )
    cfg = config.load(flags(config=path, images="copy", formats="semantic,instance",
                            filter_by="reviewed", filter_by_metadata=["split=val"]))
    assert cfg.images == "copy"
    assert cfg.formats == ("semantic", "instance")
    assert cfg.filter_by == ("REVIEWED",)
    assert cfg.filter_by_metadata == (("split", "val"),)
    # not given on the command line: the YAML value stays
    assert cfg.labelset == "predictions"
    assert cfg.http_attempts == 2


def test_cli_none_does_not_override_yaml(tmp_path):
    path = yaml_file(tmp_path, "id_increment: 1\n")
    assert config.load(flags(config=path, id_increment=None)).id_increment == 1
    # an explicit 0 on the command line is a value, not "not given"
    assert config.load(flags(config=path, id_increment=0)).id_increment == 0


def test_empty_yaml_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = yaml_file(tmp_path, "")
    assert config.load(flags(config=path)) == config.load(flags())


def test_unknown_yaml_key_named(tmp_path):
    path = yaml_file(tmp_path, "images: copy\nfilterby: labeled\n")
    msg = config_error(config=path)
    assert "filterby" in msg


def test_missing_yaml_file(tmp_path):
    msg = config_error(config=str(tmp_path / "nope.yaml"))
    assert "nope.yaml" in msg


def test_invalid_yaml(tmp_path):
    path = yaml_file(tmp_path, "formats: [yolo\n")
    assert "export.yaml" in config_error(config=path)


def test_yaml_not_a_mapping(tmp_path):
    path = yaml_file(tmp_path, "- yolo\n- semantic\n")
    assert "export.yaml" in config_error(config=path)


# --------------------------------------------------------------------------- formats


def test_formats_normalised_to_hyphens():
    cfg = config.load(flags(formats="coco_instance,yolo"))
    assert cfg.formats == ("coco-instance", "yolo")


def test_formats_spaces_and_all_names():
    cfg = config.load(flags(formats=" instance_color , semantic_color,coco-panoptic "))
    assert cfg.formats == ("instance-color", "semantic-color", "coco-panoptic")
    assert config.load(flags(formats=",".join(ALL_FORMATS))).formats == ALL_FORMATS


def test_formats_yaml_list_with_underscores(tmp_path):
    path = yaml_file(tmp_path, "formats: [coco_panoptic, semantic]\n")
    assert config.load(flags(config=path)).formats == ("coco-panoptic", "semantic")


@pytest.mark.parametrize("bad", ["bogus", "yolo,polygon", "cocoinstance"])
def test_unknown_format_lists_choices(bad):
    msg = config_error(formats=bad)
    assert "formats" in msg
    for name in ALL_FORMATS:
        assert name in msg


def test_unknown_format_in_yaml_lists_choices(tmp_path):
    path = yaml_file(tmp_path, "formats: [yolo, pascal-voc]\n")
    msg = config_error(config=path)
    assert "pascal-voc" in msg
    for name in ALL_FORMATS:
        assert name in msg


def test_no_format_given():
    assert "formats" in config_error(formats=",")


# --------------------------------------------------------------------------- selection


def test_filter_by_upper_cased():
    assert config.load(flags(filter_by="labeled,reviewed")).filter_by == ("LABELED", "REVIEWED")
    assert config.load(flags(filter_by="Unlabeled")).filter_by == ("UNLABELED",)


def test_filter_by_metadata_yaml_mapping(tmp_path):
    path = yaml_file(tmp_path, 'filter_by_metadata:\n  split: train\n  n: 1\n  s: "1"\n')
    cfg = config.load(flags(config=path))
    assert dict(cfg.filter_by_metadata) == {"split": "train", "n": 1, "s": "1"}
    assert type(dict(cfg.filter_by_metadata)["n"]) is int
    assert type(dict(cfg.filter_by_metadata)["s"]) is str


def test_filter_by_metadata_cli_list():
    cfg = config.load(flags(filter_by_metadata=["split=train", "n=1", 's="1"', "ok=true"]))
    assert cfg.filter_by_metadata == (("split", "train"), ("n", 1), ("s", "1"), ("ok", True))


def test_filter_by_metadata_yaml_list(tmp_path):
    path = yaml_file(tmp_path, 'filter_by_metadata: ["split=train", "n=1"]\n')
    assert config.load(flags(config=path)).filter_by_metadata == (("split", "train"), ("n", 1))


def test_filter_by_metadata_bad_pair():
    with pytest.raises(ValueError) as exc:
        config.load(flags(filter_by_metadata=["split"]))
    assert "filter_by_metadata" in str(exc.value)


def test_filter_by_metadata_bad_yaml_type(tmp_path):
    path = yaml_file(tmp_path, "filter_by_metadata: 5\n")
    assert "filter_by_metadata" in config_error(config=path)


# --------------------------------------------------------------------------- validation


@pytest.mark.parametrize("value", ["link", "COPY", ""])
def test_invalid_images_value(value):
    msg = config_error(images=value)
    assert "images" in msg


def test_invalid_instance_png():
    assert "instance_png" in config_error(instance_png="rgba32")


@pytest.mark.parametrize("name", ["coco_shard_size", "manifest_rows_per_shard", "http_attempts"])
@pytest.mark.parametrize("value", [0, -3])
def test_positive_integers(name, value):
    assert name in config_error(**{name: value})


@pytest.mark.parametrize("value", [0, -2.5])
def test_http_timeout_positive(value):
    assert "http_timeout" in config_error(http_timeout=value)


@pytest.mark.parametrize(
    "setting", ["http_timeout: fast", "id_increment: high", "coco_shard_size: many"]
)
def test_wrongly_typed_yaml_values_are_config_errors(tmp_path, setting):
    # "validated up front": a bad YAML value is a ConfigError naming the setting, not a
    # TypeError from deep inside the validation.
    path = yaml_file(tmp_path, setting + "\n")
    msg = config_error(config=path)
    assert setting.split(":")[0] in msg


def test_chunk_samples_auto_means_chunks_on_local_runners_only():
    cfg = config.load(flags())
    assert cfg.chunk_size(local=True) == 2000 and cfg.chunk_size(local=False) == 0
    assert config.load(flags(chunk_samples="250")).chunk_size(local=True) == 250  # a flag
    assert config.load(flags(chunk_samples="0")).chunk_size(local=True) == 0


@pytest.mark.parametrize("value", ["many", "-1", -5, 2.5, True])
def test_chunk_samples_must_be_auto_or_a_count(value):
    assert "chunk_samples" in config_error(chunk_samples=value)


def test_config_error_is_a_value_error():
    assert issubclass(config.ConfigError, ValueError)


# --------------------------------------------------------------------------- paths


def test_output_made_absolute_for_local_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = config.load(flags(output="exports/run1", release="data/release.json"))
    assert cfg.output == os.path.join(str(tmp_path), "exports", "run1")
    assert cfg.release == os.path.join(str(tmp_path), "data", "release.json")
    assert os.path.isabs(cfg.output) and os.path.isabs(cfg.release)


def test_output_relative_dots_resolved(tmp_path, monkeypatch):
    sub = tmp_path / "a"
    sub.mkdir()
    monkeypatch.chdir(sub)
    assert config.load(flags(output="../out")).output == os.path.join(str(tmp_path), "out")


@pytest.mark.parametrize("url", ["gs://bucket/exports/run1", "s3://bucket/exports/run1"])
def test_cloud_output_left_alone(url):
    assert config.load(flags(output=url)).output == url


@pytest.mark.parametrize(
    "url", ["gs://bucket/r.json", "s3://bucket/r.json", "https://example.com/r.json?sig=1"]
)
def test_remote_release_left_alone(url):
    assert config.load(flags(release=url)).release == url


def test_yaml_output_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    path = yaml_file(tmp_path, "output: from-yaml\n")
    assert config.load(flags(config=path)).output == os.path.join(str(tmp_path), "from-yaml")
