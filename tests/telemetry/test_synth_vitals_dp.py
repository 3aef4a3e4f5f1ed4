"""Tests of the differentially private vitals fit: accounting recomputed independently, fresh
noise every fit, bounded per-patient sensitivity, CLI end to end, utility sanity."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from secured_bio.cli import main
from secured_bio.errors import ConfigError
from secured_bio.privacy.dp_random import DPRandom
from secured_bio.telemetry import synthetic_dp as sdp
from secured_bio.telemetry.synthetic import (
    evaluate_vitals,
    load_vitals_model,
    read_cohort,
    save_vitals_model,
)
from secured_bio.testing import VitalsCohort, simulate_vitals

Tables = tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> VitalsCohort:
    return simulate_vitals(tmp_path_factory.mktemp("synth_dp"), n_sites=2,
                           patients_per_site=12, hours=36, seed=5)


@pytest.fixture(scope="module")
def tables(demo: VitalsCohort) -> Tables:
    return read_cohort(demo.out_dir)


def test_synth_vitals_dp__accounting_recomputed_independently(tables: Tables) -> None:
    eps, delta = 1.0, 1e-6
    m = sdp.fit_vitals_model_dp(*tables, epsilon=eps, delta=delta)
    dp = m.differential_privacy
    assert dp is not None and dp["adjacency"] == "add/remove one patient"
    assert dp["randomness"]["secure"] is True
    groups = dp["groups"]
    assert set(groups) == set(dp["budget_split"]) == set(dp["clip_bounds"]["l2_per_group"])
    assert math.isclose(sum(dp["budget_split"].values()), 1.0)
    # rho of each Gaussian release from its recorded sensitivity and sigma (Bun & Steinke
    # 2016, Prop. 1.6), summed, converted with Prop. 1.3 -- without the module's helpers.
    rho = sum(g["l2_sensitivity"] ** 2 / (2 * g["sigma"] ** 2) for g in groups.values())
    assert rho == pytest.approx(dp["rho"], rel=1e-9)
    assert rho + 2 * math.sqrt(rho * math.log(1 / delta)) == pytest.approx(eps, rel=1e-9)
    for name, g in groups.items():
        assert g["l2_sensitivity"] == dp["clip_bounds"]["l2_per_group"][name]
        assert g["rho"] == pytest.approx(dp["budget_split"][name] * dp["rho"])
    # A saved model keeps its statement; the model file says it is DP.
    doc = m.to_dict()
    assert doc["differential_privacy"]["epsilon"] == 1.0 and "(1, 1e-06)-DP" in doc["privacy"]


def test_synth_vitals_dp__zcdp_conversion_round_trips() -> None:
    for eps in (0.1, 1.0, 4.0, 10.0):
        for delta in (1e-5, 1e-6, 1e-9):
            assert sdp.zcdp_epsilon(sdp.zcdp_rho(eps, delta), delta) == pytest.approx(eps)


def test_synth_vitals_dp__two_fits_same_data_and_seed_differ(tables: Tables) -> None:
    a = sdp.fit_vitals_model_dp(*tables, epsilon=4.0, seed=0)
    b = sdp.fit_vitals_model_dp(*tables, epsilon=4.0, seed=0)
    assert a.to_dict()["vitals"] != b.to_dict()["vitals"]
    # The test-only reproducible mode is reproducible and says the epsilon does not hold.
    c = sdp.fit_vitals_model_dp(*tables, epsilon=4.0, dp_random=DPRandom(insecure_seed=3))
    d = sdp.fit_vitals_model_dp(*tables, epsilon=4.0, dp_random=DPRandom(insecure_seed=3))
    assert c.to_dict() == d.to_dict()
    assert c.differential_privacy is not None
    assert "NOT hold" in c.differential_privacy["randomness"]["warning"]


def _released(prep: sdp._Prep) -> dict[str, object]:
    names = sdp._VITALS
    return {"mean": {v: 0.1 for v in names}, "harmonic": {v: (0.2, -0.1) for v in names},
            "interval_hours": 1.0, "ou_rate": {v: 0.3 for v in names}}


def test_synth_vitals_dp__one_patient_moves_each_clipped_sum_by_at_most_the_bound(
        tables: Tables) -> None:
    vitals, patients, events = tables
    full = sdp._prepare(vitals, patients, events)
    ids = full.ids
    assert events is not None
    det = sorted(set(events.loc[events["deterioration"] == "1", "patient_id"]) & set(ids))
    for drop in (ids[0], det[0]):  # a patient without and one with an episode
        keep = [i for i in ids if i != drop]
        less = sdp._prepare(vitals[vitals["patient_id"].isin(keep)],
                            patients[patients["patient_id"].isin(keep)],
                            events[events["patient_id"].isin(keep)])
        for stage in (lambda p: sdp._stage1_contributions(p),
                      lambda p: sdp._stage2_contributions(p, _released(p))):
            big, small = stage(full), stage(less)
            assert set(big) <= set(sdp.CLIP)
            for g in big:
                norms = np.linalg.norm(big[g], axis=1)
                assert (norms <= sdp.CLIP[g] + 1e-9).all(), g
                moved = np.linalg.norm(big[g].sum(axis=0) - small[g].sum(axis=0))
                assert moved <= sdp.CLIP[g] + 1e-9, g
                # Contributions are per patient: the others' rows do not change.
                np.testing.assert_allclose(np.delete(big[g], ids.index(drop), axis=0),
                                           small[g], atol=1e-12)


@pytest.mark.parametrize("kw, message", [
    ({"epsilon": 0.0}, "epsilon must be a positive number"),
    ({"epsilon": -1.0}, "epsilon must be a positive number"),
    ({"epsilon": 1.0, "delta": 1.0}, "delta must be in (0, 1)"),
])
def test_synth_vitals_dp__bad_budget_raises(tables: Tables, kw: dict[str, float],
                                            message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        sdp.fit_vitals_model_dp(*tables, **kw)  # type: ignore[arg-type]


def test_synth_vitals_dp__model_is_valid_and_round_trips(tables: Tables, tmp_path: Path) -> None:
    m = sdp.fit_vitals_model_dp(*tables, epsilon=1.0)
    for p in m.vitals.values():
        assert p.ou_rate > 0 and p.offset_sd >= 0 and p.process_sd >= 0 and p.noise_sd >= 0
        assert 0 <= p.missing_rate <= 1 and p.n_measurements == 0
    assert math.isclose(sum(m.age_shares), 1.0, abs_tol=1e-5)
    for c in (m.innovation_corr, m.offset_corr):
        assert np.linalg.eigvalsh(np.asarray(c)).min() > 0
    s = m.sample(6, hours=12, deterioration=0.5)
    assert len(s.patients) == 6 and len(s.vitals) > 0
    save_vitals_model(m, tmp_path / "m.json")
    again = load_vitals_model(tmp_path / "m.json")
    assert again.differential_privacy == json.loads(json.dumps(m.differential_privacy))
    assert "differentially private: (1, 1e-06)-DP" in again.describe()


def test_synth_vitals_dp__cli_epsilon_1_end_to_end_with_report(
        demo: VitalsCohort, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, model, report = tmp_path / "out", tmp_path / "m.json", tmp_path / "r.json"
    code = main(["synth", "vitals", "--in", str(demo.out_dir / "site1"), "--n", "12",
                 "--deterioration-fraction", "0.5",
                 "--out", str(out), "--epsilon", "1", "--model-out", str(model),
                 "--report", str(report), "--holdout", str(demo.out_dir / "site2"),
                 "--threads", "1"])
    assert code == 0, capsys.readouterr().err
    assert "(1, 1e-06)-DP" in capsys.readouterr().out
    r = json.loads(report.read_text())
    dp = r["privacy"]["differential_privacy"]
    assert dp["epsilon"] == 1.0 and dp["delta"] == 1e-6
    assert "(1, 1e-06)-differential privacy, add/remove one patient" in r["privacy"]["guarantee"]
    assert "auroc_tstr" in r["utility"] and r["privacy"]["membership_inference"]
    assert r["run"]["differential_privacy"]["adjacency"] == "add/remove one patient"
    assert load_vitals_model(model).differential_privacy["epsilon"] == 1.0  # type: ignore[index]
    assert len(pd.read_csv(out / "patients.csv")) == 12
    # Without --epsilon the report says it is not DP.
    code = main(["synth", "vitals", "--in", str(demo.out_dir / "site1"), "--n", "6",
                 "--out", str(tmp_path / "o2"), "--report", str(tmp_path / "r2.json"),
                 "--threads", "1"])
    assert code == 0
    r2 = json.loads((tmp_path / "r2.json").read_text())
    assert r2["privacy"]["differential_privacy"] is None
    assert "NOT differentially private" in r2["privacy"]["guarantee"]


@pytest.mark.parametrize("args, message", [
    (["--delta", "1e-5"], "--delta needs --epsilon"),
    (["--epsilon", "0"], "--epsilon"),
    (["--epsilon", "1", "--model", "m.json"], "--epsilon applies to fitting"),
])
def test_synth_vitals_dp__cli_bad_options_exit_2(
        demo: VitalsCohort, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        args: list[str], message: str) -> None:
    out = tmp_path / "out"
    assert main(["synth", "vitals", "--in", str(demo.out_dir), "--n", "5", "--out", str(out)]
                + args) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_synth_vitals_dp__utility_at_epsilon_4_not_absurd(tmp_path: Path) -> None:
    real = simulate_vitals(tmp_path / "real", n_sites=2, patients_per_site=60, hours=48,
                           seed=11)
    hold = simulate_vitals(tmp_path / "hold", n_sites=1, patients_per_site=30, hours=48,
                           seed=12)
    tables = read_cohort(real.out_dir)
    aucs = []
    for _ in range(3):  # fresh noise each time; the median guards against one unlucky draw
        m = sdp.fit_vitals_model_dp(*tables, epsilon=4.0)
        rep = evaluate_vitals(tables, m.sample(60, hours=48, seed=1), holdout=hold.out_dir,
                              n_threads=1, differential_privacy=m.differential_privacy)
        aucs.append(rep["utility"]["auroc_tstr"])
    assert float(np.median(aucs)) > 0.6, aucs


def test_write_synthetic_vitals__fhir_with_one_blood_pressure_missing_round_trips(
        tables: Tables, tmp_path: Path) -> None:
    # DP noise makes "only one pressure missing" common; the FHIR panel then carries a
    # dataAbsentReason component instead of failing on NaN.
    from secured_bio.telemetry.ingest import ingest_vitals
    from secured_bio.telemetry.synthetic import fit_vitals_model, write_synthetic_vitals

    m = fit_vitals_model(*tables)
    m.bp_missing = {"both": 0.1, "systolic_only": 0.2, "diastolic_only": 0.2}
    s = m.sample(4, hours=12)
    write_synthetic_vitals(s, tmp_path / "s", fhir=True)
    ingest_vitals(tmp_path / "s" / "vitals.fhir.json", tmp_path / "back")
    back = pd.read_csv(tmp_path / "back")
    for v in ("systolic_bp", "diastolic_bp"):
        assert (back["vital"] == v).sum() == (s.vitals["vital"] == v).sum() > 0
