"""Aggregation and protection: FedAvg/FedProx, SecAgg+, central DP, crash tolerance, records.

- **FedAvg** (McMahan et al., AISTATS 2017): the example-weighted mean of the sites' models.
- **FedProx** (Li et al., MLSys 2020): FedAvg whose sites add ``mu/2 * ||w - w_global||^2`` to
  their loss; Flower's ``FedProx`` strategy sends ``proximal_mu`` in the fit config and
  :meth:`FederatedTask.train` applies it.
- **SecAgg+** (Bell et al., CCS 2020; Flower's ``SecAggPlusWorkflow`` + ``secaggplus_mod``):
  the server learns only the weighted sum of the sites' (quantized, clipped) parameters.
  Threat model: honest-but-curious server and sites, collusion of fewer than
  ``reconstruction_threshold`` parties, up to ``num_shares - reconstruction_threshold`` sites
  may drop out.  Quantization makes the result differ from FedAvg by about
  ``clipping_range / quantization_range * max_weight / num_examples`` per parameter, and every
  parameter is clipped to ``[-clipping_range, clipping_range]`` first.  Each site multiplies
  its parameters by ``num_examples / max_weight`` *before* that clipping, so a site with more
  training examples than ``max_weight`` would be clipped silently (Flower only logs a
  warning at the site) and the aggregate would no longer be FedAvg; every site therefore
  refuses to send its update in that case, and the server ends the run
  (:func:`check_secagg_weight`, :func:`fit_workflow`).
- **Central DP** (McMahan et al., ICLR 2018): Flower's
  ``DifferentialPrivacyClientSideFixedClipping`` (sites clip their update with
  ``fixedclipping_mod``, inside SecAgg+ masking when both are on; the server adds noise);
  equal site weights, server noise from the OS CSPRNG
  (:func:`~secured_bio.privacy.federated.dp.central_dp_strategy`); accounting, adjacency and
  what epsilon covers in :mod:`secured_bio.privacy.federated.dp`.  A DP round with a
  failed site is skipped (the model
  is not updated), because the noise was calibrated to all sites.
- **q-FedAvg** (Li et al., ICLR 2020) when ``fairness='qffl'``: see
  :mod:`secured_bio.privacy.federated.fairness` (and why not Flower's legacy ``QFedAvg``).
- **Crash tolerance**: every round waits at most ``round-timeout`` seconds, aggregates the replies
  it got (``accept_failures``) and counts the rest as failures.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, cast

from secured_bio.errors import ConfigError, did_you_mean

if TYPE_CHECKING:
    from flwr.app import Context, Message
    from flwr.common import EvaluateRes, FitRes, Parameters
    from flwr.server import LegacyContext
    from flwr.server.client_proxy import ClientProxy
    from flwr.server.strategy import Strategy
    from flwr.serverapp import Grid

__all__ = ["STRATEGIES", "Recorder", "build_strategy", "fit_workflow", "evaluate_workflow",
           "privacy_mod", "secagg_params", "check_secagg_weight"]

#: Strategy names accepted by :func:`build_strategy`.
STRATEGIES = ("fedavg", "fedprox")

Config = Mapping[str, Any]
_Workflow = Callable[["Grid", "LegacyContext"], None]


def check_strategy(name: str) -> str:
    """Return ``name`` if it is a known strategy.

    Raises
    ------
    ConfigError
        If the strategy is unknown (with a "did you mean" hint).

    Examples
    --------
    >>> check_strategy("fedprox")
    'fedprox'
    """
    if name not in STRATEGIES:
        hint = did_you_mean(str(name), STRATEGIES)
        raise ConfigError("unknown federated strategy", where="strategy",
                          expected=" or ".join(STRATEGIES), got=repr(name),
                          fix=hint or "choose fedavg or fedprox")
    return name


def secagg_params(num_sites: int, *, clipping_range: float = 8.0, max_weight: float = 1000.0,
                  timeout: float | None = None) -> dict[str, Any]:
    """SecAgg+ parameters for ``num_sites`` sites: every site shares with all the others.

    ``num_shares = num_sites`` (Flower requires an integer > 2, so at least 3 sites) and
    ``reconstruction_threshold = num_sites // 2 + 1`` (a majority must collude to unmask).
    ``max_weight`` must be at least the largest site's training-set size (1 under central DP,
    where every site reports weight 1): a public upper bound agreed before the run, because
    every site must know it before it masks anything.  Sites larger than it refuse to take
    part (:func:`check_secagg_weight`).

    Raises
    ------
    ConfigError
        If there are fewer than 3 sites.

    Examples
    --------
    >>> p = secagg_params(3)
    >>> p["num_shares"], p["reconstruction_threshold"]
    (3, 2)
    """
    if num_sites < 3:
        raise ConfigError("SecAgg+ needs at least 3 sites", where="secagg",
                          expected="num_sites >= 3 (Flower: integer num_shares > 2)",
                          got=f"num_sites={num_sites}",
                          fix="add sites or run without --secagg")
    return {"num_shares": int(num_sites), "reconstruction_threshold": int(num_sites) // 2 + 1,
            "clipping_range": float(clipping_range), "quantization_range": 2 ** 22,
            "modulus_range": 2 ** 32, "max_weight": float(max_weight), "timeout": timeout}


#: Start of the message a site sends when it refuses SecAgg+ (the server looks for it).
_WEIGHT_REFUSAL = "training set larger than SecAgg+ max_weight"


def check_secagg_weight(num_examples: int, max_weight: float, *, site: str) -> None:
    """Refuse a SecAgg+ contribution whose weight ``num_examples`` exceeds ``max_weight``.

    Flower's ``secaggplus_mod`` scales a site's parameters by ``num_examples / max_weight``
    and then clips them to ``[-clipping_range, clipping_range]`` before quantization, so a
    weight above ``max_weight`` clips the site's contribution without error and the
    aggregate silently stops being FedAvg.  Why refuse rather than derive ``max_weight``:
    it is a protocol parameter that every site must hold before it masks, the server does
    not know the sites' sizes before their first (masked) reply, and correcting it afterwards
    would need an extra unmasked exchange of sizes.  So the run is configured with a public
    bound and a site above it fails closed: it sends nothing and the server ends the run
    (:func:`fit_workflow`).  The message says that the bound is exceeded, not by how much.

    Parameters
    ----------
    num_examples
        The weight the site would send (its training-set size; 1 under central DP).
    max_weight
        SecAgg+ ``max_weight`` of the run.
    site
        The site's name (for the message).

    Raises
    ------
    ConfigError
        If ``num_examples > max_weight``.

    Examples
    --------
    >>> check_secagg_weight(60, 1000.0, site="site1")
    >>> check_secagg_weight(60, 50.0, site="site1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    secured_bio.errors.ConfigError: training set larger than SecAgg+ max_weight...
    """
    if num_examples > max_weight:
        raise ConfigError(
            f"{_WEIGHT_REFUSAL}: Flower would clip this site's weighted update silently, "
            "so the site refuses to send it", where=f"SecAgg+ at site {site}",
            expected=f"at most max_weight={max_weight:g} training examples",
            got="more training examples than max_weight",
            fix="rerun with secagg_max_weight (run_federated, --secagg-max-weight) at least "
                "the largest site's training-set size")


# ------------------------------------------------------------------------------ recorder
class Recorder:
    """Per-round records: replies, failures, weighted losses, site metrics, timings."""

    def __init__(self) -> None:
        self.rounds: list[dict[str, Any]] = []
        self._cur: dict[str, Any] = {}
        self._last_eval: list[dict[str, Any]] = []

    def sampled(self, kind: str, n: int) -> None:
        """Note how many sites were asked to ``kind`` (fit/evaluate) this round."""
        self._cur[f"{kind}_sampled"] = int(n)

    def fit_results(self, results: list[tuple[ClientProxy, FitRes]], n_failures: int) -> None:
        """Record the replies of a fit round (metrics only; parameters are not kept)."""
        rows = [dict(fr.metrics) for _, fr in results]
        n = [float(r.get("num-examples", fr.num_examples))
             for r, (_, fr) in zip(rows, results, strict=True)]
        self._cur["fit_replies"] = len(results)
        self._cur["fit_failures_reported"] = int(n_failures)
        self._cur["train_loss"] = _weighted([float(r.get("loss", math.nan)) for r in rows], n)
        self._cur["train_examples"] = int(sum(n))
        self._cur["local_train_s_total"] = float(sum(float(r.get("train-time-s", 0.0))
                                                     for r in rows))
        self._cur["local_train_s_max"] = float(max((float(r.get("train-time-s", 0.0))
                                                    for r in rows), default=0.0))

    def evaluate_results(self, results: list[tuple[ClientProxy, EvaluateRes]],
                         n_failures: int) -> None:
        """Record the sites' evaluation of the current global model."""
        sites: list[dict[str, Any]] = [
                 {"site": str(er.metrics.get("site", "")), "num_test": int(er.num_examples),
                  "loss": float(er.loss), "auroc": float(er.metrics.get("auroc", math.nan)),
                  "accuracy": float(er.metrics.get("accuracy", math.nan))}
                 for _, er in results]
        sites.sort(key=lambda s: s["site"])
        w = [float(s["num_test"]) for s in sites]
        self._cur["evaluate_replies"] = len(results)
        self._cur["evaluate_failures_reported"] = int(n_failures)
        self._cur["eval_loss"] = _weighted([s["loss"] for s in sites], w)
        self._cur["eval_auroc"] = _weighted([s["auroc"] for s in sites], w)
        self._cur["eval_accuracy"] = _weighted([s["accuracy"] for s in sites], w)
        self._last_eval = sites

    def close_round(self, rnd: int, *, fit_s: float, evaluate_s: float) -> None:
        """Finish round ``rnd``: failures = sites asked minus replies received."""
        c = self._cur
        fit_fail = int(c.get("fit_sampled", 0)) - int(c.get("fit_replies", 0))
        ev_fail = int(c.get("evaluate_sampled", 0)) - int(c.get("evaluate_replies", 0))
        self.rounds.append({
            "round": int(rnd),
            "train_loss": c.get("train_loss", math.nan),
            "num_clients": int(c.get("fit_replies", 0)),
            "failures": fit_fail,
            "evaluate_failures": ev_fail,
            "train_examples": int(c.get("train_examples", 0)),
            "eval_loss": c.get("eval_loss", math.nan),
            "eval_auroc": c.get("eval_auroc", math.nan),
            "eval_accuracy": c.get("eval_accuracy", math.nan),
            "fit_wall_s": float(fit_s),
            "evaluate_wall_s": float(evaluate_s),
            "wall_s": float(fit_s + evaluate_s),
            "local_train_s_total": float(c.get("local_train_s_total", 0.0)),
            "local_train_s_max": float(c.get("local_train_s_max", 0.0)),
        })
        self._cur = {}

    def per_site(self) -> list[dict[str, Any]]:
        """Return the sites' evaluation of the final global model (the last evaluate round)."""
        return [dict(s) for s in self._last_eval]


def _weighted(values: list[float], weights: list[float]) -> float:
    pairs = [(v, w) for v, w in zip(values, weights, strict=True) if math.isfinite(v) and w > 0]
    total = sum(w for _, w in pairs)
    return sum(v * w for v, w in pairs) / total if total > 0 else math.nan


def _recording(inner: Strategy, recorder: Recorder) -> Strategy:
    """Wrap ``inner`` so that every round's sampling and replies reach ``recorder``."""
    from flwr.server.strategy import Strategy

    class RecordingStrategy(Strategy):  # type: ignore[misc]
        def initialize_parameters(self, client_manager: Any) -> Parameters | None:
            return inner.initialize_parameters(client_manager)

        def configure_fit(self, server_round: int, parameters: Parameters,
                          client_manager: Any) -> list[tuple[ClientProxy, Any]]:
            out = inner.configure_fit(server_round, parameters, client_manager)
            recorder.sampled("fit", len(out))
            return cast(list[tuple["ClientProxy", Any]], out)

        def aggregate_fit(self, server_round: int, results: list[tuple[ClientProxy, FitRes]],
                          failures: list[Any]) -> tuple[Parameters | None, dict[str, Any]]:
            recorder.fit_results(results, len(failures))
            return inner.aggregate_fit(server_round, results, failures)

        def configure_evaluate(self, server_round: int, parameters: Parameters,
                               client_manager: Any) -> list[tuple[ClientProxy, Any]]:
            out = inner.configure_evaluate(server_round, parameters, client_manager)
            recorder.sampled("evaluate", len(out))
            return cast(list[tuple["ClientProxy", Any]], out)

        def aggregate_evaluate(self, server_round: int,
                               results: list[tuple[ClientProxy, EvaluateRes]],
                               failures: list[Any]) -> tuple[float | None, dict[str, Any]]:
            recorder.evaluate_results(results, len(failures))
            return inner.aggregate_evaluate(server_round, results, failures)

        def evaluate(self, server_round: int, parameters: Parameters) -> Any:
            return inner.evaluate(server_round, parameters)

    return RecordingStrategy()


def weighted_metrics(results: list[tuple[int, dict[str, Any]]]) -> dict[str, float]:
    """Example-weighted mean of each numeric metric the sites reported (Flower's hook).

    Examples
    --------
    >>> weighted_metrics([(1, {"auroc": 0.5}), (3, {"auroc": 0.9, "note": "x"})])
    {'auroc': 0.8}
    """
    totals: dict[str, float] = {}
    weights: dict[str, float] = {}
    for n, metrics in results:
        for key, value in metrics.items():
            if isinstance(value, int | float) and not isinstance(value, bool) \
                    and math.isfinite(value):
                totals[key] = totals.get(key, 0.0) + n * float(value)
                weights[key] = weights.get(key, 0.0) + n
    return {k: round(totals[k] / weights[k], 12) for k in totals if weights[k] > 0}


def build_strategy(cfg: Config, initial_parameters: Parameters, recorder: Recorder) -> Strategy:
    """FedAvg, FedProx or q-FedAvg over all sites, accepting failures; DP-wrapped when configured.

    Every site is asked every round (fraction 1) once all ``num-sites`` have connected; a
    round aggregates whatever replies it got.
    """
    from flwr.server.strategy import FedAvg, FedProx

    n = int(cfg["num-sites"])
    name = check_strategy(str(cfg.get("strategy", "fedavg")))

    def fit_config(server_round: int) -> dict[str, Any]:
        return {"server-round": int(server_round)}

    kwargs: dict[str, Any] = dict(
        fraction_fit=1.0, fraction_evaluate=1.0, min_fit_clients=n, min_evaluate_clients=n,
        min_available_clients=n, accept_failures=True, initial_parameters=initial_parameters,
        on_fit_config_fn=fit_config, on_evaluate_config_fn=fit_config,
        fit_metrics_aggregation_fn=weighted_metrics,
        evaluate_metrics_aggregation_fn=weighted_metrics,
    )
    strategy: Strategy
    if str(cfg.get("fairness", "none")) == "qffl":  # q-FedAvg (fairness.py)
        from secured_bio.privacy.federated.fairness import qffl_strategy

        lr = float(cfg.get("lr", 0.01))
        lipschitz = float(cfg.get("fairness-lipschitz", 0.0)) or 1.0 / lr
        strategy = qffl_strategy(float(cfg.get("fairness-q", 1.0)), lipschitz, **kwargs)
    elif name == "fedprox":
        strategy = FedProx(proximal_mu=float(cfg.get("proximal-mu", 0.1)), **kwargs)
    else:
        strategy = FedAvg(**kwargs)
    sigma = float(cfg.get("dp-noise-multiplier", 0.0))
    if sigma > 0:  # Flower's client-side clipping wrapper, server noise from the OS CSPRNG
        from secured_bio.privacy.federated.dp import central_dp_strategy

        strategy = central_dp_strategy(strategy, noise_multiplier=sigma,
                                       clip=float(cfg.get("dp-clip", 1.0)), num_sites=n)
    return _recording(strategy, recorder)


# ----------------------------------------------------------------------------- workflows
def _round_timeout(cfg: Config) -> float | None:
    t = float(cfg.get("round-timeout", 0.0))
    return t if t > 0 else None


def fit_workflow(cfg: Config) -> _Workflow:
    """Return the fit step of a round: SecAgg+ when ``secagg`` is on, else a plain fit."""
    if bool(cfg.get("secagg", False)):
        from flwr.server.workflow import SecAggPlusWorkflow

        p = secagg_params(int(cfg["num-sites"]),
                          clipping_range=float(cfg.get("secagg-clipping-range", 8.0)),
                          max_weight=float(cfg.get("secagg-max-weight", 1000.0)),
                          timeout=_round_timeout(cfg))
        return cast(_Workflow, _checked_secagg(SecAggPlusWorkflow, p))
    return lambda grid, ctx: _plain_round(grid, ctx, "fit", _round_timeout(cfg))


def _checked_secagg(base: type, params: dict[str, Any]) -> Any:
    """Flower's SecAgg+ workflow that ends the run when a site's weight exceeds max_weight.

    After the masked vectors are collected (and before anything is unmasked), a site that
    refused (:func:`check_secagg_weight`) or a reply whose plain ``num_examples`` exceeds
    ``max_weight`` (a site without that check) raises :class:`ConfigError`; otherwise
    SecAgg+ would treat the refusing site as a dropout and aggregate the others.
    """

    class CheckedSecAggPlusWorkflow(base):  # type: ignore[misc, valid-type]
        def collect_masked_vectors_stage(self, grid: Grid, context: LegacyContext,
                                         state: Any) -> bool:
            ok = bool(super().collect_masked_vectors_stage(grid, context, state))
            _check_secagg_round(state, float(self.max_weight))
            return ok

    return CheckedSecAggPlusWorkflow(**params)


def _check_secagg_round(state: Any, max_weight: float) -> None:
    refusals: set[str] = set()  # a set: Flower lists each stage-2 error reply twice
    for failure in state.failures:
        err = failure.args[0] if failure.args else None
        reason = str(getattr(err, "reason", failure))
        if _WEIGHT_REFUSAL in reason:
            refusals.add(reason)
    over = sorted(str(fr.metrics.get("site", "?")) for _, fr in state.legacy_results
                  if fr.num_examples > max_weight)
    if refusals or over:
        e = ConfigError(
            "a site's training set is larger than SecAgg+ max_weight: Flower would clip its "
            "weighted update silently, so the run stops", where="SecAgg+ server",
            expected=f"every site with at most max_weight={max_weight:g} training examples",
            got=f"{len(refusals)} site(s) refused" + (f", too large: {', '.join(over)}"
                                                     if over else ""),
            fix="rerun with secagg_max_weight (run_federated, --secagg-max-weight) at least "
                "the largest site's training-set size")
        for r in sorted(refusals):
            e.add_note(f"site reply: {r}")
        raise e


def evaluate_workflow(cfg: Config) -> _Workflow:
    """Return the evaluate step of a round (every site scores the new global model)."""
    return lambda grid, ctx: _plain_round(grid, ctx, "evaluate", _round_timeout(cfg))


def _plain_round(grid: Grid, context: LegacyContext, kind: str, timeout: float | None) -> None:
    # flwr's default_fit/evaluate_workflow without a timeout (a dead site would block the
    # round forever); otherwise the same steps.
    import flwr.compat.common.recorddict_compat as compat
    from flwr.app import Message
    from flwr.app.message_type import MessageType
    from flwr.common import Code
    from flwr.server.workflow.constant import MAIN_CONFIGS_RECORD, MAIN_PARAMS_RECORD, Key

    rnd = int(cast(int, context.state.config_records[MAIN_CONFIGS_RECORD][Key.CURRENT_ROUND]))
    params = compat.arrayrecord_to_parameters(context.state.array_records[MAIN_PARAMS_RECORD],
                                              keep_input=True)
    strategy = context.strategy
    if kind == "fit":
        instructions = strategy.configure_fit(rnd, params, context.client_manager)
        def to_content(ins: Any) -> Any:
            return compat.fitins_to_recorddict(ins, True)

        mtype = MessageType.TRAIN
    else:
        instructions = strategy.configure_evaluate(  # type: ignore[assignment]
            rnd, params, context.client_manager)
        def to_content(ins: Any) -> Any:
            return compat.evaluateins_to_recorddict(ins, True)

        mtype = MessageType.EVALUATE
    if not instructions:
        return
    proxies = {proxy.node_id: proxy for proxy, _ in instructions}
    out = [Message(content=to_content(ins), dst_node_id=proxy.node_id, message_type=mtype,
                   group_id=str(rnd)) for proxy, ins in instructions]
    replies = list(grid.send_and_receive(out, timeout=timeout))
    results: list[Any] = []
    failures: list[Any] = []
    for msg in replies:
        if not msg.has_content():
            failures.append(Exception(msg.error))
            continue
        proxy = proxies[msg.metadata.src_node_id]
        res = (compat.recorddict_to_fitres(msg.content, False) if kind == "fit"
               else compat.recorddict_to_evaluateres(msg.content))
        (results if res.status.code == Code.OK else failures).append((proxy, res))
    failures += [TimeoutError("no reply")] * (len(out) - len(replies))
    if kind == "fit":
        agg, metrics = strategy.aggregate_fit(rnd, results, failures)
        if agg is not None:
            context.state.array_records[MAIN_PARAMS_RECORD] = compat.parameters_to_arrayrecord(
                agg, True)
            context.history.add_metrics_distributed_fit(server_round=rnd, metrics=metrics)
    else:
        loss, metrics = strategy.aggregate_evaluate(rnd, results, failures)
        if loss is not None:
            context.history.add_loss_distributed(server_round=rnd, loss=loss)


# ---------------------------------------------------------------------------------- mods
def privacy_mod(msg: Message, ctxt: Context, call_next: Callable[..., Message]) -> Message:
    """Client mod: SecAgg+ when the server runs it, DP clipping when the server asks for it.

    Training messages carrying SecAgg+ stage configs go through ``secaggplus_mod``; fit
    instructions carrying a clipping norm go through ``fixedclipping_mod`` (inside the SecAgg+
    masking, so the masked vector is the clipped one).  Evaluate messages pass unchanged.
    """
    from flwr.app.message_type import MessageType

    if msg.metadata.message_type != MessageType.TRAIN:
        return call_next(msg, ctxt)
    from flwr.client.mod import fixedclipping_mod, secaggplus_mod
    from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS
    from flwr.supercore.differential_privacy import KEY_CLIPPING_NORM

    def clip_if_asked(m: Message, c: Context) -> Message:
        fit_cfg = m.content.config_records.get("fitins.config")
        if fit_cfg is not None and KEY_CLIPPING_NORM in fit_cfg:
            return fixedclipping_mod(m, c, call_next)
        return call_next(m, c)

    def fit_checked(m: Message, c: Context) -> Message:
        # Called by secaggplus_mod in its masking stage: refuse before Flower scales by
        # num_examples / max_weight and clips (check_secagg_weight).
        from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_STATE
        from flwr.compat.common.recorddict_compat import recorddict_to_fitres

        out = clip_if_asked(m, c)
        if not out.has_error():
            fitres = recorddict_to_fitres(out.content, keep_input=True)
            max_weight = float(cast(float, c.state.config_records[RECORD_KEY_STATE][
                "max_weight"]))
            check_secagg_weight(int(fitres.num_examples), max_weight,
                                site=str(fitres.metrics.get("site", "?")))
        return out

    if RECORD_KEY_CONFIGS in msg.content.config_records:
        return secaggplus_mod(msg, ctxt, fit_checked)
    return clip_if_asked(msg, ctxt)


def _now() -> float:
    return time.perf_counter()
