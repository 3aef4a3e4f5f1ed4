"""Column typing of synthetic tables: detection, exact text round trips, refusals."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from secured_bio.errors import InputError, SchemaError
from secured_bio.privacy.synthetic.schema import ColumnSpec, infer_schema


def _as_text(frame: pd.DataFrame) -> pd.DataFrame:
    """A DataFrame as the CSV reader gives it: every value as written by pandas, as text."""
    return pd.read_csv(io.StringIO(frame.to_csv(index=False)), dtype=str, keep_default_na=False)


@pytest.fixture(scope="module")
def clinical(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    from secured_bio._csv import read_csv_strings
    from secured_bio.testing import simulate_clinical

    t = simulate_clinical(tmp_path_factory.mktemp("clin") / "c.csv", n_rows=400, seed=2)
    return read_csv_strings(t.path)


def test_infer_schema__clinical_kinds(clinical: pd.DataFrame) -> None:
    schema = infer_schema(clinical, drop=["patient_id"])
    kinds = {c.name: c.kind for c in schema.columns}
    assert kinds == {"age": "integer", "sex": "categorical", "postcode": "categorical",
                     "admission_date": "date", "ethnicity": "categorical",
                     "diagnosis": "categorical", "length_of_stay": "integer"}
    assert schema.names == [c for c in clinical.columns if c != "patient_id"]


def test_infer_schema__identifier_column_refused(clinical: pd.DataFrame) -> None:
    with pytest.raises(SchemaError, match="free text or an identifier.*--drop patient_id"):
        infer_schema(clinical)


@pytest.mark.parametrize("loader", ["breast_cancer", "diabetes", "clinical"])
def test_encode_decode__round_trip_is_exact_text(loader: str, clinical: pd.DataFrame) -> None:
    from sklearn import datasets

    if loader == "clinical":
        table = clinical.drop(columns="patient_id")
    else:
        table = _as_text(getattr(datasets, f"load_{loader}")(as_frame=True).frame)
    schema = infer_schema(table)
    back = schema.decode(schema.encode(table))
    pd.testing.assert_frame_equal(back, table.reset_index(drop=True), check_dtype=False)


def test_encode_decode__postcode_leading_zeros_kept() -> None:
    table = pd.DataFrame({"postcode": ["06000", "01234", "75001"] * 4})
    schema = infer_schema(table)
    assert schema.columns[0].kind == "categorical"
    assert schema.decode(schema.encode(table))["postcode"].tolist() == table["postcode"].tolist()


def test_encode_decode__missing_values_round_trip_with_indicator() -> None:
    values = [str(v) for v in range(30)]
    values[3] = values[17] = ""
    table = pd.DataFrame({"x": values, "g": (["a", ""] * 15)})
    schema = infer_schema(table)
    assert [v.name for v in schema.variables] == ["x", "x#missing", "g"]
    assert schema.columns[0].has_missing and "" in schema.columns[1].categories
    pd.testing.assert_frame_equal(schema.decode(schema.encode(table)), table)


def test_infer_schema__booleans_dates_and_discrete_numbers() -> None:
    table = pd.DataFrame({"flag": ["True", "False"] * 10,
                          "day": [f"{d:02d}/03/2024" for d in range(1, 21)],
                          "y": ["0", "1"] * 10,
                          "sci": [f"{v:.3e}" for v in np.linspace(1, 2, 20)]})
    spec = {c.name: c for c in infer_schema(table).columns}
    assert spec["flag"].kind == "boolean" and spec["flag"].discrete
    assert spec["day"].kind == "date" and spec["day"].date_format == "%d/%m/%Y"
    assert spec["y"].kind == "integer" and spec["y"].discrete
    assert spec["sci"].kind == "numeric" and spec["sci"].scientific


@settings(max_examples=30, deadline=None)
@given(st.lists(st.decimals(min_value=-1000, max_value=1000, places=3, allow_nan=False),
                min_size=12, max_size=40, unique=True))
def test_decode__numbers_keep_their_decimals(values: list) -> None:  # type: ignore[type-arg]
    table = _as_text(pd.DataFrame({"x": [float(v) for v in values]}))
    schema = infer_schema(table)
    pd.testing.assert_frame_equal(schema.decode(schema.encode(table)), table)


def test_decode__clips_to_the_observed_range() -> None:
    table = pd.DataFrame({"x": [str(v) for v in range(10, 40)]})
    schema = infer_schema(table)
    out = schema.decode(np.array([[-5.0], [99.0], [12.4]]))
    assert out["x"].tolist() == ["10", "39", "12"]


def test_infer_schema__empty_table_raises() -> None:
    with pytest.raises(InputError, match="table has no data rows"):
        infer_schema(pd.DataFrame({"a": pd.Series([], dtype=str)}))


def test_infer_schema__no_columns_left_raises() -> None:
    with pytest.raises(InputError, match="no columns to synthesise"):
        infer_schema(pd.DataFrame({"a": ["1"]}), drop=["a"])


def test_infer_schema__unknown_drop_column_raises_with_hint() -> None:
    with pytest.raises(SchemaError, match="did you mean 'patient_id'"):
        infer_schema(pd.DataFrame({"patient_id": ["1"]}), drop=["patient_ids"])


def test_column__unknown_name_raises_with_hint(clinical: pd.DataFrame) -> None:
    schema = infer_schema(clinical, drop=["patient_id"])
    with pytest.raises(SchemaError, match="unknown column 'agee'.*did you mean 'age'"):
        schema.column("agee")
    with pytest.raises(SchemaError, match="dropped column 'patient_id'"):
        schema.column("patient_id")


def test_encode__missing_column_or_unseen_category_raises(tmp_path: Path) -> None:
    table = pd.DataFrame({"g": ["a", "b"] * 5})
    schema = infer_schema(table)
    with pytest.raises(SchemaError, match="column missing from the table"):
        schema.encode(pd.DataFrame({"h": ["a"]}))
    with pytest.raises(SchemaError, match="value outside the column's categories") as e:
        schema.encode(pd.DataFrame({"g": ["secret_value"]}))
    assert "secret_value" not in str(e.value)


def test_to_number__wrong_format_raises_without_the_value() -> None:
    spec = ColumnSpec("d", "date", False, date_format="%Y-%m-%d")
    with pytest.raises(InputError, match="does not have the column's format") as e:
        spec.to_number("31/12/2024")
    assert "31/12/2024" not in str(e.value)


def test_encode__midpoint_imputation_depends_on_the_row_alone() -> None:
    table = pd.DataFrame({"x": ["", *[str(v) for v in range(1, 20)], ""] * 3})
    schema = infer_schema(table)
    assert not schema.columns[0].discrete
    a = schema.encode(table, impute="midpoint")
    b = schema.encode(table.iloc[1:], impute="midpoint")  # one row removed
    np.testing.assert_array_equal(a[1:], b)
    assert (a[table["x"].to_numpy() == "", 0] == 10.0).all()
