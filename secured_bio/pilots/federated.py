"""Run a pilot's federated task: cohort -> site-local inputs -> centralized vs federated.

Shared by ``secured-bio fl run --pilot NAME`` and the run functions of pilots that train a
model across sites (tumour classification, telemonitoring).  The pilot contributes only its
:data:`~secured_bio.pilots.FederatedSetup` (which task, and each site's inputs); the
federation and the comparison are :func:`secured_bio.privacy.federated.run_experiment`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from secured_bio.errors import ConfigError
from secured_bio.pilots._spec import PilotSpec

__all__ = ["FL_OPTIONS", "federated_run", "run_federated_pilot"]

log = logging.getLogger(__name__)

#: Options of a federated run and their defaults (pilot config keys of the same names).
FL_OPTIONS: dict[str, Any] = {
    "rounds": 5,
    "local_epochs": 1,
    "lr": 0.01,
    "engine": "simulation",
    "strategy": "fedavg",
    "proximal_mu": 0.1,
    "secagg": False,
    "secagg_max_weight": 1000.0,
    "dp_epsilon": None,
    "dp_delta": 1e-5,
    "dp_clip": 1.0,
    "tls": False,
    "node_auth": False,
    "fairness": "none",
    "fairness_q": 1.0,
    "fairness_lipschitz": None,
}


def federated_run(
    spec: PilotSpec, data: Path, out_dir: Path, config: Mapping[str, Any]
) -> dict[str, Any]:
    """Prepare the sites' inputs with the pilot's setup and run the experiment.

    Parameters
    ----------
    spec
        The pilot (must have a ``federated`` setup).
    data
        The cohort folder.
    out_dir
        Existing output folder (plots, model, Flower work files; site inputs under
        ``out_dir/sites`` unless the setup keeps them elsewhere).
    config
        The pilot config: ``sites``, ``seed`` and the :data:`FL_OPTIONS` keys (defaults
        apply to missing keys).

    Returns
    -------
    dict
        The experiment's metrics plus the plan (task and sites).

    Raises
    ------
    ConfigError
        If the pilot has no federated task.
    """
    from secured_bio.privacy.federated.experiment import run_experiment

    if spec.federated is None:
        raise ConfigError(
            "this pilot has no federated task", where=f"pilot '{spec.name}'",
            expected="a pilot whose PilotSpec has a federated setup",
            got="none", fix="see 'secured-bio pilots list' for the pilots that train models",
        )
    opts = {k: config.get(k, v) for k, v in FL_OPTIONS.items()}
    plan = dict(spec.federated(data, out_dir / "sites", config))
    sites = list(plan["sites"])
    log.info("%s: federated %s over %d sites, %d rounds (%s engine)", spec.name,
             opts["strategy"], len(sites), opts["rounds"], opts["engine"])
    metrics = run_experiment(
        plan["task"], plan["task_params"], out_dir=out_dir, num_sites=len(sites),
        rounds=int(opts["rounds"]), site_data_dirs=plan.get("site_data_dirs"),
        local_epochs=int(opts["local_epochs"]), lr=float(opts["lr"]),
        seed=int(config.get("seed", 0)), engine=opts["engine"], strategy=opts["strategy"],
        proximal_mu=float(opts["proximal_mu"]), secagg=bool(opts["secagg"]),
        secagg_max_weight=float(opts["secagg_max_weight"]),
        dp_epsilon=None if opts["dp_epsilon"] is None else float(opts["dp_epsilon"]),
        dp_delta=float(opts["dp_delta"]), dp_clip=float(opts["dp_clip"]),
        tls=bool(opts["tls"]), node_auth=bool(opts["node_auth"]),
        fairness=str(opts["fairness"]), fairness_q=float(opts["fairness_q"]),
        fairness_lipschitz=(None if opts["fairness_lipschitz"] is None
                            else float(opts["fairness_lipschitz"])),
    )
    metrics["plan"] = {"task": plan["task"], "task_params": plan["task_params"],
                       "site_data_dirs": plan.get("site_data_dirs"),
                       "sites": sites, "options": opts}
    return metrics


def run_federated_pilot(
    name: str, out_dir: str | Path, config: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Run only a pilot's federated part; write ``out_dir/metrics.json`` (all or nothing).

    The cohort is the pilot's demo cohort (or ``config['data']``), prepared as
    ``secured-bio pilots run`` does; ``config`` is validated against the pilot's schema.

    Raises
    ------
    UnknownPilotError
        If no pilot has that name.
    ConfigError
        If the pilot has no federated task or the config does not match its schema.
    """
    from secured_bio.pilots._registry import get_pilot, run_pilot
    from secured_bio.pilots.demo import prepare_cohort

    spec = get_pilot(name)
    if spec.federated is None:
        from secured_bio.pilots._registry import list_pilots

        able = [p.name for p in list_pilots() if p.federated is not None]
        raise ConfigError(
            "this pilot has no federated task", where=f"pilot '{name}'",
            expected=" or ".join(able) or "a pilot with a federated setup", got=name,
            fix="choose a pilot that trains a model across sites",
        )

    def run(out: Path, cfg: Mapping[str, Any]) -> dict[str, Any]:
        data, source = prepare_cohort(name, out, cfg)
        return {"data": {"source": source}, **federated_run(spec, data, out, cfg)}

    return run_pilot(name, out_dir, config, run=run)
