import pytest

from secured_bio.config import load_yaml, validate_config
from secured_bio.errors import ConfigError, InputFileNotFoundError

SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "sites": {"type": "integer", "minimum": 1, "default": 3, "description": "sites"},
        "demo": {
            "type": "object",
            "default": {},
            "properties": {"n": {"type": "integer", "default": 5}},
        },
    },
}


def test_validate_config__fills_nested_defaults():
    assert validate_config({}, SCHEMA) == {"sites": 3, "demo": {"n": 5}}


def test_validate_config__unknown_key_suggests_near_name():
    with pytest.raises(ConfigError, match=r"unknown config key 'site'.*did you mean 'sites'"):
        validate_config({"site": 2}, SCHEMA)


def test_validate_config__wrong_value_names_key():
    with pytest.raises(ConfigError, match=r"config: sites.*expected sites"):
        validate_config({"sites": 0}, SCHEMA)


def test_load_yaml__missing_and_malformed(tmp_path):
    with pytest.raises(InputFileNotFoundError, match="config file not found"):
        load_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("sites: [1,\n  2\nseed: 0: 1\n")
    with pytest.raises(ConfigError, match=r"not valid YAML \[.*bad.yaml:\d+\]"):
        load_yaml(bad)
    lst = tmp_path / "list.yaml"
    lst.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a YAML mapping"):
        load_yaml(lst)
