"""What an agent learns from is what happened: played actions, reset no-ops, exact summaries, and an
agent that notices a dead arena at the episode barrier."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from arena.server import Arena
from arena.settings import ArenaSettings, SeatSpec
from tests.conftest import REPO, launch, read_jsonl, write_config


def test_summary_means_are_float64(tmp_path: Path) -> None:
    """A mean of 0.1 stays 0.1: events and returns are averaged in float64, not float32 (0.100000001)."""
    arena = Arena(ArenaSettings(game="ipd", batch_size=10), [SeatSpec(name="a"), SeatSpec(name="b")], tmp_path)
    ones = np.zeros((10, 2), np.float32)
    ones[0] = 1.0
    summary = arena._summary(0, ones.astype(np.float64) * 0.1 * 10, ones, ones, np.full(10, 5),
                             {"cooperated": ones}, 0.0)
    assert summary["events"]["cooperated"] == {"a": 0.1, "b": 0.1}
    assert summary["returns"] == {"a": 0.1, "b": 0.1}


@pytest.mark.slow
def test_trajectory_holds_the_default_action_the_arena_played(tmp_path: Path) -> None:
    """Under deadline = "default" the slow seat's act at t = 1, 2 is replaced by cooperate (0); its
    trajectory must say 0 there, not the defect (1) it sampled too late."""
    config = write_config(tmp_path / "run.toml",
                          {"game": "ipd", "episodes": 2, "batch_size": 2, "step_timeout_s": 0.2, "deadline": "default",
                           "params": {"max_steps": 3}},
                          [{"name": "quick", "kind": "always-cooperate"},
                           {"name": "slow", "kind": "tests.faulty_agents:DawdlingRecorder"}])
    finished = launch(config)
    assert finished.code == 0, finished.output
    metrics = read_jsonl(finished.run_dir / "agents" / "slow" / "metrics.jsonl")
    assert [m["actions"] for m in metrics] == [[[1, 1], [0, 0], [0, 0]]] * 2


@pytest.mark.slow
@pytest.mark.parametrize(("game", "noop"), [("box_trapped", 4), ("cleanup", 4), ("ipd", None)])
def test_previous_actions_at_reset_are_the_games_noop(tmp_path: Path, game: str, noop: int | None) -> None:
    config = write_config(tmp_path / "run.toml",
                          {"game": game, "episodes": 1, "batch_size": 2, "disclose": ["actions"],
                           "params": {"max_steps": 2, **({"n_agents": 2} if game == "cleanup" else {})}},
                          [{"name": f"p{i}", "kind": "tests.faulty_agents:FirstViewRecorder"} for i in range(2)])
    finished = launch(config)
    assert finished.code == 0, finished.output
    seen = read_jsonl(finished.run_dir / "agents" / "p0" / "metrics.jsonl")[0]
    expected = -1 if noop is None else noop
    assert seen["noop_action"] == noop
    assert seen["others_actions"] == [[expected, expected]] * 2
    assert seen["played"] == [expected] * 2


@pytest.mark.slow
def test_agent_at_the_barrier_notices_a_killed_arena(tmp_path: Path) -> None:
    """One seat is ready and waits at the episode barrier while the other learns; SIGKILL the arena:
    the waiting agent must say so and exit non-zero within the heartbeat timeout (2 s here)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    spec = {"arena": {"game": "ipd", "episodes": 3, "batch_size": 2, "heartbeat_interval_s": 0.25,
                      "heartbeat_timeout_s": 2.0, "params": {"max_steps": 3}},
            "seats": [{"name": "waiting"}, {"name": "learning"}]}
    (run_dir / "arena.json").write_text(json.dumps(spec))
    arena = subprocess.Popen([sys.executable, "-m", "arena", str(run_dir)], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    agents: list[subprocess.Popen] = []
    try:
        connection = run_dir / "connection.json"
        for _ in range(200):
            if connection.exists() and connection.read_text().strip().endswith("}"):
                break
            time.sleep(0.05)
        address = json.loads(connection.read_text())["address"]
        for seat, kind in enumerate(["random", "tests.faulty_agents:SlowLearner"]):
            agents.append(subprocess.Popen(
                [sys.executable, "-m", "launch.cli", "agent", kind, "--connect", address, "--seat", str(seat),
                 "--name", spec["seats"][seat]["name"]], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                text=True))
        episodes = run_dir / "episodes.jsonl"
        for _ in range(400):  # the first episode has ended: "waiting" is ready, "learning" sleeps 30 s
            if episodes.exists() and episodes.read_text().strip():
                break
            time.sleep(0.05)
        time.sleep(0.5)
        arena.kill()
        killed = time.monotonic()
        output, _ = agents[0].communicate(timeout=20)
        assert time.monotonic() - killed < 2.0 + 3.0
        assert agents[0].returncode != 0
        assert "stopped answering" in output
    finally:
        for process in [arena, *agents]:
            process.kill()
            process.wait()
