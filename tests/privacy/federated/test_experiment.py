"""`secured-bio fl run --pilot`: centralized vs federated on the same split, audited."""

from __future__ import annotations

import json

import numpy as np
import pytest

from secured_bio.cli import main
from secured_bio.privacy.federated.experiment import evaluate_predictions


def test_evaluate_predictions__equals_sklearn():
    from sklearn.metrics import average_precision_score, log_loss, roc_auc_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 200)
    p = np.clip(0.3 * y + 0.7 * rng.random(200), 0.01, 0.99)
    m = evaluate_predictions(y, p)
    assert m["auroc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["auprc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert m["log_loss"] == pytest.approx(log_loss(y, p), abs=1e-12)
    assert m["accuracy"] == pytest.approx(((p >= 0.5) == y).mean())
    assert evaluate_predictions(np.ones(3), np.full(3, 0.9))["auroc"] is None


@pytest.mark.slow
def test_fl_run__demo_federated_within_002_of_centralized(tmp_path, capsys):
    out = tmp_path / "fl"
    assert main(["fl", "run", "--pilot", "tumor_classification", "--engine", "inprocess",
                 "--out", str(out)]) == 0, capsys.readouterr().err
    m = json.loads((out / "metrics.json").read_text())
    # the acceptance: planted signal found, federation as good as pooling
    assert m["centralized"]["auroc"] >= 0.7
    assert m["federated"]["auroc"] >= m["centralized"]["auroc"] - 0.02
    assert m["gap"]["auroc"] == pytest.approx(m["federated"]["auroc"] - m["centralized"]["auroc"])
    assert m["centralized"]["n"] == m["federated"]["n"] == m["split"]["n_test"]
    assert [s["site"] for s in m["per_site"]] == ["site1", "site2", "site3"]
    assert sum(s["n"] for s in m["per_site"]) == m["split"]["n_test"]
    assert len(m["rounds"]) == m["config"]["rounds"] == 5
    assert all(r["num_clients"] == 3 and r["failures"] == 0 for r in m["rounds"])
    attrs = m["fairness"]["attributes"]
    assert set(attrs) == {"site", "sex", "age_band"}
    for a in attrs.values():
        assert "equalized_odds_difference" in a["gaps"] and "worst_group" in a
    assert m["timing"]["local_train_s"] > 0
    for png in ("training_curves.png", "per_site.png", "fairness.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "federated_model.npz").is_file()
    assert "federated AUROC" in capsys.readouterr().out


def test_fl_run__pilot_without_federated_task_is_usage_error(tmp_path, capsys):
    assert main(["fl", "run", "--pilot", "genomic_access", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "no federated task" in err and "tumor_classification" in err
    assert not (tmp_path / "o").exists()


def test_fl_run__too_few_scans_is_clear_and_leaves_nothing(tmp_path, capsys):
    out = tmp_path / "o"
    code = main(["fl", "run", "--pilot", "tumor_classification", "--engine", "inprocess",
                 "--sites", "2", "--set", "demo={subjects_per_site: 2, n_timepoints: 12}",
                 "--out", str(out)])
    assert code == 1
    assert "too few examples of each class" in capsys.readouterr().err
    assert not out.exists() and not list(tmp_path.glob(".*"))


def test_run_experiment__single_class_site_trains_and_reports_none(tmp_path, caplog):
    import pandas as pd

    from secured_bio.imaging.features import connectivity_features, write_features
    from secured_bio.imaging.federated import FEATURES_FILE, TumorConnectivityTask
    from secured_bio.privacy.federated.experiment import run_experiment
    from secured_bio.privacy.federated.task import task_path
    from secured_bio.testing import simulate_imaging

    cohort = simulate_imaging(tmp_path / "c", n_sites=3, subjects_per_site=8, n_timepoints=30,
                              seed=2)
    for site in cohort.sites:
        table = connectivity_features(cohort.out_dir, sites=[site])
        if site == "site3":  # documented handling: a one-class site still trains
            table = table[table["label"] == 1]
        write_features(table, tmp_path / "f" / site / FEATURES_FILE)
    params = {"features_dir": str(tmp_path / "f"), "sites": list(cohort.sites)}
    out = tmp_path / "out"
    out.mkdir()
    m = run_experiment(task_path(TumorConnectivityTask), params, out_dir=out, num_sites=3,
                       rounds=2, local_epochs=2, engine="inprocess", plots=False)
    site3 = m["per_site"][2]
    assert site3["site"] == "site3" and site3["auroc"] is None and site3["n"] >= 1
    assert m["per_site"][0]["auroc"] is not None and m["federated"]["auroc"] is not None
    assert all(r["num_clients"] == 3 for r in m["rounds"])
    assert "single class" in caplog.text and "site3" in caplog.text
    assert m["fairness"]["attributes"]["site"]["groups"]["site3"]["auroc"] is None
    assert len(pd.read_csv(tmp_path / "f" / "site3" / FEATURES_FILE, sep="\t")) == 4
