"""Run a federated task on Flower's simulation engine or as a real loopback deployment.

:func:`run_federated` is the one entry point; both engines run the same apps
(:mod:`secured_bio.privacy.federated.apps`), whose ServerApp writes the final parameters and
results atomically into ``work_dir/results``, read back here.

- ``simulation``: ``flwr.simulation.run_simulation`` (Ray) in a child process of its own, so a
  timeout or crash never leaves Ray inside the caller; ``RAY_TMPDIR`` and ``FLWR_HOME`` lie in
  ``work_dir`` (or a short temporary folder: Ray's socket paths must stay under 107 bytes).
- ``deployment``: one ``flower-superlink`` and one ``flower-supernode`` per site, as separate OS
  processes on 127.0.0.1 with free ports, then ``flwr run APP secured-bio --stream`` with an app
  folder and a Flower config generated into ``work_dir``.  Every process started, and every
  process they start (SuperExec, ServerApp, ClientApp), is stopped in a ``finally``
  (SIGTERM, then SIGKILL after 10 s); ``engine["orphans"]`` lists any that survived.

Transport security.  By default (``tls=False``) every process runs with ``--insecure``: plain
HTTP between SuperNodes, SuperLink and the ``flwr`` CLI, so anyone on the network path can read
parameters and metrics (SecAgg+ still hides individual updates from the server, not from the
wire).  Acceptable on loopback only.  ``tls=True`` follows Flower's "Enable TLS connections"
guide, and is what the test suite runs:

1. A throw-away CA and a SuperLink certificate for 127.0.0.1/localhost are made in
   ``work_dir/tls`` (:func:`secured_bio.privacy.federated.certs.make_loopback_tls`; the CA key
   is never written), or taken from ``tls_dir`` (``ca.crt``, ``server.pem``, ``server.key``
   from your own PKI, with the SuperLink's address in the SAN).
2. ``flower-superlink --ssl-ca-certfile ca.crt --ssl-certfile server.pem --ssl-keyfile
   server.key`` (no ``--insecure``); it passes the CA on to the SuperExec and ServerApp
   processes it starts.
3. Each ``flower-supernode --root-certificates ca.crt --superlink 127.0.0.1:PORT``.
4. ``$FLWR_HOME/config.toml`` gives the ``flwr`` CLI's connection ``root-certificates =
   "/abs/ca.crt"`` instead of ``insecure = true``.

``node_auth=True`` (needs TLS) adds Flower's "Authenticate SuperNodes": one EC P-384 key pair
per site (:func:`~secured_bio.privacy.federated.certs.make_supernode_keys`, in
``work_dir/node_keys``), ``flower-superlink --enable-supernode-auth``, each public key
registered with ``flwr supernode register site{i}.pub secured-bio`` before its SuperNode starts
with ``--auth-supernode-private-key site{i}.key``; the SuperLink then refuses unregistered
SuperNodes.  Each SuperNode's own Runtime API (used by its ClientApp processes on the same
host) stays plain HTTP on 127.0.0.1.  ``engine`` in the result records ``tls``, ``node_auth``,
the certificates' SHA-256 fingerprints and the SuperLink's command line (paths only, never key
material).

``remote_sites`` (a :class:`RemoteSites`) runs only the server half of the deployment: the
SuperLink listens on ``listen`` and is reached by the sites at ``host``; no SuperNode is started
here - each site starts its own (``flower-supernode --superlink HOST:PORT --node-config
"partition-id=i num-partitions=n data-dir=..."``, the hub's site agents do).  ``ready`` is
called with what a site needs (the address, and with TLS the CA certificate as PEM text: public,
never a private key); setting ``stop`` ends the run early (:class:`ProtocolError`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from secured_bio._atomic import atomic_path
from secured_bio.errors import ConfigError, ProtocolError, did_you_mean
from secured_bio.privacy.federated.apps import RESULT_FILES, RESULTS_FORMAT
from secured_bio.privacy.federated.strategies import check_strategy, secagg_params
from secured_bio.privacy.federated.task import FederatedTask, load_task

if TYPE_CHECKING:
    import torch

__all__ = ["FederatedResult", "RemoteSites", "run_federated", "ENGINES"]

#: Engine names accepted by :func:`run_federated`.
ENGINES = ("simulation", "deployment", "inprocess")
_WHERE = "federated run"
_BIN = Path(sys.executable).parent


@dataclass
class FederatedResult:
    """What a federated run produced.

    Attributes
    ----------
    state
        Final global model: ``state_dict`` values as numpy arrays, in ``state_dict`` order.
    rounds
        One dict per round: ``round``, ``train_loss`` (example-weighted), ``num_clients``
        (fit replies), ``failures`` (sites asked minus replies), ``eval_loss``/``eval_auroc``/
        ``eval_accuracy`` (test-example-weighted over sites), ``wall_s`` (fit + evaluate),
        ``fit_wall_s``, ``local_train_s_total`` and ``local_train_s_max`` (as sites report).
    per_site
        Each site's evaluation of the final model: ``site``, ``num_test``, ``loss``,
        ``auroc``, ``accuracy`` (None where undefined, e.g. AUROC with one class).
    dp
        None, or the privacy report of :func:`secured_bio.privacy.federated.dp.dp_report`.
    secagg
        None, or the SecAgg+ parameters used.
    engine
        ``engine``, ``processes`` started, ``pids``, ``orphans``, and durations in seconds;
        for the deployment also ``tls``, ``node_auth``, ``superlink_cmd`` and, with TLS,
        ``tls_fingerprints`` (SHA-256 of the certificates) and ``tls_dir``.
    config
        The run config the apps received.
    """

    state: list[np.ndarray]
    rounds: list[dict[str, Any]]
    per_site: list[dict[str, Any]]
    dp: dict[str, Any] | None
    secagg: dict[str, Any] | None
    engine: dict[str, Any]
    config: dict[str, Any] = field(default_factory=dict)

    def build_model(self, task: FederatedTask | None = None) -> torch.nn.Module:
        """Return the task's model holding the final global parameters."""
        from secured_bio.privacy.federated.apps import set_state

        if task is None:
            task = load_task(str(self.config["task"]), str(self.config.get("task-params", "{}")))
        model = task.build_model()
        set_state(model, self.state)
        return model

    def load_into(self, model: torch.nn.Module) -> torch.nn.Module:
        """Load the final global parameters into ``model`` (in place) and return it."""
        from secured_bio.privacy.federated.apps import set_state

        set_state(model, self.state)
        return model

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the final parameters as ``.npz`` (``arr_0``... in ``state_dict`` order)."""
        from secured_bio._atomic import atomic_path

        out = Path(path)
        with atomic_path(out) as tmp, open(tmp, "wb") as fh:
            np.savez(fh, *self.state)
        return out

    def overhead(self) -> dict[str, float]:
        """Flower's round overhead: round wall time minus the slowest site's training time.

        ``share`` is that overhead over the total local training time reported by sites.
        """
        wall = sum(float(r["wall_s"]) for r in self.rounds)
        slowest = sum(float(r["local_train_s_max"]) for r in self.rounds)
        total = sum(float(r["local_train_s_total"]) for r in self.rounds)
        over = wall - slowest
        return {"round_wall_s": wall, "local_train_s_total": total, "overhead_s": over,
                "share": over / total if total > 0 else math.inf}


@dataclass(frozen=True)
class RemoteSites:
    """The deployment's SuperNodes run elsewhere (one per site); only the SuperLink runs here.

    Attributes
    ----------
    host
        Address the sites reach the SuperLink at (also put in its TLS certificate).
    listen
        Interface the SuperLink binds (``0.0.0.0`` for all).
    port
        Its port (0: a free one).
    ready
        Called once the SuperLink accepts connections, with ``superlink`` (``HOST:PORT``) and
        ``root_certificates`` (the CA certificate as PEM text, or None without TLS).
    stop
        Set it to end the run early; the run then raises :class:`ProtocolError`.
    """

    host: str
    listen: str = "127.0.0.1"
    port: int = 0
    ready: Callable[[dict[str, Any]], None] | None = None
    stop: threading.Event | None = None


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}", where=_WHERE,
                          expected=f"{name} >= {minimum}", got=f"{name}={value!r}",
                          fix=f"pass {name} >= {minimum}")
    return int(value)


def _check_pos(name: str, value: Any, *, allow_zero: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} "
                          "number", where=_WHERE, got=f"{name}={value!r}")
    return float(value)


def run_federated(
    task: str,
    task_params: Mapping[str, Any] | None = None,
    *,
    num_sites: int,
    rounds: int,
    work_dir: str | os.PathLike[str],
    engine: Literal["simulation", "deployment", "inprocess"] = "simulation",
    strategy: Literal["fedavg", "fedprox"] = "fedavg",
    proximal_mu: float = 0.1,
    local_epochs: int = 1,
    lr: float = 0.01,
    secagg: bool = False,
    secagg_clipping_range: float = 8.0,
    secagg_max_weight: float = 1000.0,
    dp_epsilon: float | None = None,
    dp_delta: float = 1e-5,
    dp_clip: float = 1.0,
    local_dp_epsilon: float | None = None,
    local_dp_delta: float = 1e-5,
    local_dp_max_grad_norm: float = 1.0,
    local_dp_batch_size: int | None = None,
    site_data_dirs: Sequence[str | os.PathLike[str]] | None = None,
    seed: int = 0,
    timeout_s: float = 900.0,
    round_timeout_s: float = 300.0,
    num_cpus: int = 2,
    fail_site: tuple[int, int] | None = None,
    fail_mode: Literal["raise", "exit"] = "raise",
    tls: bool = False,
    tls_dir: str | os.PathLike[str] | None = None,
    node_auth: bool = False,
    remote_sites: RemoteSites | None = None,
    fairness: str = "none",
    fairness_q: float = 1.0,
    fairness_lipschitz: float | None = None,
) -> FederatedResult:
    """Train ``task`` across ``num_sites`` sites with Flower and return the global model.

    Parameters
    ----------
    task
        Import path of a :class:`FederatedTask` subclass, ``"package.module:Class"``.
    task_params
        Its keyword parameters (JSON-serialisable).
    num_sites, rounds
        Number of sites (partitions) and of federated rounds.
    work_dir
        Folder for the run's files (results, logs, generated app, Ray/Flower state).
    engine
        ``"simulation"`` (Ray), ``"deployment"`` (SuperLink + SuperNodes as processes), or
        ``"inprocess"`` (for tests: the same apps and workflows, sites called one after
        another in this process through an in-memory grid; no Ray, no network).
    strategy, proximal_mu
        ``"fedavg"`` or ``"fedprox"`` with its proximal coefficient.
    local_epochs, lr
        Local training per round.
    secagg, secagg_clipping_range, secagg_max_weight
        SecAgg+ on/off; parameters are clipped to +-clipping range before quantization;
        max weight is a public upper bound on every site's training-set size (1 under DP,
        where every site has weight 1): a larger site refuses to send its update, which
        Flower would clip silently, and the run stops with :class:`ConfigError`
        (:func:`~secured_bio.privacy.federated.strategies.check_secagg_weight`).
    dp_epsilon, dp_delta, dp_clip
        Central DP target (None: off), and the L2 bound of each site's update (site-level
        DP, :mod:`~secured_bio.privacy.federated.dp`).
    local_dp_epsilon, local_dp_delta, local_dp_max_grad_norm, local_dp_batch_size
        Local DP-SGD at every site (None: off): each site's record-level budget over the
        whole run, the per-record gradient bound and the expected Poisson batch size (None:
        the task's ``batch_size``); see :mod:`~secured_bio.privacy.federated.dpsgd`.  The
        result's ``dp`` then has ``mode='local-dpsgd'`` and each site's epsilon.
    site_data_dirs
        One data folder per site (``SiteRef.data_dir``); None lets the task choose.
    seed
        Seed of the initial model and of local training.
    timeout_s, round_timeout_s
        Limits for the whole run and for each round's replies.
    num_cpus
        CPUs Ray may use (simulation).
    fail_site, fail_mode
        Testing hook: ``(site, round)`` makes that 0-based site fail in that round, by
        raising (``"raise"``) or by its process exiting (``"exit"``, deployment only).
    tls, tls_dir
        Deployment only: encrypt every connection with TLS (see the module docstring); the
        certificates are made in ``work_dir/tls``, or taken from ``tls_dir`` (which implies
        ``tls``).
    node_auth
        Deployment with TLS only: SuperNode authentication with one registered key per site.
    fairness, fairness_q, fairness_lipschitz
        Fairness-aware training (:mod:`~secured_bio.privacy.federated.fairness`): ``"none"``,
        ``"qffl"`` (q-FedAvg with ``q = fairness_q`` and Lipschitz estimate
        ``fairness_lipschitz``, None: ``1 / lr``; not with SecAgg+, DP or FedProx) or
        ``"group_reweight"`` (each site weighs its loss so that its subgroups count equally;
        not with local DP-SGD).
    remote_sites
        Deployment only: run the SuperLink and the ServerApp here and wait for ``num_sites``
        SuperNodes started elsewhere (see :class:`RemoteSites`); with ``tls`` the certificate
        also names ``remote_sites.host``.  Not with ``node_auth`` or ``site_data_dirs`` (each
        site names its data folder in its own node config).

    Returns
    -------
    FederatedResult

    Raises
    ------
    ConfigError
        Unknown engine or strategy, rounds < 1, num_sites < 2, secagg with < 3 sites, a bad
        DP parameter, central and local DP together, local DP with FedProx, a data-folder
        list of the wrong length, an unloadable task, TLS or node authentication asked for
        outside the deployment engine, or node authentication without TLS; with SecAgg+,
        also a site larger than ``secagg_max_weight`` (raised in round 1, once the sites
        have trained, before anything is unmasked).  An error that stops the ServerApp is
        raised here with its class and message, on every engine.
    InputFileNotFoundError
        If ``tls_dir`` lacks one of ``ca.crt``, ``server.pem``, ``server.key``.
    ProtocolError
        If the run fails or exceeds ``timeout_s`` (the message names the log file).

    Examples
    --------
    >>> run_federated("secured_bio.testing:LinearToyTask", num_sites=1, rounds=1,
    ...               work_dir=".")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    secured_bio.errors.ConfigError: num_sites must be an integer >= 2 ...
    """
    if engine not in ENGINES:
        raise ConfigError("unknown federated engine", where=_WHERE,
                          expected=" or ".join(ENGINES), got=repr(engine),
                          fix=did_you_mean(str(engine), ENGINES) or "choose an engine")
    check_strategy(str(strategy))
    num_sites = _check_int("num_sites", num_sites, 2)
    rounds = _check_int("rounds", rounds, 1)
    local_epochs = _check_int("local_epochs", local_epochs, 1)
    _check_pos("lr", lr)
    _check_pos("proximal_mu", proximal_mu, allow_zero=True)
    _check_pos("timeout_s", timeout_s)
    secagg_info = (secagg_params(num_sites, clipping_range=_check_pos(
        "secagg_clipping_range", secagg_clipping_range),
        max_weight=1.0 if dp_epsilon or local_dp_epsilon else  # DP sites send weight 1
        _check_pos("secagg_max_weight", secagg_max_weight), timeout=round_timeout_s)
        if secagg else None)
    from secured_bio.privacy.federated.fairness import check_fairness

    check_fairness(str(fairness), strategy=str(strategy), secagg=bool(secagg),
                   central_dp=dp_epsilon is not None, local_dp=local_dp_epsilon is not None)
    _check_pos("fairness_q", fairness_q, allow_zero=True)
    if fairness_lipschitz is not None:
        _check_pos("fairness_lipschitz", fairness_lipschitz)
    dp_info = None
    if local_dp_epsilon is not None:
        _check_local_dp(local_dp_epsilon, local_dp_delta, local_dp_max_grad_norm,
                        local_dp_batch_size, dp_epsilon, strategy)
    if dp_epsilon is not None:
        from secured_bio.privacy.federated.dp import dp_report

        dp_info = dp_report(epsilon_target=dp_epsilon, delta=dp_delta, rounds=rounds,
                            clip=dp_clip, num_sites=num_sites)
    dirs = [str(Path(d).resolve()) for d in site_data_dirs] if site_data_dirs else []
    if dirs and len(dirs) != num_sites:
        raise ConfigError("one data folder per site is needed", where=_WHERE,
                          expected=f"{num_sites} folders", got=f"{len(dirs)} folders")
    if fail_site is not None and fail_mode == "exit" and engine != "deployment":
        raise ConfigError("fail_mode='exit' needs the deployment engine", where=_WHERE,
                          got=f"engine={engine!r}", fix="use fail_mode='raise' here")
    tls = bool(tls) or tls_dir is not None
    if (tls or node_auth) and engine != "deployment":
        raise ConfigError("TLS and node authentication apply to the deployment engine only",
                          where=_WHERE, got=f"engine={engine!r}",
                          fix="use engine='deployment', or drop tls/tls_dir/node_auth")
    if remote_sites is not None and (engine != "deployment" or node_auth or dirs):
        raise ConfigError("remote sites run on the deployment engine, without node "
                          "authentication or data folders", where=_WHERE,
                          got=f"engine={engine!r}, node_auth={node_auth}, {len(dirs)} folders",
                          fix="each site names its data-dir in its SuperNode's node config")
    if node_auth and not tls:
        raise ConfigError("SuperNode authentication needs TLS", where=_WHERE,
                          expected="tls=True", got="tls=False", fix="pass tls=True")
    params_json = json.dumps(dict(task_params or {}), sort_keys=True)
    load_task(task, params_json)  # fail here, not in every site process
    if tls_dir is not None:
        from secured_bio.privacy.federated.certs import load_tls_dir

        load_tls_dir(tls_dir)  # fail before any process starts
    work = Path(work_dir).resolve()
    out_dir = work / "results"
    for name in RESULT_FILES.values():
        with contextlib.suppress(FileNotFoundError):
            (out_dir / name).unlink()
    cfg: dict[str, Any] = {
        "task": task, "task-params": params_json, "num-sites": num_sites, "rounds": rounds,
        "strategy": strategy, "proximal-mu": float(proximal_mu) if strategy == "fedprox" else 0.0,
        "local-epochs": local_epochs, "lr": float(lr), "seed": int(seed),
        "secagg": bool(secagg),
        "secagg-clipping-range": float(secagg_clipping_range),
        "secagg-max-weight": float(secagg_info["max_weight"]) if secagg_info else 0.0,
        "dp-noise-multiplier": float(dp_info["noise_multiplier"]) if dp_info else 0.0,
        "dp-clip": float(dp_clip),
        "local-dp-epsilon": float(local_dp_epsilon) if local_dp_epsilon is not None else 0.0,
        "local-dp-delta": float(local_dp_delta),
        "local-dp-max-grad-norm": float(local_dp_max_grad_norm),
        "local-dp-batch-size": int(local_dp_batch_size or 0), "site-data-dirs": json.dumps(dirs),
        "round-timeout": float(round_timeout_s), "out-dir": str(out_dir),
        "fail-site": int(fail_site[0]) if fail_site else -1,
        "fail-round": int(fail_site[1]) if fail_site else -1, "fail-mode": str(fail_mode),
        "fairness": str(fairness), "fairness-q": float(fairness_q),
        "fairness-lipschitz": float(fairness_lipschitz or 0.0),
    }
    work.mkdir(parents=True, exist_ok=True)
    if engine == "deployment":
        security = _Security(tls=tls, tls_dir=Path(tls_dir).resolve() if tls_dir else None,
                             node_auth=bool(node_auth), remote=remote_sites)
        info = _deploy(cfg, work, float(timeout_s), int(num_cpus), security)
    else:
        runner = {"simulation": _simulate, "inprocess": _inprocess}[engine]
        info = runner(cfg, work, float(timeout_s), int(num_cpus))
    return _read_results(cfg, out_dir, info, dp_info, secagg_info)


def _raise_server_error(out_dir: Path, log: Path) -> None:
    """Re-raise, here, the secured_bio error that stopped the ServerApp (if it wrote one)."""
    from secured_bio import errors

    path = out_dir / RESULT_FILES["error"]
    if not path.is_file():
        return
    doc = json.loads(path.read_text(encoding="utf-8"))
    cls = getattr(errors, str(doc.get("error")), None)
    if not (isinstance(cls, type) and issubclass(cls, errors.SecuredBioError)):
        cls = ProtocolError
    e = cls(str(doc.get("what")), where=doc.get("where"), expected=doc.get("expected"),
            got=doc.get("got"), fix=doc.get("fix"))
    for note in doc.get("notes") or []:
        e.add_note(str(note))
    e.add_note(f"raised by the ServerApp; its log: {log}")
    raise e


def _read_results(cfg: dict[str, Any], out_dir: Path, info: dict[str, Any],
                  dp_info: dict[str, Any] | None, secagg_info: dict[str, Any] | None
                  ) -> FederatedResult:
    res_path = out_dir / RESULT_FILES["results"]
    if not res_path.is_file():
        raise ProtocolError("the federated run wrote no results", where=str(out_dir),
                            expected=RESULT_FILES["results"], got="nothing",
                            fix=f"see the logs in {info.get('log_dir')}")
    results = json.loads(res_path.read_text(encoding="utf-8"))
    if results.get("format") != RESULTS_FORMAT["format"] or results.get(
            "version") != RESULTS_FORMAT["version"]:
        raise ProtocolError("unknown results format", where=str(res_path),
                            expected=f"{RESULTS_FORMAT}", got=str(results.get("version")),
                            fix="upgrade secured_bio at the server")
    with np.load(out_dir / RESULT_FILES["params"]) as z:
        state = [z[f"arr_{i}"] for i in range(len(z.files))]
    info["server_s"] = results.get("server_s")
    if float(cfg.get("local-dp-epsilon", 0.0)) > 0:
        dp_info = _local_dp_info(cfg, results.get("local_dp") or [])
    return FederatedResult(state=state, rounds=results["rounds"], per_site=results["per_site"],
                           dp=dp_info, secagg=secagg_info, engine=info, config=dict(cfg))


def _check_local_dp(epsilon: Any, delta: Any, max_grad_norm: Any, batch_size: Any,
                    dp_epsilon: float | None, strategy: str) -> None:
    from secured_bio.privacy.federated.dpsgd import _check

    _check(epsilon, delta, max_grad_norm)
    if batch_size is not None:
        _check_int("local_dp_batch_size", batch_size, 1)
    if dp_epsilon is not None:
        raise ConfigError("central and local DP cannot be combined in one run", where=_WHERE,
                          expected="dp_epsilon or local_dp_epsilon",
                          got="both", fix="choose site-level (dp_epsilon) or record-level "
                                          "(local_dp_epsilon) privacy")
    if strategy == "fedprox":
        raise ConfigError("local DP-SGD does not support FedProx", where=_WHERE,
                          expected="strategy='fedavg'", got="strategy='fedprox'",
                          fix="the proximal term has no per-record gradient; use fedavg")


def _local_dp_info(cfg: Mapping[str, Any], sites: list[dict[str, Any]]) -> dict[str, Any]:
    """Build the privacy report of local DP-SGD from the sites' own reports."""
    from secured_bio.privacy.dp_random import DPRandom
    from secured_bio.privacy.federated.dp import privacy_scope
    from secured_bio.privacy.federated.dpsgd import LOCAL_DP_ACCOUNTANT

    eps = [float(s["epsilon"]) for s in sites]
    sigmas = [float(s["noise_multiplier"]) for s in sites]
    return {
        "mode": "local-dpsgd",
        "level": "record",
        "epsilon": max(eps) if eps else None,
        "epsilon_target": float(cfg["local-dp-epsilon"]),
        "delta": float(cfg["local-dp-delta"]),
        "noise_multiplier": min(sigmas) if sigmas else None,
        "max_grad_norm": float(cfg["local-dp-max-grad-norm"]),
        "rounds": int(cfg["rounds"]),
        "accountant": LOCAL_DP_ACCOUNTANT,
        "adjacency": "add/remove one training record of a site",
        "randomness": DPRandom().describe(),
        **privacy_scope("local-dpsgd"),
        "per_site": [{**s, "steps": int(s["steps"])} if "steps" in s else dict(s)
                     for s in sites],
        "mechanism": ("local DP-SGD (Abadi et al. 2016) at every site: per-record gradient "
                      "clipping to max_grad_norm, Gaussian noise noise_multiplier*max_grad_norm, "
                      "Poisson sampling; epsilon is each site's budget over all rounds "
                      "('epsilon' is the largest site's, 'noise_multiplier' the smallest)"),
    }


# -------------------------------------------------------------------------------- helpers
def _env(work: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = f"{_BIN}{os.pathsep}{env.get('PATH', '')}"
    env["FLWR_HOME"] = str(work / "flwr_home")
    env["FLWR_TELEMETRY_ENABLED"] = "0"
    env["FLWR_DISABLE_RUNTIME_DEPENDENCY_INSTALLATION"] = "1"
    env["OMP_NUM_THREADS"] = env.get("OMP_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    # pytest's "error" filter must not reach Flower's own processes.
    env.pop("PYTHONWARNINGS", None)
    return env


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, deadline: float, proc: subprocess.Popen[bytes], log: Path, *,
               host: str = "127.0.0.1") -> None:
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ProtocolError("a Flower process exited during start-up", where=str(log),
                                got=f"exit code {proc.returncode}", fix=f"see {log}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), 0.5):
            return
        time.sleep(0.2)
    raise ProtocolError("a Flower process did not start in time", where=str(log),
                        fix="raise timeout_s or see the log")


class _Processes:
    """Processes we started, and every descendant seen; stopped all together."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[bytes]] = []
        self.seen: dict[int, float] = {}  # pid -> create_time (guards against PID reuse)

    def start(self, args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
        with open(log, "ab") as fh:
            p = subprocess.Popen(args, env=env, stdout=fh, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(p)
        self.scan()
        return p

    def scan(self) -> None:
        import psutil

        for p in self.procs:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(p.pid)
                for q in [root, *root.children(recursive=True)]:
                    with contextlib.suppress(psutil.Error):
                        self.seen.setdefault(q.pid, q.create_time())

    def _alive(self) -> list[Any]:
        import psutil

        out = []
        for pid, created in self.seen.items():
            with contextlib.suppress(psutil.Error):
                q = psutil.Process(pid)
                if q.create_time() == created and q.status() != psutil.STATUS_ZOMBIE:
                    out.append(q)
        return out

    def stop(self, grace: float = 10.0) -> list[int]:
        """SIGTERM everything, SIGKILL what is left after ``grace`` s; return survivors."""
        import psutil

        self.scan()
        for sig in (signal.SIGTERM, signal.SIGKILL):
            alive = self._alive()
            for q in alive:
                with contextlib.suppress(psutil.Error):
                    q.send_signal(sig)
            for p in self.procs:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    p.wait(timeout=grace if sig == signal.SIGTERM else 5)
            psutil.wait_procs(self._alive(), timeout=grace if sig == signal.SIGTERM else 5)
        return [q.pid for q in self._alive()]


# ----------------------------------------------------------------------------- simulation
def _simulate(cfg: dict[str, Any], work: Path, timeout: float, num_cpus: int) -> dict[str, Any]:
    env = _env(work)
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    ray_tmp_owned = None
    ray_tmp = work / "ray"
    if len(str(ray_tmp)) > 40:  # Ray's unix socket paths must stay below 107 bytes
        ray_tmp_owned = Path(tempfile.mkdtemp(prefix="sb-ray-"))
        ray_tmp = ray_tmp_owned
    env["RAY_TMPDIR"] = str(ray_tmp)
    cfg_path = work / "run_config.json"
    cfg_path.write_text(json.dumps({**cfg, "_num_cpus": num_cpus}), encoding="utf-8")
    procs = _Processes()
    t0 = time.monotonic()
    log = logs / "simulation.log"
    try:
        p = procs.start([sys.executable, "-m", "secured_bio.privacy.federated.engines",
                         "simulate", str(cfg_path)], env, log)
        try:
            while p.poll() is None and time.monotonic() - t0 < timeout:
                procs.scan()
                time.sleep(0.5)
            if p.poll() is None:
                raise ProtocolError("the simulation exceeded its time limit", where=str(log),
                                    expected=f"< {timeout:.0f} s", fix="raise timeout_s")
        finally:
            orphans = procs.stop()
        if p.returncode != 0:
            _raise_server_error(work / "results", log)
            raise ProtocolError("the simulation failed", where=str(log),
                                got=f"exit code {p.returncode}", fix=f"see {log}")
    finally:
        if ray_tmp_owned is not None:
            shutil.rmtree(ray_tmp_owned, ignore_errors=True)
    return {"engine": "simulation", "processes": len(procs.procs), "pids": sorted(procs.seen),
            "orphans": orphans, "run_s": time.monotonic() - t0, "log_dir": str(logs)}


def _simulate_main(cfg_path: str) -> None:
    """Child process body of the simulation engine."""
    from flwr.simulation import run_simulation

    from secured_bio.privacy.federated.apps import make_apps

    cfg = json.loads(Path(cfg_path).read_text(encoding="utf-8"))
    ncpu = int(cfg.pop("_num_cpus", 2))
    server, client = make_apps(cfg)
    run_simulation(server_app=server, client_app=client, num_supernodes=int(cfg["num-sites"]),
                   backend_config={"client_resources": {"num_cpus": 1, "num_gpus": 0.0},
                                   "init_args": {"num_cpus": ncpu, "num_gpus": 0}})


# ------------------------------------------------------------------------------ inprocess
def _inprocess(cfg: dict[str, Any], work: Path, timeout: float, num_cpus: int
               ) -> dict[str, Any]:
    from secured_bio.privacy.federated.apps import ensure_flwr

    ensure_flwr()
    from flwr.app import Context, Error, Message, RecordDict
    from flwr.serverapp import Grid
    from flwr.supercore.run import Run
    from flwr.supercore.task_identity import TaskIdentity

    from secured_bio.privacy.federated.apps import make_apps, run_server

    n = int(cfg["num-sites"])
    run_id = 4242
    _, client_app = make_apps(cfg)
    nodes = {100 + i: Context(run_id=run_id, node_id=100 + i, state=RecordDict(),
                              node_config={"partition-id": i, "num-partitions": n},
                              run_config={}) for i in range(n)}

    class InMemoryGrid(Grid):  # type: ignore[misc]
        """Delivers each message to the site's ClientApp at once (sequentially)."""

        def __init__(self) -> None:
            self._run = Run.create_empty(run_id=run_id)
            self.messages = 0

        def set_run(self, run: Any) -> None:
            self._run = run

        @property
        def run(self) -> Any:
            return self._run

        def create_message(self, *args: Any, **kwargs: Any) -> Message:
            raise NotImplementedError

        def get_node_ids(self) -> list[int]:
            return list(nodes)

        def push_messages(self, messages: Any) -> Any:
            raise NotImplementedError

        def pull_messages(self, message_ids: Any) -> Any:
            raise NotImplementedError

        def send_and_receive(self, messages: Any, *, timeout: float | None = None
                             ) -> list[Message]:
            replies = []
            for msg in messages:
                self.messages += 1
                # A copy, as a network would deliver: mods (SecAgg+) edit what they receive.
                msg = Message(content=copy.deepcopy(msg.content),  # type: ignore[call-overload]
                              metadata=copy.deepcopy(msg.metadata))
                try:
                    replies.append(client_app(msg, nodes[msg.metadata.dst_node_id]))
                except Exception as e:  # a failing site becomes an error reply, as in Flower
                    # (flwr.supernode.runtime.run_clientapp's code and reason format)
                    replies.append(Message(Error(code=2, reason=f"{type(e)}:<'{e}'>"),
                                           reply_to=msg))
            return replies

    saved = (TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id)
    TaskIdentity.task_id, TaskIdentity.run_id, TaskIdentity.node_id = 1, run_id, 0
    t0 = time.monotonic()
    grid = InMemoryGrid()
    try:
        run_server(grid, Context(run_id=run_id, node_id=0, node_config={}, state=RecordDict(),
                                 run_config={}), cfg)
    finally:
        TaskIdentity._task_id, TaskIdentity._run_id, TaskIdentity._node_id = saved
    return {"engine": "inprocess", "processes": 0, "pids": [], "orphans": [],
            "messages": grid.messages, "run_s": time.monotonic() - t0,
            "log_dir": str(work)}


# ----------------------------------------------------------------------------- deployment
_APP_TOML = """\
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "secured-bio-federated"
version = "1.0.0"
description = "secured_bio federated run (generated)"
license = "Apache-2.0"
dependencies = []

[tool.hatch.build.targets.wheel]
packages = ["."]

[tool.flwr.app]
publisher = "securedbio"

[tool.flwr.app.components]
serverapp = "secured_bio.privacy.federated.apps:server_app"
clientapp = "secured_bio.privacy.federated.apps:client_app"

[tool.flwr.app.config]
"""


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int | float):
        return repr(v)
    return json.dumps(str(v))


def write_app_dir(cfg: Mapping[str, Any], app_dir: Path) -> Path:
    """Write a Flower app folder whose components are secured_bio's apps and config ``cfg``."""
    app_dir.mkdir(parents=True, exist_ok=True)
    body = _APP_TOML + "".join(f"{k} = {_toml_value(v)}\n" for k, v in cfg.items())
    (app_dir / "pyproject.toml").write_text(body, encoding="utf-8")
    (app_dir / "README.md").write_text("Generated by secured_bio.\n", encoding="utf-8")
    return app_dir


@dataclass(frozen=True)
class _Security:
    """Transport options of the deployment engine."""

    tls: bool = False
    tls_dir: Path | None = None
    node_auth: bool = False
    remote: RemoteSites | None = None


def _register_supernodes(pubs: list[Path], env: dict[str, str], logs: Path,
                         deadline: float) -> None:
    """Register each site's public key with the SuperLink (``flwr supernode register``)."""
    for i, pub in enumerate(pubs, start=1):
        log = logs / f"register{i}.log"
        with open(log, "ab") as fh:
            try:
                rc = subprocess.run(
                    [str(_BIN / "flwr"), "supernode", "register", str(pub), "secured-bio"],
                    env=env, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                    timeout=max(1.0, deadline - time.monotonic()), check=False).returncode
            except subprocess.TimeoutExpired as e:
                raise ProtocolError("registering a SuperNode key timed out", where=str(log),
                                    fix="raise timeout_s or see the log") from e
        if rc != 0:
            raise ProtocolError("registering a SuperNode key failed", where=str(log),
                                got=f"exit code {rc}", fix=f"see {log}")


def _deploy(cfg: dict[str, Any], work: Path, timeout: float, num_cpus: int,
            security: _Security | None = None) -> dict[str, Any]:
    sec = security or _Security()
    env = _env(work)
    logs = work / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    home = Path(env["FLWR_HOME"])
    home.mkdir(parents=True, exist_ok=True)
    n = int(cfg["num-sites"])
    remote = sec.remote
    link = (remote.port if remote else 0) or _free_port()
    listen = remote.listen if remote else "127.0.0.1"
    local = "127.0.0.1" if listen in ("0.0.0.0", "::") else listen  # where we connect
    link_tls: list[str] = ["--insecure"]
    node_tls: list[str] = ["--insecure"]
    conn_tls = "insecure = true"
    tls_info: dict[str, Any] = {"tls": sec.tls, "node_auth": sec.node_auth}
    keys: list[tuple[Path, Path]] = []
    ca_pem: str | None = None  # the CA certificate: public, handed to remote sites
    if sec.tls:
        from secured_bio.privacy.federated.certs import load_tls_dir, make_loopback_tls

        hosts = ["127.0.0.1", "localhost", *([remote.host, local] if remote else [])]
        tls = load_tls_dir(sec.tls_dir) if sec.tls_dir else make_loopback_tls(
            work / "tls", hosts=list(dict.fromkeys(hosts)))
        link_tls = ["--ssl-ca-certfile", str(tls.ca_cert), "--ssl-certfile",
                    str(tls.server_cert), "--ssl-keyfile", str(tls.server_key)]
        node_tls = ["--root-certificates", str(tls.ca_cert)]
        conn_tls = f"root-certificates = {json.dumps(str(tls.ca_cert.resolve()))}"
        tls_info["tls_fingerprints"] = tls.fingerprints()
        tls_info["tls_dir"] = str(tls.ca_cert.parent)
        ca_pem = tls.ca_cert.read_text(encoding="utf-8")
        if sec.node_auth:
            from secured_bio.privacy.federated.certs import make_supernode_keys

            keys = make_supernode_keys(work / "node_keys", n)
            link_tls.append("--enable-supernode-auth")
    with atomic_path(home / "config.toml") as tmp:
        tmp.write_text('[superlink]\ndefault = "secured-bio"\n\n[superlink.secured-bio]\n'
                       f'address = "{local}:{link}"\n{conn_tls}\n', encoding="utf-8")
    app = write_app_dir(cfg, work / "app")
    dirs = json.loads(cfg["site-data-dirs"])
    procs = _Processes()
    t0 = time.monotonic()
    deadline = t0 + timeout
    timings: dict[str, float] = {}
    rc = None
    sl_cmd = [str(_BIN / "flower-superlink"), *link_tls, "--host", listen,
              "--port", str(link), "--disable-runtime-dependency-installation"]
    try:
        sl_log = logs / "superlink.log"
        sl = procs.start(sl_cmd, env, sl_log)
        _wait_port(link, deadline, sl, sl_log, host=local)
        timings["superlink_ready_s"] = time.monotonic() - t0
        if remote is not None and remote.ready is not None:
            remote.ready({"superlink": f"{remote.host}:{link}", "root_certificates": ca_pem})
        if keys:
            _register_supernodes([pub for _, pub in keys], env, logs, deadline)
            timings["register_s"] = time.monotonic() - t0 - timings["superlink_ready_s"]
        for i in range(0 if remote else n):
            node_cfg = f"partition-id={i} num-partitions={n}"
            if dirs:
                node_cfg += f" data-dir={json.dumps(dirs[i])}"
            auth = ["--auth-supernode-private-key", str(keys[i][0])] if keys else []
            procs.start([str(_BIN / "flower-supernode"), *node_tls, *auth, "--superlink",
                         f"127.0.0.1:{link}", "--node-config", node_cfg,
                         "--port", str(_free_port())], env, logs / f"supernode{i + 1}.log")
        run_log = logs / "flwr_run.log"
        t_run = time.monotonic()
        runner = procs.start([str(_BIN / "flwr"), "run", str(app), "secured-bio", "--stream"],
                             env, run_log)
        res = work / "results" / RESULT_FILES["results"]
        while time.monotonic() < deadline and not res.is_file():
            procs.scan()
            _raise_server_error(work / "results", run_log)
            if remote is not None and remote.stop is not None and remote.stop.is_set():
                raise ProtocolError("the federated run was stopped before it ended",
                                    where=str(logs), fix="start the run again")
            if runner.poll() is not None and runner.returncode != 0:
                raise ProtocolError("'flwr run' failed", where=str(run_log),
                                    got=f"exit code {runner.returncode}", fix=f"see {run_log}")
            time.sleep(0.5)
        rc = runner.poll()
        timings["run_s"] = time.monotonic() - t_run
        if not res.is_file():
            raise ProtocolError("the deployment exceeded its time limit", where=str(logs),
                                expected=f"< {timeout:.0f} s", fix="raise timeout_s or see logs")
    finally:
        t_stop = time.monotonic()
        orphans = procs.stop()
        timings["shutdown_s"] = time.monotonic() - t_stop
    return {"engine": "deployment", "processes": len(procs.procs), "pids": sorted(procs.seen),
            "orphans": orphans, "superlink_port": link, "flwr_run_exit": rc,
            "superlink_cmd": sl_cmd, **tls_info,
            "total_s": time.monotonic() - t0, "log_dir": str(logs), **timings}


if __name__ == "__main__":  # the simulation engine's child process
    if len(sys.argv) == 3 and sys.argv[1] == "simulate":
        _simulate_main(sys.argv[2])
    else:
        sys.exit("usage: python -m secured_bio.privacy.federated.engines simulate CONFIG.json")
