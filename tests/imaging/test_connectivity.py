"""Tests of secured_bio.imaging.connectivity (and plots), cross-checked against nilearn."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from secured_bio.errors import ConfigError, FormatError, InputFileNotFoundError, SchemaError
from secured_bio.imaging.connectivity import (
    clean_signals,
    connectivity_matrix,
    read_confounds,
    read_connectivity_tsv,
    roi_timeseries,
    series_connectivity,
    write_connectivity_tsv,
)
from secured_bio.imaging.io import load_series
from secured_bio.imaging.plots import connectivity_png, plot_connectivity
from secured_bio.testing import simulate_imaging


@pytest.fixture(scope="module")
def cohort(tmp_path_factory: pytest.TempPathFactory):
    # The demo fMRI geometry (16x16x8, 80 volumes, TR 2 s), one site of two participants.
    return simulate_imaging(tmp_path_factory.mktemp("fmri"), n_sites=1, subjects_per_site=2,
                            seed=11)


def _roi_means_by_hand(series: Path, atlas: Path) -> tuple[np.ndarray, list[int]]:
    """ROI mean signals straight from nibabel arrays (independent of the module)."""
    data = nib.load(series).get_fdata(dtype=np.float64)
    labels_img = np.asarray(nib.load(atlas).dataobj)
    labels = sorted(int(v) for v in np.unique(labels_img) if v != 0)
    return np.stack([data[labels_img == lab].mean(axis=0) for lab in labels], axis=1), labels


def _signals(n_t: int = 120, n_r: int = 5, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(n_r, n_r))
    return rng.normal(size=(n_t, n_r)) @ mix + np.linspace(0, 3, n_t)[:, None]


# ---------------------------------------------------------------- acceptance: Pearson, nilearn
def test_no_preprocess_correlation_equals_pearson_of_roi_means(cohort) -> None:
    series, atlas = cohort.series_paths[1], cohort.atlas_path
    conn = series_connectivity(series, atlas, kind="correlation", preprocess=False)
    means, labels = _roi_means_by_hand(series, atlas)
    assert list(conn.labels) == labels
    np.testing.assert_allclose(conn.matrix, np.corrcoef(means, rowvar=False), rtol=0,
                               atol=1e-10)


@pytest.mark.reference
def test_roi_timeseries__matches_nilearn_labels_masker(cohort) -> None:
    from nilearn.maskers import NiftiLabelsMasker

    series = cohort.series_paths[0]
    signals, labels = roi_timeseries(series, cohort.atlas_path)
    masker = NiftiLabelsMasker(labels_img=str(cohort.atlas_path), strategy="mean",
                               standardize=False)
    ref = masker.fit_transform(str(series))
    assert labels == tuple(range(1, cohort.n_rois + 1))
    # nilearn returns float32 means: compare at float32 precision.
    np.testing.assert_allclose(signals, ref, rtol=1e-6)


@pytest.mark.reference
@pytest.mark.parametrize(("kind", "nilearn_kind"),
                         [("correlation", "correlation"), ("partial", "partial correlation")])
@pytest.mark.parametrize("preprocess", [False, True])
def test_connectivity_matrix__matches_nilearn_connectivity_measure(
        cohort, kind: str, nilearn_kind: str, preprocess: bool) -> None:
    from nilearn.connectome import ConnectivityMeasure
    from sklearn.covariance import EmpiricalCovariance

    signals, _ = roi_timeseries(cohort.series_paths[1], cohort.atlas_path)
    if preprocess:
        signals = clean_signals(signals, tr=cohort.tr)
    # Empirical covariance (nilearn's default is Ledoit-Wolf shrinkage); standardize=False
    # because correlation does not depend on it and True warns in nilearn 0.13.
    measure = ConnectivityMeasure(cov_estimator=EmpiricalCovariance(), kind=nilearn_kind,
                                  standardize=False)
    ref = measure.fit_transform([signals])[0]
    np.testing.assert_allclose(connectivity_matrix(signals, kind=kind), ref, rtol=0,
                               atol=1e-10)


@pytest.mark.reference
@pytest.mark.filterwarnings(
    # nilearn 0.13 always warns about its future confound scaling when confounds are given;
    # it does not change the projection we compare.
    "ignore:From release 0.14.0, confounds will be standardized:DeprecationWarning")
@pytest.mark.parametrize("options", [
    {},
    {"detrend": False},
    {"high_pass": 0.01, "low_pass": 0.1},
    {"low_pass": 0.08, "standardize": False},
    {"confounds": True},
    {"confounds": True, "high_pass": 0.02, "detrend": False},
])
def test_clean_signals__matches_nilearn_signal_clean(options: dict) -> None:
    from nilearn.signal import clean

    x = _signals(n_t=100)
    kw = dict(options)
    if kw.pop("confounds", False):
        rng = np.random.default_rng(3)
        kw["confounds"] = rng.normal(size=(100, 3)) + np.linspace(0, 1, 100)[:, None]
    detrend = kw.get("detrend", True)
    standardize = kw.pop("standardize", True)
    ref = clean(x, t_r=2.0, detrend=detrend, standardize="zscore_sample" if standardize else None,
                standardize_confounds=True, filter="butterworth",
                **{k: v for k, v in kw.items() if k != "detrend"})
    got = clean_signals(x, tr=2.0, standardize=standardize, **kw)
    np.testing.assert_allclose(got, ref, rtol=0, atol=1e-10)


def test_planted_pair_is_more_correlated_in_class_1(tmp_path: Path) -> None:
    c = simulate_imaging(tmp_path, n_sites=1, subjects_per_site=8, n_timepoints=60,
                         shape=(12, 12, 6), n_rois=5, seed=2)
    edges: dict[int, list[np.ndarray]] = {0: [], 1: []}
    for path, label in zip(c.series_paths, c.labels, strict=True):
        conn = series_connectivity(path, c.atlas_path)
        edges[label].append(conn.matrix[np.triu_indices(len(conn.labels), 1)])
    pairs = list(zip(*np.triu_indices(c.n_rois, 1), strict=True))
    planted = pairs.index((c.roi_pair[0] - 1, c.roi_pair[1] - 1))
    gaps = np.mean(edges[1], axis=0) - np.mean(edges[0], axis=0)
    gap = gaps[planted]
    # Planted latent correlation 0.7: the pair's gap clearly exceeds any other edge's gap.
    other_gaps = np.abs(np.delete(gaps, planted))
    assert gap > 0.3
    assert gap > 2 * other_gaps.max()


# ------------------------------------------------------------------------ connectivity_matrix
def test_connectivity_matrix__partial_equals_correlation_of_regression_residuals() -> None:
    x = _signals(n_r=4)
    got = connectivity_matrix(x, kind="partial")
    xc = x - x.mean(axis=0)
    for i, j in [(0, 1), (1, 3), (2, 3)]:
        rest = np.column_stack([np.ones(len(x)), np.delete(xc, [i, j], axis=1)])
        res = [xc[:, k] - rest @ np.linalg.lstsq(rest, xc[:, k], rcond=None)[0] for k in (i, j)]
        assert got[i, j] == pytest.approx(np.corrcoef(res[0], res[1])[0, 1], abs=1e-10)
    np.testing.assert_array_equal(np.diag(got), 1.0)


def test_connectivity_matrix__fisher_z_is_arctanh_with_zero_diagonal() -> None:
    x = _signals()
    r = connectivity_matrix(x)
    z = connectivity_matrix(x, fisher_z=True)
    off = ~np.eye(len(r), dtype=bool)
    np.testing.assert_allclose(z[off], np.arctanh(r[off]), rtol=1e-12)
    np.testing.assert_array_equal(np.diag(z), 0.0)
    np.testing.assert_array_equal(z, z.T)


def test_connectivity_matrix__unknown_kind_suggests_the_closest() -> None:
    with pytest.raises(ConfigError, match="unknown connectivity kind.*did you mean 'partial'"):
        connectivity_matrix(_signals(), kind="partail")


def test_connectivity_matrix__constant_region_raises_without_values() -> None:
    x = _signals()
    x[:, 2] = 1234.5
    with pytest.raises(SchemaError, match="constant.*1 constant column.*index 2") as info:
        connectivity_matrix(x)
    assert "1234" not in str(info.value)


def test_connectivity_matrix__partial_with_too_few_timepoints_raises() -> None:
    with pytest.raises(SchemaError, match="too few timepoints for partial correlation"):
        connectivity_matrix(_signals(n_t=4, n_r=5), kind="partial")


def test_connectivity_matrix__partial_with_collinear_regions_raises() -> None:
    x = _signals(n_r=4)
    x[:, 3] = x[:, 0] + x[:, 1]
    with pytest.raises(SchemaError, match="covariance of the region signals is singular"):
        connectivity_matrix(x, kind="partial")


def test_connectivity_matrix__single_region_or_nan_raises() -> None:
    with pytest.raises(SchemaError, match="at least 2 regions"):
        connectivity_matrix(_signals(n_r=1))
    x = _signals()
    x[3, 1] = np.nan
    with pytest.raises(SchemaError, match="non-finite values.*1 NaN/inf"):
        connectivity_matrix(x)


# ------------------------------------------------------------------------------ clean_signals
def test_clean_signals__confounds_are_regressed_out() -> None:
    rng = np.random.default_rng(4)
    conf = rng.normal(size=(100, 2))
    x = rng.normal(size=(100, 3)) + conf @ rng.normal(size=(2, 3)) * 5
    y = clean_signals(x, tr=1.0, confounds=conf, detrend=False)
    # Residuals are orthogonal to the (centred) confounds.
    np.testing.assert_allclose((conf - conf.mean(0)).T @ y, 0, atol=1e-9)


def test_clean_signals__low_pass_removes_power_above_the_cutoff() -> None:
    t = np.arange(200) * 0.5  # TR 0.5 s
    x = np.column_stack([np.sin(2 * np.pi * 0.05 * t) + np.sin(2 * np.pi * 0.6 * t)])
    y = clean_signals(x, tr=0.5, low_pass=0.2, standardize=False, detrend=False)
    spec = np.abs(np.fft.rfft(y[:, 0]))
    freqs = np.fft.rfftfreq(len(t), d=0.5)
    assert spec[np.argmin(np.abs(freqs - 0.6))] < 0.02 * spec[np.argmin(np.abs(freqs - 0.05))]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"low_pass": 0.3}, r"low_pass cut-off out of range.*Nyquist frequency 0.25"),
    ({"high_pass": 0.1, "low_pass": 0.05}, "high_pass must be below low_pass"),
    ({"high_pass": -0.1}, "high_pass cut-off out of range"),
])
def test_clean_signals__invalid_cutoffs_raise(kwargs: dict, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        clean_signals(_signals(), tr=2.0, **kwargs)


def test_clean_signals__invalid_tr_raises() -> None:
    with pytest.raises(ConfigError, match="tr must be a positive number"):
        clean_signals(_signals(), tr=0.0)


def test_clean_signals__confounds_of_other_length_raise() -> None:
    with pytest.raises(SchemaError, match=r"differ in length.*120 rows.*got 50 rows"):
        clean_signals(_signals(), tr=2.0, confounds=np.ones((50, 2)))


def test_clean_signals__series_too_short_for_filter_raises() -> None:
    with pytest.raises(SchemaError, match=r"too short for the band-pass filter.*more than 33 "
                                          r"volumes.*12 volumes"):
        clean_signals(_signals(n_t=12), tr=2.0, high_pass=0.01, low_pass=0.1)
    with pytest.raises(SchemaError, match=r"more than 18 volumes"):
        clean_signals(_signals(n_t=12), tr=2.0, low_pass=0.1)


# ----------------------------------------------------------------------------- roi_timeseries
def test_roi_timeseries__requested_labels_in_order_and_absent_label_raises(cohort) -> None:
    s = load_series(cohort.series_paths[0], atlas=cohort.atlas_path)
    full, _ = roi_timeseries(s)
    sub, labels = roi_timeseries(s, labels=[3, 1])
    assert labels == (3, 1)
    np.testing.assert_array_equal(sub, full[:, [2, 0]])
    with pytest.raises(SchemaError, match="atlas region has no voxels.*label 99"):
        roi_timeseries(s, labels=[1, 99])


def test_roi_timeseries__without_atlas_raises(cohort) -> None:
    with pytest.raises(ConfigError, match="no atlas for the ROI signals"):
        roi_timeseries(cohort.series_paths[0])


def test_series_connectivity__filter_without_preprocessing_raises(cohort) -> None:
    with pytest.raises(ConfigError, match="need preprocessing"):
        series_connectivity(cohort.series_paths[0], cohort.atlas_path, preprocess=False,
                            low_pass=0.1)


def test_series_connectivity__confounds_tsv_is_regressed(cohort, tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    conf = rng.normal(size=(cohort.n_timepoints, 2))
    path = tmp_path / "conf.tsv"
    path.write_text("a\tb\n" + "".join(f"{float(u)!r}\t{float(v)!r}\n" for u, v in conf))
    got = series_connectivity(cohort.series_paths[0], cohort.atlas_path, confounds=path)
    signals, _ = roi_timeseries(cohort.series_paths[0], cohort.atlas_path)
    expected = connectivity_matrix(clean_signals(signals, tr=cohort.tr, confounds=conf))
    np.testing.assert_allclose(got.matrix, expected, atol=1e-12)
    assert got.preprocessing is not None and got.preprocessing["n_confounds"] == 2


# ----------------------------------------------------------------------------- read_confounds
@pytest.mark.parametrize(("text", "match"), [
    ("a\tb\nn/a\t1\n0.1\t2\n0.2\t3\n", r"missing values.*\['a'\].*1 missing"),
    ("a\tb\nx\t1\ny\t2\nz\t3\n", r"must be numeric.*\['a'\]"),
    ("a\n1\n2\n", r"differ in length.*3 rows.*got 2"),
])
def test_read_confounds__bad_table_raises(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "c.tsv"
    path.write_text(text)
    with pytest.raises(SchemaError, match=match):
        read_confounds(path, n_timepoints=3)


def test_read_confounds__missing_or_empty_file_raises(tmp_path: Path) -> None:
    with pytest.raises(InputFileNotFoundError, match="confounds file not found"):
        read_confounds(tmp_path / "none.tsv")
    (tmp_path / "empty.tsv").write_text("")
    with pytest.raises(FormatError, match="not a readable TSV"):
        read_confounds(tmp_path / "empty.tsv")


# ---------------------------------------------------------------------------- TSV round trip
def test_connectivity_tsv__round_trip_is_exact_and_square(tmp_path: Path) -> None:
    m = connectivity_matrix(_signals(), kind="partial", fisher_z=True)
    labels = (2, 5, 7, 11, 40)
    written = write_connectivity_tsv(m, labels, tmp_path / "c.tsv", metadata={"kind": "p"})
    assert written == [tmp_path / "c.tsv", tmp_path / "c.json"]
    back, got_labels = read_connectivity_tsv(tmp_path / "c.tsv")
    assert got_labels == labels
    np.testing.assert_array_equal(back, m)
    rows = (tmp_path / "c.tsv").read_text().splitlines()
    assert rows[0].split("\t") == ["label", *map(str, labels)]
    assert [r.split("\t")[0] for r in rows[1:]] == list(map(str, labels))
    doc = json.loads((tmp_path / "c.json").read_text())
    assert (doc["format"], doc["format_version"]) == ("secured_bio.connectivity", 1)


def test_write_connectivity_tsv__non_square_raises_and_writes_nothing(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match=r"must be square.*\(2, 2\).*\(2, 3\)"):
        write_connectivity_tsv(np.ones((2, 3)), [1, 2], tmp_path / "c.tsv")
    assert list(tmp_path.iterdir()) == []


def test_read_connectivity_tsv__newer_format_version_is_refused(tmp_path: Path) -> None:
    write_connectivity_tsv(np.eye(2), [1, 2], tmp_path / "c.tsv", metadata={})
    doc = json.loads((tmp_path / "c.json").read_text())
    doc["format_version"] = 99
    (tmp_path / "c.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="unknown connectivity format version.*upgrade"):
        read_connectivity_tsv(tmp_path / "c.tsv")


@pytest.mark.parametrize(("text", "match"), [
    ("label\ta\tb\n", "header labels are not integers"),
    ("label\t1\t2\n1\t1.0\t0.5\n", "1 rows for 2 labels"),
    ("label\t1\t2\n2\t1.0\t0.5\n1\t0.5\t1.0\n", "row label differs"),
    ("label\t1\t2\n1\t1.0\tx\n2\t0.5\t1.0\n", "not a number"),
    ("label\t1\t2\n1\t1.0\n2\t0.5\t1.0\n", "2 cells, expected 3"),
])
def test_read_connectivity_tsv__malformed_raises(tmp_path: Path, text: str, match: str) -> None:
    (tmp_path / "c.tsv").write_text(text)
    with pytest.raises(FormatError, match=match):
        read_connectivity_tsv(tmp_path / "c.tsv")


def test_read_connectivity_tsv__missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(InputFileNotFoundError, match="connectivity TSV not found"):
        read_connectivity_tsv(tmp_path / "none.tsv")


# ---------------------------------------------------------------------------------- plots
def test_plot_connectivity__writes_a_png_of_the_figure_size(tmp_path: Path) -> None:
    import matplotlib.image as mpimg

    m = connectivity_matrix(_signals())
    path = plot_connectivity(m, [1, 2, 3, 4, 5], tmp_path / "c.png", title="test")
    img = mpimg.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 100
    assert [p.name for p in tmp_path.iterdir()] == ["c.png"]


def test_connectivity_png__label_count_mismatch_raises() -> None:
    with pytest.raises(SchemaError, match="must be square with one label per row"):
        connectivity_png(np.eye(3), [1, 2])
