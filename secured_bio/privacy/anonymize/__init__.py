"""De-identification of tables, images and genomic files.

Tables: :func:`anonymize` / :func:`anonymize_csv` generalize quasi-identifiers along
hierarchies (:mod:`~secured_bio.privacy.anonymize.hierarchies`) and suppress records until
k-anonymity, l-diversity and t-closeness hold (:mod:`~secured_bio.privacy.anonymize.models`),
searching with Mondrian or an optimal lattice search
(:mod:`~secured_bio.privacy.anonymize.search`); pycanon re-checks every release.
:func:`group_audit` and :func:`target_auroc_by_group` audit a release for bias: which groups
lose more records or more detail than the whole, and what that costs a model trained on it.

Images: :func:`anonymize_nifti` clears identifying NIfTI header fields, extensions and
sidecar keys, and optionally defaces structural head images with a quality check.
Genomic files: :func:`deidentify_vcf` pseudonymizes sample IDs with a site-held HMAC key,
scrubs identifying header lines and suppresses rare variants; :func:`membership_power`
measures what released allele frequencies reveal (Homer et al. 2008).
"""

from secured_bio.privacy.anonymize.bias import (
    group_audit,
    release_group_audit,
    target_auroc_by_group,
)
from secured_bio.privacy.anonymize.hierarchies import (
    Hierarchy,
    auto_hierarchy,
    date_hierarchy,
    flat_hierarchy,
    interval_hierarchy,
    mask_hierarchy,
    read_hierarchy_csv,
)
from secured_bio.privacy.anonymize.models import (
    PrivacyModels,
    distinct_l_diversity,
    entropy_l_diversity,
    k_anonymity,
    recursive_c_l_diversity,
    t_closeness,
)
from secured_bio.privacy.anonymize.nifti import (
    DefaceError,
    NiftiReport,
    anonymize_nifti,
    deface,
    deidentify_header,
    deidentify_sidecar,
)
from secured_bio.privacy.anonymize.table import (
    Anonymized,
    anonymize,
    anonymize_csv,
    load_hierarchies,
    read_table_csv,
    utility_metrics,
    verify_with_pycanon,
)
from secured_bio.privacy.anonymize.vcf import (
    MembershipPower,
    VcfReport,
    deidentify_vcf,
    homer_membership,
    membership_power,
    pseudonymize_id,
    read_key_file,
)

__all__ = [
    "DefaceError",
    "MembershipPower",
    "NiftiReport",
    "VcfReport",
    "anonymize_nifti",
    "deface",
    "deidentify_header",
    "deidentify_sidecar",
    "deidentify_vcf",
    "homer_membership",
    "membership_power",
    "pseudonymize_id",
    "read_key_file",
    "Anonymized",
    "anonymize",
    "anonymize_csv",
    "read_table_csv",
    "load_hierarchies",
    "utility_metrics",
    "verify_with_pycanon",
    "group_audit",
    "release_group_audit",
    "target_auroc_by_group",
    "Hierarchy",
    "auto_hierarchy",
    "interval_hierarchy",
    "date_hierarchy",
    "mask_hierarchy",
    "flat_hierarchy",
    "read_hierarchy_csv",
    "PrivacyModels",
    "k_anonymity",
    "distinct_l_diversity",
    "entropy_l_diversity",
    "recursive_c_l_diversity",
    "t_closeness",
]
