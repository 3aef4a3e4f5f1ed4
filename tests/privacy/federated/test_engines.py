"""The real engines: Flower simulation (Ray) and a loopback deployment of OS processes."""

from __future__ import annotations

import numpy as np
import psutil
import pytest

from secured_bio.privacy.federated import run_federated
from secured_bio.privacy.federated.apps import build_global_model, get_state
from secured_bio.testing import LinearToyTask

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


def _flat(state: list[np.ndarray]) -> np.ndarray:
    return np.concatenate([np.asarray(a, dtype=float).ravel() for a in state])


@pytest.mark.slow
def test_deployment__secagg_site_dropping_out_mid_round_equals_fedavg_of_the_others(tmp_path):
    # Site 2's ClientApp process exits in SecAgg+ stage 2 (after its key shares went out,
    # before its masked vector): 2 of 3 sites remain, at the reconstruction threshold (2),
    # so the server unmasks the survivors' sum from their shares of the dead site's key.
    kw = {"num_sites": 3, "rounds": 1, "fail_site": (1, 1)}
    dep = run_federated(TASK, PARAMS, engine="deployment", work_dir=tmp_path / "dep",
                        timeout_s=400, round_timeout_s=40, fail_mode="exit", secagg=True,
                        secagg_clipping_range=1.0, secagg_max_weight=60, **kw)
    ref = run_federated(TASK, PARAMS, engine="inprocess", work_dir=tmp_path / "ref", **kw)
    assert dep.secagg is not None and dep.secagg["reconstruction_threshold"] == 2
    assert [r["num_clients"] for r in dep.rounds] == [2]
    assert [r["failures"] for r in dep.rounds] == [1]
    # plain FedAvg over the two survivors; quantization step 2 / 2**22 per site
    assert np.abs(_flat(dep.state) - _flat(ref.state)).max() < 1e-5
    assert dep.engine["orphans"] == []
    assert _no_process_left(dep.engine["pids"])


@pytest.mark.slow
# opacus warns while it searches the noise multiplier of a 1-round run (its accountant's
# largest order is optimal there); the reported epsilon is still checked below.
@pytest.mark.filterwarnings("ignore:Optimal order is the largest alpha:UserWarning")
def test_deployment__secagg_with_central_dp_reports_epsilon_and_adds_calibrated_noise(tmp_path):
    # 41 parameters, 1 round: the DP model minus the non-DP SecAgg+ model is the server's
    # Gaussian noise (std noise_multiplier * clip / 3) as long as no update is clipped.
    params = {**PARAMS, "n_features": 40}
    kw = {"num_sites": 3, "rounds": 1, "secagg": True}
    dep = run_federated(TASK, params, engine="deployment", work_dir=tmp_path / "dep",
                        timeout_s=400, round_timeout_s=60, dp_epsilon=5.0, dp_clip=1.0, **kw)
    ref = run_federated(TASK, params, engine="inprocess", work_dir=tmp_path / "ref", **kw)
    assert dep.dp is not None and 0 < dep.dp["epsilon"] <= 5.0
    assert dep.secagg is not None and dep.secagg["max_weight"] == 1.0  # weight 1 per site
    assert [r["num_clients"] for r in dep.rounds] == [3]
    start = _flat(get_state(build_global_model(LinearToyTask(**params), 0)))
    # each site's update has L2 norm ~0.1 here, so the 1.0 clip does not bind
    assert np.linalg.norm(_flat(ref.state) - start) < 0.3
    rms = float(np.sqrt(np.mean((_flat(dep.state) - _flat(ref.state)) ** 2)))
    # chi distribution with 41 degrees of freedom: 0.5x-2x fails with probability < 1e-7
    assert 0.5 * dep.dp["noise_std"] < rms < 2.0 * dep.dp["noise_std"]
    assert dep.engine["orphans"] == []
    assert _no_process_left(dep.engine["pids"])


def test_server_error__is_reraised_in_the_caller_with_its_class_and_notes(tmp_path):
    # How a SecAgg+ refusal (or any secured_bio error) that stops the ServerApp of a
    # deployment or simulation reaches run_federated's caller, instead of a timeout.
    from secured_bio.errors import ConfigError
    from secured_bio.privacy.federated.apps import write_error
    from secured_bio.privacy.federated.engines import _raise_server_error

    _raise_server_error(tmp_path, tmp_path / "run.log")  # no error file: nothing happens
    e = ConfigError("too large", where="SecAgg+ server", got="1 site(s) refused", fix="raise it")
    e.add_note("site reply: x")
    write_error(tmp_path, e)
    with pytest.raises(ConfigError) as got:
        _raise_server_error(tmp_path, tmp_path / "run.log")
    assert str(got.value) == str(e)
    assert got.value.__notes__[0] == "site reply: x" and "run.log" in got.value.__notes__[1]
