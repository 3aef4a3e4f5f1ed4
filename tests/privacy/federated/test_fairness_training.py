"""Fairness-aware federated training: q-FedAvg, group reweighting, bootstrap summary, shift."""

from __future__ import annotations

import json

import numpy as np
import pytest

from secured_bio.errors import ConfigError
from secured_bio.privacy.federated import run_federated
from secured_bio.privacy.federated.fairness import (
    QFFL_LOSS_KEY,
    check_fairness,
    fairness_summary,
    group_weights,
    paired_difference,
    qffl_strategy,
)

TABLE = "secured_bio.testing:DiabetesTableTask"
KEYS = ("mean_auroc", "worst_site_auroc", "worst_group_auroc", "worst_group_gap",
        "equalized_odds_gap", "demographic_parity_gap")


# ------------------------------------------------------------------------ group weights
def test_group_weights__each_cell_counts_equally_and_weights_sum_to_n():
    sex = np.array(["F"] * 2 + ["M"] * 8 + ["F"] * 6 + ["M"] * 4)
    band = np.array(["young"] * 10 + ["old"] * 10)
    w = group_weights({"sex": sex, "age_band": band}, 20)
    assert w.sum() == pytest.approx(20)
    cells = [(s, b) for s, b in zip(sex, band, strict=True)]
    for cell in set(cells):
        mask = np.array([c == cell for c in cells])
        assert w[mask].sum() == pytest.approx(20 / 4)  # 4 cells, each n / G
    assert np.all(group_weights({}, 5) == 1.0)
    assert group_weights({"site": np.array(["a", "b"])}, 2).tolist() == [1.0, 1.0]


def test_group_weights__computed_from_the_sites_own_training_rows():
    from secured_bio.privacy.federated.task import SiteRef
    from secured_bio.testing import DiabetesTableTask

    d = DiabetesTableTask().load_site(SiteRef(1, 3))
    w = group_weights(d.groups_train, len(d.y_train))
    assert w.shape == d.y_train.shape and w.sum() == pytest.approx(len(d.y_train))
    assert set(d.groups_train) == set(d.groups_test) == {"sex", "age_band"}


# ------------------------------------------------------------------------- combinations
@pytest.mark.parametrize("kw, match", [
    ({"secagg": True}, "SecAgg"),
    ({"central_dp": True}, "DP"),
    ({"local_dp": True}, "DP"),
    ({"strategy": "fedprox"}, "fedavg"),
])
def test_check_fairness__qffl_refuses_what_it_cannot_combine_with(kw, match):
    with pytest.raises(ConfigError, match=match):
        check_fairness("qffl", **kw)


def test_check_fairness__group_reweight_combinations():
    assert check_fairness("group_reweight", secagg=True, central_dp=True) == "group_reweight"
    with pytest.raises(ConfigError, match="local DP-SGD"):
        check_fairness("group_reweight", local_dp=True)
    with pytest.raises(ConfigError, match="qffl"):
        check_fairness("qfl")


def test_run_federated__qffl_with_secagg_refused_before_any_site_starts(tmp_path):
    with pytest.raises(ConfigError, match="SecAgg"):
        run_federated(TABLE, {}, num_sites=3, rounds=1, engine="inprocess",
                      work_dir=tmp_path / "w", fairness="qffl", secagg=True)
    assert not (tmp_path / "w").exists()


# ----------------------------------------------------------------------------- q-FedAvg
def _fit_res(arrays, loss):
    from secured_bio.privacy.federated.apps import ensure_flwr

    ensure_flwr()
    from flwr.common import Code, FitRes, Status, ndarrays_to_parameters

    return (None, FitRes(Status(Code.OK, ""), ndarrays_to_parameters(arrays), 10,
                         {QFFL_LOSS_KEY: loss}))


def test_qffl__aggregation_is_the_papers_update():
    from secured_bio.privacy.federated.apps import ensure_flwr

    ensure_flwr()
    from flwr.common import ndarrays_to_parameters, parameters_to_ndarrays

    g = [np.array([1.0, -1.0]), np.array([0.5])]
    locals_ = [[np.array([0.0, 0.0]), np.array([0.0])], [np.array([2.0, 0.0]), np.array([1.0])]]
    losses = [0.2, 0.8]
    q, lip = 2.0, 3.0

    def agg(q, lip):
        s = qffl_strategy(q, lip, initial_parameters=ndarrays_to_parameters(g))
        s.current = [a.copy() for a in g]
        p, _ = s.aggregate_fit(1, [_fit_res(w, f) for w, f in zip(locals_, losses,
                                                                   strict=True)], [])
        return parameters_to_ndarrays(p)

    # reference: Li et al. 2020, Algorithm 2 (q-FedAvg)
    deltas, hs = [], []
    for w, f in zip(locals_, losses, strict=True):
        grad = [lip * (a - b) for a, b in zip(g, w, strict=True)]
        deltas.append([f ** q * x for x in grad])
        hs.append(q * f ** (q - 1) * sum(float((x ** 2).sum()) for x in grad) + lip * f ** q)
    ref = [a - sum(d[i] for d in deltas) / sum(hs) for i, a in enumerate(g)]
    for got, want in zip(agg(q, lip), ref, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6)
    # q = 0: plain (unweighted) average; small L: loss^q-weighted average of local models
    mean = [(a + b) / 2 for a, b in zip(*locals_, strict=True)]
    for got, want in zip(agg(0.0, 1e-9), mean, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    wts = np.array(losses) / sum(losses)
    lw = [wts[0] * a + wts[1] * b for a, b in zip(*locals_, strict=True)]
    for got, want in zip(agg(1.0, 1e-9), lw, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)


def test_reveal_set__qffl_adds_only_the_global_models_loss(tmp_path):
    from secured_bio.privacy.federated.apps import _make_client

    class Ctx:
        node_config = {"partition-id": 0, "num-partitions": 3}

    cfg = {"task": TABLE, "task-params": "{}", "seed": 0, "fairness": "qffl"}
    client = _make_client(cfg, Ctx())
    _, _, metrics = client.fit(client.get_parameters({}), {"server-round": 1})
    assert set(metrics) == {"site", "num-examples", "loss", "train-time-s", QFFL_LOSS_KEY}
    assert 0 < metrics[QFFL_LOSS_KEY] < 5


# -------------------------------------------------------------------- runs and summary
def _check_summary(fs):
    for k in KEYS:
        v = fs[k]
        assert v["value"] is not None, k
        assert v["lo"] <= v["value"] <= v["hi"], (k, v)
    assert fs["n_boot"] > 0 and fs["attributes"] == ["age_band", "sex"]


@pytest.mark.parametrize("option", ["qffl", "group_reweight"])
def test_run_experiment__fairness_option_trains_and_reports_summary_with_cis(tmp_path, option):
    from secured_bio.privacy.federated.experiment import run_experiment

    m = run_experiment(TABLE, {}, out_dir=tmp_path, num_sites=3, rounds=3, lr=0.05,
                       plots=False, fairness_bootstrap=60, engine="inprocess",
                       fairness=option, **({"fairness_lipschitz": 0.01}
                                           if option == "qffl" else {}))
    fs = m["fairness_summary"]
    _check_summary(fs)
    assert fs["option"] == option
    assert m["federated"]["auroc"] > 0.7  # it learned something
    assert m["fairness"]["attributes"].keys() >= {"sex", "age_band"}  # old keys stay


def test_group_reweight__changes_training_and_runs_under_secagg(tmp_path):
    kw = {"num_sites": 3, "rounds": 1, "engine": "inprocess", "lr": 0.05}
    plain = run_federated(TABLE, {}, work_dir=tmp_path / "a", **kw)
    fair = run_federated(TABLE, {}, work_dir=tmp_path / "b", fairness="group_reweight", **kw)
    sec = run_federated(TABLE, {}, work_dir=tmp_path / "c", fairness="group_reweight",
                        secagg=True, secagg_clipping_range=4.0, secagg_max_weight=110, **kw)
    diff = max(float(np.abs(a - b).max()) for a, b in zip(plain.state, fair.state,
                                                          strict=True))
    assert diff > 1e-4
    assert max(float(np.abs(a - b).max()) for a, b in zip(fair.state, sec.state,
                                                          strict=True)) < 1e-4
    dp = run_federated(TABLE, {}, work_dir=tmp_path / "d", fairness="group_reweight",
                       secagg=True, dp_epsilon=5.0, **{**kw, "rounds": 2})
    assert dp.dp is not None and [r["num_clients"] for r in dp.rounds] == [3, 3]


def test_fl_run__fairness_option_on_shifted_telemonitoring_demo(tmp_path, capsys):
    from secured_bio.cli import main

    out = tmp_path / "fl"
    rc = main(["fl", "run", "--pilot", "telemonitoring", "--engine", "inprocess",
               "--rounds", "1", "--local-epochs", "1", "--fairness", "group_reweight",
               "--set", "dp_epsilon=null", "--set",
               "demo={patients_per_site: 12, hours: 24, group_shift: 0.8}",
               "--set", "audit_fraction=0", "--out", str(out)])
    assert rc == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    assert m["fairness_summary"]["option"] == "group_reweight"
    for k in KEYS:
        v = m["fairness_summary"][k]
        assert v["value"] is None or v["lo"] is None or v["lo"] <= v["value"] <= v["hi"]
    assert "fairness" in m and "per_site" in m


def test_fairness_summary_and_paired_difference__cis_bracket_the_estimate():
    rng = np.random.default_rng(5)
    n = 300
    y = rng.integers(0, 2, n)
    sex = rng.choice(["F", "M"], n)
    s = np.clip(0.5 * y * (sex == "F") + 0.2 * y + 0.6 * rng.random(n), 0, 1)
    site = rng.choice(["s1", "s2", "s3"], n)
    fs = fairness_summary(y, s, site=site, groups={"sex": sex, "site": site}, n_boot=80)
    for k in KEYS:
        assert fs[k]["lo"] <= fs[k]["value"] <= fs[k]["hi"]
    assert fs["worst_group_auroc"]["value"] < fs["mean_auroc"]["value"]
    d = paired_difference(y, s, s, site=site, groups={"sex": sex}, n_boot=30)
    assert all(d[k]["value"] == 0 and d[k]["lo"] == d[k]["hi"] == 0 for k in KEYS)


# --------------------------------------------------------------------- planted shift
def test_simulate_vitals__group_shift_lowers_the_planted_groups_auroc(tmp_path):
    from secured_bio.privacy.federated.experiment import _train_centralized, pooled
    from secured_bio.privacy.federated.fairness import _auroc
    from secured_bio.privacy.federated.task import SiteRef
    from secured_bio.telemetry.federated import TelemetryTask
    from secured_bio.testing import simulate_vitals

    c = simulate_vitals(tmp_path / "c", n_sites=3, patients_per_site=40, hours=48,
                        group_shift=1.0, seed=0)
    t = TelemetryTask(cohort_dir=str(c.out_dir), sites=list(c.sites), event_delay_hours=6.0,
                      weight_decay=0.01, batch_size=64)
    p = pooled([t.load_site(SiteRef(i, 3)) for i in range(3)])
    model, _, _ = _train_centralized(t, p, epochs=10, lr=0.003, seed=0)
    score = t.predict(model, p.x_test)
    band = p.groups_test["age_band"]
    auc = {g: _auroc(p.y_test[band == g].astype(int), score[band == g])
           for g in np.unique(band)}
    others = [v for g, v in auc.items() if g != "1-4" and np.isfinite(v)]
    assert auc["1-4"] < min(others) - 0.1, auc


def test_simulate_vitals__group_shift_zero_changes_nothing(tmp_path):
    from secured_bio.testing import simulate_vitals

    a = simulate_vitals(tmp_path / "a", n_sites=1, patients_per_site=6, hours=6, seed=2)
    b = simulate_vitals(tmp_path / "b", n_sites=1, patients_per_site=6, hours=6, seed=2,
                        group_shift=0.0)
    assert a.vitals_paths[0].read_bytes() == b.vitals_paths[0].read_bytes()
    c = simulate_vitals(tmp_path / "c", n_sites=1, patients_per_site=6, hours=6, seed=2,
                        group_shift=1.0)
    assert c.patients_paths[0].read_bytes() == a.patients_paths[0].read_bytes()
