"""The Flower apps: one ClientApp and one ServerApp for every task, strategy and protection.

Both apps run on Flower's legacy message path (``NumPyClient`` + ``LegacyContext``) because
SecAgg+ (``SecAggPlusWorkflow`` + ``secaggplus_mod``) exists only there in flwr 1.42; plain,
SecAgg+ and DP runs differ only by the fit workflow on the server and by the mods that wrap
the client (:mod:`secured_bio.privacy.federated.strategies`).

The apps are thin: the client calls :class:`~secured_bio.privacy.federated.task.FederatedTask`
methods, the server calls the strategy and writes results.  Configuration travels as a flat
mapping of scalars (Flower's run config); :data:`server_app` and :data:`client_app` read it
from ``context.run_config`` (deployment: ``flwr run`` ships it), :func:`make_apps` binds it
in (simulation through ``run_simulation``, which has no run config).

Reveal set (what leaves a site): the model parameters after local training (masked by SecAgg+
when on, clipped when DP is on), the number of training and test examples, the mean training
loss, the local training time, and the site's test loss, AUROC and accuracy of the global
model; with ``fairness='qffl'`` also the loss of the incoming global model on the site's
training rows (q-FedAvg's ``F_k``; :mod:`~secured_bio.privacy.federated.fairness`).  Under DP
(central or local) the fit reply carries **no** exact training count (weight
1: equal weights), training loss or training time -- they are not covered by epsilon, so they
are not sent; with local DP-SGD (:mod:`~secured_bio.privacy.federated.dpsgd`) it carries the
site's epsilon so far, noise multiplier, sampling rate, expected batch size and step count
(functions of public settings and ``ceil(n_train / batch_size)``).  What epsilon covers and
what it does not: :func:`secured_bio.privacy.federated.dp.privacy_scope`.  No example, label or
prediction leaves a site.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from secured_bio.errors import SecuredBioError
from secured_bio.privacy.federated.fairness import QFFL_LOSS_KEY, group_weights
from secured_bio.privacy.federated.strategies import Recorder
from secured_bio.privacy.federated.task import FederatedTask, SiteData, SiteRef, load_task

if TYPE_CHECKING:
    import torch
    from flwr.app import Context
    from flwr.client import NumPyClient
    from flwr.clientapp import ClientApp
    from flwr.serverapp import Grid, ServerApp

# ``server_app`` and ``client_app`` are built on first access (module ``__getattr__``) so that
# importing this module does not import Flower; listing them here also lets ``flwr run``'s
# static check of the app components find them.
__all__ = ["make_apps", "run_server", "ensure_flwr", "server_app", "client_app",  # noqa: F822
           "RESULT_FILES", "RESULTS_FORMAT"]

#: Files the ServerApp writes into ``out-dir`` (read back by the engines); ``error`` only
#: when the run stopped on a :class:`~secured_bio.errors.SecuredBioError` (its class and fields).
RESULT_FILES = {"params": "global_params.npz", "results": "results.json", "error": "error.json"}
#: Format name and version of ``results.json``.
RESULTS_FORMAT = {"format": "secured_bio.federated_results", "version": 1}

Config = Mapping[str, Any]


def ensure_flwr() -> None:
    """Import Flower once, silencing one known third-party deprecation warning.

    flwr 1.42 imports typer, which touches ``click.utils.get_*_stream`` (deprecated in
    click 8.2+): a DeprecationWarning raised at import, not by our use; filtered narrowly.
    """
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"'click\.utils\.\w+' is deprecated",
                                category=DeprecationWarning)
        import flwr.app  # noqa: F401
        import flwr.client  # noqa: F401
        import flwr.common  # noqa: F401
        import flwr.server  # noqa: F401
        import flwr.serverapp  # noqa: F401


# ------------------------------------------------------------------------ model parameters
def get_state(model: torch.nn.Module) -> list[np.ndarray]:
    """Return the model's ``state_dict`` values as numpy arrays, in ``state_dict`` order."""
    return [v.detach().cpu().numpy().copy() for v in model.state_dict().values()]


def set_state(model: torch.nn.Module, arrays: list[np.ndarray]) -> None:
    """Load arrays (``state_dict`` order) into ``model``; dtypes follow the model."""
    import torch

    keys = list(model.state_dict().keys())
    if len(keys) != len(arrays):
        from secured_bio.errors import ProtocolError

        raise ProtocolError("parameter count mismatch", where="federated model",
                            expected=f"{len(keys)} arrays", got=f"{len(arrays)} arrays",
                            fix="every site and the server must build the same model")
    model.load_state_dict({k: torch.as_tensor(np.asarray(a)) for k, a in
                           zip(keys, arrays, strict=True)})


def _json_list(value: Any) -> list[Any]:
    if value in (None, ""):
        return []
    return list(json.loads(value)) if isinstance(value, str) else list(value)


def site_ref(cfg: Config, node_config: Mapping[str, Any]) -> SiteRef:
    """Return the site a process is, from the node config (and the run config's data folders)."""
    pid = int(node_config["partition-id"])
    data_dir = node_config.get("data-dir")
    if not data_dir:
        dirs = _json_list(cfg.get("site-data-dirs"))
        data_dir = dirs[pid] if pid < len(dirs) else None
    return SiteRef(partition_id=pid, num_partitions=int(node_config["num-partitions"]),
                   data_dir=str(data_dir) if data_dir else None)


def build_global_model(task: FederatedTask, seed: int) -> torch.nn.Module:
    """Build the task's model with seeded initial weights (the same in every process)."""
    import torch

    torch.manual_seed(int(seed))
    return task.build_model()


def local_seed(seed: int, server_round: int, partition_id: int) -> int:
    """Seed of a site's local training in a round (distinct per site and round)."""
    return int(seed) * 1_000_003 + 1000 * int(server_round) + int(partition_id)


# ------------------------------------------------------------------------------- metrics
def evaluate_site(task: FederatedTask, model: torch.nn.Module, data: SiteData
                  ) -> tuple[float, int, dict[str, float]]:
    """Binary log-loss, AUROC (NaN with one class) and accuracy of ``model`` on the test rows."""
    from sklearn.metrics import log_loss, roc_auc_score

    y = np.asarray(data.y_test).reshape(-1).astype(int)
    n = int(y.shape[0])
    if n == 0:
        return float("nan"), 0, {"auroc": float("nan"), "accuracy": float("nan")}
    p = np.clip(task.predict(model, data.x_test).reshape(-1), 1e-7, 1 - 1e-7)
    loss = float(log_loss(y, p, labels=[0, 1]))
    auroc = float(roc_auc_score(y, p)) if len(np.unique(y)) == 2 else float("nan")
    acc = float(np.mean((p >= 0.5).astype(int) == y))
    return loss, n, {"auroc": auroc, "accuracy": acc}


def train_loss_of(task: FederatedTask, model: torch.nn.Module, data: SiteData) -> float:
    """Binary log-loss of ``model`` on the site's training rows (q-FedAvg's ``F_k``)."""
    from sklearn.metrics import log_loss

    y = np.asarray(data.y_train).reshape(-1).astype(int)
    if y.size == 0:
        return float("nan")
    p = np.clip(task.predict(model, data.x_train).reshape(-1), 1e-7, 1 - 1e-7)
    return float(log_loss(y, p, labels=[0, 1]))


# -------------------------------------------------------------------------------- client
def _make_client(cfg: Config, context: Context) -> NumPyClient:
    from flwr.client import NumPyClient

    class SiteClient(NumPyClient):  # type: ignore[misc]
        """One site: rebuilds the task, trains and evaluates on its own data only."""

        def __init__(self) -> None:
            self.ref = site_ref(cfg, context.node_config)
            self.task = load_task(str(cfg["task"]), str(cfg.get("task-params", "{}")))
            self.model = build_global_model(self.task, int(cfg.get("seed", 0)))
            self._data: SiteData | None = None

        @property
        def data(self) -> SiteData:
            if self._data is None:
                self._data = self.task.load_site(self.ref)
            return self._data

        def get_parameters(self, config: dict[str, Any]) -> list[np.ndarray]:
            return get_state(self.model)

        def fit(self, parameters: list[np.ndarray], config: dict[str, Any]
                ) -> tuple[list[np.ndarray], int, dict[str, Any]]:
            server_round = int(config.get("server-round", 0))
            _maybe_fail(cfg, self.ref.partition_id, server_round)
            set_state(self.model, parameters)
            t0 = time.perf_counter()
            seed = local_seed(int(cfg.get("seed", 0)), server_round, self.ref.partition_id)
            dp_metrics: dict[str, Any] = {}
            fair_metrics: dict[str, Any] = {}
            if float(cfg.get("local-dp-epsilon", 0.0)) > 0:  # record-level DP-SGD (dpsgd.py)
                res, eps = self.task.train_private(
                    self.model, self.data, epochs=int(cfg.get("local-epochs", 1)),
                    lr=float(cfg.get("lr", 0.01)), epsilon=float(cfg["local-dp-epsilon"]),
                    delta=float(cfg.get("local-dp-delta", 1e-5)),
                    max_grad_norm=float(cfg.get("local-dp-max-grad-norm", 1.0)),
                    batch_size=int(cfg.get("local-dp-batch-size", 0)) or None,
                    rounds=int(cfg.get("rounds", 1)), server_round=max(server_round, 1),
                    seed=seed)
                dp_metrics = {f"dp-{k.replace('_', '-')}": float(v)
                              for k, v in res.metrics.items()}
                dp_metrics["dp-epsilon"] = float(eps)
            else:
                fairness = str(cfg.get("fairness", "none"))
                if fairness == "qffl":  # q-FedAvg: the incoming global model's loss here
                    fair_metrics[QFFL_LOSS_KEY] = train_loss_of(self.task, self.model,
                                                                self.data)
                extra: dict[str, Any] = {}
                if fairness == "group_reweight":  # computed from this site's rows only
                    extra["sample_weight"] = group_weights(self.data.groups_train,
                                                           len(self.data.y_train))
                res = self.task.train(
                    self.model, self.data, epochs=int(cfg.get("local-epochs", 1)),
                    lr=float(cfg.get("lr", 0.01)),
                    proximal_mu=float(config.get("proximal_mu", 0.0)), seed=seed, **extra)
            train_s = time.perf_counter() - t0
            if dp_metrics or float(cfg.get("dp-noise-multiplier", 0.0)) > 0:
                # Under DP only the (noised/clipped) parameters are covered by epsilon: no
                # exact count (weight 1 -- DP-FedAvg's sensitivity needs equal weights anyway,
                # McMahan et al. 2018), no training loss, no timing (dp.privacy_scope).
                return get_state(self.model), 1, {"site": self.data.site, **dp_metrics}
            metrics = {"site": self.data.site, "num-examples": int(res.num_examples),
                       "loss": float(res.loss), "train-time-s": float(train_s), **fair_metrics}
            return get_state(self.model), int(res.num_examples), metrics

        def evaluate(self, parameters: list[np.ndarray], config: dict[str, Any]
                     ) -> tuple[float, int, dict[str, Any]]:
            set_state(self.model, parameters)
            loss, n, m = evaluate_site(self.task, self.model, self.data)
            return loss, n, {"site": self.data.site, **m}

    return SiteClient()


def _maybe_fail(cfg: Config, partition_id: int, server_round: int) -> None:
    """Make one site fail (testing hook) in one round (exception, or process exit)."""
    if (int(cfg.get("fail-site", -1)) == partition_id
            and int(cfg.get("fail-round", -1)) == server_round):
        if str(cfg.get("fail-mode", "raise")) == "exit":
            os._exit(17)
        raise RuntimeError("injected site failure (fail_site testing hook)")


def _make_client_app(bound: Config | None) -> ClientApp:
    from flwr.clientapp import ClientApp

    from secured_bio.privacy.federated.strategies import privacy_mod

    def client_fn(context: Context) -> Any:
        cfg = bound if bound is not None else context.run_config
        return _make_client(cfg, context).to_client()

    return ClientApp(client_fn=client_fn, mods=[privacy_mod])


# -------------------------------------------------------------------------------- server
def _make_server_app(bound: Config | None) -> ServerApp:
    from flwr.serverapp import ServerApp

    app = ServerApp()

    @app.main()
    def main(grid: Grid, context: Context) -> None:
        cfg = bound if bound is not None else context.run_config
        try:
            run_server(grid, context, cfg)
        except SecuredBioError as e:  # the engines re-raise it in the caller's process
            write_error(Path(str(cfg["out-dir"])), e)
            raise

    return app


def write_error(out_dir: Path, error: SecuredBioError) -> None:
    """Write the class and fields of the error that stopped the ServerApp (atomically)."""
    from secured_bio._atomic import atomic_write

    out_dir.mkdir(parents=True, exist_ok=True)
    doc = {**RESULTS_FORMAT, "error": type(error).__name__, "what": error.what,
           "where": error.where, "expected": error.expected, "got": error.got,
           "fix": error.fix, "notes": list(getattr(error, "__notes__", []))}
    with atomic_write(out_dir / RESULT_FILES["error"]) as fh:
        json.dump(doc, fh, indent=2)


def run_server(grid: Grid, context: Context, cfg: Config) -> None:
    """Run the ServerApp's main: the rounds, evaluate, write results into ``cfg['out-dir']``."""
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays
    from flwr.compat.common import recorddict_compat as compat
    from flwr.server import LegacyContext, ServerConfig
    from flwr.server.compat.app_utils import start_update_client_manager_thread
    from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key

    from secured_bio.privacy.federated.strategies import (
        build_strategy,
        evaluate_workflow,
        fit_workflow,
    )

    ensure_flwr()
    t_start = time.perf_counter()
    task = load_task(str(cfg["task"]), str(cfg.get("task-params", "{}")))
    init = get_state(build_global_model(task, int(cfg.get("seed", 0))))
    rounds = int(cfg["rounds"])
    recorder = _LocalDPRecorder()
    strategy = build_strategy(cfg, ndarrays_to_parameters(init), recorder)
    legacy = LegacyContext(context=context, config=ServerConfig(num_rounds=rounds),
                           strategy=strategy)
    thread, f_stop, c_done = start_update_client_manager_thread(grid, legacy.client_manager)
    c_done.wait()
    try:
        from flwr.app import ConfigRecord

        legacy.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(
            ndarrays_to_parameters(init), keep_input=True)
        state_cfg = ConfigRecord()
        state_cfg[Key.START_TIME] = time.perf_counter()
        legacy.state.config_records[MAIN_CONFIGS_RECORD] = state_cfg
        fit = fit_workflow(cfg)
        evaluate = evaluate_workflow(cfg)
        for rnd in range(1, rounds + 1):
            state_cfg[Key.CURRENT_ROUND] = rnd
            t0 = time.perf_counter()
            fit(grid, legacy)
            t1 = time.perf_counter()
            evaluate(grid, legacy)
            t2 = time.perf_counter()
            recorder.close_round(rnd, fit_s=t1 - t0, evaluate_s=t2 - t1)
        final = parameters_to_ndarrays(compat.arrayrecord_to_parameters(
            legacy.state.array_records[MAIN_PARAMS_RECORD], keep_input=True))
    finally:
        f_stop.set()
        thread.join()
    write_results(Path(str(cfg["out-dir"])), final, {
        **RESULTS_FORMAT,
        "rounds": recorder.rounds,
        "per_site": recorder.per_site(),
        "server_s": time.perf_counter() - t_start,
        **({"local_dp": recorder.local_dp()} if recorder.site_dp else {}),
    })


class _LocalDPRecorder(Recorder):
    """A Recorder that also keeps each site's latest DP-SGD report (its ``dp-*`` metrics)."""

    def __init__(self) -> None:
        super().__init__()
        self.site_dp: dict[str, dict[str, float]] = {}

    def fit_results(self, results: Any, n_failures: int) -> None:
        for _, fr in results:
            m = dict(fr.metrics)
            if "dp-epsilon" in m:
                self.site_dp[str(m.get("site", ""))] = {
                    k[3:].replace("-", "_"): float(v) for k, v in m.items()
                    if k.startswith("dp-")}
        super().fit_results(results, n_failures)

    def local_dp(self) -> list[dict[str, Any]]:
        """Each site's last DP-SGD report: epsilon so far, noise multiplier, steps..."""
        return [{"site": s, **self.site_dp[s]} for s in sorted(self.site_dp)]


def write_results(out_dir: Path, params: list[np.ndarray], results: dict[str, Any]) -> None:
    """Write the final parameters (``.npz``) and the results (JSON), each atomically."""
    from secured_bio._atomic import atomic_path, atomic_write

    out_dir.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir / RESULT_FILES["params"]) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, *params)
    with atomic_write(out_dir / RESULT_FILES["results"]) as fh:
        json.dump(_jsonable(results), fh, indent=2, allow_nan=False)


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, float | np.floating):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def make_apps(cfg: Config | None = None) -> tuple[ServerApp, ClientApp]:
    """Build a ServerApp and a ClientApp bound to ``cfg`` (None: read ``context.run_config``).

    Examples
    --------
    >>> server, client = make_apps({"task": "secured_bio.testing:LinearToyTask", "rounds": 1})
    >>> type(server).__name__, type(client).__name__
    ('ServerApp', 'ClientApp')
    """
    ensure_flwr()
    return _make_server_app(cfg), _make_client_app(cfg)


def __getattr__(name: str) -> Any:
    # Built on first access so that importing this module stays cheap (no flwr import).
    if name in ("server_app", "client_app"):
        server, client = make_apps(None)
        globals().update(server_app=server, client_app=client)
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
