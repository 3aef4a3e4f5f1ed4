"""Federation layer on the in-process engine: aggregation, SecAgg+, FedProx, DP, failures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from secured_bio.errors import ConfigError
from secured_bio.privacy.federated import (
    FederatedResult,
    SiteRef,
    dp_report,
    epsilon_spent,
    noise_multiplier_for,
    run_federated,
    secagg_params,
)
from secured_bio.privacy.federated.apps import build_global_model, get_state, local_seed
from secured_bio.testing import LinearToyTask

TASK = "secured_bio.testing:LinearToyTask"
PARAMS = {"n_features": 4, "n_per_site": 80, "seed": 3}


def _run(tmp_path, name="run", **kw) -> FederatedResult:
    kw.setdefault("num_sites", 3)
    kw.setdefault("rounds", 2)
    return run_federated(TASK, PARAMS, engine="inprocess", work_dir=tmp_path / name, **kw)


def _max_diff(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    return max(float(np.abs(x - y).max()) for x, y in zip(a, b, strict=True))


def _plain_fedavg(rounds: int, num_sites: int, *, mu: float = 0.0, lr: float = 0.01,
                  seed: int = 0) -> list[np.ndarray]:
    """Reference: FedAvg written directly in torch, without Flower."""
    task = LinearToyTask(**PARAMS)
    state = get_state(build_global_model(task, seed))
    sites = [task.load_site(SiteRef(i, num_sites)) for i in range(num_sites)]
    for rnd in range(1, rounds + 1):
        models, weights = [], []
        for i, data in enumerate(sites):
            model = task.build_model()
            model.load_state_dict({k: torch.as_tensor(v) for k, v in
                                   zip(model.state_dict(), state, strict=True)})
            res = task.train(model, data, epochs=1, lr=lr, proximal_mu=mu,
                             seed=local_seed(seed, rnd, i))
            models.append(get_state(model))
            weights.append(res.num_examples)
        w = np.asarray(weights, dtype=float) / sum(weights)
        state = [sum(wi * m[j] for wi, m in zip(w, models, strict=True))
                 for j in range(len(state))]
    return state


def test_fedavg__equals_plain_torch_reference(tmp_path):
    res = _run(tmp_path)
    assert _max_diff(res.state, _plain_fedavg(2, 3)) < 1e-6
    assert [r["num_clients"] for r in res.rounds] == [3, 3]
    assert [r["failures"] for r in res.rounds] == [0, 0]
    assert sorted(s["site"] for s in res.per_site) == ["site1", "site2", "site3"]


def test_per_site_metrics__match_sklearn_on_final_model(tmp_path):
    from sklearn.metrics import log_loss, roc_auc_score

    res = _run(tmp_path)
    model = res.build_model()
    task = LinearToyTask(**PARAMS)
    for i, row in enumerate(res.per_site):
        data = task.load_site(SiteRef(i, 3))
        p = task.predict(model, data.x_test)
        assert row["num_test"] == len(data.y_test)
        assert row["auroc"] == pytest.approx(roc_auc_score(data.y_test, p), abs=1e-9)
        assert row["loss"] == pytest.approx(log_loss(data.y_test, p), abs=1e-6)
    # round-level metrics are the test-size-weighted means of the site metrics
    n = np.array([r["num_test"] for r in res.per_site], dtype=float)
    auc = np.array([r["auroc"] for r in res.per_site])
    assert res.rounds[-1]["eval_auroc"] == pytest.approx(float(n @ auc / n.sum()))


def test_results__written_with_format_version(tmp_path):
    _run(tmp_path, rounds=1)
    doc = json.loads((tmp_path / "run" / "results" / "results.json").read_text())
    assert (doc["format"], doc["version"]) == ("secured_bio.federated_results", 1)
    assert not list((tmp_path / "run" / "results").glob(".*.tmp"))


def test_secagg__equals_fedavg_within_quantization_tolerance(tmp_path):
    plain = _run(tmp_path, "plain")
    # clipping range 1 and max weight = the largest site's training rows (60): the
    # quantization step is 2 * 1 / 2**22 ~ 4.8e-7 per site; 1e-5 leaves a 20x margin.
    sec = _run(tmp_path, "secagg", secagg=True, secagg_clipping_range=1.0,
               secagg_max_weight=60)
    assert max(abs(float(v).__abs__()) for a in plain.state for v in a.ravel()) < 1.0
    assert _max_diff(plain.state, sec.state) < 1e-5
    assert sec.secagg is not None and sec.secagg["num_shares"] == 3
    assert [r["num_clients"] for r in sec.rounds] == [3, 3]


def test_secagg__site_larger_than_max_weight_stops_the_run(tmp_path):
    # Every site trains on 60 rows.  With max_weight 20 Flower's secaggplus_mod scales each
    # site's parameters by 60/20 = 3 and then clips them to +-1: the run used to finish with
    # an aggregate far from FedAvg (only a warning in the sites' logs).  Now each site
    # refuses and the server stops the run, naming the option, not the sites' sizes.
    with pytest.raises(ConfigError, match="larger than SecAgg\\+ max_weight") as exc:
        _run(tmp_path, "secagg", rounds=1, secagg=True, secagg_clipping_range=1.0,
             secagg_max_weight=20)
    text = "\n".join([str(exc.value), *getattr(exc.value, "__notes__", [])])
    assert "secagg_max_weight" in text and "3 site(s) refused" in text
    assert "SecAgg+ at site site1" in text
    assert "60" not in text


def test_secagg__max_weight_equal_to_largest_site_is_accepted(tmp_path):
    res = _run(tmp_path, "secagg", rounds=1, secagg=True, secagg_max_weight=60)
    assert [r["num_clients"] for r in res.rounds] == [1 * 3]


def test_secagg__below_reconstruction_threshold_skips_the_round(tmp_path, monkeypatch):
    # Two of three sites fail during SecAgg+ masking: one survivor is below the threshold
    # (2).  Flower halts that round's secure aggregation (nothing is unmasked) and leaves
    # the model unchanged; the round records no client and three failures.
    from secured_bio.privacy.federated import apps

    def fail(cfg, partition_id, server_round):
        if server_round == 1 and partition_id in (0, 1):
            raise RuntimeError("injected site failure")

    monkeypatch.setattr(apps, "_maybe_fail", fail)
    res = _run(tmp_path, "secagg", rounds=1, secagg=True, secagg_max_weight=60)
    assert [r["num_clients"] for r in res.rounds] == [0]
    assert [r["failures"] for r in res.rounds] == [3]
    assert _max_diff(res.state, get_state(build_global_model(LinearToyTask(**PARAMS), 0))) == 0


def test_fedprox__mu_zero_equals_fedavg_and_mu_positive_stays_closer_to_start(tmp_path):
    avg = _run(tmp_path, "avg", rounds=1)
    prox0 = _run(tmp_path, "prox0", rounds=1, strategy="fedprox", proximal_mu=0.0)
    prox = _run(tmp_path, "prox", rounds=1, strategy="fedprox", proximal_mu=50.0, lr=0.05)
    avg_big = _run(tmp_path, "avg2", rounds=1, lr=0.05)
    # equal up to float32 summation order (Flower samples the sites in random order)
    assert _max_diff(avg.state, prox0.state) < 1e-6
    assert _max_diff(prox.state, _plain_fedavg(1, 3, mu=50.0, lr=0.05)) < 1e-6
    start = get_state(build_global_model(LinearToyTask(**PARAMS), 0))

    def dist(s):
        return math.sqrt(sum(float(((a - b) ** 2).sum()) for a, b in zip(s, start, strict=True)))

    assert dist(prox.state) < dist(avg_big.state)


def test_failing_site__round_aggregates_the_others_and_counts_the_failure(tmp_path):
    res = _run(tmp_path, fail_site=(1, 2))
    assert [r["num_clients"] for r in res.rounds] == [3, 2]
    assert [r["failures"] for r in res.rounds] == [0, 1]
    assert len(res.per_site) == 3  # evaluation still reaches every site


def test_dp__trains_and_reports_epsilon_within_target(tmp_path):
    res = _run(tmp_path, dp_epsilon=5.0, dp_clip=0.5)
    assert res.dp is not None
    assert res.dp["epsilon"] <= 5.0
    assert res.dp["accountant"] == "opacus RDP"
    assert all(r["num_clients"] == 3 for r in res.rounds)
    assert all(np.isfinite(a).all() for a in res.state)
    assert _max_diff(res.state, _plain_fedavg(2, 3)) > 0  # noise and clipping act


def _closed_form_epsilon(sigma: float, delta: float, rounds: int) -> float:
    # Gaussian mechanism RDP (Mironov 2017): rounds * alpha / (2 sigma^2); conversion of
    # Balle et al. 2020, minimised over a fine grid of orders.
    alphas = np.concatenate([np.linspace(1.01, 11, 5000), np.arange(12, 257)])
    rdp = rounds * alphas / (2 * sigma ** 2)
    eps = rdp + np.log1p(-1 / alphas) - (np.log(delta) + np.log(alphas)) / (alphas - 1)
    return float(eps.min())


@pytest.mark.parametrize(("sigma", "rounds"), [(1.0, 2), (2.5, 10), (0.8, 1)])
def test_epsilon_spent__matches_closed_form_gaussian_rdp(sigma, rounds):
    ref = _closed_form_epsilon(sigma, 1e-5, rounds)
    got = epsilon_spent(sigma, 1e-5, rounds)
    # opacus optimises over a coarser grid of orders: never below the fine-grid optimum
    assert ref - 1e-9 <= got <= ref * 1.02


def test_noise_multiplier_for__meets_target_tightly():
    sigma = noise_multiplier_for(4.0, 1e-5, 5)
    assert epsilon_spent(sigma, 1e-5, 5) <= 4.0
    assert epsilon_spent(sigma * 0.97, 1e-5, 5) > 4.0


def test_dp_report__noise_std_is_sigma_clip_over_sites():
    r = dp_report(epsilon_target=3.0, delta=1e-6, rounds=4, clip=2.0, num_sites=4)
    assert r["noise_std"] == pytest.approx(r["noise_multiplier"] * 2.0 / 4)


def test_reveal_set__fit_reply_carries_only_parameters_counts_and_metrics(tmp_path):
    from secured_bio.privacy.federated.apps import _make_client

    class Ctx:
        node_config = {"partition-id": 0, "num-partitions": 3}

    cfg = {"task": TASK, "task-params": json.dumps(PARAMS), "seed": 0}
    client = _make_client(cfg, Ctx())
    start = client.get_parameters({})
    params, n, metrics = client.fit(start, {"server-round": 1})
    assert [a.shape for a in params] == [a.shape for a in start]
    assert set(metrics) == {"site", "num-examples", "loss", "train-time-s"}
    loss, n_test, ev = client.evaluate(params, {})
    assert set(ev) == {"site", "auroc", "accuracy"}
    assert (n, n_test) == (60, 20)


def test_overhead__share_is_round_time_minus_training_over_training(tmp_path):
    res = _run(tmp_path, rounds=1)
    o = res.overhead()
    r = res.rounds[0]
    assert o["overhead_s"] == pytest.approx(r["wall_s"] - r["local_train_s_max"])
    assert o["share"] == pytest.approx(o["overhead_s"] / r["local_train_s_total"])


# ----------------------------------------------------------------------------- bad config
@pytest.mark.parametrize(("kwargs", "match"), [
    ({"strategy": "fedprx"}, "unknown federated strategy.*did you mean 'fedprox'"),
    ({"engine": "simulaton"}, "unknown federated engine.*did you mean 'simulation'"),
    ({"rounds": 0}, "rounds must be an integer >= 1"),
    ({"num_sites": 1}, "num_sites must be an integer >= 2"),
    ({"num_sites": 2, "secagg": True}, "SecAgg\\+ needs at least 3 sites"),
    ({"dp_epsilon": -1.0}, "dp_epsilon must be a positive number"),
    ({"dp_epsilon": 1.0, "dp_delta": 2.0}, "dp_delta must lie in"),
    ({"dp_epsilon": 1.0, "dp_clip": 0.0}, "dp_clip must be a positive number"),
    ({"lr": 0.0}, "lr must be a positive number"),
    ({"site_data_dirs": ["a", "b"]}, "one data folder per site"),
    ({"fail_site": (0, 1), "fail_mode": "exit"}, "fail_mode='exit' needs the deployment"),
])
def test_run_federated__bad_config_raises(tmp_path, kwargs, match):
    args = {"num_sites": 3, "rounds": 1, "engine": "inprocess", **kwargs}
    with pytest.raises(ConfigError, match=match):
        run_federated(TASK, PARAMS, work_dir=tmp_path, **args)


def test_run_federated__unimportable_task_raises(tmp_path):
    with pytest.raises(ConfigError, match="cannot import the federated task"):
        run_federated("secured_bio.testing:NoSuchTask", {}, num_sites=3, rounds=1,
                      engine="inprocess", work_dir=tmp_path)


def test_secagg_params__threshold_is_a_majority():
    assert secagg_params(5)["reconstruction_threshold"] == 3
    with pytest.raises(ConfigError, match="at least 3 sites"):
        secagg_params(2)


def test_dp_functions__bad_parameters_raise():
    with pytest.raises(ConfigError, match="rounds must be a positive integer"):
        noise_multiplier_for(1.0, 1e-5, 0)
    with pytest.raises(ConfigError, match="noise multiplier must be positive"):
        epsilon_spent(0.0, 1e-5, 1)


def test_linear_toy_task__is_deterministic_and_differs_by_site():
    task = LinearToyTask(**PARAMS)
    a, b = task.load_site(SiteRef(0, 3)), task.load_site(SiteRef(0, 3))
    c = task.load_site(SiteRef(1, 3))
    np.testing.assert_array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, c.x_train)
    assert set(np.unique(a.y_train)) == {0.0, 1.0}


def test_cli_run_task__writes_federated_json(tmp_path, cli_env):
    from conftest import run_cli

    out = tmp_path / "fl"
    r = run_cli("fl", "run-task", "--task", TASK, "--task-params", json.dumps(PARAMS),
                "--sites", "3", "--rounds", "1", "--engine", "inprocess", "--out", str(out),
                env=cli_env)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "federated.json").read_text())
    assert doc["format"] == "secured_bio.federated_run" and len(doc["per_site"]) == 3


def test_cli_run_task__bad_json_is_a_usage_error(tmp_path, cli_env):
    from conftest import run_cli

    r = run_cli("fl", "run-task", "--task", TASK, "--task-params", "{bad", "--out",
                str(tmp_path / "x"), env=cli_env)
    assert r.returncode == 2 and "--task-params is not JSON" in r.stderr
