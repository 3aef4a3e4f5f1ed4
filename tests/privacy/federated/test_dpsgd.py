"""Local DP-SGD (record-level DP) at each site: accounting, model compatibility, wiring."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from opacus.accountants import RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from sklearn.metrics import roc_auc_score

from secured_bio.errors import ConfigError, InputError
from secured_bio.privacy.federated import SiteData, SiteRef, run_federated
from secured_bio.privacy.federated.apps import build_global_model
from secured_bio.privacy.federated.dpsgd import (
    RDP_ALPHAS,
    dpsgd_epsilon,
    dpsgd_plan,
    train_dpsgd,
)
from secured_bio.testing import LinearToyTask

TASK = "secured_bio.testing:LinearToyTask"
PARAMS = {"n_features": 4, "n_per_site": 80, "seed": 3}


def _opacus_reference(n: int, batch: int, epochs: int, rounds: int, done_rounds: int,
                      epsilon: float, delta: float) -> tuple[float, float]:
    """Noise multiplier and epsilon as opacus itself derives them, step by step."""
    q = 1 / math.ceil(n / batch)  # make_private_with_epsilon: sample_rate = 1/len(loader)
    with warnings.catch_warnings():
        # opacus's binary search visits noise levels whose best RDP order lies at the edge
        # of its alpha grid and says so; the bound is still valid (and the same in the code).
        warnings.filterwarnings("ignore", message="Optimal order is the", category=UserWarning)
        sigma = get_noise_multiplier(target_epsilon=epsilon, target_delta=delta,
                                     sample_rate=q, steps=rounds * epochs * math.ceil(n / batch),
                                     accountant="rdp", alphas=list(RDP_ALPHAS))
        acc = RDPAccountant()
        for _ in range(done_rounds * epochs * math.ceil(n / batch)):
            acc.step(noise_multiplier=sigma, sample_rate=q)  # as DPOptimizer.step does
        return float(sigma), float(acc.get_epsilon(delta=delta, alphas=list(RDP_ALPHAS)))


def test_run_federated__local_dp_inprocess_reports_each_site_within_target(tmp_path):
    task = LinearToyTask(**PARAMS)
    res = run_federated(TASK, PARAMS, num_sites=2, rounds=2, engine="inprocess",
                        work_dir=tmp_path, local_dp_epsilon=3.0, local_dp_delta=1e-5,
                        local_dp_max_grad_norm=1.0, local_dp_batch_size=20, lr=0.05)
    assert res.dp is not None and res.dp["mode"] == "local-dpsgd"
    assert res.dp["level"] == "record"
    assert len(res.dp["per_site"]) == 2
    assert all(r["failures"] == 0 for r in res.rounds)
    for site in res.dp["per_site"]:
        n = len(task.load_site(SiteRef(int(site["site"][4:]) - 1, 2)).y_train)
        sigma, eps = _opacus_reference(n, 20, 1, 2, 2, 3.0, 1e-5)
        assert site["noise_multiplier"] == pytest.approx(sigma, rel=1e-12)
        assert site["epsilon"] == pytest.approx(eps, rel=1e-9)
        assert site["epsilon"] <= 3.0
    assert res.dp["epsilon"] == max(s["epsilon"] for s in res.dp["per_site"])
    # the global model has the task's architecture: it loads strictly into a fresh model
    model = res.build_model(task)
    assert list(model.state_dict()) == list(task.build_model().state_dict())
    assert np.isfinite(res.rounds[-1]["eval_loss"])


@pytest.mark.parametrize("server_round", [1, 3])
def test_train_dpsgd__epsilon_matches_opacus_accountant_for_steps_done(server_round):
    task = LinearToyTask(**PARAMS)
    data = task.load_site(SiteRef(0, 2))
    n = len(data.y_train)
    res, eps = train_dpsgd(task, task.build_model(), data, epochs=2, lr=0.05, epsilon=4.0,
                           delta=1e-5, max_grad_norm=1.0, batch_size=15, seed=1, rounds=3,
                           server_round=server_round)
    sigma, ref_eps = _opacus_reference(n, 15, 2, 3, server_round, 4.0, 1e-5)
    assert res.metrics["noise_multiplier"] == pytest.approx(sigma, rel=1e-12)
    assert eps == pytest.approx(ref_eps, rel=1e-9)
    assert res.metrics["steps"] == server_round * 2 * math.ceil(n / 15)
    assert eps <= 4.0
    # the same noise every round: the plan depends only on the run config and n
    assert dpsgd_plan(n, epsilon=4.0, delta=1e-5, batch_size=15, epochs=2,
                      rounds=3)["noise_multiplier"] == res.metrics["noise_multiplier"]


def test_dpsgd_epsilon__grows_with_steps_and_last_round_meets_budget():
    plan = dpsgd_plan(90, epsilon=2.0, delta=1e-6, batch_size=30, epochs=1, rounds=4)
    eps = [dpsgd_epsilon(plan["noise_multiplier"], delta=1e-6,
                         sample_rate=plan["sample_rate"], steps=r * plan["steps_per_round"])
           for r in range(1, 5)]
    assert eps == sorted(eps) and len(set(eps)) == 4
    assert eps[-1] <= 2.0 < eps[-1] + 0.05  # the noise is the smallest reaching the budget


@pytest.mark.parametrize(("sigma", "q", "steps"), [(1.0, 0.25, 24), (3.0, 0.5, 40),
                                                    (0.8, 0.1, 500)])
def test_dpsgd_epsilon__coarser_orders_are_a_valid_bound_close_to_opacus_default(sigma, q,
                                                                                  steps):
    acc = RDPAccountant()
    acc.history = [(sigma, q, steps)]
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Optimal order is the", category=UserWarning)
        default = acc.get_epsilon(delta=1e-5)  # opacus's own, finer grid of orders
    ours = dpsgd_epsilon(sigma, delta=1e-5, sample_rate=q, steps=steps)
    assert default <= ours <= 1.03 * default


def test_train_dpsgd__huge_epsilon_approaches_non_dp_training():
    task = LinearToyTask(n_features=4, n_per_site=400, seed=5, shift=0.0)
    data = task.load_site(SiteRef(0, 1))
    plain = build_global_model(task, 0)
    task.train(plain, data, epochs=10, lr=0.05, seed=0)
    dp = build_global_model(task, 0)
    # noise std is sigma * max_grad_norm: a bound above every per-record gradient norm
    # (|x| * |p - y| < 10 here) clips nothing, and epsilon=1e6 makes sigma tiny
    _, eps = train_dpsgd(task, dp, data, epochs=10, lr=0.05, epsilon=1e6, delta=1e-5,
                         max_grad_norm=10.0, batch_size=32, seed=0)
    tight = build_global_model(task, 0)
    train_dpsgd(task, tight, data, epochs=10, lr=0.05, epsilon=0.2, delta=1e-5,
                max_grad_norm=0.1, batch_size=32, seed=0)
    w_plain, w_dp = plain.weight.detach().numpy().ravel(), dp.weight.detach().numpy().ravel()
    w_tight = tight.weight.detach().numpy().ravel()
    assert eps <= 1e6
    assert np.corrcoef(w_plain, w_dp)[0, 1] > 0.99
    assert np.abs(w_plain - w_dp).max() < 0.15 * np.abs(w_plain).max()
    auc = {name: roc_auc_score(data.y_test, task.predict(m, data.x_test))
           for name, m in (("plain", plain), ("dp", dp), ("tight", tight))}
    assert abs(auc["plain"] - auc["dp"]) < 0.01
    # and strong privacy moves the model away from the non-DP one
    assert np.abs(w_plain - w_tight).max() > np.abs(w_plain - w_dp).max()


def test_train_dpsgd__keeps_module_class_state_dict_keys_and_leaves_no_hooks():
    task = LinearToyTask(**PARAMS)
    data = task.load_site(SiteRef(1, 2))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    train_dpsgd(task, model, data, epochs=1, lr=0.05, epsilon=5.0, delta=1e-5,
                max_grad_norm=1.0, batch_size=60, seed=0)
    assert type(model) is torch.nn.Sequential
    assert list(model.state_dict()) == list(before)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())
    for module in model.modules():
        assert not module._forward_hooks and not module._backward_hooks
        assert not module._forward_pre_hooks
    for p in model.parameters():
        assert p.grad is None and not hasattr(p, "grad_sample") and not hasattr(p, "summed_grad")
    fresh = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    fresh.load_state_dict(model.state_dict(), strict=True)


def test_train_dpsgd__same_seed_different_model_unless_insecure_mode():
    # the DP noise and sampling come from the OS CSPRNG, not from the (public) seed
    task = LinearToyTask(**PARAMS)
    data = task.load_site(SiteRef(0, 2))
    a, b = build_global_model(task, 0), build_global_model(task, 0)
    for m in (a, b):
        torch.manual_seed(0)
        np.random.seed(0)
        train_dpsgd(task, m, data, epochs=1, lr=0.05, epsilon=3.0, delta=1e-5,
                    max_grad_norm=1.0, batch_size=20, seed=7)
    assert not torch.equal(a.weight, b.weight)
    c, d = build_global_model(task, 0), build_global_model(task, 0)
    for m in (c, d):
        res, _ = train_dpsgd(task, m, data, epochs=1, lr=0.05, epsilon=3.0, delta=1e-5,
                             max_grad_norm=1.0, batch_size=20, insecure_dp_seed=7)
    assert torch.equal(c.weight, d.weight) and res.metrics["insecure_dp"] == 1.0


def test_train_dpsgd__noise_has_the_planned_scale():
    # lr-free check: one step of plain SGD on a zero-gradient model shows the noise alone
    task = LinearToyTask(**PARAMS)
    data = task.load_site(SiteRef(0, 2))
    plan = dpsgd_plan(len(data.y_train), epsilon=1.0, delta=1e-5, batch_size=60, epochs=1)
    from secured_bio.privacy.dp_random import DPRandom
    from secured_bio.privacy.federated.dpsgd import _secure_optimizer_class

    p = torch.nn.Parameter(torch.zeros(20_000))
    p.grad_sample = torch.zeros((3, 20_000))
    opt = _secure_optimizer_class()(torch.optim.SGD([p], lr=1.0), noise_multiplier=
                                    plan["noise_multiplier"], max_grad_norm=2.0,
                                    expected_batch_size=1)
    opt.dp_random = DPRandom()
    opt.step()
    assert float(p.detach().std()) == pytest.approx(plan["noise_multiplier"] * 2.0, rel=0.03)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"epsilon": 0.0}, "local DP epsilon must be a positive number"),
    ({"epsilon": math.inf}, "local DP epsilon must be a positive number"),
    ({"delta": 1.0}, "local DP delta must lie in"),
    ({"max_grad_norm": -1.0}, "max_grad_norm must be a positive number"),
    ({"lr": 0.0}, "lr must be a positive number"),
    ({"rounds": 2, "server_round": 3}, "server_round is past the planned rounds"),
    ({"epsilon": 1e-4, "delta": 1e-9}, "the local DP budget is too small"),
])
def test_train_dpsgd__bad_parameters_raise(kwargs, match):
    task = LinearToyTask(**PARAMS)
    data = task.load_site(SiteRef(0, 2))
    args = {"epochs": 1, "lr": 0.05, "epsilon": 1.0, "delta": 1e-5, "max_grad_norm": 1.0,
            "batch_size": 60, **kwargs}
    with pytest.raises(ConfigError, match=match):
        train_dpsgd(task, task.build_model(), data, **args)


def test_train_dpsgd__batchnorm_model_raises():
    task = LinearToyTask(**PARAMS)
    data = task.load_site(SiteRef(0, 2))
    model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4),
                                torch.nn.Linear(4, 1))
    with pytest.raises(ConfigError, match="the model has layers DP-SGD cannot train"):
        train_dpsgd(task, model, data, epochs=1, lr=0.05, epsilon=1.0, delta=1e-5,
                    max_grad_norm=1.0, batch_size=60)


def test_train_dpsgd__site_without_training_rows_raises():
    task = LinearToyTask(**PARAMS)
    empty = SiteData("site9", np.zeros((0, 4), np.float32), np.zeros(0, np.float32),
                     np.zeros((2, 4), np.float32), np.zeros(2, np.float32))
    with pytest.raises(InputError, match="no training rows for DP-SGD"):
        train_dpsgd(task, task.build_model(), empty, epochs=1, lr=0.05, epsilon=1.0,
                    delta=1e-5, max_grad_norm=1.0)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"local_dp_epsilon": -1.0}, "local DP epsilon must be a positive number"),
    ({"local_dp_epsilon": 1.0, "local_dp_delta": 0.0}, "local DP delta must lie in"),
    ({"local_dp_epsilon": 1.0, "local_dp_max_grad_norm": 0.0},
     "max_grad_norm must be a positive number"),
    ({"local_dp_epsilon": 1.0, "local_dp_batch_size": 0}, "local_dp_batch_size must be"),
    ({"local_dp_epsilon": 1.0, "dp_epsilon": 1.0}, "central and local DP cannot be combined"),
    ({"local_dp_epsilon": 1.0, "strategy": "fedprox"}, "local DP-SGD does not support FedProx"),
])
def test_run_federated__bad_local_dp_options_raise(tmp_path, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        run_federated(TASK, PARAMS, num_sites=3, rounds=1, engine="inprocess",
                      work_dir=tmp_path, **kwargs)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"n_train": 0}, "n_train must be an integer >= 1"),
    ({"batch_size": 0}, "batch_size must be an integer >= 1"),
    ({"epochs": 0}, "epochs must be an integer >= 1"),
])
def test_dpsgd_plan__bad_counts_raise(kwargs, match):
    args = {"n_train": 10, "epsilon": 1.0, "delta": 1e-5, "batch_size": 5, "epochs": 1,
            **kwargs}
    n = args.pop("n_train")
    with pytest.raises(ConfigError, match=match):
        dpsgd_plan(n, **args)


def test_dpsgd_epsilon__non_positive_noise_raises():
    with pytest.raises(ConfigError, match="noise multiplier must be positive"):
        dpsgd_epsilon(0.0, delta=1e-5, sample_rate=0.5, steps=3)


def test_dpsgd__does_not_import_the_task_module_at_run_time() -> None:
    # task.py imports dpsgd (lazily, in train_private); dpsgd must not import task back.
    import ast
    import inspect

    import secured_bio.privacy.federated.dpsgd as dpsgd_module

    tree = ast.parse(inspect.getsource(dpsgd_module))
    type_only = {id(n) for node in ast.walk(tree) if isinstance(node, ast.If)
                 and isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"
                 for n in ast.walk(node)}
    runtime = [n.module for n in ast.walk(tree)
               if isinstance(n, ast.ImportFrom) and id(n) not in type_only]
    assert "secured_bio.privacy.federated.task" not in runtime
