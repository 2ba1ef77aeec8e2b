"""Bad input against a live arena from raw ZeroMQ sockets: each gets a clear error, the run goes on."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import msgpack
import numpy as np
import pytest
import zmq

from protocols.codec import Codec
from protocols.messages import Act, Heartbeat, Hello, Ready
from tests.conftest import REPO, RawPeer, arena_command, read_jsonl, write_config

pytestmark = pytest.mark.slow


def start_arena(run_dir: Path, sign: bool = False) -> tuple[subprocess.Popen, dict]:
    run_dir.mkdir(parents=True)
    spec = {"arena": {"game": "ipd", "episodes": 2, "batch_size": 4, "params": {"max_steps": 3},
                      "step_timeout_s": 10.0, "sign": sign},
            "seats": [{"name": "real", "kind": "always-defect"}, {"name": "raw", "kind": "external"}]}
    (run_dir / "arena.json").write_text(json.dumps(spec))
    process = subprocess.Popen([sys.executable, "-m", "arena", str(run_dir)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    path = run_dir / "connection.json"
    deadline = time.monotonic() + 30
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.05)
    return process, json.loads(path.read_text())


@pytest.fixture
def live_arena(tmp_path: Path) -> Iterator[tuple[Path, dict, zmq.Context]]:
    context = zmq.Context()
    process, connection = start_arena(tmp_path / "run")
    try:
        yield tmp_path / "run", connection, context
    finally:
        process.terminate()
        process.wait(timeout=10)
        context.destroy(linger=0)


def test_bad_messages_get_clear_errors_and_the_run_goes_on(live_arena) -> None:
    run_dir, connection, context = live_arena
    address = connection["address"]

    stranger = RawPeer(context, address)
    stranger.socket.send_multipart([b"\x00\xffnot an envelope"])
    assert stranger.receive(0.5) is None  # unauthenticated garbage is dropped (and logged)

    old = RawPeer(context, address)
    old.send(Hello(name="old"), version="2.0")
    error = old.expect("error").content
    assert error.code == "version_mismatch" and error.fatal and "2.0" in error.message

    raw = RawPeer(context, address)
    raw.send(Hello(name="raw", seat=1))
    welcome = raw.expect("welcome").content
    assert welcome.seat == 1 and welcome.batch_size == 4

    thief = RawPeer(context, address)
    thief.send(Hello(name="thief", seat=1))
    error = thief.expect("error").content
    assert error.code == "seat_taken" and "seat 1" in error.message

    careless = RawPeer(context, address)
    careless.send(Hello(name="careless", default_action=9))
    error = careless.expect("error").content
    assert error.code == "invalid_content" and error.field == "default_action" and "Discrete(2)" in error.message

    raw.send(Ready(episode=0), type="frobnicate")
    error = raw.expect("error").content
    assert error.code == "unknown_type" and "frobnicate" in error.message

    # hostile content that used to crash the decoder (RecursionError, ValueError) and get no reply
    frames = raw.codec.encode(Ready(episode=0))
    deep = b"\x81\xa7episode" + b"\x91" * 1000 + b"\xc0"
    raw.socket.send_multipart([frames[0], frames[1], deep])
    error = raw.expect("error").content
    assert error.code == "malformed" and "nested deeper than 32 levels" in error.message
    huge = msgpack.packb({"episode": 0, "t": 0, "actions": {"__ndarray__": 0, "dtype": "int64",
                                                          "shape": [2**62, 2**62, 0]}})
    frames = raw.codec.encode(Act(episode=0, t=0, actions=np.zeros(4, np.int64)))
    raw.socket.send_multipart([frames[0], frames[1], huge, b""])
    error = raw.expect("error").content
    assert error.code == "malformed" and "out of range" in error.message

    real = subprocess.Popen([sys.executable, "-m", "agents", "always-defect", "--connect", address, "--seat", "0",
                             "--name", "real"], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        observe = raw.expect("observe").content
        bad_acts = [
            (np.array([0, 0, 0, 7]), "actions[3] = 7 is outside Discrete(2)"),
            (np.zeros((4, 1), np.int64), "shape [4, 1]"),
            (np.zeros(4, np.float32), "dtype float32"),
        ]
        for actions, text in bad_acts:
            raw.send(Act(episode=0, t=0, actions=actions))
            error = raw.expect("error").content
            assert error.code == "invalid_action" and text in error.message, error
        raw.send(Act(episode=0, t=5, actions=np.zeros(4, np.int64)))
        assert raw.expect("error").content.code == "out_of_phase"
        for episode in range(2):
            for t in range(3):
                if (episode, t) != (0, 0):
                    observe = raw.expect("observe").content
                assert (observe.episode, observe.t) == (episode, t)
                raw.send(Act(episode=episode, t=t, actions=np.zeros(4, np.int64)))
            end = raw.expect("episode_end").content
            raw.send(Ready(episode=end.episode))
        assert raw.expect("bye").content.ok
        assert real.wait(timeout=10) == 0
    finally:
        if real.poll() is None:
            real.kill()
    episodes = read_jsonl(run_dir / "episodes.jsonl")
    assert [e["returns"] for e in episodes] == [{"real": 0.0, "raw": -9.0}] * 2
    assert "dropped undecodable message" in (run_dir / "arena.log").read_text()


def test_signing_rejects_bad_and_replayed_signatures(tmp_path: Path) -> None:
    context = zmq.Context()
    process, connection = start_arena(tmp_path / "run", sign=True)
    try:
        key = connection["key"].encode()
        honest = RawPeer(context, connection["address"], key=key)
        forger_frames = Codec(key=b"not the key").encode(Hello(name="forger", seat=1))
        honest.socket.send_multipart(forger_frames)
        error = honest.expect("error").content
        assert error.code == "bad_signature" and "does not match" in error.message
        frames = honest.codec.encode(Hello(name="honest", seat=1))
        honest.socket.send_multipart(frames)
        assert honest.expect("welcome").content.seat == 1
        honest.socket.send_multipart(frames)
        error = honest.expect("error").content
        assert error.code == "bad_signature" and "replayed" in error.message
    finally:
        process.terminate()
        process.wait(timeout=10)
        context.destroy(linger=0)


def test_a_second_arena_on_a_taken_port_says_which_address_and_how_to_choose(tmp_path: Path) -> None:
    """Both `arena serve` (in process) and `arena launch` (the arena as a child) name the address."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        arena = {"game": "ipd", "episodes": 1, "batch_size": 1, "address": f"tcp://127.0.0.1:{port}",
                 "params": {"max_steps": 2}}
        config = write_config(tmp_path / "run.toml", arena, [{"name": "a", "kind": "always-defect"},
                                                            {"name": "b", "kind": "always-defect"}])
        for command in ("serve", "launch"):
            done = subprocess.run(arena_command(command, str(config)), cwd=REPO, capture_output=True, text=True,
                                  timeout=60)
            output = done.stdout + done.stderr
            assert done.returncode != 0, output
            assert "Traceback" not in output and "ZMQError" not in output, output
            assert f"tcp://127.0.0.1:{port} is already in use" in output, output
            assert 'address = "tcp://127.0.0.1:*"' in output, output


def test_spoofed_heartbeats_keep_no_dead_seat_alive(tmp_path: Path) -> None:
    """Heartbeats with a seated agent's session from another socket (after its own heartbeat socket
    spoke) neither keep the seat alive nor learn which seat the session holds."""
    context = zmq.Context()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    spec = {"arena": {"game": "ipd", "episodes": 2, "batch_size": 4, "params": {"max_steps": 3},
                      "heartbeat_interval_s": 0.25, "heartbeat_timeout_s": 1.5},
            "seats": [{"name": "victim", "kind": "external"}, {"name": "other", "kind": "external"}]}
    (run_dir / "arena.json").write_text(json.dumps(spec))
    process = subprocess.Popen([sys.executable, "-m", "arena", str(run_dir)], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        path = run_dir / "connection.json"
        deadline = time.monotonic() + 30
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.05)
        address = json.loads(path.read_text())["address"]
        victim = RawPeer(context, address)
        victim.send(Hello(name="victim", seat=0))
        victim.expect("welcome")
        pulse = RawPeer(context, address)  # the victim's heartbeat socket, same session
        pulse.codec = Codec(session=victim.codec.session)
        pulse.send(Heartbeat(seat=0))
        assert pulse.expect("heartbeat").content.seat == 0
        victim.socket.close(0)  # the victim dies: its sockets go silent
        pulse.socket.close(0)
        spoofer = RawPeer(context, address)
        spoofer.codec = Codec(session=victim.codec.session)
        started, log = time.monotonic(), run_dir / "arena.log"
        while "left the lobby" not in log.read_text() and time.monotonic() - started < 10:
            spoofer.send(Heartbeat(seat=0))
            reply = spoofer.receive(0.2)
            assert reply is None or reply.content.seat is None  # told nothing about seat 0
            time.sleep(0.05)
        # the lobby forgets the silent seat (it is not started), so the spoofer could not hold it
        text = log.read_text()
        assert "ignored a heartbeat for agent 'victim'" in text
        assert "agent 'victim' (seat 0, unknown) left the lobby: sent nothing for" in text, text[-2000:]
    finally:
        process.terminate()
        process.wait(timeout=10)
        context.destroy(linger=0)


def rss_mb(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmRSS:"))) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads the arena's memory from /proc")
def test_oversized_frames_never_reach_the_arena(live_arena) -> None:
    """A frame above the limit (SPEC §5) disconnects its sender inside ZeroMQ: the arena neither reads
    nor logs it, and stays as small and responsive as before."""
    run_dir, connection, context = live_arena
    pid = int(subprocess.run(["pgrep", "-f", f"m arena {run_dir}"], capture_output=True, text=True).stdout.split()[0])
    before = rss_mb(pid)
    for _ in range(5):
        attacker = RawPeer(context, connection["address"])
        for _ in range(20):
            attacker.socket.send_multipart([b"\x00" * (4 << 20)])  # 4 MiB of garbage each
    time.sleep(1.0)
    probe = RawPeer(context, connection["address"])
    probe.send(Hello(name="probe", seat=1))
    assert probe.expect("welcome").content.seat == 1  # still serving
    assert "dropped undecodable message" not in (run_dir / "arena.log").read_text(), "it read an oversized frame"
    assert rss_mb(pid) - before < 50, (before, rss_mb(pid))  # 400 MiB were thrown at it


def timed_run(tmp_path: Path, flood: int) -> tuple[float, int, Path]:
    """An honest IPD run (tit-for-tat vs always-defect, 300 one-copy episodes); with `flood` > 0 a
    hostile process sends it `flood` messages from an unseated socket from the start (tests/flooder.py).
    Returns episodes per second, the episodes played and the run directory."""
    arena = {"game": "ipd", "episodes": 300, "batch_size": 1, "disclose": ["actions"], "params": {"max_steps": 5}}
    config = write_config(tmp_path / "run.toml", arena, [{"name": "a", "kind": "tit-for-tat"},
                                                        {"name": "b", "kind": "always-defect"}])
    run = subprocess.Popen(arena_command("launch", str(config)), cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    run_dir = Path(run.stdout.readline().removeprefix("run directory: ").strip())
    if flood:
        deadline = time.monotonic() + 30
        while not (run_dir / "connection.json").exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.05)
        address = json.loads((run_dir / "connection.json").read_text())["address"]
        flooder = subprocess.Popen([sys.executable, "-m", "tests.flooder", address, str(flood)], cwd=REPO)
    run.communicate(timeout=300)
    if flood:
        flooder.wait(60)
    episodes = read_jsonl(run_dir / "episodes.jsonl")
    assert run.returncode == 0 and len(episodes) == 300
    return 300 / sum(e["wall_time_s"] for e in episodes), len(episodes), run_dir


def test_a_flood_from_an_unseated_socket_neither_starves_the_run_nor_fills_the_disk(tmp_path: Path) -> None:
    (tmp_path / "quiet").mkdir()
    (tmp_path / "flood").mkdir()
    quiet, _, _ = timed_run(tmp_path / "quiet", 0)
    flooded, _, run_dir = timed_run(tmp_path / "flood", 100_000)
    log_bytes = (run_dir / "arena.log").stat().st_size
    print(f"episodes/s quiet {quiet:.1f}, under a 100k-message flood {flooded:.1f}; arena.log {log_bytes:,} B")
    assert flooded >= 0.5 * quiet, (quiet, flooded)
    assert log_bytes < 1 << 20, log_bytes
    assert "from unseated peers" in (run_dir / "arena.log").read_text()  # the drops are counted, not hidden
