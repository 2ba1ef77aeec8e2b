"""Telemetry over MQTT (SPEC §19) against a real broker (mosquitto from the system packages, started
here on a free port): what a watcher subscribed to the run sees, and that a missing broker changes
nothing about the run."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shlex
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

from protocols.telemetry import MqttTarget
from tests.conftest import REPO, arena_command, launch, read_jsonl, write_config

IPD = {"game": "ipd", "episodes": 3, "batch_size": 4, "disclose": ["actions"], "params": {"max_steps": 5}}
AGENTS = [{"name": "alice", "kind": "tit-for-tat"}, {"name": "bob", "kind": "pg"}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_broker(config_dir: Path) -> tuple[int, subprocess.Popen]:
    """mosquitto on a free loopback port, once it accepts connections."""
    if shutil.which("mosquitto") is None:
        pytest.skip("mosquitto is not installed (.ci/run installs it)")
    port = free_port()
    config = config_dir / "mosquitto.conf"
    config.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\n")
    process = subprocess.Popen(["mosquitto", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    return port, process


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[int]:
    port, process = start_broker(tmp_path)
    yield port
    process.terminate()
    process.wait(5)


class Watcher:
    """Subscribes to PREFIX/# in a thread of its own and keeps every message (topic, JSON payload)."""

    def __init__(self, port: int, prefix: str) -> None:
        self.messages: list[tuple[str, dict, bool]] = []
        self.ready = threading.Event()
        self.stop = threading.Event()
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run(port, prefix)), daemon=True)
        self.thread.start()
        assert self.ready.wait(10), "the watcher could not subscribe"

    async def _run(self, port: int, prefix: str) -> None:
        with contextlib.suppress(aiomqtt.MqttError):  # the broker may be stopped under it
            await self._listen(port, prefix)

    async def _listen(self, port: int, prefix: str) -> None:
        async with aiomqtt.Client("127.0.0.1", port) as client:
            await client.subscribe(f"{prefix}/#", qos=1)
            self.ready.set()
            while not self.stop.is_set():
                try:
                    message = await asyncio.wait_for(anext(aiter(client.messages)), 0.2)
                except TimeoutError:
                    continue
                self.messages.append((str(message.topic), json.loads(message.payload), bool(message.retain)))

    def close(self) -> None:
        self.stop.set()
        self.thread.join(5)

    def on(self, suffix: str) -> list[dict]:
        return [payload for topic, payload, _ in self.messages if topic.endswith(suffix)]


def test_a_watcher_sees_status_episodes_presence_and_metrics(broker: int, tmp_path: Path) -> None:
    watcher = Watcher(broker, "lab")
    config = write_config(tmp_path / "run.toml", IPD, AGENTS, name="telemetry")
    done = launch(config, 120, "--mqtt", f"mqtt://127.0.0.1:{broker}/lab")
    assert done.code == 0, done.output[-2000:]
    time.sleep(0.5)
    watcher.close()
    episodes = done.episodes()
    topics = {topic for topic, _, _ in watcher.messages}
    run_id = json.loads((done.run_dir / "run.json").read_text())["run_id"]
    assert all(topic.startswith(f"lab/v1/runs/{run_id}/") for topic in topics), topics
    # one message per finished episode: the episodes.jsonl record itself
    assert watcher.on("/episodes") == episodes
    states = [m["state"] for m in watcher.on("/status")]
    assert states[0] == "lobby" and states[-1] == "complete" and "running" in states
    assert [m["episode"] for m in watcher.on("/status") if m["state"] == "running"][-1] == 3
    for name in ("alice", "bob"):
        presence = watcher.on(f"/agents/{name}/presence")
        assert presence[0]["present"] is True and presence[-1] == {"present": False, "reason": "left: the run ended"}
    metrics = watcher.on("/agents/bob/metrics")
    assert [m["episode"] for m in metrics] == [0, 1, 2]
    assert metrics == read_jsonl(done.run_dir / "agents" / "bob" / "metrics.jsonl")
    result = json.loads((done.run_dir / "result.json").read_text())
    assert result["telemetry"]["dropped"] == 0 and result["telemetry"]["published"] >= 3 + 2


def test_a_late_watcher_gets_the_retained_status(broker: int, tmp_path: Path) -> None:
    config = write_config(tmp_path / "run.toml", IPD, AGENTS, name="telemetry")
    done = launch(config, 120, "--mqtt", f"mqtt://127.0.0.1:{broker}")
    assert done.code == 0, done.output[-2000:]
    watcher = Watcher(broker, "social-arena")
    time.sleep(0.5)
    watcher.close()
    retained = {topic.rsplit("/", 1)[-1] if "agents" not in topic else topic.split("/agents/")[1]: payload
                for topic, payload, is_retained in watcher.messages if is_retained}
    assert retained["status"] == {"state": "complete", "reason": "run complete: 3 episodes", "episodes": 3}
    assert retained["alice/presence"]["present"] is False
    assert retained["run"]["arena"]["game"] == "ipd"


def test_no_broker_changes_nothing_about_the_run(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    config = write_config(tmp_path / "run.toml", IPD, AGENTS, name="telemetry")
    done = launch(config, 120, "--mqtt", f"mqtt://127.0.0.1:{port}")
    assert done.code == 0, done.output[-2000:]
    assert len(done.episodes()) == 3
    result = json.loads((done.run_dir / "result.json").read_text())
    assert result["telemetry"]["published"] == 0 and result["telemetry"]["dropped"] > 0


def test_a_bad_telemetry_address_is_refused_before_anything_starts(tmp_path: Path) -> None:
    config = write_config(tmp_path / "run.toml", IPD, AGENTS, name="telemetry")
    done = launch(config, 60, "--mqtt", "http://127.0.0.1:1883")
    assert done.code == 2 and "mqtt://HOST[:PORT][/PREFIX]" in done.output
    assert done.run_dir is None
    with pytest.raises(ValueError, match="port"):
        MqttTarget.parse("mqtt://127.0.0.1:99999")


def test_arena_watch_follows_a_run_to_its_end(broker: int, tmp_path: Path) -> None:
    url = f"mqtt://127.0.0.1:{broker}/watched"
    watch = subprocess.Popen(arena_command("watch", url, "--until-done"), cwd=REPO, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    time.sleep(1.5)  # subscribed before the run starts
    config = write_config(tmp_path / "run.toml", IPD, AGENTS, name="telemetry")
    done = launch(config, 120, "--mqtt", url)
    assert done.code == 0, done.output[-2000:]
    out, _ = watch.communicate(timeout=30)
    assert watch.returncode == 0, out
    last = done.episodes()[-1]
    assert "complete" in out and "3/3" in out
    assert f"{last['collective_return']:+.2f}" in out
    assert "alice" in out and "bob" in out


def test_arena_watch_without_a_broker_says_so() -> None:
    done = subprocess.run(arena_command("watch", f"mqtt://127.0.0.1:{free_port()}"), cwd=REPO,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 1 and "no MQTT broker at 127.0.0.1" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr


def test_a_killed_agent_shows_as_gone_by_its_last_will(broker: int, tmp_path: Path) -> None:
    watcher = Watcher(broker, "lab")
    long_run = {**IPD, "episodes": 100000}
    config = write_config(tmp_path / "run.toml", long_run, AGENTS, name="telemetry")
    run = subprocess.Popen(arena_command("launch", str(config), "--mqtt", f"mqtt://127.0.0.1:{broker}/lab"), cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while not watcher.on("/agents/bob/presence") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert watcher.on("/agents/bob/presence")[0]["present"] is True
        run_dir = tmp_path / "runs"
        killed = subprocess.run(["pkill", "-KILL", "-f", f"agents pg --connection-file {run_dir}"], check=False)
        assert killed.returncode == 0, "bob's process was not found"
        deadline = time.monotonic() + 20  # the broker publishes the will after 1.5 keepalives (7.5 s)
        while time.monotonic() < deadline and not any(not p["present"] for p in watcher.on("/agents/bob/presence")):
            time.sleep(0.2)
        assert watcher.on("/agents/bob/presence")[-1]["present"] is False
        assert watcher.on("/agents/bob/presence")[-1]["reason"].startswith("lost:")
        run.communicate(timeout=60)
        assert run.returncode != 0  # the run failed: bob died
        assert watcher.on("/status")[-1]["state"] == "aborted"
    finally:
        run.kill()
        watcher.close()


@pytest.mark.parametrize("curve", [False, True])
def test_a_spectator_needs_no_broker(tmp_path: Path, curve: bool) -> None:
    """`arena watch RUN_DIR` follows the arena's own event stream (XPUB), frames included; in a CURVE run
    with a key the arena issued on this host."""
    agents = [{"name": "alice", "kind": "tit-for-tat"}, {"name": "bob", "kind": "always-defect", "external": True}]
    config = write_config(tmp_path / "run.toml", {**IPD, "episodes": 4, "curve": curve}, agents, name="spectated")
    run = subprocess.Popen(arena_command("launch", str(config)), cwd=REPO, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True)
    lines = [run.stdout.readline() for _ in range(3)]  # run directory, "waiting for external seat", the command
    run_dir = Path(lines[0].removeprefix("run directory: ").strip())
    join = shlex.split(lines[2].strip().removeprefix("arena "))
    watch = subprocess.Popen(arena_command("watch", str(run_dir), "--frames", "--until-done"), cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.5)  # the spectator is in before bob joins, so it sees the whole run
    bob = subprocess.Popen(arena_command(*join), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    out, _ = watch.communicate(timeout=60)
    run.communicate(timeout=60)
    bob.wait(30)
    assert run.returncode == 0 and watch.returncode == 0, out
    assert json.loads((run_dir / "connection.json").read_text())["events"].startswith("tcp://127.0.0.1:")
    assert "complete" in out and "4/4" in out, out
    episodes = read_jsonl(run_dir / "episodes.jsonl")
    assert f"{episodes[-1]['collective_return']:+.2f}" in out
    assert "episode 3 t=5" in out  # the last frame: the arena's own rendering after the final step


def test_the_broker_stopped_mid_run_changes_no_result(tmp_path: Path) -> None:
    """Stopping the broker during the run: the run completes with the numbers of a run without
    telemetry, and result.json counts what could not be published."""
    port, process = start_broker(tmp_path)
    arena = {**IPD, "episodes": 40}
    agents = [{"name": "alice", "kind": "tit-for-tat"}, {"name": "bob", "kind": "random"}]
    watcher = Watcher(port, "lab")
    for variant in ("with", "without"):
        (tmp_path / variant).mkdir()
    config = write_config(tmp_path / "with" / "run.toml", arena, agents, name="broker_stops")
    run = subprocess.Popen(arena_command("launch", str(config), "--mqtt", f"mqtt://127.0.0.1:{port}/lab"), cwd=REPO,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 60
        while len(watcher.on("/episodes")) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        process.kill()  # the broker dies with the run in full flight
        process.wait(5)
        out, _ = run.communicate(timeout=120)
    finally:
        run.kill()
        watcher.close()
    assert run.returncode == 0, out
    seen = len(watcher.on("/episodes"))
    assert 3 <= seen < 40
    run_dir = next((tmp_path / "with" / "runs").iterdir())
    result = json.loads((run_dir / "result.json").read_text())
    assert result["status"] == "complete" and result["telemetry"]["dropped"] > 0, result
    plain = launch(write_config(tmp_path / "without" / "run.toml", arena, agents, name="broker_stops"), 120)
    assert plain.code == 0

    def numbers(records: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in records]

    assert numbers(read_jsonl(run_dir / "episodes.jsonl")) == numbers(plain.episodes())
    assert read_jsonl(run_dir / "ledger.jsonl") == read_jsonl(plain.run_dir / "ledger.jsonl")
