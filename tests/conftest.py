"""Helpers shared by the tests: write a run config, launch it as real processes, read its results."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack
import pytest
import zmq

from launch.supervisor import run_dir_of
from protocols.codec import Codec, Message
from protocols.curve import ClientKeys
from protocols.messages import Content

REPO = Path(__file__).resolve().parents[1]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def write_config(path: Path, arena: dict[str, Any], agents: list[dict[str, Any]], name: str = "test") -> Path:
    """A run config TOML from plain dicts (`params` and `options` become sub-tables)."""
    lines = ["[run]", f'name = "{name}"', f'out = "{path.parent / "runs"}"', "", "[arena]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in arena.items() if k != "params"]
    if arena.get("params"):
        lines += ["", "[arena.params]"] + [f"{k} = {toml_value(v)}" for k, v in arena["params"].items()]
    for agent in agents:
        lines += ["", "[[agents]]"] + [f"{k} = {toml_value(v)}" for k, v in agent.items() if k != "options"]
        if agent.get("options"):
            lines += ["[agents.options]"] + [f"{k} = {toml_value(v)}" for k, v in agent["options"].items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class Finished:
    code: int
    output: str
    run_dir: Path | None

    def episodes(self) -> list[dict[str, Any]]:
        return read_jsonl(self.run_dir / "episodes.jsonl")

    def ledger(self) -> list[dict[str, Any]]:
        return read_jsonl(self.run_dir / "ledger.jsonl")

    def result(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "result.json").read_text())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class RawPeer:
    """A DEALER socket driven by hand; encodes with the real codec unless told to misbehave. `curve` makes
    it a CURVE client, `routing_id` gives it an explicit routing id."""

    def __init__(self, context: zmq.Context, address: str, key: bytes | None = None, curve: ClientKeys | None = None,
                 routing_id: bytes | None = None) -> None:
        self.socket = context.socket(zmq.DEALER)
        self.socket.setsockopt(zmq.LINGER, 0)
        if curve is not None:
            curve.apply(self.socket)
        if routing_id is not None:
            self.socket.setsockopt(zmq.ROUTING_ID, routing_id)
        self.socket.connect(address)
        self.codec = Codec(key=key)

    def send(self, content: Content, **header: str) -> None:
        frames = self.codec.encode(content)
        if header:
            fields = msgpack.unpackb(frames[1])
            fields.update(header)
            frames[1] = msgpack.packb(fields)
            frames[0] = self.codec.sign(frames[1:])
        self.socket.send_multipart(frames)

    def receive(self, timeout_s: float = 5.0) -> Message | None:
        if not self.socket.poll(int(timeout_s * 1000)):
            return None
        return self.codec.decode(self.socket.recv_multipart())

    def expect(self, kind: str, timeout_s: float = 10.0) -> Message:
        """The next message of type `kind`, skipping lobby updates and heartbeats."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            message = self.receive(deadline - time.monotonic())
            if message is not None and message.type == kind:
                return message
            assert message is None or message.type in ("lobby", "heartbeat"), (kind, message)
        raise AssertionError(f"no {kind} within {timeout_s} s")


def run_processes(run_dir: Path) -> dict[str, int]:
    """The pids of the arena ("arena") and of the launched agents (by seat name) of `run_dir` that still run,
    found by their command lines (`python -m arena RUN_DIR`, `python -m agents KIND --connection-file
    RUN_DIR/connection.json ... --name NAME`)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
            except OSError:
                continue
            if args[1:] == ["-m", "arena", str(run_dir)]:
                found["arena"] = int(entry.name)
            elif args[1:3] == ["-m", "agents"] and str(run_dir / "connection.json") in args and "--name" in args:
                found[args[args.index("--name") + 1]] = int(entry.name)
    return found


def arena_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "launch.cli", *args]


def launch(config: Path, timeout: float = 120, *extra: str) -> Finished:
    """`arena launch CONFIG` as a real process tree; returns its exit code, output and run directory."""
    done = subprocess.run(arena_command("launch", str(config), *extra), cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
    output = done.stdout + done.stderr
    return Finished(done.returncode, output, run_dir_of(output))


@pytest.fixture
def ipd_run(tmp_path: Path):
    """Launch a short IPD run between two agent kinds; returns the finished run."""

    def run(kind_a: str, kind_b: str, **arena: Any) -> Finished:
        settings = {"game": "ipd", "episodes": 3, "batch_size": 8, "disclose": ["actions"],
                    "params": {"max_steps": 10}, **arena}
        config = write_config(tmp_path / "run.toml", settings,
                              [{"name": "alice", "kind": kind_a}, {"name": "bob", "kind": kind_b}])
        return launch(config)

    return run
