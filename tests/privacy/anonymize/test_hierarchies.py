"""Generalization hierarchies: labels, nesting, losses, ARX files and their errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from secured_bio.errors import FormatError, InputError, InputFileNotFoundError
from secured_bio.privacy.anonymize.hierarchies import (
    auto_hierarchy,
    date_hierarchy,
    flat_hierarchy,
    interval_hierarchy,
    mask_hierarchy,
    read_hierarchy_csv,
)


def _nested(h) -> bool:
    """Every node of a level lies under exactly one node of the next level."""
    for lv in range(h.n_levels - 1):
        for node in np.unique(h.codes[lv]):
            parents = np.unique(h.codes[lv + 1][h.codes[lv] == node])
            if len(parents) != 1:
                return False
    return True


def test_interval_hierarchy__labels_nest_and_cover_each_value():
    values = [str(v) for v in range(0, 96, 3)]
    h = interval_hierarchy("age", values)
    assert _nested(h)
    assert h.labels[-1] == ("*",)
    for lv in range(1, h.n_levels - 1):
        for i, v in enumerate(h.leaves):
            lo, hi = h.labels[lv][h.codes[lv][i]][1:-1].split("-")
            assert int(lo) <= int(v) <= int(hi)


def test_interval_hierarchy__loss_is_interval_width_over_domain_width():
    h = interval_hierarchy("age", ["30", "35", "50"], widths=[10, 20])
    span = 50 - 30
    node = h.codes[1][h.leaves.index("35")]
    assert h.labels[1][node] == "[30-39]"
    assert h.loss[1][node] == pytest.approx(9 / span)
    assert h.loss[0].max() == 0 and h.loss[-1].min() == 1


def test_interval_hierarchy__float_values_get_half_open_labels():
    h = interval_hierarchy("bmi", ["21.5", "22.25", "33.1"], widths=[5])
    assert h.label_of("22.25", 1) == "[20-25)"


def test_interval_hierarchy__widths_that_do_not_nest_raise():
    with pytest.raises(InputError, match="interval widths do not nest"):
        interval_hierarchy("age", ["1", "50"], widths=[5, 12])


def test_interval_hierarchy__non_numeric_value_raises_without_echoing_it():
    with pytest.raises(InputError, match="non-numeric") as e:
        interval_hierarchy("age", ["41", "SECRET"])
    assert "SECRET" not in str(e.value)


def test_date_hierarchy__day_month_year_decade():
    h = date_hierarchy("d", ["2024-02-29", "2025-01-01"])
    assert [h.label_of("2024-02-29", lv) for lv in range(h.n_levels)] == [
        "2024-02-29", "2024-02", "2024", "[2020-2029]", "*"]
    span = (np.datetime64("2025-01-01") - np.datetime64("2024-02-29")).astype(int)
    node = h.codes[1][h.leaves.index("2024-02-29")]
    assert h.loss[1][node] == pytest.approx(28 / span)  # February 2024: 1st..29th


def test_date_hierarchy__non_date_raises():
    with pytest.raises(InputError, match="not ISO dates"):
        date_hierarchy("d", ["2024-13-01"])


def test_mask_hierarchy__one_character_per_level_and_leaf_count_loss():
    h = mask_hierarchy("zip", ["75011", "75012", "69001", "06000"])
    assert h.label_of("75011", 3) == "75***"
    assert _nested(h)
    node = h.codes[3][h.leaves.index("75011")]
    assert h.loss[3][node] == pytest.approx((2 - 1) / (4 - 1))


def test_flat_hierarchy__value_or_star():
    h = flat_hierarchy("sex", ["M", "F", "F"])
    assert h.leaves == ("F", "M") and h.labels[1] == ("*",)


def test_auto_hierarchy__picks_kind_from_values():
    assert auto_hierarchy("zip", ["06000", "75011"]).kind == "mask"
    assert auto_hierarchy("age", ["4", "81"]).kind == "interval"
    assert auto_hierarchy("d", ["2024-01-01"]).kind == "date"
    assert auto_hierarchy("eth", ["White", "Asian"]).kind == "flat"


def _write(tmp_path: Path, text: str | bytes, name: str = "eth.csv") -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, encoding="utf-8")
    return p


def test_read_hierarchy_csv__arx_format_adds_top_level(tmp_path):
    p = _write(tmp_path, "White;European;*\nAsian;Asian;*\nBlack;African;*\nOther;Other;*\n")
    h = read_hierarchy_csv(p, "eth", ["White", "Black", "Asian"])
    assert h.kind == "csv" and h.n_levels == 3
    assert h.label_of("White", 1) == "European"
    assert _nested(h)


def test_read_hierarchy_csv__comma_delimited(tmp_path):
    p = _write(tmp_path, "a,ab\nb,ab\nc,cd\n")
    assert read_hierarchy_csv(p, "x", ["a", "c"]).label_of("a", 1) == "ab"


def test_read_hierarchy_csv__uncovered_value_raises_without_echoing_it(tmp_path):
    p = _write(tmp_path, "White;European\n")
    with pytest.raises(InputError, match=r"does not cover every value.*1 distinct") as e:
        read_hierarchy_csv(p, "eth", ["White", "Klingon"])
    assert "Klingon" not in str(e.value)


def test_read_hierarchy_csv__ragged_rows_raise(tmp_path):
    p = _write(tmp_path, "a;x;*\nb;x\n")
    with pytest.raises(FormatError, match="line 2.*expected 3 fields, got 2"):
        read_hierarchy_csv(p, "c", ["a"])


def test_read_hierarchy_csv__repeated_value_raises(tmp_path):
    p = _write(tmp_path, "a;x\na;y\n")
    with pytest.raises(FormatError, match="lists a value twice"):
        read_hierarchy_csv(p, "c", ["a"])


def test_read_hierarchy_csv__not_utf8_raises(tmp_path):
    p = _write(tmp_path, "caf\xe9;x\n".encode("latin-1"))
    with pytest.raises(FormatError, match="not UTF-8"):
        read_hierarchy_csv(p, "c", ["a"])


def test_read_hierarchy_csv__empty_file_raises(tmp_path):
    p = _write(tmp_path, "\n")
    with pytest.raises(FormatError, match="empty"):
        read_hierarchy_csv(p, "c", ["a"])


def test_read_hierarchy_csv__missing_file_raises(tmp_path):
    with pytest.raises(InputFileNotFoundError, match="hierarchy file not found"):
        read_hierarchy_csv(tmp_path / "nope.csv", "c", ["a"])


def test_read_hierarchy_csv__label_under_two_parents_raises(tmp_path):
    p = _write(tmp_path, "a;x;P\nb;x;Q\n")
    with pytest.raises(FormatError, match="not a tree"):
        read_hierarchy_csv(p, "c", ["a", "b"])


def test_encode__unknown_value_raises_with_count_only():
    h = flat_hierarchy("sex", ["F", "M"])
    np.testing.assert_array_equal(h.encode(["M", "F", "M"]), [1, 0, 1])
    with pytest.raises(InputError, match="1 distinct value") as e:
        h.encode(["F", "X-SECRET"])
    assert "X-SECRET" not in str(e.value)
