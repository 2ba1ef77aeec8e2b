"""Deadline policies with a slow agent, and runs whose agents join from other terminals."""

from __future__ import annotations

import json
import re
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import REPO, arena_command, launch, read_jsonl, write_config

pytestmark = pytest.mark.slow
DAWDLER = "tests.faulty_agents:Dawdler"


def dawdler_run(tmp_path: Path, policy: str):
    config = write_config(tmp_path / "run.toml",
                          {"game": "ipd", "episodes": 2, "batch_size": 2, "step_timeout_s": 0.2, "deadline": policy,
                           "params": {"max_steps": 3}},
                          [{"name": "quick", "kind": "always-cooperate"}, {"name": "slow", "kind": DAWDLER}])
    return launch(config)


def test_default_policy_plays_the_default_action_and_counts_the_miss(tmp_path: Path) -> None:
    finished = dawdler_run(tmp_path, "default")
    assert finished.code == 0, finished.output
    for episode in finished.episodes():
        # slow defects at t=0, then its 0.6 s at t=1 makes it miss t=1 and (still catching up) t=2;
        # the IPD default action, cooperate, is played for it there
        assert episode["returns"] == {"quick": -3.0 - 1.0 - 1.0, "slow": 0.0 - 1.0 - 1.0}
        assert episode["deadline_misses"] == {"quick": 0, "slow": 2}
    assert "no act within 0.2 s; the default was used" in (finished.run_dir / "agents" / "slow.log").read_text()


def test_abort_policy_ends_the_run_naming_the_agent(tmp_path: Path) -> None:
    finished = dawdler_run(tmp_path, "abort")
    assert finished.code != 0
    assert "agent 'slow'" in finished.output and "did not answer 'act' within 0.2 s" in finished.output
    assert finished.result()["status"] == "aborted"


def test_wait_policy_waits(tmp_path: Path) -> None:
    finished = dawdler_run(tmp_path, "wait")
    assert finished.code == 0, finished.output
    assert [e["returns"] for e in finished.episodes()] == [{"quick": -9.0, "slow": 0.0}] * 2


def _join(command: str) -> subprocess.Popen:
    args = command.split()
    assert args[:2] == ["arena", "agent"]
    return subprocess.Popen(arena_command(*args[1:]), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _join_commands(process: subprocess.Popen, count: int, timeout: float = 30) -> tuple[list[str], str]:
    """Read the launcher's output until it has printed `count` join commands."""
    lines, commands = [], []
    deadline = time.monotonic() + timeout
    while len(commands) < count and time.monotonic() < deadline:
        line = process.stdout.readline()
        lines.append(line)
        commands += re.findall(r"(arena agent .*)$", line.strip())
    return commands, "".join(lines)


@pytest.mark.parametrize("sign", [False, True])
def test_serve_prints_join_commands_that_work(tmp_path: Path, sign: bool) -> None:
    config = write_config(tmp_path / "run.toml",
                          {"game": "ipd", "episodes": 2, "batch_size": 4, "sign": sign, "params": {"max_steps": 4}},
                          [{"name": "alice", "kind": "always-defect"}, {"name": "bob", "kind": "always-cooperate"}])
    server = subprocess.Popen(arena_command("serve", str(config)), cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    agents: list[subprocess.Popen] = []
    try:
        commands, printed = _join_commands(server, 2)
        assert len(commands) == 2, printed
        assert ("--connection-file" in commands[0]) == sign
        agents = [_join(command) for command in commands]
        output, _ = server.communicate(timeout=60)
        assert server.returncode == 0, printed + output
        assert all(agent.wait(timeout=10) == 0 for agent in agents)
    finally:
        for process in [server, *agents]:
            if process.poll() is None:
                process.kill()
    run_dir = next((tmp_path / "runs").iterdir())
    assert [e["returns"] for e in read_jsonl(run_dir / "episodes.jsonl")] == [{"alice": 0.0, "bob": -12.0}] * 2


def test_launch_waits_for_an_external_seat(tmp_path: Path) -> None:
    config = write_config(tmp_path / "run.toml",
                          {"game": "ipd", "episodes": 2, "batch_size": 4, "params": {"max_steps": 4}},
                          [{"name": "alice", "kind": "always-defect"},
                           {"name": "bob", "kind": "always-cooperate", "external": True}])
    launcher = subprocess.Popen(arena_command("launch", str(config)), cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    joined = None
    try:
        commands, printed = _join_commands(launcher, 1)
        assert commands and "--seat 1 --name bob" in commands[0], printed
        time.sleep(0.5)
        assert launcher.poll() is None  # still waiting in the lobby
        joined = _join(commands[0])
        output, _ = launcher.communicate(timeout=60)
        assert launcher.returncode == 0, printed + output
        assert joined.wait(timeout=10) == 0
    finally:
        for process in (launcher, joined):
            if process is not None and process.poll() is None:
                process.kill()
    assert "run complete: 2 episodes" in output


def test_an_agent_dying_in_the_episode_barrier_leaves_one_count_of_episodes(tmp_path: Path) -> None:
    """The episode it was learning from is finished and written: result.json counts it too."""
    arena = {"game": "ipd", "episodes": 5, "batch_size": 2, "params": {"max_steps": 3}, "heartbeat_timeout_s": 2.0,
             "heartbeat_interval_s": 0.25}
    seats = [{"name": "a", "kind": "always-defect"}, {"name": "b", "kind": "tests.faulty_agents:DiesInTheBarrier"}]
    done = launch(write_config(tmp_path / "run.toml", arena, seats), 120)
    assert done.code != 0
    result = json.loads((done.run_dir / "result.json").read_text())
    assert result["status"] == "aborted" and "'b'" in result["reason"]
    assert result["episodes"] == len(done.episodes()) == 2
