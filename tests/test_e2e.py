"""Multi-process end-to-end runs: the arena and every agent are real processes talking ZeroMQ."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, arena_command, launch, read_jsonl, run_dir_of, run_processes, write_config

pytestmark = pytest.mark.slow


def test_example_ipd_config_runs_200_episodes_with_exact_payoffs(tmp_path: Path) -> None:
    started = time.monotonic()
    finished = launch(REPO / "examples" / "ipd.toml", 120, "--out", str(tmp_path))
    elapsed = time.monotonic() - started
    assert finished.code == 0, finished.output
    assert elapsed < 60
    episodes = finished.episodes()
    assert len(episodes) == 200
    # tit-for-tat (alice) vs always-defect (bob), T = 32: CD once (-3, 0), then DD 31 times (-2, -2)
    for episode in episodes:
        assert episode["returns"] == {"alice": -3 - 2 * 31, "bob": 0 - 2 * 31}
        assert episode["steps"] == 32
        assert episode["collective_per_step"] == pytest.approx((-65 - 62) / 32, abs=1e-9)


@pytest.mark.parametrize(("kind", "per_step"), [("always-defect", -4.0), ("always-cooperate", -2.0)])
def test_constant_pairs_have_exact_collective_return(ipd_run, kind: str, per_step: float) -> None:
    finished = ipd_run(kind, kind)
    assert finished.code == 0, finished.output
    episodes = finished.episodes()
    assert len(episodes) == 3
    for episode in episodes:
        assert episode["collective_per_step"] == per_step
        assert episode["returns"] == {"alice": per_step / 2 * 10, "bob": per_step / 2 * 10}


def test_tit_for_tat_mirrors_cooperation(ipd_run) -> None:
    finished = ipd_run("tit-for-tat", "always-cooperate")
    assert finished.code == 0, finished.output
    assert finished.episodes()[0]["returns"] == {"alice": -10.0, "bob": -10.0}


def test_payments_reach_recipients_and_the_ledger_balances(ipd_run) -> None:
    # alice defects and pays 1.0 whenever bob cooperates; bob always cooperates (10 steps).
    finished = ipd_run("pays-for-cooperation", "always-cooperate", rmax=2.0, disclose=["actions", "payments"])
    assert finished.code == 0, finished.output
    for episode, ledger in zip(finished.episodes(), finished.ledger()):
        assert episode["returns"] == {"alice": 0.0, "bob": -30.0}  # extrinsic only
        assert episode["incentives_given"] == {"alice": 10.0, "bob": 0.0}
        assert episode["incentives_received"] == {"alice": 0.0, "bob": 10.0}
        assert ledger["balanced"]
        assert ledger["given_units"]["alice"] == ledger["received_units"]["bob"] == 8 * 10 * 1_000_000
        # every credit alice paid was for bob's action 0 (cooperate)
        assert ledger["paid_by_recipient_action_units"][0][1] == [8 * 10 * 1_000_000, 0]
    bob_metrics = read_jsonl(finished.run_dir / "agents" / "bob" / "metrics.jsonl")
    assert [m["return"] for m in bob_metrics] == [-30.0] * 3


def test_invalid_payments_are_refused_by_field_and_the_run_goes_on(ipd_run) -> None:
    finished = ipd_run("tests.faulty_agents:BadPayer", "always-defect", rmax=2.0)
    assert finished.code == 0, finished.output
    for episode, ledger in zip(finished.episodes(), finished.ledger()):
        assert ledger["refused"] == {"alice": 4, "bob": 0}
        assert ledger["balanced"]
        # steps 4..9 paid 1.0 per copy to bob; the four bad steps paid nothing
        assert episode["incentives_received"]["bob"] == 6.0
    log = (finished.run_dir / "agents" / "alice.log").read_text()
    assert "amounts[0, 1] = 4.0 exceeds rmax 2.0" in log
    assert "amounts[0, 1] = -1.0 is negative" in log
    assert "amounts[0, 0] = nan is not finite" in log
    assert "amounts[0, 0] = 0.5 pays yourself" in log


def test_missing_disclosure_is_refused_with_the_fix(ipd_run) -> None:
    finished = ipd_run("tit-for-tat", "always-defect", disclose=[])
    assert finished.code == 2  # caught by preflight, before anything starts (the arena refuses it too)
    assert "needs others' actions with 2 agents; this run discloses nothing" in finished.output
    assert 'disclose = ["actions"]' in finished.output


def _start(config: Path) -> tuple[subprocess.Popen, Path]:
    process = subprocess.Popen(arena_command("launch", str(config)), cwd=REPO, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True, start_new_session=True)
    first = process.stdout.readline()
    run_dir = run_dir_of(first)
    assert run_dir is not None, first
    return process, run_dir


def _wait_for_episodes(run_dir: Path, count: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    path = run_dir / "episodes.jsonl"
    while time.monotonic() < deadline:
        if path.exists() and len(read_jsonl(path)) >= count:
            return
        time.sleep(0.05)
    raise AssertionError(f"fewer than {count} episodes after {timeout} s")


def _slow_config(tmp_path: Path) -> Path:
    return write_config(tmp_path / "slow.toml",
                        {"game": "ipd", "episodes": 1000, "batch_size": 4, "heartbeat_timeout_s": 2.0,
                         "params": {"max_steps": 10}},
                        [{"name": "alice", "kind": "always-cooperate"},
                         {"name": "bob", "kind": "tests.faulty_agents:SlowDefector"}])


def test_killed_agent_ends_the_run_naming_it(tmp_path: Path) -> None:
    process, run_dir = _start(_slow_config(tmp_path))
    try:
        _wait_for_episodes(run_dir, 2)
        killed_at = time.monotonic()
        os.kill(run_processes(run_dir)["bob"], signal.SIGKILL)
        output, _ = process.communicate(timeout=30)
        noticed = time.monotonic() - killed_at
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode not in (0, None)
    assert noticed < 10
    assert "agent 'bob'" in output and "SIGKILL" in output
    result = read_jsonl(run_dir / "episodes.jsonl")
    assert len(result) >= 2
    assert [e["episode"] for e in result] == list(range(len(result)))
    assert "bob" in (run_dir / "result.json").read_text()


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_stops_every_process_and_keeps_finished_episodes(tmp_path: Path, stop_signal: int) -> None:
    process, run_dir = _start(_slow_config(tmp_path))
    try:
        _wait_for_episodes(run_dir, 2)
        pids = [run_processes(run_dir)[name] for name in ("alice", "bob")]
        interrupted_at = time.monotonic()
        process.send_signal(stop_signal)
        process.communicate(timeout=20)
        stopped_in = time.monotonic() - interrupted_at
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 130
    assert stopped_in < 8
    time.sleep(0.2)
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()
                and "zombie" not in Path(f"/proc/{pid}/status").read_text().lower()]
    episodes = read_jsonl(run_dir / "episodes.jsonl")
    assert len(episodes) >= 2
    assert all(math.isfinite(e["collective_return"]) for e in episodes)


def test_agents_that_close_slowly_after_a_complete_run_are_not_killed(ipd_run) -> None:
    finished = ipd_run("always-cooperate", "tests.faulty_agents:SlowCloser")
    assert finished.code == 0, finished.output
    assert "ended with" not in finished.output, finished.output


def test_trajectories_flag_termination_apart_from_truncation(tmp_path: Path) -> None:
    # ER(2,1) with seat 0 always at the lever (action 0) and seat 1 always to the door (action 2):
    # the door opens and the episode terminates at the first step, in every copy.
    config = write_config(tmp_path / "er.toml",
                          {"game": "escape_room", "episodes": 1, "batch_size": 3, "params": {"max_steps": 5}},
                          [{"name": "lever", "kind": "always-cooperate"},
                           {"name": "door", "kind": "tests.faulty_agents:TrajectoryRecorder"}])
    finished = launch(config)
    assert finished.code == 0, finished.output
    assert finished.episodes()[0]["returns"] == {"lever": -1.0, "door": 10.0}
    record = read_jsonl(finished.run_dir / "agents" / "door" / "metrics.jsonl")[0]
    assert record["length"] == 1 and record["terminated"] == [[True, True, True]] and record["valid"] == [[1, 1, 1]]
