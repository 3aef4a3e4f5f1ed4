"""Federated learning with Flower: thin apps, FedAvg/FedProx, SecAgg+, differential privacy.

A domain describes what a site trains in a :class:`FederatedTask`; :func:`run_federated` runs
it on Flower's simulation engine or as a loopback deployment (SuperLink + one SuperNode per
site) and returns a :class:`FederatedResult`.  Importing this package does not import Flower.
"""

from secured_bio.privacy.federated.dp import dp_report, epsilon_spent, noise_multiplier_for
from secured_bio.privacy.federated.engines import ENGINES, FederatedResult, run_federated
from secured_bio.privacy.federated.strategies import STRATEGIES, secagg_params
from secured_bio.privacy.federated.task import (
    FederatedTask,
    SiteData,
    SiteRef,
    TrainResult,
    load_task,
    task_path,
)

__all__ = [
    "FederatedTask",
    "SiteData",
    "SiteRef",
    "TrainResult",
    "load_task",
    "task_path",
    "run_federated",
    "FederatedResult",
    "ENGINES",
    "STRATEGIES",
    "secagg_params",
    "dp_report",
    "noise_multiplier_for",
    "epsilon_spent",
]
