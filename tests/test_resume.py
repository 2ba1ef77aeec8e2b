"""`arena launch --resume RUN_DIR`: a run whose arena was killed goes on in its own directory with the
same episode numbers, seeds and schedule, and ends as the same run played without the kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from arena.rundir import RunDirBusy, ensure_stopped
from launch.config import RunConfig
from launch.resume import plan_resume, record_count
from tests.conftest import REPO, arena_command, launch, read_jsonl, run_dir_of, run_processes, write_config

SLOW = "tests.faulty_agents:SlowDefector"  # 10 ms per step: a run lasts long enough to be killed mid-way


def without_wall_times(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{key: value for key, value in record.items() if key != "wall_time_s"} for record in records]


def config_in(folder: Path, arena: dict[str, Any], seats: list[dict[str, Any]], checkpoint_every: int = 0) -> Path:
    folder.mkdir(parents=True)
    path = write_config(folder / "run.toml", arena, seats)
    path.write_text(path.read_text().replace("out = ", f"checkpoint_every = {checkpoint_every}\nout = ", 1))
    return path


def launch_until(config: Path, after_episodes: int, log: Path) -> tuple[subprocess.Popen, Path]:
    """`arena launch CONFIG`, running until `after_episodes` episodes are written; the launcher and run dir."""
    with open(log, "w") as out:
        launcher = subprocess.Popen(arena_command("launch", str(config)), cwd=REPO, stdout=out,
                                    stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    run_dir = None
    while time.monotonic() < deadline:
        run_dir = run_dir or run_dir_of(log.read_text())
        if run_dir is not None and record_count(run_dir / "episodes.jsonl") >= after_episodes:
            return launcher, run_dir
        if launcher.poll() is not None:
            break
        time.sleep(0.01)
    launcher.kill()
    launcher.wait()
    raise AssertionError(f"no {after_episodes} episodes:\n{log.read_text()}")


def launch_and_kill_the_arena(config: Path, after_episodes: int, log: Path) -> Path:
    """`arena launch CONFIG`, SIGKILL its arena once `after_episodes` episodes are written; the run dir."""
    launcher, run_dir = launch_until(config, after_episodes, log)
    try:
        pid = run_processes(run_dir).get("arena")
        assert pid is not None, log.read_text()
        os.kill(pid, signal.SIGKILL)
        assert launcher.wait(timeout=60) != 0
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    return run_dir


def resume(run_dir: Path) -> tuple[int, str]:
    done = subprocess.run(arena_command("launch", "--resume", str(run_dir)), cwd=REPO, capture_output=True,
                          text=True, timeout=180)
    return done.returncode, done.stdout + done.stderr


@pytest.mark.slow
def test_a_killed_run_resumed_equals_the_uninterrupted_run(tmp_path: Path) -> None:
    """Scripted agents on the Coin Game, whose coins are placed from the per-episode seeds, with evaluation
    episodes in the schedule; the kill also leaves a torn last line (as a kill mid-write would)."""
    arena = {"game": "coin_game", "episodes": 24, "eval_every": 5, "eval_episodes": 2, "batch_size": 4,
             "params": {"max_steps": 8}}
    seats = [{"name": "a", "kind": "always-cooperate"}, {"name": "b", "kind": SLOW}]
    whole = launch(config_in(tmp_path / "whole", arena, seats), 180)
    assert whole.code == 0, whole.output
    run_dir = launch_and_kill_the_arena(config_in(tmp_path / "killed", arena, seats), 9, tmp_path / "launch.log")
    killed_at = record_count(run_dir / "episodes.jsonl")
    assert 9 <= killed_at < 32
    with open(run_dir / "episodes.jsonl", "a") as episodes:
        episodes.write('{"episode": 99, "steps": 8.0, "ret')

    code, output = resume(run_dir)
    assert code == 0, output
    assert f"resuming at episode {killed_at}" in output
    assert without_wall_times(read_jsonl(run_dir / "episodes.jsonl")) == without_wall_times(whole.episodes())
    assert read_jsonl(run_dir / "ledger.jsonl") == whole.ledger()
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "complete" and result["episodes"] == 32 and result["resumed_from"] == killed_at
    assert json.loads((run_dir / "run.json").read_text())["resumed"][0]["from_episode"] == killed_at
    assert (run_dir / "resume-1" / "episodes.jsonl").read_text().endswith('"ret')  # the torn line, kept aside
    metrics = read_jsonl(run_dir / "agents" / "b" / "metrics.jsonl")
    assert [m["episode"] for m in metrics] == list(range(32))


@pytest.mark.slow
def test_learners_resume_from_their_latest_checkpoint_and_go_on_numbering(tmp_path: Path) -> None:
    """A `pg` learner on the IPD (warm-up, evaluation and checkpoints every 3 training episodes): the resumed
    run goes on from its latest checkpoint, numbers every episode once, and being deterministic given its
    restored generators, ends exactly as the uninterrupted run."""
    arena = {"game": "ipd", "episodes": 20, "eval_every": 4, "warmup_episodes": 2, "batch_size": 8,
             "params": {"max_steps": 8}}
    seats = [{"name": "learner", "kind": "pg"}, {"name": "b", "kind": SLOW}]
    whole = launch(config_in(tmp_path / "whole", arena, seats, 3), 180)
    assert whole.code == 0, whole.output
    run_dir = launch_and_kill_the_arena(config_in(tmp_path / "killed", arena, seats, 3), 11, tmp_path / "launch.log")
    config = RunConfig.model_validate_json((run_dir / "config.resolved.json").read_text())
    point = plan_resume(config, run_dir)
    assert point.trained % 3 == 0 and point.trained >= 3
    assert point.checkpoints == {"learner": str(run_dir / "agents" / "learner" / "checkpoints" /
                                                f"episode_{point.trained}.pt")}

    code, output = resume(run_dir)
    assert code == 0, output
    episodes = read_jsonl(run_dir / "episodes.jsonl")
    assert [e["episode"] for e in episodes] == list(range(25))
    assert [e["trained"] for e in episodes] == [e["trained"] for e in whole.episodes()]
    metrics = read_jsonl(run_dir / "agents" / "learner" / "metrics.jsonl")
    assert [m["episode"] for m in metrics] == list(range(25))
    log = (run_dir / "agents" / "learner.log").read_text()
    assert f"resumed from {point.checkpoints['learner']}" in log
    checkpoints = sorted(p.name for p in (run_dir / "agents" / "learner" / "checkpoints").glob("*.pt"))
    assert checkpoints == sorted([f"episode_{k}.pt" for k in range(3, 20, 3)] + ["final.pt"])
    assert without_wall_times(episodes) == without_wall_times(whole.episodes())
    assert json.loads((run_dir / "result.json").read_text())["resumed_from"] == point.first_episode


def test_a_complete_run_is_not_resumed(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "result.json").write_text('{"status": "complete"}')
    config = RunConfig.model_validate({"agents": [{"name": "a"}, {"name": "b"}]})
    with pytest.raises(ValueError, match="is complete; nothing to resume"):
        plan_resume(config, run_dir)


def test_records_stop_at_a_torn_line_or_a_gap(tmp_path: Path) -> None:
    path = tmp_path / "episodes.jsonl"
    path.write_text('{"episode": 0}\n{"episode": 1}\n{"episode": 2, "ret')
    assert record_count(path) == 2
    path.write_text('{"episode": 0}\n{"episode": 2}\n')
    assert record_count(path) == 1


def test_a_run_whose_arena_still_runs_is_not_resumed(tmp_path: Path) -> None:
    """A SIGKILLed launcher leaves its arena and agents running (in sessions of their own): `--resume` refuses,
    naming the arena, and moves nothing; once the arena is gone, so is its lock on the run directory."""
    arena = {"game": "ipd", "episodes": 100_000, "batch_size": 4, "params": {"max_steps": 8}}
    seats = [{"name": "a", "kind": "always-cooperate"}, {"name": "b", "kind": SLOW}]
    launcher, run_dir = launch_until(config_in(tmp_path / "run", arena, seats), 2, tmp_path / "launch.log")
    launcher.kill()
    launcher.wait()
    left = run_processes(run_dir)
    try:
        assert set(left) == {"arena", "a", "b"}
        code, output = resume(run_dir)
        assert code == 2, output
        pid = left["arena"]
        assert f"run {run_dir} is still running (arena pid {pid}): stop it (kill {pid}) or wait for it" in output
        assert not (run_dir / "resume-1").exists() and run_processes(run_dir)["arena"] == pid
    finally:
        for pid in left.values():
            os.kill(pid, signal.SIGKILL)
    # the lock goes with the arena's last file: a killed process drops out of /proc's command lines
    # (run_processes) a moment before the kernel has closed its files, so wait for the lock itself
    deadline = time.monotonic() + 30
    while True:
        try:
            ensure_stopped(run_dir)  # raises RunDirBusy while an arena holds RUN_DIR/arena.lock
            break
        except RunDirBusy:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.slow
def test_a_resume_from_the_start_is_recorded(tmp_path: Path) -> None:
    """A learner without checkpoints goes on from episode 0: run.json keeps the first start and lists the
    resumption, and result.json says `resumed_from` 0."""
    arena = {"game": "ipd", "episodes": 6, "batch_size": 4, "params": {"max_steps": 8}}
    seats = [{"name": "learner", "kind": "pg"}, {"name": "b", "kind": SLOW}]
    run_dir = launch_and_kill_the_arena(config_in(tmp_path / "run", arena, seats), 2, tmp_path / "launch.log")
    first_run_id = json.loads((run_dir / "run.json").read_text())["run_id"]

    code, output = resume(run_dir)
    assert code == 0, output
    assert "resuming at episode 0" in output
    record = json.loads((run_dir / "run.json").read_text())
    assert record["run_id"] == first_run_id
    assert [entry["from_episode"] for entry in record["resumed"]] == [0]
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "complete" and result["resumed_from"] == 0
    assert result["reason"] == "run complete: 6 episodes, resumed at episode 0"
