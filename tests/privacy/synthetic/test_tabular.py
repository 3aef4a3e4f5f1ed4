"""Table generators: utility (TSTR vs TRTR), copies, exact conditions, seeds, formats, DP."""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np
import pandas as pd
import pytest

from secured_bio.errors import ConfigError, SchemaError
from secured_bio.privacy.synthetic.schema import infer_schema
from secured_bio.privacy.synthetic.tabular import (
    fit_synthesizer,
    synthesize_table,
    zcdp_epsilon,
    zcdp_rho,
)

FAST: dict[str, dict[str, Any]] = {"copula": {}, "tvae": {"epochs": 5}, "mst": {"epsilon": 2.0},
                                   "cart": {}, "auto": {}}


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.read_csv(io.StringIO(frame.to_csv(index=False)), dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def clinical(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    from secured_bio._csv import read_csv_strings
    from secured_bio.testing import simulate_clinical

    t = simulate_clinical(tmp_path_factory.mktemp("clin") / "c.csv", n_rows=600, seed=5)
    return read_csv_strings(t.path).drop(columns="patient_id")


@pytest.fixture(scope="module")
def cancer() -> tuple[pd.DataFrame, pd.DataFrame]:
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    text = _as_text(load_breast_cancer(as_frame=True).frame)
    train, test = train_test_split(text, test_size=0.3, random_state=0, stratify=text["target"])
    return train, test


def _auroc(train: pd.DataFrame, test: pd.DataFrame) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=5000))
    model.fit(train.drop(columns="target").astype(float), train["target"].astype(int))
    scores = model.predict_proba(test.drop(columns="target").astype(float))[:, 1]
    return float(roc_auc_score(test["target"].astype(int), scores))


def _copies(synth: pd.DataFrame, real: pd.DataFrame) -> int:
    return int(synth.merge(real.drop_duplicates(), how="inner").shape[0])


def test_copula__tstr_auroc_at_least_90_percent_of_trtr(cancer) -> None:  # type: ignore[no-untyped-def]
    train, test = cancer
    out = fit_synthesizer(train, seed=0).sample(len(train))
    assert _auroc(out, test) >= 0.9 * _auroc(train, test)
    assert _copies(out, train) <= 0.01 * len(out)


@pytest.mark.slow
def test_tvae__tstr_auroc_at_least_90_percent_of_trtr(cancer) -> None:  # type: ignore[no-untyped-def]
    train, test = cancer
    out = fit_synthesizer(train, method="tvae", seed=0, epochs=150).sample(len(train))
    assert _auroc(out, test) >= 0.9 * _auroc(train, test)
    assert _copies(out, train) <= 0.01 * len(out)


def test_cart__tstr_auroc_at_least_95_percent_of_trtr(cancer) -> None:  # type: ignore[no-untyped-def]
    train, test = cancer
    out = fit_synthesizer(train, method="cart", seed=0, target="target").sample(len(train))
    assert _auroc(out, test) >= 0.95 * _auroc(train, test)
    assert _copies(out, train) == 0


def test_cart__smoothing_none_draws_observed_values_density_smooths(cancer) -> None:  # type: ignore[no-untyped-def]
    train, _ = cancer
    col = "mean area"
    plain = fit_synthesizer(train, method="cart", seed=0, smoothing="none").sample(300)
    smooth = fit_synthesizer(train, method="cart", seed=0).sample(300)
    observed = set(train[col].astype(float))
    assert set(plain[col].astype(float)) <= observed  # synthpop: values come from leaves
    assert np.mean([v in observed for v in smooth[col].astype(float)]) < 0.5
    assert smooth[col].astype(float).between(min(observed), max(observed)).all()


def test_cart__visiting_order_given_columns_first_target_last(clinical: pd.DataFrame) -> None:
    s = fit_synthesizer(clinical, method="cart", seed=0, target="sex", order=["diagnosis"],
                        min_leaf=10)
    assert s.params["order"][0] == "diagnosis" and s.params["order"][-1] == "sex"
    assert sorted(s.params["order"]) == sorted(clinical.columns)
    assert s.params["min_leaf"] == 10 and s.params["smoothing"] == "density"


def test_cart__options_refused_elsewhere_and_checked(clinical: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="sequential CART"):
        fit_synthesizer(clinical, method="copula", min_leaf=3)
    with pytest.raises(ConfigError, match="minimum leaf size"):
        fit_synthesizer(clinical, method="cart", min_leaf=0)
    with pytest.raises(ConfigError, match="did you mean"):
        fit_synthesizer(clinical, method="cart", smoothing="densty")
    with pytest.raises(SchemaError, match="did you mean"):
        fit_synthesizer(clinical, method="cart", order=["agee"])


def test_auto__compares_candidates_and_refits_the_best(cancer) -> None:  # type: ignore[no-untyped-def]
    train, _ = cancer
    s = synthesize_table(train, 50, method="auto", seed=0, target="target")
    auto = s.report["auto"]
    assert s.report["requested_method"] == "auto" and s.report["method"] == auto["winner"]
    assert set(auto["results"]) == {"copula", "cart"} and auto["target"] == "target"
    best = max((c for c, r in auto["results"].items() if r["eligible"]),
               key=lambda c: auto["results"][c]["score"])
    assert auto["winner"] == best and best in auto["reason"]
    for r in auto["results"].values():
        assert 0 <= r["membership_auc"] <= 1 and r["utility_ratio"] > 0.8


def test_auto__privacy_guard_rejects_a_copying_candidate(clinical: pd.DataFrame) -> None:
    # leaves of one row and no smoothing: CART copies training rows, so the guard drops it
    s = fit_synthesizer(clinical, method="auto", seed=0, min_leaf=1, smoothing="none")
    assert s.auto is not None
    cart = s.auto["results"]["cart"]
    assert cart["exact_copy_share"] > 0.01 and not cart["eligible"]
    assert s.method == "copula" and s.auto["winner"] == "copula"


def test_copula__diabetes_keeps_formats_and_makes_no_copies() -> None:
    from sklearn.datasets import load_diabetes

    real = _as_text(load_diabetes(as_frame=True, scaled=False).frame)
    out = fit_synthesizer(real, seed=3).sample(500)
    assert list(out.columns) == list(real.columns)
    assert _copies(out, real) <= 0.01 * len(out)
    for col in real.columns:
        spec = infer_schema(real).column(col)
        # the synthetic column is typed the same way and stays inside the observed range
        assert infer_schema(out).column(col).kind == spec.kind
        if not spec.discrete:
            assert out[col].astype(float).between(spec.low, spec.high).all()


@pytest.mark.parametrize("method", ["copula", "cart", "auto", "tvae", "mst"])
def test_sample__columns_order_and_formats_preserved(clinical: pd.DataFrame,
                                                      method: str) -> None:
    out = fit_synthesizer(clinical, method=method, seed=1, **FAST[method]).sample(300)
    assert list(out.columns) == list(clinical.columns)
    assert out["age"].str.fullmatch(r"0|[1-9][0-9]*").all()
    assert out["length_of_stay"].str.fullmatch(r"0|[1-9][0-9]*").all()
    assert set(out["postcode"]) <= set(clinical["postcode"])  # leading zeros kept
    for col in ("sex", "ethnicity", "diagnosis"):
        assert set(out[col]) <= set(clinical[col])
    dates = pd.to_datetime(out["admission_date"], format="%Y-%m-%d")
    assert dates.min() >= pd.Timestamp(clinical["admission_date"].min())
    assert dates.max() <= pd.Timestamp(clinical["admission_date"].max())


@pytest.mark.parametrize("method", ["copula", "cart", "auto", "tvae", "mst"])
def test_sample__every_row_satisfies_the_conditions(clinical: pd.DataFrame, method: str) -> None:
    conds = ["age=5..10", "sex=F", "admission_date=2024-03-01..2024-06-30",
             "diagnosis=pneumonia"]
    out = fit_synthesizer(clinical, method=method, seed=2, **FAST[method]).sample(
        120, conditions=conds)
    assert len(out) == 120
    ref = (out["age"].astype(int).between(5, 10) & (out["sex"] == "F")
           & pd.to_datetime(out["admission_date"]).between("2024-03-01", "2024-06-30")
           & (out["diagnosis"] == "pneumonia"))
    assert ref.all()


def test_copula__condition_keeps_dependent_columns_plausible(clinical: pd.DataFrame) -> None:
    """Conditioning samples the others conditionally: children get children's diagnoses."""
    real_kids = clinical[clinical["age"].astype(int) <= 14]
    out = fit_synthesizer(clinical, seed=4).sample(400, conditions=["age=0..14"])
    kids = out["diagnosis"].value_counts(normalize=True)
    real = real_kids["diagnosis"].value_counts(normalize=True)
    everyone = clinical["diagnosis"].value_counts(normalize=True)
    tv_kids = 0.5 * kids.sub(real, fill_value=0).abs().sum()
    tv_all = 0.5 * everyone.sub(real, fill_value=0).abs().sum()
    assert tv_kids < tv_all


@pytest.mark.parametrize("method", ["copula", "cart", "auto", "tvae", "mst"])
def test_seed__same_seed_same_rows_other_seed_other_rows(clinical: pd.DataFrame,
                                                         method: str) -> None:
    # mst: only with the explicit insecure mode is the DP noise reproducible
    kw = dict(FAST[method], **({"insecure_dp_seed": 7} if method == "mst" else {}))
    a = synthesize_table(clinical, 50, method=method, seed=7, **kw).table
    b = synthesize_table(clinical, 50, method=method, seed=7, **kw).table
    kw = dict(FAST[method], **({"insecure_dp_seed": 8} if method == "mst" else {}))
    c = synthesize_table(clinical, 50, method=method, seed=8, **kw).table
    assert a.to_csv(index=False) == b.to_csv(index=False)
    assert a.to_csv(index=False) != c.to_csv(index=False)


def test_mst__same_input_and_seed_gives_different_noise(clinical: pd.DataFrame) -> None:
    a = fit_synthesizer(clinical, method="mst", epsilon=1.0, seed=0)
    b = fit_synthesizer(clinical, method="mst", epsilon=1.0, seed=0)
    assert any(not np.array_equal(x, y) for x, y in zip(a._model.one, b._model.one,
                                                         strict=True))
    assert a.sample(80).to_csv(index=False) != b.sample(80).to_csv(index=False)
    assert a.privacy is not None and a.privacy["epsilon_holds"] is True
    assert a.privacy["randomness"]["secure"] is True


def test_mst__noisy_counts_are_integers_with_the_reported_scale(clinical: pd.DataFrame
                                                                ) -> None:
    # discrete Gaussian (OpenDP) on the counts; empirical sd of (noisy - true) ~ sigma
    s = fit_synthesizer(clinical, method="mst", epsilon=0.2, seed=0)
    assert s.privacy is not None
    resid = []
    for _ in range(30):
        m = fit_synthesizer(clinical, method="mst", epsilon=0.2, seed=0)._model
        resid.append(np.concatenate(m.one))
    r = np.stack(resid)
    assert np.array_equal(r, np.rint(r))
    sd = (r - r.mean(axis=0)).std() * np.sqrt(30 / 29)
    assert sd == pytest.approx(s.privacy["noise"]["one_way_sigma"], rel=0.1)


def test_mst__insecure_seed_only_with_mst(clinical: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="insecure DP seed applies only"):
        fit_synthesizer(clinical, method="copula", insecure_dp_seed=1)


def test_mst__reports_epsilon_and_split(clinical: pd.DataFrame) -> None:
    s = fit_synthesizer(clinical, method="mst", epsilon=0.5, delta=1e-7, seed=0)
    p = s.privacy
    assert p is not None and p["epsilon"] == 0.5 and p["delta"] == 1e-7
    assert p["domain"] == "observed"
    assert math.isclose(sum(p["budget_split"].values()), p["rho"])
    assert math.isclose(zcdp_epsilon(p["rho"], 1e-7), 0.5)
    d = len(s.schema.variables)
    # Gaussian mechanism: rho_1 = d / (2 sigma_1^2) over the d one-way marginals
    assert math.isclose(d / (2 * p["noise"]["one_way_sigma"] ** 2),
                        p["budget_split"]["one_way_marginals"])


def test_mst__marginal_error_grows_as_epsilon_shrinks(clinical: pd.DataFrame) -> None:
    def error(eps: float) -> float:
        errs = []
        for seed in range(3):
            out = fit_synthesizer(clinical, method="mst", epsilon=eps, seed=seed).sample(
                len(clinical), seed=seed)
            for col in ("sex", "ethnicity", "diagnosis", "postcode"):
                p = out[col].value_counts(normalize=True)
                q = clinical[col].value_counts(normalize=True)
                errs.append(0.5 * p.sub(q, fill_value=0).abs().sum())
        return float(np.mean(errs))

    assert error(0.05) > error(50.0) + 0.05


def test_mst__public_domain_can_add_unseen_categories(clinical: pd.DataFrame) -> None:
    cats = sorted(set(clinical["sex"])) + ["X"]
    s = fit_synthesizer(clinical, method="mst", epsilon=1.0, public_domain={"sex": cats})
    assert s.schema.column("sex").categories == tuple(cats)
    assert s.privacy is not None and s.privacy["domain"] == "partly public"
    assert set(s.sample(200)["sex"]) <= set(cats)


@pytest.mark.parametrize(("domain", "error", "pattern"), [
    ({"sex": ["F"]}, SchemaError, "public domain misses values"),
    ({"age": [10, 20]}, SchemaError, "does not cover the data"),
    ({"age": "wide"}, ConfigError, "must be \\[low, high\\]"),
    ({"agee": [0, 120]}, ConfigError, "unknown columns"),
])
def test_mst__bad_public_domain_raises(clinical: pd.DataFrame, domain: dict, error: type,
                                       pattern: str) -> None:
    with pytest.raises(error, match=pattern):
        fit_synthesizer(clinical, method="mst", epsilon=1.0, public_domain=domain)


@pytest.mark.parametrize(("kwargs", "pattern"), [
    ({"method": "mst", "epsilon": 0.0}, "epsilon must be a finite number > 0"),
    ({"method": "mst", "epsilon": -1.0}, "epsilon must be a finite number > 0"),
    ({"method": "mst", "epsilon": math.inf}, "epsilon must be a finite number > 0"),
    ({"method": "mst"}, "needs a privacy budget"),
    ({"method": "mst", "epsilon": 1.0, "delta": 1.0}, "delta must be in"),
    ({"method": "copula", "epsilon": 1.0}, "apply only to a differentially private"),
    ({"method": "copulla"}, "did you mean 'copula'"),
    ({"method": "copula", "epochs": 5}, "apply only to tvae"),
    ({"method": "tvae", "epochs": 0}, "epochs must be >= 1"),
    ({"seed": -1}, "seed must be an integer >= 0"),
    ({"public_domain": {"sex": ["F", "M"]}}, "applies only to --method mst"),
])
def test_fit_synthesizer__bad_options_raise(clinical: pd.DataFrame, kwargs: dict,
                                            pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        fit_synthesizer(clinical, **kwargs)


def test_sample__bad_row_count_raises(clinical: pd.DataFrame) -> None:
    s = fit_synthesizer(clinical)
    with pytest.raises(ConfigError, match="positive integer"):
        s.sample(0)


def test_zcdp_rho__inverts_the_conversion() -> None:
    for eps in (0.01, 0.5, 3.0, 30.0):
        assert math.isclose(zcdp_epsilon(zcdp_rho(eps, 1e-6), 1e-6), eps)


def test_fit_synthesizer__bad_tables_raise(clinical: pd.DataFrame) -> None:
    from secured_bio.errors import InputError

    with pytest.raises(InputError, match="table has no data rows"):
        fit_synthesizer(clinical.iloc[:0])
    with_id = clinical.assign(patient_id=[f"p{i}" for i in range(len(clinical))])
    with pytest.raises(SchemaError, match="free text or an identifier"):
        fit_synthesizer(with_id)


def test_synthesize_table__impossible_condition_raises_before_sampling(
        clinical: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="outside the column's domain"):
        synthesize_table(clinical, 10, conditions=["length_of_stay=1000..2000"])


def test_synthesize_table__tvae_reports_how_conditions_were_met(clinical: pd.DataFrame) -> None:
    r = synthesize_table(clinical, 40, method="tvae", epochs=3, conditions=["sex=M"])
    counts = r.report["conditional_sampling"]
    assert counts["rejection_rows"] + counts["fallback_rows"] == 40
    assert (r.table["sex"] == "M").all()
