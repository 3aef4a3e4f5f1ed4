"""Central DP: adjacency, sensitivity, an independent epsilon check, secure server noise.

Also the reveal set of a DP fit reply (what epsilon covers) for central and local DP.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from secured_bio.privacy.federated import dp_report

TASK = "secured_bio.testing:LinearToyTask"
PARAMS = {"n_features": 4, "n_per_site": 80, "seed": 3}


def _closed_form_epsilon(z: float, rounds: int, delta: float) -> float:
    """Epsilon of ``rounds`` Gaussian mechanisms of noise multiplier ``z`` (no subsampling).

    RDP of order a: ``rounds * a / (2 z^2)`` (Mironov 2017, Prop. 7 and composition);
    conversion to (epsilon, delta) of Balle et al. 2020 (Thm. 21), minimised over a fine grid
    of orders (no opacus code).
    """
    a = np.concatenate([np.linspace(1.01, 11, 2000), np.arange(11, 256, 0.25)])
    rdp = rounds * a / (2 * z * z)
    eps = rdp + np.log1p(-1 / a) - (np.log(delta) + np.log(a)) / (a - 1)
    return float(eps.min())


@pytest.mark.parametrize(("target", "rounds", "clip", "sites"),
                         [(8.0, 5, 1.0, 5), (3.0, 10, 0.5, 3), (1.0, 2, 2.0, 4)])
def test_dp_report__epsilon_recomputed_from_recorded_noise_matches(target, rounds, clip, sites):
    delta = 1e-5
    r = dp_report(epsilon_target=target, delta=delta, rounds=rounds, clip=clip,
                  num_sites=sites)
    # what the server records: noise std, clip, the fixed denominator, rounds, delta
    assert r["denominator"] == sites and "add/remove one site" in r["adjacency"]
    sensitivity = r["clip"] / r["denominator"]  # add/remove one site, fixed denominator
    assert r["sensitivity"] == pytest.approx(sensitivity)
    z = r["noise_std"] / sensitivity
    assert _closed_form_epsilon(z, r["rounds"], r["delta"]) == pytest.approx(r["epsilon"],
                                                                            rel=2e-3)
    assert r["epsilon"] <= target
    # replace-one-site adjacency doubles the sensitivity (noise multiplier z / 2)
    assert _closed_form_epsilon(z / 2, rounds, delta) == pytest.approx(
        r["epsilon_replace_one_site"], rel=2e-3)


def test_dp_report__replacement_epsilon_is_much_larger_for_eight_over_five_rounds():
    r = dp_report(epsilon_target=8.0, delta=1e-5, rounds=5, clip=1.0, num_sites=5)
    assert 17.0 < r["epsilon_replace_one_site"] < 21.0


def test_dp_report__states_what_epsilon_covers_and_its_randomness():
    from secured_bio.privacy.federated.dp import privacy_scope

    r = dp_report(epsilon_target=4.0, delta=1e-5, rounds=3, clip=1.0, num_sites=3)
    assert r["epsilon_covers"].startswith("the global model parameters")
    assert any("test rows" in x for x in r["not_covered"])
    assert r["randomness"]["secure"] is True
    assert "ceil(n_train / batch_size)" in " ".join(privacy_scope("local-dpsgd")["not_covered"])


@pytest.fixture(autouse=True, scope="module")
def _flwr() -> None:
    from secured_bio.privacy.federated.apps import ensure_flwr

    ensure_flwr()  # imports Flower once, filtering its known import-time warning


def _central_dp_strategy(n_sites: int, sigma: float, clip: float):
    from flwr.common import ndarrays_to_parameters

    from secured_bio.privacy.federated.strategies import Recorder, build_strategy

    cfg = {"num-sites": n_sites, "dp-noise-multiplier": sigma, "dp-clip": clip}
    return build_strategy(cfg, ndarrays_to_parameters([np.zeros(4)]), Recorder())


def _fit_results(n_sites: int, size: int):
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters

    return [(None, FitRes(Status(Code.OK, ""), ndarrays_to_parameters([np.zeros(size)]), 1,
                          {"site": f"site{i}"})) for i in range(n_sites)]


def test_central_dp__server_noise_differs_after_identical_global_seeds():
    from flwr.common import parameters_to_ndarrays

    strategy = _central_dp_strategy(3, 1.0, 1.0)
    outs = []
    for _ in range(2):
        np.random.seed(0)  # Flower's own noise comes from numpy's global generator
        params, _ = strategy.aggregate_fit(1, _fit_results(3, 50), [])
        outs.append(parameters_to_ndarrays(params)[0])
    assert not np.array_equal(outs[0], outs[1])


def test_central_dp__server_noise_has_std_sigma_clip_over_sites():
    from flwr.common import parameters_to_ndarrays

    strategy = _central_dp_strategy(4, 1.5, 2.0)
    params, _ = strategy.aggregate_fit(1, _fit_results(4, 40_000), [])
    noise = parameters_to_ndarrays(params)[0]
    assert abs(noise.mean()) < 5 * 0.75 / math.sqrt(noise.size)
    assert noise.std() == pytest.approx(1.5 * 2.0 / 4, rel=0.03)


def test_central_dp__round_without_every_site_is_skipped():
    strategy = _central_dp_strategy(3, 1.0, 1.0)
    params, _ = strategy.aggregate_fit(1, _fit_results(2, 5), [])
    assert params is None


@pytest.mark.parametrize("mode", ["central", "local"])
def test_reveal_set__dp_fit_reply_carries_no_count_loss_or_time(mode):
    from secured_bio.privacy.federated.apps import _make_client

    class Ctx:
        node_config = {"partition-id": 0, "num-partitions": 3}

    cfg = {"task": TASK, "task-params": json.dumps(PARAMS), "seed": 0, "rounds": 1}
    if mode == "central":
        cfg.update({"dp-noise-multiplier": 1.0, "dp-clip": 1.0})
    else:
        cfg.update({"local-dp-epsilon": 4.0, "local-dp-batch-size": 20})
    client = _make_client(cfg, Ctx())
    _, weight, metrics = client.fit(client.get_parameters({}), {"server-round": 1})
    assert weight == 1
    assert not {"num-examples", "loss", "train-time-s"} & set(metrics)
    if mode == "local":
        assert metrics["dp-epsilon"] <= 4.0 and "dp-expected-batch-size" in metrics


def test_dpsgd__two_runs_with_identical_inputs_and_seed_differ():
    import torch

    from secured_bio.privacy.federated import SiteRef
    from secured_bio.privacy.federated.apps import build_global_model
    from secured_bio.privacy.federated.dpsgd import train_dpsgd
    from secured_bio.testing import LinearToyTask

    task = LinearToyTask(**PARAMS)
    data = task.load_site(SiteRef(0, 2))
    models = []
    for _ in range(2):
        torch.manual_seed(0)
        np.random.seed(0)
        m = build_global_model(task, 0)
        train_dpsgd(task, m, data, epochs=1, lr=0.05, epsilon=8.0, delta=1e-5,
                    max_grad_norm=1.0, batch_size=60, seed=0)
        models.append(m.weight.detach().clone())
    assert not torch.equal(models[0], models[1])


def test_run_experiment__central_dp_reports_scope_and_plots_without_train_loss(tmp_path):
    from secured_bio.privacy.federated.experiment import run_experiment

    out = tmp_path / "out"
    out.mkdir()
    m = run_experiment(TASK, PARAMS, out_dir=out, num_sites=3, rounds=2, engine="inprocess",
                       dp_epsilon=8.0, dp_clip=1.0)
    assert m["dp"]["adjacency"].startswith("add/remove one site")
    assert m["dp"]["epsilon"] <= 8.0 < m["dp"]["epsilon_replace_one_site"]
    assert m["dp"]["epsilon_covers"] and m["dp"]["not_covered"]
    assert all(r["train_loss"] is None for r in m["rounds"])  # not sent under DP
    assert (out / "training_curves.png").stat().st_size > 1000
