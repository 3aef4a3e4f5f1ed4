"""``secured-bio fl``: run any federated task with Flower (simulation or loopback deployment).

Loaded lazily by :mod:`secured_bio.cli` (``LAZY_GROUPS``); errors raised here are turned into
one-line messages and exit codes by ``secured_bio.cli.main``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click

from secured_bio.privacy.federated.engines import ENGINES
from secured_bio.privacy.federated.fairness import FAIRNESS
from secured_bio.privacy.federated.strategies import STRATEGIES


def _fairness_options(fn: Any) -> Any:
    """Add --fairness, --fairness-q and --fairness-lipschitz (fl run and fl run-task)."""
    for option in reversed([
        click.option("--fairness", type=click.Choice(FAIRNESS), default="none",
                     show_default=True,
                     help="Fairness-aware training: qffl = q-FedAvg (not with --secagg or DP); "
                     "group_reweight = each site weighs its loss so that its sex x age-band "
                     "groups count equally (works with --secagg and central DP)."),
        click.option("--fairness-q", type=click.FloatRange(min=0.0), default=1.0,
                     show_default=True,
                     help="q of q-FedAvg (0: plain averaging; larger: fairer across sites)."),
        click.option("--fairness-lipschitz", type=click.FloatRange(min=0.0, min_open=True),
                     default=None,
                     help="q-FedAvg's Lipschitz estimate L [default: 1/lr, as Flower]."),
    ]):
        fn = option(fn)
    return fn


@click.group()
def fl() -> None:
    """Federated learning with Flower: FedAvg/FedProx, SecAgg+, differential privacy.

    \b
    secured-bio fl run --pilot tumor_classification --sites 3 --rounds 5 --out results/fl
    secured-bio fl run --pilot tumor_classification --engine deployment --secagg --out DIR
    secured-bio fl run-task --task secured_bio.testing:LinearToyTask --sites 3 --rounds 2 \\
        --out results/fl_toy
    """


@fl.command("run")
@click.option("--pilot", required=True, help="Pilot whose federated task to run "
              "(see 'secured-bio pilots list').")
@click.option("--sites", type=click.IntRange(min=2), default=None,
              help="Sites of the demo cohort [default: the pilot's, 3].")
@click.option("--rounds", type=click.IntRange(min=1), default=None,
              help="Federated rounds [default: the pilot's].")
@click.option("--engine", type=click.Choice(ENGINES), default="simulation", show_default=True,
              help="simulation: Flower's Ray simulation; deployment: a real SuperLink and one "
              "SuperNode process per site on loopback; inprocess: quick checks.")
@click.option("--strategy", type=click.Choice(STRATEGIES), default="fedavg", show_default=True)
@click.option("--proximal-mu", type=click.FloatRange(min=0.0), default=None,
              help="FedProx proximal coefficient [default: the pilot's, 0.1].")
@click.option("--local-epochs", type=click.IntRange(min=1), default=None,
              help="Local epochs per round [default: the pilot's].")
@click.option("--lr", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Learning rate [default: the pilot's].")
@click.option("--secagg", is_flag=True,
              help="Secure aggregation (SecAgg+): the server sees only the sum (3+ sites).")
@click.option("--secagg-max-weight", type=click.FloatRange(min=0.0, min_open=True),
              default=None, help="SecAgg+ max_weight: a public upper bound on every site's "
              "training-set size [default: the pilot's, 1000].")
@click.option("--dp-epsilon", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Central differential privacy: target epsilon for the whole run (per site).")
@_fairness_options
@click.option("--tls", is_flag=True,
              help="Deployment engine: TLS on every Flower link (a throw-away CA for the run).")
@click.option("--node-auth", is_flag=True,
              help="Deployment engine: SuperNode authentication (one key pair per site; "
              "needs --tls).")
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Existing cohort folder [default: simulate the pilot's demo cohort].")
@click.option("--seed", type=int, default=None, help="Seed [default: 0].")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="Any other pilot config key (YAML value), e.g. --set test_fraction=0.25.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Output folder: metrics.json, plots, federated_model.npz.")
@click.option("--passport", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the privacy passport of OUT/federated_model.npz (JSON to FILE, "
              "HTML page to FILE with the suffix .html; see secured_bio.passport).")
def run(pilot: str, sites: int | None, rounds: int | None, engine: str, strategy: str,
        proximal_mu: float | None, local_epochs: int | None, lr: float | None, secagg: bool,
        secagg_max_weight: float | None, dp_epsilon: float | None, fairness: str,
        fairness_q: float, fairness_lipschitz: float | None, tls: bool, node_auth: bool,
        data: Path | None, seed: int | None,
        sets: tuple[str, ...], out_dir: Path, passport: Path | None) -> None:
    """Train a pilot's model centralized and federated on the same split; compare and audit.

    \b
    Writes OUT/metrics.json with centralized.auroc, federated.auroc, gap, per_site,
    fairness (per site, sex and age band), fairness_summary (mean / worst-site /
    worst-group AUROC and equalized-odds / demographic-parity gaps with bootstrap CIs),
    rounds (per-round metrics), dp (epsilon),
    secagg, engine and timing, plus training_curves.png, per_site.png and fairness.png.
    """
    import yaml

    from secured_bio.errors import ConfigError
    from secured_bio.pilots.federated import run_federated_pilot

    config: dict[str, object] = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError("--set needs KEY=VALUE", where="--set", got=repr(item),
                              fix="e.g. --set test_fraction=0.25")
        config[key] = yaml.safe_load(value)
    given = {"sites": sites, "rounds": rounds, "proximal_mu": proximal_mu,
             "local_epochs": local_epochs, "lr": lr, "dp_epsilon": dp_epsilon,
             "secagg_max_weight": secagg_max_weight,
             "seed": seed, "data": None if data is None else str(data)}
    config.update({k: v for k, v in given.items() if v is not None})
    config.update(engine=engine, strategy=strategy, secagg=secagg, tls=tls, node_auth=node_auth,
                  fairness=fairness, fairness_q=fairness_q)
    if fairness_lipschitz is not None:
        config["fairness_lipschitz"] = fairness_lipschitz
    doc = run_federated_pilot(pilot, out_dir, config)
    if passport is not None:
        from secured_bio.passport import build_passport, write_passport

        ctx = click.get_current_context()
        model = out_dir / "federated_model.npz"
        write_passport(build_passport(
            model if model.is_file() else out_dir / "metrics.json", kind="federated_model",
            report=doc,
            command=ctx.command_path, parameters=ctx.params,
            companions=[out_dir / "metrics.json"]), passport)
    fed, cen = (("n/a" if doc[k]["auroc"] is None else f"{doc[k]['auroc']:.3f}")
                for k in ("federated", "centralized"))
    line = (f"{pilot}: centralized AUROC {cen}, federated AUROC {fed} "
            f"({doc['config']['rounds']} rounds, {engine}, {strategy}"
            f"{', SecAgg+' if secagg else ''})")
    if doc.get("dp"):
        line += f"; DP epsilon {doc['dp']['epsilon']:.2f}"
    fs = doc.get("fairness_summary") or {}
    if fairness != "none" and (fs.get("worst_group_auroc") or {}).get("value") is not None:
        line += f"; {fairness}: worst-group AUROC {fs['worst_group_auroc']['value']:.3f}"
    click.echo(f"{line} -> {out_dir / 'metrics.json'}")


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
@click.option("--secagg-max-weight", type=click.FloatRange(min=0.0, min_open=True),
              default=1000.0, show_default=True,
              help="SecAgg+ max_weight: a public upper bound on every site's training-set "
              "size; a larger site refuses and the run stops.")
@click.option("--dp-epsilon", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="Central DP target epsilon for the whole run (site level).")
@click.option("--dp-delta", type=float, default=1e-5, show_default=True)
@click.option("--dp-clip", type=click.FloatRange(min=0.0, min_open=True), default=1.0,
              show_default=True, help="L2 bound of each site's update.")
@_fairness_options
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1.0), default=900.0,
              show_default=True, help="Seconds for the whole run.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Work folder: results/, logs/ and OUT/federated.json.")
def run_task(task: str, task_params: str, sites: int, rounds: int, engine: str, strategy: str,
             proximal_mu: float, local_epochs: int, lr: float, secagg: bool,
             secagg_max_weight: float, fairness: str, fairness_q: float,
             fairness_lipschitz: float | None,
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
                        local_epochs=local_epochs, lr=lr, secagg=secagg,
                        secagg_max_weight=secagg_max_weight, dp_epsilon=dp_epsilon,
                        dp_delta=dp_delta, dp_clip=dp_clip, seed=seed, timeout_s=timeout_s,
                        work_dir=out_dir, fairness=fairness, fairness_q=fairness_q,
                        fairness_lipschitz=fairness_lipschitz)
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
