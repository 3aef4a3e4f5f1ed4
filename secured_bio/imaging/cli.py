"""``secured-bio imaging``: connectivity matrices and cohort feature tables.

Loaded lazily by :mod:`secured_bio.cli` (``LAZY_GROUPS``); errors raised here are turned into
one-line messages and exit codes by ``secured_bio.cli.main`` (1 bad input, 2 bad option).
Every command writes all its files or none.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import click

from secured_bio.imaging.connectivity import KINDS

__all__ = ["imaging"]

_POSITIVE = click.FloatRange(min=0.0, min_open=True)


@click.group()
def imaging() -> None:
    """Functional imaging (fMRI, functional ultrasound): ROI connectivity and features.

    \b
    secured-bio imaging connectivity --bold sub-01_task-rest_bold.nii.gz \\
        --atlas atlas.nii.gz --out conn.tsv --kind partial --fisher-z
    secured-bio imaging features --cohort demo/ --out features.tsv
    """


def _atlas_entity(atlas: Path) -> str:
    """Make a BIDS label for the atlas from its file name (letters and digits only)."""
    stem = atlas.name.split(".")[0]
    stem = stem.split("atlas-", 1)[1].split("_")[0] if "atlas-" in stem else stem
    label = re.sub(r"[^A-Za-z0-9]", "", stem)
    return label or "custom"


@imaging.command()
@click.option("--bold", "bold", required=True, type=click.Path(path_type=Path),
              help="4D NIfTI series (fMRI BOLD or fUS power Doppler), .nii or .nii.gz.")
@click.option("--atlas", "atlas", required=True, type=click.Path(path_type=Path),
              help="3D integer label atlas on the same voxel grid (0 = background).")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Output .tsv, or an existing folder: then the file is named BIDS-like, "
              "e.g. sub-01_task-rest_atlas-<atlas>_desc-<kind>_connectivity.tsv.")
@click.option("--kind", type=click.Choice(KINDS), default="correlation", show_default=True,
              help="Pearson correlation, or partial correlation (from the inverse covariance).")
@click.option("--fisher-z", is_flag=True,
              help="Fisher z-transform (arctanh) the values; the diagonal is then 0.")
@click.option("--no-preprocess", is_flag=True,
              help="Use the raw ROI mean signals (no detrend, filter or z-score).")
@click.option("--tr", type=_POSITIVE, default=None, metavar="SECONDS",
              help="Repetition time; overrides the header (pixdim[4]) and the JSON sidecar.")
@click.option("--high-pass", type=_POSITIVE, default=None, metavar="HZ",
              help="Butterworth high-pass cut-off (off by default; e.g. 0.01).")
@click.option("--low-pass", type=_POSITIVE, default=None, metavar="HZ",
              help="Butterworth low-pass cut-off (off by default; e.g. 0.1 for fMRI).")
@click.option("--confounds", type=click.Path(path_type=Path), default=None,
              help="TSV of nuisance regressors (header row, one numeric column each, one row "
              "per volume) to regress out.")
@click.option("--plot", "plot", type=click.Path(path_type=Path), default=None,
              help="PNG heatmap path (default: the output with .png).")
def connectivity(bold: Path, atlas: Path, out: Path, kind: str, fisher_z: bool,
                 no_preprocess: bool, tr: float | None, high_pass: float | None,
                 low_pass: float | None, confounds: Path | None, plot: Path | None) -> None:
    """ROI-to-ROI connectivity of one series: a square TSV, a JSON sidecar and a PNG.

    \b
    Steps: mean signal of each atlas label; unless --no-preprocess, linear detrend,
    optional band-pass (--high-pass/--low-pass) and confound regression, z-score (as
    nilearn.signal.clean); then correlation or partial correlation.
    The TSV's header is 'label' and the atlas label values; each row starts with its label;
    values are written at full precision. With --no-preprocess --kind correlation the
    matrix is the Pearson correlation of the ROI mean signals.
    """
    from secured_bio._atomic import atomic_paths
    from secured_bio.errors import ConfigError
    from secured_bio.imaging.connectivity import (
        CONNECTIVITY_FORMAT,
        CONNECTIVITY_FORMAT_VERSION,
        format_connectivity_tsv,
        series_connectivity,
    )
    from secured_bio.imaging.io import derivative_path
    from secured_bio.imaging.plots import connectivity_png

    if out.is_dir():
        out = derivative_path(bold, out, atlas=_atlas_entity(atlas), desc=kind)
    elif out.suffix != ".tsv":
        raise ConfigError("--out must end with .tsv or be an existing folder", where=str(out),
                          expected="e.g. conn.tsv", fix="add the .tsv extension")
    sidecar = out.with_suffix(".json")
    png_path = plot if plot is not None else out.with_suffix(".png")
    if png_path.suffix != ".png" or png_path in (out, sidecar):
        raise ConfigError("--plot must be a separate .png file", where=str(png_path),
                          expected="e.g. conn.png", fix="change --plot")
    conn = series_connectivity(
        bold, atlas, kind=kind, fisher_z=fisher_z, preprocess=not no_preprocess, tr=tr,
        high_pass=high_pass, low_pass=low_pass, confounds=confounds,
    )
    title = f"{kind} connectivity" + (" (Fisher z)" if fisher_z else "")
    png = connectivity_png(conn.matrix, conn.labels, title=f"{bold.name}\n{title}",
                           colorbar_label="Fisher z" if fisher_z else "r")
    doc = {"format": CONNECTIVITY_FORMAT, "format_version": CONNECTIVITY_FORMAT_VERSION,
           "matrix_file": out.name, "source": str(bold), "atlas": str(atlas),
           **conn.metadata(), "plot_file": png_path.name}
    with atomic_paths(out, sidecar, png_path) as (tmp_tsv, tmp_json, tmp_png):
        tmp_tsv.write_text(format_connectivity_tsv(conn.matrix, conn.labels), encoding="utf-8")
        tmp_json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        tmp_png.write_bytes(png)
    click.echo(f"{kind} connectivity of {len(conn.labels)} regions over {conn.n_timepoints} "
               f"volumes (TR {conn.tr:g} s) -> {out} (+ {sidecar.name}, {png_path.name})")


@imaging.command()
@click.option("--cohort", "cohort", required=True, type=click.Path(path_type=Path),
              help="Cohort folder: atlas.nii.gz, participants.tsv, <site>/sub-*/func/*.nii.gz "
              "(the layout of 'secured-bio demo tumor_classification').")
@click.option("--out", "out", required=True, type=click.Path(path_type=Path),
              help="Feature table to write (.tsv); a .json sidecar is written beside it.")
@click.option("--kind", type=click.Choice(KINDS), default="correlation", show_default=True,
              help="Connectivity measure of each participant.")
@click.option("--fisher-z/--no-fisher-z", default=True, show_default=True,
              help="Fisher z-transform the edges (better suited to linear classifiers).")
@click.option("--no-preprocess", is_flag=True,
              help="Use raw ROI mean signals (no detrend or z-score).")
@click.option("--site", "sites", multiple=True,
              help="Only this site folder (repeatable; default: all sites).")
def features(cohort: Path, out: Path, kind: str, fisher_z: bool, no_preprocess: bool,
             sites: tuple[str, ...]) -> None:
    """Write the connectivity feature table of a cohort: one row per participant.

    \b
    Columns: participant_id, then site, label, sex, age (from participants.tsv when
    present), then the upper-triangle edges named roi<a>-roi<b> by atlas label.
    This is the input of the connectivity classifier.
    """
    from secured_bio.imaging.features import connectivity_features, write_features

    table = connectivity_features(cohort, kind=kind, fisher_z=fisher_z,
                                  preprocess=not no_preprocess, sites=list(sites) or None)
    n_edges = sum(c.startswith("roi") for c in table.columns)
    write_features(table, out, metadata={"cohort": str(cohort), "kind": kind,
                                         "fisher_z": fisher_z,
                                         "preprocess": not no_preprocess})
    click.echo(f"features of {len(table)} participants x {n_edges} edges ({kind}"
               f"{', Fisher z' if fisher_z else ''}) -> {out}")
