"""The telemonitoring federated task: per-site features, a time split, the shared MLP."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from secured_bio.errors import InputError, InputFileNotFoundError
from secured_bio.privacy.federated.task import SiteRef, load_task, task_path
from secured_bio.telemetry.features import feature_names, site_features, time_split
from secured_bio.telemetry.federated import TelemetryTask
from secured_bio.telemetry.model import TelemetryModel
from secured_bio.testing import simulate_vitals


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return simulate_vitals(tmp_path_factory.mktemp("tf"), n_sites=2, patients_per_site=6,
                           hours=24, deterioration_fraction=0.5, seed=2)


def _task(cohort, **kw):
    return TelemetryTask(cohort_dir=str(cohort.out_dir), sites=list(cohort.sites),
                         event_delay_hours=6.0, **kw)


def test_load_site__own_site_time_split_and_groups(cohort):
    task = _task(cohort)
    a = task.load_site(SiteRef(0, 2))
    b = task.load_site(SiteRef(1, 2, data_dir=str(cohort.out_dir / "site2")))
    assert (a.site, b.site) == ("site1", "site2")
    f = site_features(cohort.out_dir / "site1", event_delay_hours=6.0)
    train, test = time_split(f)
    assert (len(a.y_train), len(a.y_test)) == (train.sum(), test.sum())
    np.testing.assert_array_equal(a.y_test, f["label"].to_numpy()[test])
    want = np.nan_to_num(f[feature_names()].to_numpy(np.float32)[test], nan=0.0)
    np.testing.assert_array_equal(a.x_test, want)
    assert np.isfinite(a.x_train).all() and a.x_train.dtype == np.float32
    assert set(a.groups_test) == {"sex", "age_band"}
    assert len(a.groups_test["age_band"]) == len(a.y_test)
    assert set(a.groups_test["age_band"]) <= {"0-<1", "1-4", "5-11", "12-17", "18+"}


def test_build_model__scores_like_the_telemetry_model(cohort):
    task = _task(cohort, hidden=[8])
    torch.manual_seed(0)
    model = task.build_model()
    data = task.load_site(SiteRef(0, 2))
    assert tuple(model(torch.zeros(3, task.n_features)).shape) == (3, 1)
    f = site_features(cohort.out_dir / "site1", event_delay_hours=6.0)
    raw = f[feature_names()].to_numpy()[time_split(f)[1]]  # with NaN: the model fills them
    ours = TelemetryModel("torch", model, hidden=(8,)).predict(raw)
    np.testing.assert_allclose(task.predict(model, data.x_test), ours, atol=1e-6)


def test_train__default_training_lowers_the_loss(cohort):
    task = _task(cohort, hidden=[8])
    torch.manual_seed(0)
    model = task.build_model()
    data = task.load_site(SiteRef(0, 2))
    first = task.train(model, data, epochs=1, lr=0.01, seed=0)
    later = task.train(model, data, epochs=5, lr=0.01, seed=0)
    assert first.num_examples == len(data.y_train) and later.loss < first.loss


def test_task__travels_as_path_and_json(cohort):
    params = {"cohort_dir": str(cohort.out_dir), "sites": list(cohort.sites),
              "windows": [2, 6], "horizon_hours": 6}
    task = load_task(task_path(TelemetryTask), json.dumps(params))
    assert isinstance(task, TelemetryTask) and task.params == params
    assert task.n_features == len(feature_names())


def test_load_site__missing_folder_or_files_are_clear(tmp_path):
    with pytest.raises(InputError, match="no data folder for this site"):
        TelemetryTask().load_site(SiteRef(0, 1))
    task = TelemetryTask(cohort_dir=str(tmp_path), sites=["site1"])
    with pytest.raises(InputFileNotFoundError, match="vitals table not found"):
        task.load_site(SiteRef(0, 1))
