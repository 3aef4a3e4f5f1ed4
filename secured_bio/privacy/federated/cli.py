"""``secured-bio fl``: run any federated task with Flower (simulation or loopback deployment).

Loaded lazily by :mod:`secured_bio.cli` (``LAZY_GROUPS``); errors raised here are turned into
one-line messages and exit codes by ``secured_bio.cli.main``.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from secured_bio.privacy.federated.engines import ENGINES
from secured_bio.privacy.federated.strategies import STRATEGIES


@click.group()
def fl() -> None:
    """Federated learning with Flower: FedAvg/FedProx, SecAgg+, differential privacy.

    \b
    secured-bio fl run-task --task secured_bio.testing:LinearToyTask --sites 3 --rounds 2 \\
        --out results/fl_toy
    """


@fl.command("run-task")
@click.option("--task", required=True, metavar="MODULE:CLASS",
              help="Import path of a FederatedTask subclass.")
@click.option("--task-params", default="{}", show_default=True, metavar="JSON",
              help="The task's keyword parameters as a JSON object.")
@click.option("--sites", type=click.IntRange(min=2), default=3, show_default=True)
@click.option("--rounds", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--engine", type=click.Choice(ENGINES), default="simulation", show_default=True)
@click.option("--strategy", type=click.Choice(STRATEGIES), default="fedavg", show_default=True)
@click.option("--proximal-mu", type=click.FloatRange(min=0.0), default=0.1, show_default=True,
              help="FedProx proximal coefficient.")
@click.option("--local-epochs", type=click.IntRange(min=1), default=1, show_default=True)
@click.option("--lr", type=click.FloatRange(min=0.0, min_open=True), default=0.01,
              show_default=True)
@click.option("--secagg", is_flag=True, help="Secure aggregation (SecAgg+; 3+ sites).")
@click.option("--dp-epsilon", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Central DP target epsilon for the whole run (site level).")
@click.option("--dp-delta", type=float, default=1e-5, show_default=True)
@click.option("--dp-clip", type=click.FloatRange(min=0.0, min_open=True), default=1.0,
              show_default=True, help="L2 bound of each site's update.")
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1.0), default=900.0,
              show_default=True, help="Seconds for the whole run.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Work folder: results/, logs/ and OUT/federated.json.")
def run_task(task: str, task_params: str, sites: int, rounds: int, engine: str, strategy: str,
             proximal_mu: float, local_epochs: int, lr: float, secagg: bool,
             dp_epsilon: float | None, dp_delta: float, dp_clip: float, seed: int,
             timeout_s: float, out_dir: Path) -> None:
    """Train TASK across sites; write OUT/federated.json (rounds, per-site metrics, DP)."""
    from secured_bio._atomic import atomic_write
    from secured_bio.errors import ConfigError
    from secured_bio.privacy.federated.apps import _jsonable
    from secured_bio.privacy.federated.engines import run_federated

    try:
        params = json.loads(task_params)
    except json.JSONDecodeError as e:
        raise ConfigError("--task-params is not JSON", where="--task-params",
                          expected="a JSON object", got=f"{len(task_params)} characters") from e
    res = run_federated(task, params, num_sites=sites, rounds=rounds, engine=engine,  # type: ignore[arg-type]
                        strategy=strategy, proximal_mu=proximal_mu,  # type: ignore[arg-type]
                        local_epochs=local_epochs, lr=lr, secagg=secagg, dp_epsilon=dp_epsilon,
                        dp_delta=dp_delta, dp_clip=dp_clip, seed=seed, timeout_s=timeout_s,
                        work_dir=out_dir)
    doc = {"format": "secured_bio.federated_run", "version": 1, "rounds": res.rounds,
           "per_site": res.per_site, "dp": res.dp, "secagg": res.secagg, "engine": res.engine,
           "overhead": res.overhead()}
    with atomic_write(out_dir / "federated.json") as fh:
        json.dump(_jsonable(doc), fh, indent=2, allow_nan=False)
    last = res.rounds[-1]
    line = (f"{engine}: {rounds} rounds over {sites} sites; final AUROC "
            f"{last['eval_auroc']:.3f}, loss {last['eval_loss']:.4f}")
    if res.dp:
        line += f"; DP epsilon {res.dp['epsilon']:.2f} (delta {res.dp['delta']:g})"
    click.echo(f"{line} -> {out_dir / 'federated.json'}")
