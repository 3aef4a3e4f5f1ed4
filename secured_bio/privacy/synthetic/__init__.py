"""Synthetic data: tables, vital-sign series and images, with fidelity/utility/privacy evaluation.

Tables (:mod:`~secured_bio.privacy.synthetic.tabular`): a Gaussian copula, sequential CART
(:mod:`~secured_bio.privacy.synthetic.cart`, synthpop-style), a TVAE, the differentially
private MST mechanism, and ``auto`` (the CLI default: picks copula or CART on a validation split
under a privacy guard), with exact conditional generation
(:mod:`~secured_bio.privacy.synthetic.conditions`) and column typing that writes values back in
the input's formats (:mod:`~secured_bio.privacy.synthetic.schema`).
Images (:mod:`~secured_bio.privacy.synthetic.images`): a MONAI diffusion model (DDPM training,
DDIM sampling) on 2D slices.  Evaluation (:mod:`~secured_bio.privacy.synthetic.evaluate`):
fidelity, utility (TSTR vs TRTR) and privacy (membership inference first) with an HTML report.

Names are imported lazily, so importing the package stays light (no torch, no scipy).

Examples
--------
>>> import secured_bio.privacy.synthetic as synth
>>> "synthesize_table" in synth.__all__
True
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = [
    "METHODS",
    "ColumnSpec",
    "Condition",
    "SynthesisResult",
    "TableSchema",
    "TableSynthesizer",
    "fit_synthesizer",
    "infer_schema",
    "parse_condition",
    "resolve_conditions",
    "synthesize_table",
    "evaluate_synthetic",
    "write_report",
    "read_evaluation",
    "train_diffusion",
    "sample",
    "synthesize_images",
]

_HOME = {
    "METHODS": "tabular",
    "SynthesisResult": "tabular",
    "TableSynthesizer": "tabular",
    "fit_synthesizer": "tabular",
    "synthesize_table": "tabular",
    "ColumnSpec": "schema",
    "TableSchema": "schema",
    "infer_schema": "schema",
    "Condition": "conditions",
    "parse_condition": "conditions",
    "resolve_conditions": "conditions",
    "evaluate_synthetic": "evaluate",
    "write_report": "report_html",
    "read_evaluation": "report_html",
    "train_diffusion": "images",
    "sample": "images",
    "synthesize_images": "images",
}


def __getattr__(name: str) -> Any:
    if name in _HOME:
        module = importlib.import_module(f"{__name__}.{_HOME[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
