"""Discovery of pilot plugins through the ``secured_bio.pilots`` entry-point group.

Plugins are discovered only when the registry is asked (never at import time).  A plugin
that fails to load raises :class:`~secured_bio.errors.PluginError` naming its distribution.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path
from typing import Any

import pluggy

from secured_bio._atomic import atomic_dir, atomic_write, check_replaceable_dir
from secured_bio.errors import ConfigError, PluginError, UnknownPilotError, did_you_mean
from secured_bio.pilots._spec import PROJECT, PilotHookSpecs, PilotSpec, RunFunction

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "secured_bio.pilots"
METRICS_FORMAT = "secured_bio.pilot_metrics"
METRICS_FORMAT_VERSION = 1


def _dist_name(ep: EntryPoint) -> str:
    dist = getattr(ep, "dist", None)
    return f"{dist.name} {dist.version}" if dist is not None else "an unknown distribution"


def plugin_manager() -> pluggy.PluginManager:
    """Build a plugin manager with every pilot plugin of the entry-point group loaded.

    Raises
    ------
    PluginError
        If a plugin module cannot be imported, naming the distribution and entry point.
    """
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(PilotHookSpecs)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if pm.get_plugin(ep.name) is not None:
            continue  # the same distribution seen twice on sys.path
        try:
            plugin = ep.load()
        except Exception as e:
            raise PluginError(
                f"pilot plugin '{ep.name}' failed to load",
                where=f"distribution {_dist_name(ep)}, entry point {ep.value}",
                got=f"{type(e).__name__} while importing",
                fix="reinstall or uninstall that distribution (pip uninstall ...)",
            ) from e
        pm.register(plugin, name=ep.name)
    return pm


def list_pilots() -> list[PilotSpec]:
    """Return the specs of all registered pilots, sorted by name.

    Raises
    ------
    PluginError
        If a plugin fails to load, returns something other than a PilotSpec, or two
        plugins register the same pilot name.
    """
    pm = plugin_manager()
    specs: dict[str, PilotSpec] = {}
    for plugin_name, plugin in pm.list_name_plugin():
        impl = getattr(plugin, "secured_bio_register_pilot", None)
        if impl is None:
            raise PluginError(
                f"pilot plugin '{plugin_name}' does not implement the hook",
                where=f"entry point '{plugin_name}' in group {ENTRY_POINT_GROUP}",
                expected="a function secured_bio_register_pilot() decorated with @hookimpl",
            )
        try:
            spec = impl()
        except PluginError:
            raise
        except Exception as e:
            raise PluginError(
                f"pilot plugin '{plugin_name}' failed while registering",
                where=f"entry point '{plugin_name}'",
                got=type(e).__name__,
            ) from e
        if not isinstance(spec, PilotSpec):
            raise PluginError(
                f"pilot plugin '{plugin_name}' returned the wrong type",
                where=f"entry point '{plugin_name}'",
                expected="secured_bio.pilots.PilotSpec",
                got=type(spec).__name__,
            )
        if spec.name in specs:
            raise PluginError(
                f"two plugins register the pilot name '{spec.name}'",
                where=f"entry point '{plugin_name}'",
                fix="uninstall one of the distributions",
            )
        specs[spec.name] = spec
    return [specs[k] for k in sorted(specs)]


def get_pilot(name: str) -> PilotSpec:
    """Return the spec of the pilot called ``name``.

    Raises
    ------
    UnknownPilotError
        If no pilot has that name; the message suggests the closest name.

    Examples
    --------
    >>> get_pilot("genomic_access").name
    'genomic_access'
    """
    specs = {s.name: s for s in list_pilots()}
    if name not in specs:
        raise UnknownPilotError(
            f"unknown pilot '{name}'",
            expected="one of: " + ", ".join(specs),
            fix=did_you_mean(name, specs) or "run 'secured-bio pilots list'",
        )
    return specs[name]


def pilot_config(spec: PilotSpec, config: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Validate a pilot config against the pilot's schema and fill in its defaults."""
    from secured_bio.config import load_schema, validate_config

    if spec.config_schema is None:
        if config:
            raise ConfigError(
                f"pilot '{spec.name}' takes no config",
                got=f"{len(config)} keys",
                fix="run it without --config",
            )
        return {}
    return validate_config(
        config or {}, load_schema(spec.config_schema), where=f"pilot '{spec.name}' config"
    )


def run_pilot(
    name: str, out_dir: str | Path, config: Mapping[str, Any] | None = None, *,
    run: RunFunction | None = None,
) -> dict[str, Any]:
    """Run a pilot end to end and write ``out_dir/metrics.json`` plus its outputs.

    The pilot writes into a temporary folder next to ``out_dir`` that replaces ``out_dir``
    only when the run succeeds, so a failed run leaves no half-written output.  ``run``
    replaces the pilot's own run function (``secured-bio fl run --pilot`` runs only the
    pilot's federated part this way).

    Raises
    ------
    UnknownPilotError
        If no pilot has that name.
    ConfigError
        If the config does not match the pilot's schema, or ``out_dir`` holds unrelated files.
    """
    spec = get_pilot(name)
    cfg = pilot_config(spec, config)
    out = Path(out_dir)
    check_replaceable_dir(out, marker="metrics.json")
    start = time.perf_counter()
    with atomic_dir(out) as tmp:
        log.info("running pilot %s into %s", spec.name, out)
        metrics = relocate_paths((run or spec.run)(tmp, cfg), tmp, out)
        doc = _metrics_doc(spec, cfg, metrics, time.perf_counter() - start)
        with atomic_write(tmp / "metrics.json") as fh:
            json.dump(doc, fh, indent=2, default=str)
            fh.write("\n")
    return doc


def relocate_paths(obj: Any, tmp: str | Path, final: str | Path) -> Any:
    """Return ``obj`` with every path under the temporary run folder moved to ``final``.

    A pilot runs in a temporary folder that is renamed to its final name when the run
    succeeds (:func:`secured_bio._atomic.atomic_dir`); paths it recorded while running name
    the temporary folder.  Strings in nested dicts and lists are rewritten, in the form they
    were given (as passed, or absolute).

    Examples
    --------
    >>> relocate_paths({"dirs": ["out/.run.x1.tmp/sites/a"]}, "out/.run.x1.tmp", "out/run")
    {'dirs': ['out/run/sites/a']}
    """
    pairs = [(str(Path(tmp)), str(Path(final))),
             (os.path.abspath(tmp), os.path.abspath(final)),
             (str(Path(tmp).resolve()), str(Path(final).resolve()))]
    # longest first, so that an absolute path is not rewritten by its relative tail
    pairs = sorted({(a, b) for a, b in pairs if a != b}, key=lambda ab: -len(ab[0]))

    def fix(x: Any) -> Any:
        if isinstance(x, str):
            for a, b in pairs:
                if a in x:
                    x = x.replace(a, b)
            return x
        if isinstance(x, Path):
            return Path(fix(str(x)))
        if isinstance(x, Mapping):
            return {k: fix(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return type(x)(fix(v) for v in x)
        return x

    return fix(obj)


def _metrics_doc(
    spec: PilotSpec, cfg: Mapping[str, Any], metrics: Mapping[str, Any], elapsed: float,
    *, elapsed_key: str = "elapsed_s",
) -> dict[str, Any]:
    return {
        "format": METRICS_FORMAT,
        "format_version": METRICS_FORMAT_VERSION,
        "pilot": spec.name,
        "pilot_version": spec.version,
        "status": spec.status,
        "config": dict(cfg),
        elapsed_key: round(elapsed, 3),
        **metrics,
    }


def collect_pilot(
    name: str, results_dir: str | Path, config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Collect the metrics of a pilot whose workflow rules wrote its outputs.

    Writes ``results_dir/metrics.json`` (atomically) and returns it.

    Raises
    ------
    UnknownPilotError
        If no pilot has that name.
    PluginError
        If the pilot has no ``collect`` function.
    InputFileNotFoundError
        If ``results_dir`` does not exist.
    """
    from secured_bio.errors import InputFileNotFoundError

    spec = get_pilot(name)
    if spec.collect is None:
        raise PluginError(
            f"pilot '{name}' cannot collect workflow outputs",
            expected="a PilotSpec with collect=...",
            fix=f"use 'secured-bio pilots run {name}' instead",
        )
    cfg = pilot_config(spec, config)
    root = Path(results_dir)
    if not root.is_dir():
        raise InputFileNotFoundError(
            "results folder not found", where=str(root), fix="run the pilot's workflow first"
        )
    start = time.perf_counter()
    # Only the collection is timed here (the workflow's rules ran before, each with its
    # own log): "collect_s", not "elapsed_s", so that no one reads it as the pilot's time.
    doc = _metrics_doc(spec, cfg, spec.collect(root, cfg), time.perf_counter() - start,
                       elapsed_key="collect_s")
    with atomic_write(root / "metrics.json") as fh:
        json.dump(doc, fh, indent=2, default=str)
        fh.write("\n")
    return doc
