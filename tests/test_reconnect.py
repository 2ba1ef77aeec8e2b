"""Seats taken back (`[arena] reconnect_grace_s`, protocol 1.4): an agent killed mid-run is restarted with
its seat token and the run completes; a wrong or absent token is refused; a seat nobody rejoins within
the grace ends the run naming it, its deadline policy covering the gap until then."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import zmq

from launch.resume import record_count
from protocols.codec import Codec, Message
from protocols.messages import Hello
from protocols.transport import recv_frames, send_frames
from tests.conftest import REPO, arena_command, read_jsonl, run_dir_of, run_processes, write_config

pytestmark = pytest.mark.slow
SLOW = "tests.faulty_agents:SlowDefector"  # 10 ms per step: the run is still going when its agent is killed


def start_arena(run_dir: Path, **settings: Any) -> tuple[subprocess.Popen, dict[str, Any]]:
    run_dir.mkdir()
    arena = {"game": "ipd", "batch_size": 4, "params": {"max_steps": 6}, "heartbeat_interval_s": 0.1,
             "heartbeat_timeout_s": 1.0, **settings}
    (run_dir / "arena.json").write_text(json.dumps({"arena": arena, "seats": [{"name": "a"}, {"name": "b"}]}))
    arena = subprocess.Popen([sys.executable, "-m", "arena", str(run_dir)], cwd=REPO,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    connection = run_dir / "connection.json"
    for _ in range(600):
        if connection.exists() and connection.read_text().strip().endswith("}"):
            break
        time.sleep(0.05)
    return arena, json.loads(connection.read_text())


def agent(kind: str, address: str, seat: int, name: str, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(arena_command("agent", kind, "--connect", address, "--seat", str(seat), "--name", name,
                                          *extra), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def kill_all(processes: list[subprocess.Popen]) -> None:
    for process in processes:
        if process.poll() is None:
            process.kill()
            process.wait()


def wait_for(condition: Any, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"no {what} within {timeout_s} s"
        time.sleep(0.02)


def test_a_killed_agent_restarted_with_its_seat_token_rejoins_and_the_run_completes(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    arena, connection = start_arena(run_dir, episodes=12, deadline="wait", reconnect_grace_s=60.0)
    address = connection["address"]
    out = tmp_path / "b"
    processes = [agent("always-cooperate", address, 0, "a"), agent(SLOW, address, 1, "b", "--out", str(out))]
    try:
        wait_for(lambda: record_count(run_dir / "episodes.jsonl") >= 2, "second episode")
        processes[1].kill()
        processes[1].wait()
        log = run_dir / "arena.log"
        wait_for(lambda: "its seat is held 60 s for it to rejoin" in log.read_text(), "seat held")
        token = (out / "seat.token").read_text()
        assert len(token) == 32 and (out / "seat.token").stat().st_mode & 0o077 == 0

        (tmp_path / "wrong.token").write_text("0" * 32)
        for extra in (["--seat-token-file", str(tmp_path / "wrong.token")], []):
            stranger = agent("always-defect", address, 1, "mallory", *extra)
            output, _ = stranger.communicate(timeout=60)
            assert stranger.returncode == 1, output
            assert ("wrong seat token for seat 1 ('b')" if extra else
                    "seat 1 ('b') is held for the agent it was given to") in output

        processes.append(agent(SLOW, address, 1, "b", "--out", str(out), "--seat-token-file", str(out / "seat.token")))
        assert arena.wait(timeout=120) == 0
        output, _ = processes[-1].communicate(timeout=30)
        assert processes[-1].returncode == 0, output
        assert "rejoined its seat" in output
    finally:
        kill_all([arena, *processes])
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "complete" and result["episodes"] == 12
    assert [seat["rejoins"] for seat in result["seats"]] == [0, 1]
    episodes = read_jsonl(run_dir / "episodes.jsonl")
    assert [e["episode"] for e in episodes] == list(range(12))
    # under 'wait' nothing was played for b while it was away: every episode is C against D throughout
    assert all(e["returns"] == {"a": -18.0, "b": 0.0} for e in episodes)
    text = (run_dir / "arena.log").read_text()
    assert "agent 'b' (seat 1" in text and "rejoined its seat after" in text and token not in text


def test_a_seat_nobody_rejoins_ends_the_run_after_the_grace_and_defaults_cover_the_gap(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    arena, connection = start_arena(run_dir, episodes=100_000, deadline="default", reconnect_grace_s=3.0)
    address = connection["address"]
    processes = [agent("always-cooperate", address, 0, "a"), agent(SLOW, address, 1, "b")]
    try:
        wait_for(lambda: record_count(run_dir / "episodes.jsonl") >= 2, "second episode")
        processes[1].kill()
        killed = time.monotonic()
        assert arena.wait(timeout=120) == 3
        assert time.monotonic() - killed < 1.0 + 3.0 + 15.0
    finally:
        kill_all([arena, *processes])
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "aborted"
    assert result["reason"].startswith("agent 'b' (seat 1, tests.faulty_agents:SlowDefector) sent nothing for")
    assert "did not rejoin within reconnect_grace_s = 3 s" in result["reason"]
    # while b was away the run went on: its default action (cooperate) was played, each step a miss
    away = [e for e in read_jsonl(run_dir / "episodes.jsonl") if e["deadline_misses"]["b"] == 6]
    assert away and all(e["returns"] == {"a": -6.0, "b": -6.0} for e in away)


def receive(sock: zmq.Socket, codec: Codec, kind: str) -> Message:
    """The next message of type `kind` on `sock`, decoded (signature and replay checks included) by `codec`."""
    while True:
        assert sock.poll(30_000), f"no {kind} within 30 s"
        message = codec.decode(recv_frames(sock))
        if message.type == kind:
            return message


def test_a_rejoining_client_that_kept_its_codec_gets_the_pending_observe_as_a_new_message(tmp_path: Path) -> None:
    """A signed run: a client whose connection drops keeps its codec (the signatures it has seen) and rejoins;
    the observe it had not answered comes again with the same content as a new message, not as a replay."""
    run_dir = tmp_path / "run"
    # this client sends no heartbeats: a long timeout keeps its seat in the lobby until the other agent is in
    arena, connection = start_arena(run_dir, episodes=2, deadline="wait", reconnect_grace_s=60.0, sign=True,
                                    heartbeat_timeout_s=60.0)
    other = subprocess.Popen(arena_command("agent", "always-cooperate", "--connection-file",
                                           str(run_dir / "connection.json"), "--seat", "0", "--name", "a"),
                             cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    codec = Codec(key=connection["key"].encode())
    context = zmq.Context()
    try:
        first = context.socket(zmq.DEALER)
        first.connect(connection["address"])
        send_frames(first, codec.encode(Hello(name="b", seat=1)))
        token = receive(first, codec, "welcome").content.seat_token
        asked = receive(first, codec, "observe")
        first.close(linger=0)  # the connection drops before the client answers

        again = context.socket(zmq.DEALER)
        again.connect(connection["address"])
        send_frames(again, codec.encode(Hello(name="b", seat=1, seat_token=token)))
        receive(again, codec, "welcome")
        resent = receive(again, codec, "observe")
    finally:
        context.destroy(linger=0)
        for process in (arena, other):
            process.kill()
            process.wait()
    assert resent.header.msg_id != asked.header.msg_id
    assert (resent.content.episode, resent.content.t) == (asked.content.episode, asked.content.t) == (0, 0)
    assert (resent.content.obs == asked.content.obs).all()


def test_arena_launch_ends_when_an_agent_dies_before_the_start(tmp_path: Path) -> None:
    """Seats are held only once the run has started: an agent that fails before its hello leaves the lobby
    waiting, and the launcher ends the run naming it, as on a run that takes no seat back."""
    config = write_config(tmp_path / "run.toml", {"game": "ipd", "episodes": 3, "reconnect_grace_s": 5.0,
                                                  "heartbeat_timeout_s": 2.0},
                          [{"name": "a", "kind": "tests.faulty_agents:FailsBeforeHello"},
                           {"name": "b", "kind": "always-defect"}])
    launcher = subprocess.Popen(arena_command("launch", str(config)), cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = launcher.communicate(timeout=60)
    except subprocess.TimeoutExpired:
        launcher.send_signal(signal.SIGINT)  # the launcher stops its arena and agents
        output, _ = launcher.communicate(timeout=60)
        raise AssertionError(f"arena launch still running after 60 s:\n{output}") from None
    assert launcher.returncode == 1, output
    assert "run failed: agent 'a' exit code" in output and "simulated failure before hello" in output


def test_arena_launch_restarts_a_killed_agent_and_the_run_completes(tmp_path: Path) -> None:
    """A launched learner SIGKILLed mid-run is restarted by `arena launch` with its seat token and its latest
    checkpoint; it rejoins its held seat and the run completes."""
    config = write_config(tmp_path / "run.toml", {"game": "ipd", "episodes": 30, "batch_size": 4, "deadline": "wait",
                                                  "reconnect_grace_s": 60.0, "heartbeat_timeout_s": 2.0,
                                                  "params": {"max_steps": 8}},
                          [{"name": "a", "kind": SLOW}, {"name": "learner", "kind": "pg"}])
    config.write_text(config.read_text().replace("out = ", "checkpoint_every = 2\nout = ", 1))
    log = tmp_path / "launch.log"
    with open(log, "w") as out:
        launcher = subprocess.Popen(arena_command("launch", str(config)), cwd=REPO, stdout=out,
                                    stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: run_dir_of(log.read_text()) is not None, "run directory")
        run_dir = run_dir_of(log.read_text())
        checkpoints = run_dir / "agents" / "learner" / "checkpoints"
        wait_for(lambda: record_count(run_dir / "episodes.jsonl") >= 5 and any(checkpoints.glob("episode_*.pt")),
                 "checkpoint", 120)
        os.kill(run_processes(run_dir)["learner"], signal.SIGKILL)
        assert launcher.wait(timeout=180) == 0, log.read_text()
    finally:
        if launcher.poll() is None:
            launcher.send_signal(signal.SIGINT)
            launcher.wait(timeout=60)
    assert "agent 'learner' killed by SIGKILL: restarting it to rejoin seat 1" in log.read_text()
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "complete" and [seat["rejoins"] for seat in result["seats"]] == [0, 1]
    assert [e["episode"] for e in read_jsonl(run_dir / "episodes.jsonl")] == list(range(30))
    agent_log = (run_dir / "agents" / "learner.log").read_text()
    assert "rejoined its seat" in agent_log
    assert re.search(r"resumed from \S+/checkpoints/episode_\d+\.pt", agent_log), agent_log


def test_the_launcher_gives_up_on_an_agent_that_dies_again_before_another_episode(tmp_path: Path,
                                                                                monkeypatch: Any) -> None:
    """An agent that crashes right after every rejoin (say, from a broken checkpoint) is restarted once per
    recorded episode, not for ever, even when each crash comes later than the grace after its restart."""
    from launch.config import load_config
    from launch.supervisor import Launch

    config = load_config(write_config(tmp_path / "run.toml", {"game": "ipd", "reconnect_grace_s": 0.5},
                                      [{"name": "a", "kind": "always-cooperate"}, {"name": "b", "kind": SLOW}]))
    run_dir = tmp_path / "run"
    (run_dir / "agents" / "b").mkdir(parents=True)
    (run_dir / "agents" / "b" / "seat.token").write_text("0123")
    episodes = run_dir / "episodes.jsonl"
    episodes.write_text("".join(json.dumps({"episode": e}) + "\n" for e in range(3)))
    job = Launch(config, run_dir, arena=subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]))
    started: list[int] = []
    monkeypatch.setattr(job, "_start_agent", lambda seat, spec, rejoin=False: started.append(seat))
    try:
        assert job._rejoin("b", -9) and started == [1]
        job.restarted_at["b"] = (time.monotonic() - 5.0, job.restarted_at["b"][1])  # died long after the grace
        assert not job._rejoin("b", -9) and started == [1] and "b" in job.given_up
        job.given_up.clear()
        episodes.write_text(episodes.read_text() + json.dumps({"episode": 3}) + "\n")
        assert job._rejoin("b", -9) and started == [1, 1]  # the run went on after the last restart
    finally:
        job.arena.kill()
        job.arena.wait()
