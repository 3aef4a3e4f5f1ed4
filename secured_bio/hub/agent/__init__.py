"""The site agent: runs at a hospital, connects out to the hub, runs jobs on local data.

- :mod:`~secured_bio.hub.agent.discover`: the site's ``datasets.yaml`` and the catalogue
  metadata computed from the files (aggregates only);
- :mod:`~secured_bio.hub.agent.runners`: one task -> the ``secured-bio`` CLI in a subprocess,
  parameters through a per-kind allow-list;
- :mod:`~secured_bio.hub.agent.client`: the hub's agent REST API (retries, clear errors);
- :mod:`~secured_bio.hub.agent.loop`: register, then claim -> run -> upload -> complete;
- :mod:`~secured_bio.hub.agent.command`: ``secured-bio hub agent``.

The agent imports the library, never the hub server.
"""

from secured_bio.hub.agent.client import HubClient, HubError
from secured_bio.hub.agent.discover import LocalDataset, discover_datasets
from secured_bio.hub.agent.loop import run_agent, run_one_task
from secured_bio.hub.agent.runners import (
    JOB_PARAMS,
    Release,
    SiteIdentity,
    TaskCancelled,
    TaskFailed,
    check_params,
    run_task,
)

__all__ = [
    "JOB_PARAMS",
    "HubClient",
    "HubError",
    "LocalDataset",
    "Release",
    "SiteIdentity",
    "TaskCancelled",
    "TaskFailed",
    "check_params",
    "discover_datasets",
    "run_agent",
    "run_one_task",
    "run_task",
]
