"""PilotSpec and the pluggy markers."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

PROJECT = "secured_bio"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

#: What a pilot can do today, shown by ``secured-bio pilots list``.
STATUSES = {
    "demo-data-only": "writes and checks its demo data only; the analysis is still to come",
    "preview": "runs end to end on demo data; some results or options are still missing",
    "ready": "runs end to end on its demo data or on yours (--data), with all its results",
}

#: ``run(out_dir, config) -> metrics``: writes outputs under ``out_dir`` (already created,
#: and moved into place by the caller only when ``run`` returns) and returns the metrics
#: that are written to ``metrics.json``.
RunFunction = Callable[[Path, Mapping[str, Any]], dict[str, Any]]

#: ``collect(results_dir, config) -> metrics``: reads the outputs a pilot's Snakemake rules
#: wrote under ``results_dir`` (the same layout ``run`` writes) and returns its metrics.
CollectFunction = Callable[[Path, Mapping[str, Any]], dict[str, Any]]

#: ``federated(data_dir, work_dir, config) -> plan``: prepares each site's inputs of a
#: federated run from a cohort folder (site-local work only, written under ``work_dir``) and
#: returns the plan ``{"task": "module:Class", "task_params": {...}, "sites": [names],
#: "site_data_dirs": [one folder per site]}`` that ``secured-bio fl run --pilot`` executes.
FederatedSetup = Callable[[Path, Path, Mapping[str, Any]], Mapping[str, Any]]


@dataclass(frozen=True)
class PilotSpec:
    """Everything secured_bio needs to know about a pilot.

    Parameters
    ----------
    name
        Identifier (``[a-z][a-z0-9_]*``), used on the command line and in workflow paths.
    description
        One line shown by ``secured-bio pilots list``.
    run
        ``run(out_dir, config) -> metrics`` runs the pilot end to end on its demo data.
    status
        One of :data:`STATUSES`.
    config_schema
        JSON Schema (YAML file) of the pilot's config; defaults are filled from it.
    rules_file
        The pilot's Snakemake rules file (``workflows/rules/<name>.smk``).
    data_specs
        Kinds of input the pilot reads (see ``secured-bio validate``).
    collect
        Optional ``collect(results_dir, config) -> metrics`` for workflows whose rules
        write the pilot's outputs step by step (``secured-bio pilots collect``).
    federated
        Optional :data:`FederatedSetup` for pilots that train a model across sites
        (``secured-bio fl run --pilot NAME``).
    """

    name: str
    description: str
    run: RunFunction
    status: str = "demo-data-only"
    config_schema: Path | None = None
    rules_file: Path | None = None
    data_specs: tuple[str, ...] = ()
    version: str = "0"
    collect: CollectFunction | None = None
    federated: FederatedSetup | None = None
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        import re

        from secured_bio.errors import PluginError

        if not re.fullmatch(r"[a-z][a-z0-9_]*", self.name or ""):
            raise PluginError(
                "invalid pilot name",
                where="PilotSpec.name",
                expected="lower-case letters, digits and '_', starting with a letter",
                got=repr(self.name),
                fix="rename the pilot in its plugin module",
            )
        if self.status not in STATUSES:
            raise PluginError(
                "invalid pilot status",
                where=f"pilot '{self.name}'",
                expected=" | ".join(STATUSES),
                got=repr(self.status),
            )
        if not callable(self.run):
            raise PluginError(
                "pilot has no run function",
                where=f"pilot '{self.name}'",
                expected="a callable run(out_dir, config) -> dict",
                got=type(self.run).__name__,
            )


class PilotHookSpecs:
    """Hook specifications that pilot plugins implement."""

    @hookspec
    def secured_bio_register_pilot(self) -> PilotSpec:  # type: ignore[empty-body]
        """Return the :class:`PilotSpec` of this plugin's pilot."""
