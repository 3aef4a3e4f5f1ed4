"""A seeded toy federated task: logistic regression on synthetic data, one split per site.

It exists so that the federation layer (:mod:`secured_bio.privacy.federated`) can be tested in
milliseconds per round, independently of any domain module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from secured_bio.privacy.federated.task import FederatedTask, SiteData, SiteRef

if TYPE_CHECKING:
    import torch

__all__ = ["LinearToyTask", "DiabetesTableTask"]


class LinearToyTask(FederatedTask):
    """Logistic regression on seeded Gaussian features with a planted linear signal.

    Every site draws ``n_per_site`` rows from its own generator (seeded by ``seed`` and the
    site's ``partition_id``), with a site-specific shift of the features so that sites are
    not identically distributed; labels follow a logistic model with the same true weights
    everywhere.  A quarter of each site's rows are held out for testing.

    Parameters
    ----------
    n_features
        Number of features (the model has ``n_features + 1`` parameters).
    n_per_site
        Rows per site (train + test).
    seed
        Seed of the data (the model's initial weights are seeded by the federation layer).
    shift
        Size of the per-site feature shift (0 gives identically distributed sites).
    **params
        Other :class:`FederatedTask` parameters (``batch_size``, ``weight_decay``).

    Examples
    --------
    >>> task = LinearToyTask(n_features=3, n_per_site=40, seed=1)
    >>> data = task.load_site(SiteRef(partition_id=0, num_partitions=2))
    >>> data.site, data.x_train.shape, data.x_test.shape
    ('site1', (30, 3), (10, 3))
    """

    def __init__(self, n_features: int = 5, n_per_site: int = 200, seed: int = 0,
                 shift: float = 0.5, **params: Any) -> None:
        super().__init__(n_features=int(n_features), n_per_site=int(n_per_site),
                         seed=int(seed), shift=float(shift), **params)

    def true_weights(self) -> np.ndarray:
        """Return the planted weights of the logistic model (shared by every site)."""
        rng = np.random.default_rng([int(self.params["seed"]), 10_000])
        return rng.normal(0.0, 1.5, size=int(self.params["n_features"]))

    def build_model(self) -> torch.nn.Module:
        """One linear layer producing one logit."""
        import torch

        return torch.nn.Linear(int(self.params["n_features"]), 1)

    def load_site(self, ref: SiteRef) -> SiteData:
        """Draw the site's rows (deterministic in ``seed`` and ``partition_id``)."""
        p, n = int(self.params["n_features"]), int(self.params["n_per_site"])
        rng = np.random.default_rng([int(self.params["seed"]), int(ref.partition_id)])
        offset = rng.normal(0.0, float(self.params["shift"]), size=p)
        x = rng.normal(0.0, 1.0, size=(n, p)) + offset
        logits = x @ self.true_weights()
        y = (rng.random(n) < 1.0 / (1.0 + np.exp(-logits))).astype(np.float32)
        n_test = n // 4
        return SiteData(
            site=f"site{ref.partition_id + 1}",
            x_train=x[n_test:].astype(np.float32), y_train=y[n_test:],
            x_test=x[:n_test].astype(np.float32), y_test=y[:n_test],
        )


class DiabetesTableTask(FederatedTask):
    """A real clinical table shipped offline, split across sites: scikit-learn's diabetes data.

    442 patients (Efron et al., "Least Angle Regression", Ann. Statist. 2004; bundled with
    scikit-learn, so no download): age, sex, BMI, mean blood pressure and six serum
    measurements; the label is disease progression one year after baseline above the median
    (140.5).  Rows are dealt to ``num_partitions`` sites at random (seeded, stratified by
    label); each site holds out ``test_fraction`` of its rows (stratified).  Features are
    standardised with the whole table's mean and SD (public constants of a published table,
    not fitted per site).  Subgroups: ``sex`` (the table codes it 1/2 without saying which is
    which: ``sex1``/``sex2``) and ``age_band`` (18-39, 40-59, 60+).  The model is logistic
    regression, or an MLP with ``hidden`` widths.

    Examples
    --------
    >>> task = DiabetesTableTask()
    >>> d = task.load_site(SiteRef(0, 3))
    >>> d.site, d.x_train.shape[1], sorted(d.groups_train)
    ('site1', 10, ['age_band', 'sex'])
    """

    def __init__(self, seed: int = 0, test_fraction: float = 0.3,
                 hidden: list[int] | None = None, **params: Any) -> None:
        super().__init__(seed=int(seed), test_fraction=float(test_fraction),
                         hidden=list(hidden or []), **params)

    def build_model(self) -> torch.nn.Module:
        """Logistic regression (no hidden layer) or a small ReLU MLP, one logit."""
        import torch

        layers: list[torch.nn.Module] = []
        width = 10
        for h in self.params["hidden"]:
            layers += [torch.nn.Linear(width, int(h)), torch.nn.ReLU()]
            width = int(h)
        layers.append(torch.nn.Linear(width, 1))
        return torch.nn.Sequential(*layers)

    def load_site(self, ref: SiteRef) -> SiteData:
        """Deal the table's rows to the sites and return this site's train/test split."""
        from sklearn.datasets import load_diabetes

        from secured_bio.privacy.assess.fairness import age_bands

        d = load_diabetes(as_frame=False, scaled=False)
        raw = np.asarray(d.data, dtype=float)
        y = (np.asarray(d.target) > np.median(d.target)).astype(np.float32)
        x = ((raw - raw.mean(axis=0)) / raw.std(axis=0)).astype(np.float32)
        rng = np.random.default_rng([int(self.params["seed"]), 4242])
        site_of = np.empty(len(y), dtype=int)
        for label in (0.0, 1.0):  # stratified deal
            idx = rng.permutation(np.flatnonzero(y == label))
            site_of[idx] = np.arange(idx.size) % int(ref.num_partitions)
        rows = np.flatnonzero(site_of == int(ref.partition_id))
        test = np.zeros(rows.size, dtype=bool)
        for label in (0.0, 1.0):
            own = np.flatnonzero(y[rows] == label)
            pick = rng.permutation(own)[:int(round(float(self.params["test_fraction"])
                                                   * own.size))]
            test[pick] = True
        groups = {"sex": np.array([f"sex{int(v)}" for v in raw[rows, 1]]),
                  "age_band": age_bands(raw[rows, 0])}
        return SiteData(
            site=f"site{ref.partition_id + 1}", x_train=x[rows][~test], y_train=y[rows][~test],
            x_test=x[rows][test], y_test=y[rows][test],
            groups_test={k: v[test] for k, v in groups.items()},
            groups_train={k: v[~test] for k, v in groups.items()})
