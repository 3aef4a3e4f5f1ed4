"""The real engines: Flower simulation (Ray) and a loopback deployment of OS processes."""

from __future__ import annotations

import numpy as np
import psutil
import pytest

from secured_bio.privacy.federated import run_federated

TASK = "secured_bio.testing:LinearToyTask"
PARAMS = {"n_features": 4, "n_per_site": 80, "seed": 3}


def _no_process_left(pids: list[int]) -> bool:
    alive = [p for p in pids if psutil.pid_exists(p)
             and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    return not alive


@pytest.mark.slow
def test_simulation__matches_inprocess_counts_failure_and_leaves_no_process(tmp_path):
    kw = {"num_sites": 3, "rounds": 2, "fail_site": (2, 2)}
    sim = run_federated(TASK, PARAMS, engine="simulation", work_dir=tmp_path / "sim",
                        timeout_s=300, **kw)
    ref = run_federated(TASK, PARAMS, engine="inprocess", work_dir=tmp_path / "ref", **kw)
    for a, b in zip(sim.state, ref.state, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert [r["failures"] for r in sim.rounds] == [0, 1]
    assert [r["num_clients"] for r in sim.rounds] == [3, 2]
    assert sim.engine["orphans"] == []
    assert _no_process_left(sim.engine["pids"])


@pytest.mark.slow
def test_deployment__real_processes_survive_a_dead_site_and_shut_down(tmp_path):
    kw = {"num_sites": 3, "rounds": 2}
    dep = run_federated(TASK, PARAMS, engine="deployment", work_dir=tmp_path / "dep",
                        timeout_s=400, round_timeout_s=40, fail_site=(1, 2),
                        fail_mode="exit", **kw)
    ref = run_federated(TASK, PARAMS, engine="inprocess", work_dir=tmp_path / "ref",
                        fail_site=(1, 2), **kw)
    # the dead site's ClientApp process exited: round 2 aggregates the two others
    assert [r["num_clients"] for r in dep.rounds] == [3, 2]
    assert [r["failures"] for r in dep.rounds] == [0, 1]
    for a, b in zip(dep.state, ref.state, strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert dep.engine["processes"] == 5  # superlink, 3 supernodes, flwr run
    assert len(dep.engine["pids"]) > dep.engine["processes"]  # + serverapp/clientapps seen
    assert dep.engine["orphans"] == []
    assert _no_process_left(dep.engine["pids"])
