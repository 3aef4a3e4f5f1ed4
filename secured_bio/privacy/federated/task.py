"""The contract between a domain (imaging, telemetry...) and the federation layer.

A *federated task* says what one site trains and evaluates; the federation layer
(:mod:`secured_bio.privacy.federated`) says how sites meet (Flower simulation or deployment),
how their updates are combined (FedAvg, FedProx, SecAgg+) and how they are protected
(differential privacy).  A domain module subclasses :class:`FederatedTask`; the Flower apps
rebuild the task in every site process from two strings that travel in Flower's run config:
the task's import path (``"package.module:ClassName"``) and its parameters as JSON.

A site's data never leaves :meth:`FederatedTask.load_site`: the apps send only model
parameters (and, for evaluation, counts and metrics) to the server.
"""

from __future__ import annotations

import abc
import importlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from secured_bio.errors import ConfigError
from secured_bio.privacy.federated.data import SiteData, SiteRef, TrainResult

if TYPE_CHECKING:
    import torch

__all__ = ["FederatedTask", "SiteData", "SiteRef", "TrainResult", "load_task", "task_path"]


class FederatedTask(abc.ABC):
    """A model and a site's data, as the federation layer needs them.

    Subclasses take JSON-serialisable keyword parameters only (they travel to every site
    process in Flower's run config) and implement :meth:`build_model` and :meth:`load_site`;
    :meth:`train` and :meth:`predict` have defaults for binary classifiers whose model returns
    one logit per example.  Override :meth:`train` for a different loss or for DP-SGD.
    """

    def __init__(self, **params: Any) -> None:
        self.params: dict[str, Any] = dict(params)

    @abc.abstractmethod
    def build_model(self) -> torch.nn.Module:
        """Return a freshly initialised model (the same architecture at every site)."""

    @abc.abstractmethod
    def load_site(self, ref: SiteRef) -> SiteData:
        """Load the site's data (only this site's) and split it into train and test."""

    def train(
        self,
        model: torch.nn.Module,
        data: SiteData,
        *,
        epochs: int,
        lr: float,
        proximal_mu: float = 0.0,
        seed: int = 0,
        sample_weight: np.ndarray | None = None,
    ) -> TrainResult:
        """Train ``model`` in place on the site's training rows; return counts and loss.

        Full-batch-friendly default: Adam on binary cross-entropy with logits, mini-batches
        of ``params.get('batch_size', 32)``.  With ``proximal_mu > 0`` adds FedProx's
        proximal term ``mu/2 * ||w - w_global||^2`` (Li et al., MLSys 2020), ``w_global``
        being the parameters the model held when training started.  ``sample_weight`` (one
        per training row, mean 1; group-reweighted training,
        :func:`~secured_bio.privacy.federated.fairness.group_weights`) weighs each row's loss.
        """
        import torch

        gen = torch.Generator().manual_seed(int(seed))
        x = torch.as_tensor(data.x_train, dtype=torch.float32)
        y = torch.as_tensor(data.y_train, dtype=torch.float32).reshape(-1)
        n = int(x.shape[0])
        if n == 0:
            return TrainResult(0, float("nan"))
        batch = int(self.params.get("batch_size", 32))
        global_params = [p.detach().clone() for p in model.parameters()]
        opt = torch.optim.Adam(model.parameters(), lr=lr,
                               weight_decay=float(self.params.get("weight_decay", 0.0)))
        loss_fn = torch.nn.BCEWithLogitsLoss(reduction="none")
        w = (torch.ones(n) if sample_weight is None
             else torch.as_tensor(np.asarray(sample_weight), dtype=torch.float32).reshape(-1))
        model.train()
        total, seen = 0.0, 0
        for _ in range(int(epochs)):
            order = torch.randperm(n, generator=gen)
            for start in range(0, n, batch):
                idx = order[start:start + batch]
                opt.zero_grad()
                loss = (loss_fn(model(x[idx]).reshape(-1), y[idx]) * w[idx]).mean()
                if proximal_mu > 0:
                    prox = sum(((p - g) ** 2).sum()
                               for p, g in zip(model.parameters(), global_params, strict=True))
                    loss = loss + 0.5 * proximal_mu * prox
                loss.backward()
                opt.step()
                total += float(loss.detach()) * len(idx)
                seen += len(idx)
        return TrainResult(n, total / max(seen, 1))

    def train_private(
        self,
        model: torch.nn.Module,
        data: SiteData,
        *,
        epochs: int,
        lr: float,
        epsilon: float,
        delta: float,
        max_grad_norm: float,
        batch_size: int | None = None,
        rounds: int = 1,
        server_round: int = 1,
        seed: int = 0,
    ) -> tuple[TrainResult, float]:
        """Train with DP-SGD (record-level DP); return the result and the epsilon spent.

        The default is :func:`secured_bio.privacy.federated.dpsgd.train_dpsgd` (binary
        cross-entropy on one logit, as :meth:`train`); override it for another loss.
        ``epsilon`` is the site's budget over all ``rounds``; ``server_round`` is 1-based.
        """
        from secured_bio.privacy.federated.dpsgd import train_dpsgd

        return train_dpsgd(self, model, data, epochs=epochs, lr=lr, epsilon=epsilon,
                           delta=delta, max_grad_norm=max_grad_norm, batch_size=batch_size,
                           seed=seed, rounds=rounds, server_round=server_round)

    def predict(self, model: torch.nn.Module, x: np.ndarray) -> np.ndarray:
        """Return P(y = 1) for each row of ``x`` (sigmoid of the model's logit)."""
        import torch

        model.eval()
        with torch.no_grad():
            logits = model(torch.as_tensor(x, dtype=torch.float32)).reshape(-1)
        return torch.sigmoid(logits).numpy().astype(np.float64)


def task_path(task: type[FederatedTask] | FederatedTask) -> str:
    """Import path ``"module:ClassName"`` of a task class (what travels in the run config)."""
    cls = task if isinstance(task, type) else type(task)
    return f"{cls.__module__}:{cls.__qualname__}"


def load_task(path: str, params: str | Mapping[str, Any] | None = None) -> FederatedTask:
    """Rebuild a task from its import path and parameters (a mapping or a JSON string).

    Raises
    ------
    ConfigError
        If the path is malformed, cannot be imported, or does not name a FederatedTask.

    Examples
    --------
    >>> task = load_task("secured_bio.testing:LinearToyTask", '{"n_features": 3}')
    >>> task.params["n_features"]
    3
    """
    module, _, name = str(path).partition(":")
    where = "federated task"
    if not module or not name:
        raise ConfigError("malformed task path", where=where, expected="'package.module:Class'",
                          got=repr(path), fix="name the task class with its module")
    try:
        obj: Any = importlib.import_module(module)
        for part in name.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise ConfigError("cannot import the federated task", where=where,
                          expected="an importable FederatedTask subclass", got=repr(path),
                          fix="check the module and class name, and that the package is "
                              "installed at every site") from e
    if not (isinstance(obj, type) and issubclass(obj, FederatedTask)):
        raise ConfigError("not a federated task", where=where,
                          expected="a FederatedTask subclass", got=repr(path),
                          fix="subclass secured_bio.privacy.federated.FederatedTask")
    if params is None:
        kwargs: dict[str, Any] = {}
    elif isinstance(params, str):
        try:
            kwargs = json.loads(params) if params else {}
        except json.JSONDecodeError as e:
            raise ConfigError("task parameters are not JSON", where=where,
                              expected="a JSON object", got=f"{len(params)} characters",
                              fix="pass a dict or json.dumps(...) of one") from e
    else:
        kwargs = dict(params)
    if not isinstance(kwargs, dict):
        raise ConfigError("task parameters are not an object", where=where,
                          expected="a JSON object", got=type(kwargs).__name__,
                          fix="pass a dict of keyword parameters")
    return obj(**kwargs)
