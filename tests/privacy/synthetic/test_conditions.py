"""Condition parsing, checks against the schema, masks, and the truncated-normal sampler."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from secured_bio.errors import ConfigError, ProtocolError
from secured_bio.privacy.synthetic.conditions import (
    check_conditions,
    condition_mask,
    parse_condition,
    resolve_conditions,
    sample_truncated_normal,
)
from secured_bio.privacy.synthetic.schema import infer_schema


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 200
    days = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    return pd.DataFrame({
        "age": [str(a) for a in rng.integers(0, 90, n)],
        "sex": rng.choice(["F", "M"], n),
        "bmi": [f"{v:.1f}" for v in rng.normal(25, 4, n)],
        "day": days.strftime("%Y-%m-%d"),
        "stage": rng.choice(["1", "2", "3", "4"], n),
    })


@pytest.mark.parametrize(("expr", "parts"), [
    ("age=5..10", ("age", "5", "10")),
    (" age = 5 .. 10 ", ("age", "5", "10")),
    ("age=..10", ("age", "", "10")),
    ("day=2024-03-01..", ("day", "2024-03-01", "")),
    ("code=a=b", ("code", "a=b", None)),
])
def test_parse_condition__forms(expr: str, parts: tuple[str, str, str | None]) -> None:
    assert parse_condition(expr) == parts


@pytest.mark.parametrize("expr", ["age", "=5", "age=", "  "])
def test_parse_condition__malformed_raises(expr: str) -> None:
    with pytest.raises(ConfigError, match="condition is not COLUMN=VALUE"):
        parse_condition(expr)


@pytest.mark.parametrize(("exprs", "expected"), [
    (["age=5..10"], lambda t: t.age.astype(int).between(5, 10)),
    (["age=..10", "sex=F"], lambda t: (t.age.astype(int) <= 10) & (t.sex == "F")),
    (["bmi=20.05..25"], lambda t: t.bmi.astype(float).between(20.05, 25)),
    (["day=2024-03-01..2024-03-31"],
     lambda t: pd.to_datetime(t.day).between("2024-03-01", "2024-03-31")),
    (["stage=2..3"], lambda t: t.stage.isin(["2", "3"])),
    (["stage=3"], lambda t: t.stage == "3"),
    (["age=5..50", "age=40..80"], lambda t: t.age.astype(int).between(40, 50)),
])
def test_condition_mask__matches_pandas(table: pd.DataFrame, exprs: list[str],
                                        expected) -> None:  # type: ignore[no-untyped-def]
    schema = infer_schema(table)
    mask = condition_mask(table, resolve_conditions(exprs, schema), schema)
    np.testing.assert_array_equal(mask, expected(table).to_numpy())


@pytest.mark.parametrize(("expr", "pattern"), [
    ("agee=5", "unknown column 'agee'.*did you mean 'age'"),
    ("sex=X", "not in the column's domain"),
    ("sex=f", "not in the column's domain"),
    ("age=10..5", "condition range is empty"),
    ("age=500..600", "outside the column's domain"),
    ("day=1999-01-01", "outside the column's domain"),
    ("day=03/01/2024", "does not have the column's format"),
    ("sex=F..M", "range condition on a category column"),
    ("stage=7..9", "holds no value of the column"),
])
def test_resolve_conditions__impossible_raises(table: pd.DataFrame, expr: str,
                                               pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        resolve_conditions([expr], infer_schema(table))


def test_resolve_conditions__contradiction_raises(table: pd.DataFrame) -> None:
    with pytest.raises(ConfigError, match="contradict"):
        resolve_conditions(["sex=F", "sex=M"], infer_schema(table))
    with pytest.raises(ConfigError, match="contradict"):
        resolve_conditions(["age=1..5", "age=10..20"], infer_schema(table))


def test_resolve_conditions__error_does_not_echo_the_value(table: pd.DataFrame) -> None:
    with pytest.raises(ConfigError) as e:
        resolve_conditions(["sex=Xylophone"], infer_schema(table))
    assert "Xylophone" not in str(e.value)


def test_check_conditions__violating_rows_raise(table: pd.DataFrame) -> None:
    schema = infer_schema(table)
    with pytest.raises(ProtocolError, match="violate the conditions"):
        check_conditions(table, resolve_conditions(["sex=F"], schema), schema)


def test_sample_truncated_normal__fixed_dimension_gives_the_gaussian_conditional() -> None:
    rng = np.random.default_rng(1)
    r = 0.7
    cov = np.array([[1.0, r], [r, 1.0]])
    x = sample_truncated_normal(cov, np.array([1.5, -np.inf]), np.array([1.5, np.inf]),
                                20_000, rng)
    assert (x[:, 0] == 1.5).all()
    # analytic conditional: N(r * 1.5, 1 - r^2)
    assert abs(x[:, 1].mean() - r * 1.5) < 0.03
    assert abs(x[:, 1].var() - (1 - r * r)) < 0.03


@pytest.mark.parametrize("max_draws", [200_000, 1])  # rejection, then the Gibbs fallback
def test_sample_truncated_normal__box_matches_scipy_truncnorm(max_draws: int) -> None:
    rng = np.random.default_rng(2)
    cov = np.array([[1.0, 0.0], [0.0, 1.0]])
    lo, hi = np.array([2.0, -np.inf]), np.array([3.0, np.inf])
    x = sample_truncated_normal(cov, lo, hi, 20_000, rng, max_rejection_draws=max_draws)
    assert ((x[:, 0] >= 2) & (x[:, 0] <= 3)).all()
    assert abs(x[:, 0].mean() - stats.truncnorm(2, 3).mean()) < 0.02
    assert abs(x[:, 1].mean()) < 0.05
