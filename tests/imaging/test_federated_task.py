"""The tumour-grade federated task: one feature table per site, a seeded stratified split."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from secured_bio.errors import InputError, InputFileNotFoundError, SchemaError
from secured_bio.imaging.features import connectivity_features, write_features
from secured_bio.imaging.federated import (
    FEATURES_FILE,
    TumorConnectivityTask,
    feature_columns,
    stratified_split,
)
from secured_bio.privacy.federated.task import SiteRef, load_task, task_path
from secured_bio.testing import simulate_imaging


@pytest.fixture(scope="module")
def features_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("tc")
    cohort = simulate_imaging(root / "cohort", n_sites=2, subjects_per_site=10,
                              n_timepoints=40, seed=5)
    for site in cohort.sites:
        write_features(connectivity_features(cohort.out_dir, sites=[site]),
                       root / "features" / site / FEATURES_FILE)
    return root / "features"


@pytest.mark.parametrize("labels,fraction", [([0, 1] * 10, 0.3), ([0] * 7 + [1] * 3, 0.5),
                                             ([0, 0, 1, 1], 0.1), ([1] * 5, 0.4)])
def test_stratified_split__disjoint_complete_and_keeps_both_classes(labels, fraction):
    y = np.array(labels)
    train, test = stratified_split(y, test_fraction=fraction, seed=1)
    assert sorted([*train, *test]) == list(range(len(y)))
    for cls in np.unique(y):
        n = int((y == cls).sum())
        k = int((y[test] == cls).sum())
        if n >= 2:
            assert 1 <= k <= n - 1, "both splits keep every class that has 2+ rows"
    again = stratified_split(y, test_fraction=fraction, seed=1)
    assert [a.tolist() for a in again] == [train.tolist(), test.tolist()]


def test_load_site__reads_only_its_site_and_splits(features_dir):
    task = TumorConnectivityTask(features_dir=str(features_dir), sites=["site1", "site2"],
                                 test_fraction=0.3, split_seed=0)
    a = task.load_site(SiteRef(0, 2))
    b = task.load_site(SiteRef(1, 2, data_dir=str(features_dir / "site2")))
    assert (a.site, b.site) == ("site1", "site2")
    table = pd.read_csv(features_dir / "site1" / FEATURES_FILE, sep="\t", index_col=0)
    edges = feature_columns(list(table.columns))
    assert a.x_train.shape[1] == len(edges) == 28
    assert len(a.y_train) + len(a.y_test) == len(table) == 10
    assert set(a.y_test) == {0.0, 1.0}
    assert set(a.groups_test) == {"sex", "age_band"} and len(a.groups_test["sex"]) == len(a.y_test)
    # the split rows are the table's rows (features and labels kept together)
    rows = {tuple(np.round(r, 5)) for r in table[edges].to_numpy(np.float32)}
    assert all(tuple(np.round(r, 5)) in rows for r in a.x_test)
    model = task.build_model()
    assert tuple(model(__import__("torch").zeros(3, len(edges))).shape) == (3, 1)


def test_task__travels_as_path_and_json(features_dir):
    params = {"features_dir": str(features_dir), "sites": ["site1", "site2"]}
    task = load_task(task_path(TumorConnectivityTask), json.dumps(params))
    assert isinstance(task, TumorConnectivityTask) and task.params == params


def test_load_site__missing_table_is_clear(tmp_path):
    task = TumorConnectivityTask(features_dir=str(tmp_path), sites=["site1"])
    with pytest.raises(InputFileNotFoundError, match="site feature table not found"):
        task.load_site(SiteRef(0, 1))
    with pytest.raises(InputError, match="no data folder for this site"):
        TumorConnectivityTask().load_site(SiteRef(0, 1))


def test_load_site__bad_table_is_clear_without_values(tmp_path):
    site = tmp_path / "site1"
    site.mkdir()
    (site / FEATURES_FILE).write_text("participant_id\tsite\tage\nsub-1\tsite1\t41\n")
    task = TumorConnectivityTask(features_dir=str(tmp_path), sites=["site1"])
    with pytest.raises(SchemaError, match="lacks required columns"):
        task.load_site(SiteRef(0, 1))
    (site / FEATURES_FILE).write_text(
        "participant_id\tlabel\troi1-roi2\nsub-1\t7\t0.25\nsub-2\t1\tinf\n")
    with pytest.raises(SchemaError, match="invalid values") as e:
        task.load_site(SiteRef(0, 1))
    assert "0.25" not in str(e.value) and "sub-1" not in str(e.value)
