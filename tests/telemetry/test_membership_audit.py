"""The telemonitoring membership audit draws members and non-members from the same period.

Non-members used to be the later-admitted test patients: the attack then measured the shift
between admission periods (AUC below 0.5, interval excluding it), not leakage.  Now a random,
outcome-stratified share of the training-period patients is held out of training
(``audit_fraction``) and serves as the non-members.
"""

from __future__ import annotations

import numpy as np
import pytest

from secured_bio.privacy.federated import SiteRef
from secured_bio.privacy.federated.audit import membership_audit, plot_privacy_utility
from secured_bio.telemetry.federated import TelemetryTask, _audit_rows
from secured_bio.testing import simulate_vitals


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return simulate_vitals(tmp_path_factory.mktemp("vitals"), n_sites=2, patients_per_site=12,
                           hours=24, seed=4)


def _task(cohort, **params):
    return TelemetryTask(cohort_dir=str(cohort.out_dir), sites=list(cohort.sites),
                         event_delay_hours=6.0, **params)


def test_audit_rows__whole_patients_of_the_training_period_stratified():
    patients = np.array(["a", "a", "b", "b", "c", "d", "e", "e", "f", "g", "h", "z"])
    y = np.array([0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0], dtype=float)
    train = patients != "z"  # z is a later-admitted test patient
    audit = _audit_rows(patients, y, train, 0.5, seed=[0])
    held = set(patients[audit])
    assert "z" not in held  # never a test patient
    assert not held & set(patients[train & ~audit])  # whole patients move
    assert len(held & {"a", "e"}) == 1  # half of the patients with an event
    assert len(held - {"a", "e"}) == 3  # half of the 6 others (rounded)


def test_load_site__audit_fraction_holds_patients_out_of_training(cohort):
    ref = SiteRef(0, 2)
    plain = _task(cohort).load_site(ref)
    split = _task(cohort, audit_fraction=0.25, audit_seed=1).load_site(ref)
    assert plain.x_audit is None
    assert split.x_audit is not None and len(split.y_audit) > 0
    assert len(split.y_train) + len(split.y_audit) == len(plain.y_train)
    np.testing.assert_array_equal(split.y_test, plain.y_test)  # utility rows unchanged
    again = _task(cohort, audit_fraction=0.25, audit_seed=1).load_site(ref)
    np.testing.assert_array_equal(again.x_audit, split.x_audit)  # seeded


def test_membership_audit__uses_the_audit_rows_and_returns_the_roc(cohort):
    task = _task(cohort, audit_fraction=0.25)
    sites = [task.load_site(SiteRef(i, 2)) for i in range(2)]
    model = task.build_model()
    r = membership_audit(task, model, sites, seed=0)
    assert r["nonmembers"] == "audit" and r["unit"] == "unit"  # one score per patient
    assert all(s["nonmembers"] == "audit" for s in r["per_site"])
    assert r["n_members"] == sum(min(len(set(s.ids_train)), len(set(s.ids_audit)))
                                 for s in sites)
    fpr, tpr = np.array(r["roc"]["fpr"]), np.array(r["roc"]["tpr"])
    assert len(fpr) == 101 and fpr[0] == 0 and fpr[-1] == 1 and tpr[-1] == 1
    assert (np.diff(tpr) >= 0).all()
    lo, hi = r["auc_ci"]
    assert lo <= r["auc"] <= hi
    plain = membership_audit(_task(cohort), model, [_task(cohort).load_site(SiteRef(0, 2))])
    assert plain["nonmembers"] == "test" and plain["unit"] == "record"


def test_plot_privacy_utility__one_figure_with_both_models(tmp_path):
    roc = {"fpr": list(np.linspace(0, 1, 101)), "tpr": list(np.linspace(0, 1, 101) ** 0.8)}
    audits = [{"label": "no DP", "mia": {"roc": roc, "auc": 0.56, "auc_ci": [0.52, 0.6]},
               "utility": 0.95},
              {"label": "DP-SGD (epsilon 1)", "mia": {"roc": roc, "auc": 0.5,
                                                      "auc_ci": [0.46, 0.54]},
               "utility": None}]
    out = plot_privacy_utility(audits, tmp_path / "f" / "pu.png", caption="members vs ...")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert list(out.parent.iterdir()) == [out]  # written atomically, no temporary left
