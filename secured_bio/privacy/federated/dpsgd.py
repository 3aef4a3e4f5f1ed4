"""Local differential privacy for federated training: DP-SGD at every site (record level).

The federation layer offers two kinds of differential privacy; they protect different units
and answer different questions.

* **Central DP** (``run_federated(dp_epsilon=...)``, :mod:`secured_bio.privacy.federated.dp`):
  each site clips its whole model update, the *server* adds Gaussian noise to the average
  (McMahan et al., ICLR 2018).  Guarantee: **site level** -- the released global models hardly
  change if one site's entire data set is replaced.  The server is trusted to add the noise;
  it sees each clipped update unless SecAgg+ hides them.
* **Local DP-SGD** (``run_federated(local_dp_epsilon=...)``, this module): each site trains
  with DP-SGD (Abadi et al., "Deep learning with differential privacy", CCS 2016): every
  training record's gradient is clipped to L2 norm ``max_grad_norm``, Gaussian noise of
  standard deviation ``noise_multiplier * max_grad_norm`` is added to the sum of a batch, and
  batches are drawn by Poisson sampling with rate ``q``.  Guarantee: **record level** -- every
  model a site sends (hence the global model, by post-processing) hardly changes if one of the
  site's training records is added or removed.  No trust in the server is needed; the noise is
  added before anything leaves the site.

Budget over rounds.  ``epsilon`` is each site's *total* budget for the whole run.  In a
deployment every round's training runs in a new process, so no accountant state survives
between rounds; instead the noise multiplier is computed once for the whole planned run --
``steps = rounds x epochs x batches_per_epoch`` Poisson-sampled steps at rate
``q = 1 / batches_per_epoch`` -- with opacus's ``get_noise_multiplier`` (RDP accountant).  It
depends only on the run config and the site's number of training rows, so every round of a
site uses the same noise, and after round ``r`` the site reports the epsilon of the
``r x epochs x batches_per_epoch`` steps done so far (RDP composition, Mironov 2017; the
(epsilon, delta) conversion of Balle et al. 2020 as opacus implements it; Rényi orders
:data:`RDP_ALPHAS`).  After the last
round it is at most ``epsilon``.  A site that skipped a round is counted as if it had trained
(an upper bound).  Sites with fewer rows have a larger ``q`` and get more noise for the same
budget, so each site reports its own epsilon and noise multiplier.

Training uses opacus's per-sample gradients (``GradSampleModule``) and its ``DPOptimizer``
(per-record clipping, noise, scaling by the expected batch size) with that noise
multiplier, Adam on the privatised gradients (post-processing), binary cross-entropy on the
model's logit as :meth:`FederatedTask.train` does.  The wrapper's hooks and per-sample
gradients are removed afterwards, so the caller's module keeps its class, parameter names
and ``state_dict`` keys.

Randomness.  Both random parts of DP-SGD -- the Poisson sampling of every batch and the
Gaussian noise -- come from :class:`secured_bio.privacy.dp_random.DPRandom` (the OS CSPRNG,
Box-Muller, the sum-of-4-Gaussians mitigation of opacus's ``secure_mode`` against
floating-point attacks), never from the run's seed: opacus's own ``secure_mode`` needs
torchcsprng, so the optimizer's ``add_noise`` is overridden instead.  Two runs with the same
inputs and seed give different models.  ``insecure_dp_seed`` (tests only) makes them
reproducible, and the result then says the epsilon does not hold.

What epsilon covers: the model parameters the site sends after each round (record level,
add/remove one training record).  Not covered: the site's number of batches per epoch
``ceil(n_train / batch_size)``, which sets the sampling rate, noise multiplier, step count and
epsilon the site reports (the federation layer sends no exact example count, loss or timing
under DP; see :mod:`secured_bio.privacy.federated.apps`), and anything computed on the site's
test rows (evaluation metrics), which DP-SGD does not touch.
"""

from __future__ import annotations

import contextlib
import functools
import math
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import numpy as np

from secured_bio.errors import ConfigError, InputError
from secured_bio.privacy.dp_random import DPRandom
from secured_bio.privacy.federated.data import TrainResult

if TYPE_CHECKING:
    import torch

    from secured_bio.privacy.federated.data import SiteData
    from secured_bio.privacy.federated.task import FederatedTask

__all__ = ["train_dpsgd", "dpsgd_plan", "dpsgd_epsilon", "LOCAL_DP_ACCOUNTANT", "RDP_ALPHAS"]

#: Name of the accountant, as written in results.
LOCAL_DP_ACCOUNTANT = "opacus RDP"

#: Rényi orders of the accountant.  Opacus's default grid has 99 fractional orders in
#: (1, 11), each an expensive series under subsampling (about 2 ms, so ~1 s per epsilon and
#: ~15 s per noise search on a busy 2-core machine); this grid keeps 7 fractional orders and
#: every integer order.  Any grid gives a valid upper bound on epsilon (the minimum over the
#: orders it holds); this one is at most a few percent looser for epsilon in [0.1, 100].
RDP_ALPHAS: tuple[float, ...] = (1.25, 1.5, 1.75, 2.0, 2.5, 3.0, 3.5, 4.5, *range(5, 64),
                                 80.0, 128.0, 256.0)

_WHERE = "local DP-SGD"


def _check(epsilon: float, delta: float, max_grad_norm: float) -> None:
    def bad(v: Any) -> bool:
        return isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)

    if bad(epsilon) or epsilon <= 0:
        raise ConfigError("local DP epsilon must be a positive number", where=_WHERE,
                          expected="epsilon > 0", got=f"epsilon={epsilon!r}",
                          fix="pass e.g. local_dp_epsilon=8")
    if bad(delta) or not 0 < delta < 1:
        raise ConfigError("local DP delta must lie in (0, 1)", where=_WHERE,
                          expected="0 < delta < 1", got=f"delta={delta!r}",
                          fix="pass a delta below 1/number of records, e.g. 1e-5")
    if bad(max_grad_norm) or max_grad_norm <= 0:
        raise ConfigError("max_grad_norm must be a positive number", where=_WHERE,
                          expected="max_grad_norm > 0", got=f"max_grad_norm={max_grad_norm!r}",
                          fix="pass the per-record gradient bound, e.g. 1.0")


@contextlib.contextmanager
def _alpha_edge_ok() -> Iterator[None]:
    """Silence opacus's "optimal order is the smallest/largest alpha" warning.

    It appears at extreme budgets (epsilon of hundreds, or tiny ones): the RDP bound at the
    edge of opacus's alpha grid is still a valid upper bound on epsilon, only not the tightest;
    results report that (conservative) epsilon.
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Optimal order is the (smallest|largest) "
                                r"alpha", category=UserWarning)
        yield


def _check_int(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}", where=_WHERE,
                          expected=f"{name} >= {minimum}", got=f"{name}={value!r}")
    return int(value)


def dpsgd_plan(
    n_train: int,
    *,
    epsilon: float,
    delta: float,
    batch_size: int,
    epochs: int,
    rounds: int = 1,
) -> dict[str, Any]:
    """Plan the noise of a site's DP-SGD for the whole run (the same in every round).

    Parameters
    ----------
    n_train
        The site's number of training rows.
    epsilon, delta
        The site's total (epsilon, delta) budget over all rounds.
    batch_size
        Expected batch size; ``batches_per_epoch = ceil(n_train / batch_size)`` and the
        Poisson sampling rate is ``1 / batches_per_epoch`` (as opacus derives it).
    epochs, rounds
        Local epochs per round and number of rounds.

    Returns
    -------
    dict
        ``noise_multiplier``, ``sample_rate``, ``steps_per_round``, ``total_steps``.

    Raises
    ------
    ConfigError
        If a parameter is out of range, or the budget is too small for any noise multiplier
        opacus accepts.

    Examples
    --------
    >>> p = dpsgd_plan(100, epsilon=4.0, delta=1e-5, batch_size=100, epochs=2, rounds=3)
    >>> p["sample_rate"], p["steps_per_round"], p["total_steps"]
    (1.0, 2, 6)
    >>> dpsgd_epsilon(p["noise_multiplier"], delta=1e-5, sample_rate=1.0, steps=6) <= 4.0
    True
    """
    _check(epsilon, delta, 1.0)
    n = _check_int("n_train", n_train, 1)
    batch = _check_int("batch_size", batch_size, 1)
    epochs = _check_int("epochs", epochs, 1)
    rounds = _check_int("rounds", rounds, 1)
    per_epoch = math.ceil(n / batch)
    q = 1.0 / per_epoch
    total = rounds * epochs * per_epoch
    try:
        sigma = _noise_multiplier(float(epsilon), float(delta), q, total)
    except ValueError as e:  # opacus: "The privacy budget is too low."
        raise ConfigError("the local DP budget is too small", where=_WHERE,
                          expected="a budget reachable with a finite noise multiplier",
                          got=f"epsilon={epsilon!r}, delta={delta!r}, {total} steps",
                          fix="raise epsilon or delta, or train fewer rounds/epochs") from e
    return {"noise_multiplier": sigma, "sample_rate": q, "steps_per_round": epochs * per_epoch,
            "total_steps": total}


@functools.lru_cache(maxsize=64)
def _noise_multiplier(epsilon: float, delta: float, sample_rate: float, steps: int) -> float:
    # Cached: the RDP binary search takes ~1 s, and every round of a site asks the same.
    from opacus.accountants.utils import get_noise_multiplier

    with _alpha_edge_ok():
        return float(get_noise_multiplier(target_epsilon=epsilon, target_delta=delta,
                                          sample_rate=sample_rate, steps=steps,
                                          accountant="rdp", alphas=list(RDP_ALPHAS)))


def dpsgd_epsilon(noise_multiplier: float, *, delta: float, sample_rate: float,
                  steps: int) -> float:
    """Epsilon (RDP accountant, orders :data:`RDP_ALPHAS`) of ``steps`` subsampled Gaussian steps.

    Raises
    ------
    ConfigError
        If the noise multiplier is not positive or delta not in (0, 1).

    Examples
    --------
    >>> dpsgd_epsilon(1.0, delta=1e-5, sample_rate=0.1, steps=0)
    0.0
    >>> dpsgd_epsilon(1.0, delta=1e-5, sample_rate=1.0, steps=4) > 0
    True
    """
    _check(1.0, delta, 1.0)
    if isinstance(noise_multiplier, bool) or not (isinstance(noise_multiplier, int | float)
                                                  and noise_multiplier > 0):
        raise ConfigError("noise multiplier must be positive", where=_WHERE,
                          expected="> 0", got=f"{noise_multiplier!r}")
    if steps <= 0:
        return 0.0
    from opacus.accountants import RDPAccountant

    acc = RDPAccountant()
    acc.history = [(float(noise_multiplier), float(sample_rate), int(steps))]
    with _alpha_edge_ok():
        return float(acc.get_epsilon(delta=float(delta), alphas=list(RDP_ALPHAS)))


def _check_model(model: torch.nn.Module) -> None:
    from opacus.validators import ModuleValidator

    errors = ModuleValidator.validate(model, strict=False)
    if errors:
        kinds = sorted({type(e).__name__ for e in errors})
        raise ConfigError("the model has layers DP-SGD cannot train", where=_WHERE,
                          expected="layers with per-record gradients (no BatchNorm...)",
                          got=f"{len(errors)} problems ({', '.join(kinds)})",
                          fix="replace BatchNorm with GroupNorm/LayerNorm (opacus "
                              "ModuleValidator.fix) in the task's build_model")


@functools.lru_cache(maxsize=1)
def _secure_optimizer_class() -> type:
    """Opacus ``DPOptimizer`` whose noise comes from :class:`DPRandom` (not torch's RNG)."""
    from opacus.optimizers import DPOptimizer
    from opacus.optimizers.optimizer import _check_processed_flag, _mark_as_processed

    class SecureNoiseDPOptimizer(DPOptimizer):  # type: ignore[misc]
        """``DPOptimizer.add_noise`` with noise from the OS CSPRNG (opacus 1.6 semantics)."""

        dp_random: DPRandom

        def add_noise(self) -> None:
            std = float(self.noise_multiplier) * float(self.max_grad_norm)
            for p in self.params:
                _check_processed_flag(p.summed_grad)
                noise = self.dp_random.normal_like(p.summed_grad, std)
                p.grad = (p.summed_grad + noise).view_as(p)
                _mark_as_processed(p.summed_grad)

    return SecureNoiseDPOptimizer


def train_dpsgd(
    task: FederatedTask,
    model: torch.nn.Module,
    data: SiteData,
    *,
    epochs: int,
    lr: float,
    epsilon: float,
    delta: float,
    max_grad_norm: float,
    batch_size: int | None = None,
    seed: int = 0,
    rounds: int = 1,
    server_round: int = 1,
    insecure_dp_seed: int | None = None,
) -> tuple[TrainResult, float]:
    """Train ``model`` in place with DP-SGD on the site's training rows (record-level DP).

    Parameters
    ----------
    task
        The federated task (its ``weight_decay`` and ``batch_size`` parameters are used).
    model
        The model, trained in place; its class and ``state_dict`` keys are unchanged.
    data
        The site's data; only the training rows are used.
    epochs, lr
        Local epochs in this round, and Adam's learning rate.
    epsilon, delta
        The site's total budget over all ``rounds`` (see the module docstring).
    max_grad_norm
        L2 bound of each record's gradient.
    batch_size
        Expected (Poisson) batch size; None takes ``task.params['batch_size']`` (or 32).
    seed
        Accepted for the :meth:`FederatedTask.train_private` signature; DP-SGD has no
        non-private random part, and the seed never drives the sampling or the noise.
    rounds, server_round
        Planned rounds of the run and the 1-based current round (for accounting).
    insecure_dp_seed
        Tests only: seed the Poisson sampling and the noise (reproducible, so **the epsilon
        does not hold**; the metrics then carry ``insecure_dp = 1``).  Default None: OS
        CSPRNG (:mod:`secured_bio.privacy.dp_random`).

    Returns
    -------
    tuple
        ``(TrainResult, epsilon_spent)``: the result's ``metrics`` hold ``noise_multiplier``,
        ``sample_rate``, ``expected_batch_size``, ``steps`` (done so far) and ``epsilon``;
        ``epsilon_spent`` is the site's epsilon after ``server_round`` rounds.

    Raises
    ------
    ConfigError
        If a privacy or training parameter is out of range, ``server_round > rounds``, or
        the model has layers opacus cannot train (BatchNorm).
    InputError
        If the site has no training rows.

    Examples
    --------
    >>> import torch
    >>> from secured_bio.privacy.federated import SiteRef
    >>> from secured_bio.testing import LinearToyTask
    >>> task = LinearToyTask(n_features=3, n_per_site=80, seed=1)
    >>> data = task.load_site(SiteRef(0, 2))
    >>> model = task.build_model()
    >>> res, eps = train_dpsgd(task, model, data, epochs=2, lr=0.05, epsilon=2.0, delta=1e-5,
    ...                        max_grad_norm=1.0, batch_size=60)
    >>> res.num_examples, eps <= 2.0, list(model.state_dict())
    (60, True, ['weight', 'bias'])
    """
    import torch

    _check(epsilon, delta, max_grad_norm)
    if not (isinstance(lr, int | float) and lr > 0 and math.isfinite(lr)):
        raise ConfigError("lr must be a positive number", where=_WHERE, got=f"lr={lr!r}")
    rounds = _check_int("rounds", rounds, 1)
    server_round = _check_int("server_round", server_round, 1)
    if server_round > rounds:
        raise ConfigError("server_round is past the planned rounds", where=_WHERE,
                          expected=f"server_round <= rounds={rounds}",
                          got=f"server_round={server_round}",
                          fix="plan the budget for every round the run will do")
    noise = DPRandom(insecure_seed=insecure_dp_seed)
    batch = int(batch_size if batch_size is not None else task.params.get("batch_size", 32))
    n = int(len(data.y_train))
    if n == 0:
        raise InputError("no training rows for DP-SGD", where=f"site {data.site}",
                         expected="at least 1 training row", got="0",
                         fix="give the site training data or leave it out")
    plan = dpsgd_plan(n, epsilon=epsilon, delta=delta, batch_size=batch, epochs=epochs,
                      rounds=rounds)
    sigma, q = plan["noise_multiplier"], plan["sample_rate"]
    per_epoch = plan["steps_per_round"] // int(epochs)
    prior = (server_round - 1) * plan["steps_per_round"]
    _check_model(model)

    from opacus import GradSampleModule

    x = torch.as_tensor(np.asarray(data.x_train), dtype=torch.float32)
    y = torch.as_tensor(np.asarray(data.y_train), dtype=torch.float32).reshape(-1)
    opt = torch.optim.Adam(model.parameters(), lr=float(lr),
                           weight_decay=float(task.params.get("weight_decay", 0.0)))
    loss_fn = torch.nn.BCEWithLogitsLoss()
    model.train()
    total, seen = 0.0, 0
    with warnings.catch_warnings():
        # opacus's per-sample hooks are full backward hooks; on the first layer the inputs
        # (data) need no gradient, which torch reports; the per-sample gradients are right.
        warnings.filterwarnings("ignore", message=r"Full backward hook is firing when "
                                r"gradients are computed with respect to module outputs")
        dp_model = GradSampleModule(model)
        # as opacus's make_private: expected batch = n * q, mean loss scaled by it
        dp_opt = _secure_optimizer_class()(
            opt, noise_multiplier=sigma, max_grad_norm=float(max_grad_norm),
            expected_batch_size=int(n * q), loss_reduction="mean")
        dp_opt.dp_random = noise
        try:
            for _ in range(int(epochs)):
                for _ in range(per_epoch):
                    # Poisson sampling (each row independently with rate q) from the secure
                    # source, as opacus's UniformWithReplacementSampler does with torch's RNG;
                    # an empty batch still takes a noisy step.
                    idx = torch.as_tensor(np.flatnonzero(noise.poisson_mask(n, q)))
                    xb, yb = x[idx], y[idx]
                    dp_opt.zero_grad()
                    loss = loss_fn(dp_model(xb).reshape(-1), yb)
                    loss.backward()
                    dp_opt.step()
                    if len(yb):  # an empty batch's loss is NaN
                        total += float(loss.detach()) * len(yb)
                        seen += len(yb)
        finally:
            dp_model._close()  # remove opacus's hooks and per-sample gradients
            for p in model.parameters():
                p.grad = None
                for attr in ("summed_grad", "grad_sample", "_forward_counter"):
                    if hasattr(p, attr):
                        delattr(p, attr)
    steps = prior + plan["steps_per_round"]
    eps = dpsgd_epsilon(sigma, delta=float(delta), sample_rate=q, steps=steps)
    metrics = {"noise_multiplier": sigma, "sample_rate": q,
               "expected_batch_size": float(int(n * q)), "steps": float(steps),
               "epsilon": eps}
    if not noise.secure:
        metrics["insecure_dp"] = 1.0
    return TrainResult(n, total / seen if seen else float("nan"), metrics), eps
