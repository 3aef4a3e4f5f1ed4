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
