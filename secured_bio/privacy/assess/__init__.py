"""Assessment of released data and models: fairness audits (re-identification risk to come).

``fairness_audit``
    Per-site and per-subgroup metrics of a binary classifier, worst group, and gaps
    (demographic-parity and equalized-odds differences, AUROC gap).
``age_bands``
    Age in years -> band labels (``"18-39"``) for subgroup audits.
``plot_fairness``, ``plot_per_site``, ``plot_training_curves``
    PNG charts of an audit, of per-site metrics and of federated training rounds
    (matplotlib is imported only when a chart is drawn).
"""

from secured_bio.privacy.assess.fairness import age_bands, fairness_audit
from secured_bio.privacy.assess.plots import plot_fairness, plot_per_site, plot_training_curves

__all__ = [
    "fairness_audit",
    "age_bands",
    "plot_fairness",
    "plot_per_site",
    "plot_training_curves",
]
