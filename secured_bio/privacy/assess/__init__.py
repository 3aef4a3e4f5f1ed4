"""Assessment of released data and models: fairness audits and re-identification risk.

``fairness_audit``
    Per-site and per-subgroup metrics of a binary classifier, worst group, and gaps
    (demographic-parity and equalized-odds differences, AUROC gap).
``age_bands``
    Age in years -> band labels (``"18-39"``) for subgroup audits.
``reidentification_risk``, ``population_uniqueness``
    Prosecutor, journalist and marketer risk, sample uniques, population uniqueness (Zayatz).
``linkage_attack``, ``singling_out``, ``linkability``, ``inference``, ``assess_table``
    Attack simulations on a release (linkage; anonymeter's method with a control set).
``membership_inference``, ``dcr_membership``, ``loss_threshold_attack``
    Membership inference against released/synthetic tables and trained models (with the
    helpers ``distance_to_closest_record`` and ``per_record_loss``).
``plot_fairness``, ``plot_per_site``, ``plot_training_curves``, ``plot_risk``
    PNG charts of an audit, of per-site metrics, of federated training rounds and of a risk
    report (matplotlib is imported only when a chart is drawn).
"""

from secured_bio.privacy.assess.attacks import (
    assess_table,
    inference,
    linkability,
    linkage_attack,
    singling_out,
)
from secured_bio.privacy.assess.fairness import age_bands, fairness_audit
from secured_bio.privacy.assess.membership import (
    dcr_membership,
    distance_to_closest_record,
    loss_threshold_attack,
    membership_inference,
    per_record_loss,
)
from secured_bio.privacy.assess.plots import (
    plot_fairness,
    plot_per_site,
    plot_risk,
    plot_training_curves,
)
from secured_bio.privacy.assess.risk import population_uniqueness, reidentification_risk

__all__ = [
    "fairness_audit",
    "age_bands",
    "plot_fairness",
    "plot_per_site",
    "plot_training_curves",
    "plot_risk",
    "reidentification_risk",
    "population_uniqueness",
    "linkage_attack",
    "singling_out",
    "linkability",
    "inference",
    "assess_table",
    "membership_inference",
    "distance_to_closest_record",
    "dcr_membership",
    "per_record_loss",
    "loss_threshold_attack",
]
