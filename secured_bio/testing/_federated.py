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

__all__ = ["LinearToyTask"]


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
