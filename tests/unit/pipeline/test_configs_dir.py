"""configs/default.yaml documents every setting with the value the code actually uses."""

import dataclasses
import pathlib

import yaml

from pipeline.config import ExportConfig, load_yaml

DEFAULT = pathlib.Path(__file__).resolve().parents[3] / "configs" / "default.yaml"


def test_default_yaml_lists_every_setting_with_the_code_default():
    raw = yaml.safe_load(DEFAULT.read_text())
    fields = {f.name: f.default for f in dataclasses.fields(ExportConfig)}
    assert set(raw) | {"release"} == set(fields)
    loaded = load_yaml(str(DEFAULT))
    for key, value in loaded.items():
        expected = fields[key]
        if key == "filter_by_metadata":
            assert tuple(value) == expected
        else:
            assert value == expected, key


def test_every_shipped_config_loads():
    for path in sorted((DEFAULT.parent).glob("*.yaml")):
        loaded = load_yaml(str(path))  # unknown keys or bad values raise ConfigError
        assert isinstance(loaded, dict) and loaded, path
