"""Configuration files: load YAML, validate against a JSON Schema, fill in defaults.

The same schemas validate Snakemake's ``config/config.yaml`` (through
``snakemake.utils.validate`` in ``workflows/rules/common.smk``) and the ``--config`` files
of ``secured-bio pilots run``.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from secured_bio.errors import ConfigError, InputFileNotFoundError, did_you_mean

__all__ = ["load_yaml", "load_schema", "apply_defaults", "validate_config"]


def load_yaml(path: str | Path, *, what: str = "config file") -> dict[str, Any]:
    """Read a YAML mapping from ``path``.

    Raises
    ------
    InputFileNotFoundError
        If ``path`` does not exist.
    ConfigError
        If the file is not valid YAML or its top level is not a mapping.
    """
    p = Path(path)
    if not p.is_file():
        raise InputFileNotFoundError(
            f"{what} not found", where=str(p), fix="check the path (relative paths start "
            "from the current directory)"
        )
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{p}:{mark.line + 1}" if mark is not None else str(p)
        raise ConfigError(
            f"{what} is not valid YAML", where=where, fix="fix the YAML syntax at that line"
        ) from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(
            f"{what} must hold a mapping of keys to values",
            where=str(p),
            expected="a YAML mapping (key: value)",
            got=type(data).__name__,
        )
    return data


def apply_defaults(config: Mapping[str, Any], schema: Mapping[str, Any]) -> dict[str, Any]:
    """Return a copy of ``config`` with the schema's ``default`` values filled in (recursively).

    Examples
    --------
    >>> schema = {"type": "object", "properties": {"sites": {"type": "integer", "default": 3}}}
    >>> apply_defaults({}, schema)
    {'sites': 3}
    """
    out = copy.deepcopy(dict(config))
    for key, sub in schema.get("properties", {}).items():
        if key not in out and "default" in sub:
            out[key] = copy.deepcopy(sub["default"])
        if isinstance(out.get(key), dict) and sub.get("type") == "object":
            out[key] = apply_defaults(out[key], sub)
    return out


def validate_config(
    config: Mapping[str, Any], schema: Mapping[str, Any], *, where: str = "config"
) -> dict[str, Any]:
    """Validate ``config`` against a JSON Schema and return it with defaults filled in.

    Raises
    ------
    ConfigError
        Naming the offending key path, what the schema expects and, for an unknown key,
        the closest known key.

    Examples
    --------
    >>> schema = {"type": "object", "additionalProperties": False,
    ...           "properties": {"sites": {"type": "integer", "minimum": 1, "default": 3}}}
    >>> validate_config({"sites": 2}, schema)
    {'sites': 2}
    >>> try:
    ...     validate_config({"site": 2}, schema)
    ... except ConfigError as e:
    ...     print(e.what, "|", e.fix)
    unknown config key 'site' | did you mean 'sites'?
    """
    import jsonschema

    filled = apply_defaults(config, schema)
    validator = jsonschema.Draft202012Validator(schema)
    errors = sorted(validator.iter_errors(filled), key=lambda e: list(e.absolute_path))
    if not errors:
        return filled
    err = errors[0]
    path = "/".join(str(p) for p in err.absolute_path)
    loc = f"{where}: {path}" if path else where
    if err.validator == "additionalProperties":
        known = list(err.schema.get("properties", {}))
        extra = sorted(set(err.instance) - set(known))
        hint = did_you_mean(extra[0], known) if extra else None
        raise ConfigError(
            f"unknown config key '{extra[0] if extra else '?'}'",
            where=loc,
            expected="one of: " + ", ".join(known),
            fix=hint or "remove the key or check the pilot's documentation",
        )
    # jsonschema's message quotes the offending value; config values are options, not data.
    expected = err.schema.get("description") or f"{err.validator} {err.validator_value!r}"
    raise ConfigError(
        f"invalid config value: {err.message}",
        where=loc,
        expected=str(expected),
        fix="edit the config file (every key has a default; delete it to use the default)",
    )


def load_schema(path: str | Path) -> dict[str, Any]:
    """Load a JSON Schema stored as YAML."""
    return load_yaml(path, what="config schema")
