"""The deterioration-prediction task for the federation layer (vital-sign windows -> event).

Each hospital holds its own site folder (``vitals.csv``, ``patients.csv``, ``events.csv``, as
written by ``secured-bio telemetry ingest`` or :func:`secured_bio.testing.simulate_vitals`).
:class:`TelemetryTask` computes that site's window features and labels
(:func:`secured_bio.telemetry.features.site_features`), splits them by admission time
(:func:`secured_bio.telemetry.features.time_split`: the latest-admitted patients are held
out, so centralized and federated training are evaluated on the same later patients) and
trains the MLP of :func:`secured_bio.telemetry.model.mlp`.  Nothing but model parameters,
counts and metrics leaves a site (see :mod:`secured_bio.privacy.federated.task`).

Missing features (NaN: no recent value, too few points for a slope) are set to 0 in the
:class:`~secured_bio.privacy.federated.task.SiteData` arrays, which is what the MLP's own
input step does, so scores are unchanged and other consumers (DP-SGD, audits) see finite
numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from secured_bio.errors import InputError
from secured_bio.privacy.federated.task import FederatedTask, SiteData, SiteRef

if TYPE_CHECKING:
    import torch

__all__ = ["TelemetryTask", "PAEDIATRIC_AGE_EDGES"]

#: Age-band edges (years) of the fairness audit: "0-<1", "1-4", "5-11", "12-17" and "18+"
#: (paediatric oncology units also follow young adults).
PAEDIATRIC_AGE_EDGES = (0, 1, 5, 12, 18, 200)
_WHERE = "telemonitoring task"


class TelemetryTask(FederatedTask):
    """Deterioration within ``horizon_hours`` from vital-sign window features, per hospital.

    The keyword parameters must be JSON-serialisable (they are passed as ``task_params`` of
    :func:`~secured_bio.privacy.federated.run_federated`).

    Parameters
    ----------
    cohort_dir
        Folder holding one sub-folder per site (simulation; ``sites`` names them in partition
        order).  In a deployment each SuperNode names its own folder as ``data-dir`` instead.
    sites
        Site names in partition order (simulation).
    windows
        Window lengths in hours (default [2, 6]).
    carry_hours, horizon_hours, event_delay_hours
        Feature and label definition (defaults 4, 6, 0; see
        :func:`secured_bio.telemetry.features.label_rows`).
    test_fraction
        Share of each site's latest-admitted patients held out (default 0.3).
    audit_fraction
        Share of each site's remaining (training-period) patients held out of training, drawn
        at random per outcome stratum, as the membership audit's non-members (default 0:
        none).  They come from the same admission period as the training patients, so the
        audit measures membership, not the shift between earlier and later admissions.
    audit_seed
        Seed of that draw (default 0).
    hidden
        MLP hidden widths (default [32, 16]).
    batch_size
        Mini-batch size of local training (default 32, as in FederatedTask.train).

    Examples
    --------
    >>> import tempfile
    >>> from secured_bio.testing import simulate_vitals
    >>> c = simulate_vitals(tempfile.mkdtemp(), n_sites=2, patients_per_site=4, hours=12)
    >>> task = TelemetryTask(cohort_dir=str(c.out_dir), sites=list(c.sites))
    >>> d = task.load_site(SiteRef(1, 2))
    >>> d.site, d.x_train.shape[1] == task.n_features, sorted(d.groups_test)
    ('site2', True, ['age_band', 'sex'])
    """

    @property
    def n_features(self) -> int:
        """Number of model inputs (from the windows; no data needed)."""
        from secured_bio.telemetry.features import feature_names

        return len(feature_names(self._windows()))

    def _windows(self) -> tuple[float, ...]:
        from secured_bio.telemetry.features import DEFAULT_WINDOWS

        return tuple(float(w) for w in self.params.get("windows", DEFAULT_WINDOWS))

    def build_model(self) -> torch.nn.Module:
        """Build the telemetry MLP sized for the window features."""
        from secured_bio.telemetry.model import mlp

        return mlp(self.n_features, hidden=tuple(self.params.get("hidden", [32, 16])))

    def _site_dir(self, ref: SiteRef) -> Path:
        if ref.data_dir:
            return Path(ref.data_dir)
        sites = list(self.params.get("sites") or [])
        root = self.params.get("cohort_dir")
        if root is None or ref.partition_id >= len(sites):
            raise InputError(
                "no data folder for this site",
                where=f"{_WHERE}, partition {ref.partition_id}",
                expected="a node config data-dir, or task parameters cohort_dir and sites "
                         f"with at least {ref.partition_id + 1} names",
                got=f"cohort_dir={'set' if root else 'unset'}, {len(sites)} site names",
                fix="start the SuperNode with --node-config 'data-dir=...' or pass "
                    "cohort_dir and sites",
            )
        return Path(root) / sites[ref.partition_id]

    def load_site(self, ref: SiteRef) -> SiteData:
        """Compute this site's features and labels and split them by admission time."""
        from secured_bio.privacy.assess.fairness import age_bands
        from secured_bio.telemetry.features import feature_names, site_features, time_split

        p = self.params
        site_dir = self._site_dir(ref)
        f = site_features(site_dir, windows=self._windows(),
                          carry_hours=float(p.get("carry_hours", 4.0)),
                          horizon_hours=float(p.get("horizon_hours", 6.0)),
                          event_delay_hours=float(p.get("event_delay_hours", 0.0)))
        train, test = time_split(f, test_fraction=float(p.get("test_fraction", 0.3)))
        x = np.nan_to_num(f[feature_names(self._windows())].to_numpy(dtype=np.float32), nan=0.0)
        y = f["label"].to_numpy(dtype=np.float32)
        ages = np.clip(f["age_years"].to_numpy(dtype=float), 0, 18)
        every = {"sex": f["sex"].astype(str).to_numpy(),
                 "age_band": age_bands(ages, edges=PAEDIATRIC_AGE_EDGES)}
        groups = {k: v[test] for k, v in every.items()}
        fraction = float(p.get("audit_fraction", 0.0))
        if fraction <= 0:
            return SiteData(site=site_dir.name, x_train=x[train], y_train=y[train],
                            x_test=x[test], y_test=y[test], groups_test=groups,
                            groups_train={k: v[train] for k, v in every.items()})
        ids = f["patient_id"].astype(str).to_numpy()
        audit = _audit_rows(ids, y, train, fraction,
                            seed=[int(p.get("audit_seed", 0)), *site_dir.name.encode()])
        train &= ~audit
        return SiteData(site=site_dir.name, x_train=x[train], y_train=y[train], x_test=x[test],
                        y_test=y[test], groups_test=groups, x_audit=x[audit],
                        y_audit=y[audit], ids_train=ids[train], ids_audit=ids[audit],
                        groups_train={k: v[train] for k, v in every.items()})


def _audit_rows(patients: np.ndarray, y: np.ndarray, train: np.ndarray, fraction: float, *,
                seed: list[int]) -> np.ndarray:
    """Rows of a random ``fraction`` of the training patients, stratified by outcome.

    Patients with a positive window and the others are drawn separately
    (:func:`secured_bio.telemetry.synthetic.holdout_ids`), so the audit's non-members have
    the members' case mix.  Whole patients move: none is both member and non-member.
    """
    from secured_bio.telemetry.synthetic import holdout_ids

    ids = sorted(set(patients[train].tolist()))
    positive = set(patients[train & (y == 1)].tolist())
    held = holdout_ids(ids, positive, fraction, np.random.default_rng(seed))
    return train & np.isin(patients, held)
