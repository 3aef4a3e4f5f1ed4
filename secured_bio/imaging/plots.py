"""Plots of connectivity matrices (matplotlib, Agg backend, no global pyplot state)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from secured_bio._atomic import atomic_write
from secured_bio.errors import SchemaError

__all__ = ["plot_connectivity", "connectivity_png"]


def connectivity_png(
    matrix: np.ndarray,
    labels: Sequence[int],
    *,
    title: str = "Connectivity",
    colorbar_label: str = "r",
    dpi: int = 100,
) -> bytes:
    """Render a connectivity matrix as a PNG heatmap and return its bytes.

    The colour scale is symmetric around 0 (diverging ``RdBu_r``), spanning the largest
    absolute off-diagonal value (at least 1e-12), so the diagonal does not wash out the rest.

    Parameters
    ----------
    matrix
        (r, r) matrix.
    labels
        Atlas label of each row/column (tick labels).
    title
        Figure title.
    colorbar_label
        Colour bar caption (e.g. ``'r'`` or ``'Fisher z'``).
    dpi
        Resolution.

    Returns
    -------
    bytes
        The PNG file content.

    Raises
    ------
    SchemaError
        If the matrix is not square or the label count differs.

    Examples
    --------
    >>> png = connectivity_png(np.eye(3), [1, 2, 3])
    >>> png[:4]
    b'\\x89PNG'
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    m = np.asarray(matrix, dtype=np.float64)
    labs = [str(int(v)) for v in labels]
    if m.ndim != 2 or m.shape[0] != m.shape[1] or m.shape[0] != len(labs):
        raise SchemaError("matrix to plot must be square with one label per row",
                          where="connectivity_png", expected=f"({len(labs)}, {len(labs)})",
                          got=f"shape {m.shape}", fix="pass the labels returned with it")
    off = m[~np.eye(m.shape[0], dtype=bool)]
    off = off[np.isfinite(off)]
    vmax = max(float(np.abs(off).max()) if off.size else 1.0, 1e-12)
    size = min(12.0, 3.0 + 0.35 * len(labs))
    fig = Figure(figsize=(size + 1.2, size), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    im = ax.imshow(m, cmap="RdBu_r", vmin=-vmax, vmax=vmax, interpolation="nearest")
    step = max(1, len(labs) // 30)
    ticks = np.arange(0, len(labs), step)
    ax.set_xticks(ticks, [labs[i] for i in ticks], rotation=90)
    ax.set_yticks(ticks, [labs[i] for i in ticks])
    ax.set_xlabel("atlas label")
    ax.set_ylabel("atlas label")
    ax.set_title(title)
    fig.colorbar(im, ax=ax, label=colorbar_label)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def plot_connectivity(
    matrix: np.ndarray,
    labels: Sequence[int],
    path: str | os.PathLike[str],
    *,
    title: str = "Connectivity",
    colorbar_label: str = "r",
) -> Path:
    """Write a PNG heatmap of a connectivity matrix (atomically).

    Parameters
    ----------
    matrix, labels, title, colorbar_label
        See :func:`connectivity_png`.
    path
        Output PNG.

    Returns
    -------
    Path
        The file written.

    Raises
    ------
    SchemaError
        If the matrix is not square or the label count differs.

    Examples
    --------
    >>> import tempfile, pathlib
    >>> p = plot_connectivity(np.eye(2), [1, 2], pathlib.Path(tempfile.mkdtemp()) / "c.png")
    >>> p.read_bytes()[:4]
    b'\\x89PNG'
    """
    png = connectivity_png(matrix, labels, title=title, colorbar_label=colorbar_label)
    out = Path(path)
    with atomic_write(out, "wb") as fh:
        fh.write(png)
    return out
