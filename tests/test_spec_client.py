"""A client written from protocols/SPEC.md alone plays a live arena.

The client below (`SpecClient`) uses only zmq, msgpack, numpy, hmac, hashlib, json, uuid and datetime;
it imports nothing of `protocols`, `agents` or `arena`. The tests start the arena the way `arena launch`
does (`python -m arena RUN_DIR` on a directory holding arena.json), join both seats with spec clients,
play a short Iterated Prisoner's Dilemma run and check the arena's own records.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
import zmq

PROTOCOL_VERSION = "1.0"
ALLOWED_DTYPES = {"bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
                  "float16", "float32", "float64"}
RECEIVE_TIMEOUT_S = 10.0
BATCH, STEPS, EPISODES = 4, 5, 3
COOPERATE, DEFECT = 0, 1


# ---------------------------------------------------------------------------------------------- spec client
class SpecError(AssertionError):
    """The arena sent something the spec says it should not have."""


class SpecClient:
    """One agent connection built from SPEC.md: a DEALER for the protocol, a DEALER for heartbeats."""

    def __init__(self, address: str, key: bytes | None = None, heartbeats: bool = True) -> None:
        self.key = key
        self.heartbeats = heartbeats
        self.session = uuid.uuid4().hex  # shared by both sockets (SPEC: "Heartbeats")
        self.context = zmq.Context()
        self.socket = self.context.socket(zmq.DEALER)
        self.heartbeat_socket = self.context.socket(zmq.DEALER)
        for sock in (self.socket, self.heartbeat_socket):
            sock.setsockopt(zmq.LINGER, 0)
            sock.connect(address)
        self.poller = zmq.Poller()
        self.poller.register(self.socket, zmq.POLLIN)
        self.poller.register(self.heartbeat_socket, zmq.POLLIN)
        self.heartbeat_interval_s = 0.5
        self.next_heartbeat = 0.0
        self.heartbeat_answers = 0
        self.seat: int | None = None
        self.seen_signatures: set[bytes] = set()

    # ------------------------------------------------------------------ framing and envelope
    def sign(self, frames: list[bytes]) -> bytes:
        if self.key is None:
            return b""
        return hmac.new(self.key, b"".join(frames), hashlib.sha256).hexdigest().encode("ascii")

    def encode(self, msg_type: str, content: dict[str, Any], parent: dict[str, Any] | None = None,
               version: str = PROTOCOL_VERSION) -> tuple[dict[str, Any], list[bytes]]:
        header = {"msg_id": uuid.uuid4().hex, "session": self.session, "type": msg_type, "version": version,
                  "time": datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z"),
                  "parent_id": parent["msg_id"] if parent is not None else None}
        buffers: list[bytes] = []

        def to_wire(value: Any) -> Any:
            if isinstance(value, np.ndarray):
                if value.dtype.name not in ALLOWED_DTYPES:
                    raise TypeError(f"dtype {value.dtype.name} is not allowed on the wire")
                buffers.append(np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")).tobytes())
                return {"__ndarray__": len(buffers) - 1, "dtype": value.dtype.name, "shape": list(value.shape)}
            if isinstance(value, dict):
                return {k: to_wire(v) for k, v in value.items()}
            if isinstance(value, list):
                return [to_wire(v) for v in value]
            return value

        body = msgpack.packb(to_wire(content), use_bin_type=True)
        frames = [msgpack.packb(header, use_bin_type=True), body, *buffers]
        return header, [self.sign(frames), *frames]

    def decode(self, frames: list[bytes]) -> tuple[dict[str, Any], dict[str, Any]]:
        if len(frames) < 3:
            raise SpecError(f"a message has at least 3 frames, got {len(frames)}")
        signature = frames[0]
        if self.key is not None:
            expected = hmac.new(self.key, b"".join(frames[1:]), hashlib.sha256).hexdigest().encode("ascii")
            if not hmac.compare_digest(signature, expected):
                raise SpecError("the arena's signature does not verify")
            if signature in self.seen_signatures:
                raise SpecError("the arena replayed a signature")
            self.seen_signatures.add(signature)
        header = msgpack.unpackb(frames[1], raw=False)
        for name in ("msg_id", "session", "type", "version", "time"):
            if not isinstance(header.get(name), str):
                raise SpecError(f"header field {name} missing or not a string: {header}")
        if header["version"].split(".")[0] != PROTOCOL_VERSION.split(".")[0]:
            raise SpecError(f"arena speaks protocol {header['version']}")
        if not header["time"].endswith("Z"):
            raise SpecError(f"header time {header['time']} is not UTC 'Z'")
        buffers = frames[3:]

        def from_wire(value: Any) -> Any:
            if isinstance(value, dict):
                if "__ndarray__" in value:
                    index, dtype, shape = value["__ndarray__"], value["dtype"], value["shape"]
                    if dtype not in ALLOWED_DTYPES:
                        raise SpecError(f"dtype {dtype} is not allowed")
                    raw = buffers[index]
                    if len(raw) != int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize:
                        raise SpecError(f"buffer {index} has the wrong size for {dtype}{shape}")
                    return np.frombuffer(raw, dtype=np.dtype(dtype).newbyteorder("<")).reshape(shape)
                return {k: from_wire(v) for k, v in value.items()}
            if isinstance(value, list):
                return [from_wire(v) for v in value]
            return value

        content = from_wire(msgpack.unpackb(frames[2], raw=False))
        return header, content

    # ------------------------------------------------------------------ transport
    def send(self, msg_type: str, content: dict[str, Any], parent: dict[str, Any] | None = None) -> dict[str, Any]:
        header, frames = self.encode(msg_type, content, parent)
        self.socket.send_multipart(frames)
        return header

    def send_frames(self, frames: list[bytes]) -> None:
        self.socket.send_multipart(frames)

    def receive(self, timeout_s: float = RECEIVE_TIMEOUT_S) -> tuple[dict[str, Any], dict[str, Any]]:
        """The next protocol message; heartbeats go out (and their answers are read) meanwhile."""
        give_up = time.monotonic() + timeout_s
        while True:
            now = time.monotonic()
            if now >= give_up:
                raise TimeoutError(f"no message from the arena within {timeout_s} s")
            if self.heartbeats and now >= self.next_heartbeat:
                content = {} if self.seat is None else {"seat": self.seat}
                _, frames = self.encode("heartbeat", content)
                self.heartbeat_socket.send_multipart(frames)
                self.next_heartbeat = now + self.heartbeat_interval_s
            wait_ms = max(1, int(1000 * (min(self.next_heartbeat, give_up) - now)))
            ready = dict(self.poller.poll(wait_ms))
            if self.heartbeat_socket in ready:
                header, body = self.decode(self.heartbeat_socket.recv_multipart())
                if header["type"] != "heartbeat" or header["parent_id"] is None:
                    raise SpecError(f"heartbeat socket got {header['type']}: {body}")
                self.heartbeat_answers += 1
            if self.socket in ready:
                return self.decode(self.socket.recv_multipart())

    def expect(self, *types: str) -> tuple[dict[str, Any], dict[str, Any]]:
        header, content = self.receive()
        if header["type"] not in types:
            raise SpecError(f"expected {types}, got {header['type']}: {content}")
        return header, content

    def join(self, name: str, seat: int | None, needs: list[str], capabilities: list[str],
             implementation: str = "spec-client/0.1") -> dict[str, Any]:
        """hello → welcome (the reply must name the hello as its parent); returns the welcome content."""
        hello: dict[str, Any] = {"name": name, "implementation": implementation, "needs": needs,
                                 "capabilities": capabilities}
        if seat is not None:
            hello["seat"] = seat
        sent = self.send("hello", hello)
        header, welcome = self.expect("welcome")
        assert header["parent_id"] == sent["msg_id"]
        self.seat = welcome["seat"]
        self.heartbeat_interval_s = welcome["deadlines"]["heartbeat_interval_s"]
        return welcome

    def close(self) -> None:
        self.socket.close(0)
        self.heartbeat_socket.close(0)
        self.context.term()


# ---------------------------------------------------------------------------------------------- one agent
def play(address: str, key: bytes | None, name: str, seat: int | None, action: int,
         pay_to: int | None = None, amount: float = 0.0) -> dict[str, Any]:
    """Join as `name`, play `action` in every copy at every step until the arena says bye."""
    client = SpecClient(address, key)
    record: dict[str, Any] = {"episodes": [], "lobby": [], "errors": [], "pay_requests": 0}
    try:
        welcome = client.join(name, seat, ["actions"], ["incentives"] if pay_to is not None else [])
        record["welcome"] = welcome
        batch, n = welcome["batch_size"], welcome["n_agents"]
        n_actions = welcome["action_spaces"][client.seat]["n"]
        assert 0 <= action < n_actions
        rewards = np.zeros(batch)
        t_seen: list[int] = []
        while True:
            header, content = client.receive()
            kind = header["type"]
            if kind == "lobby":
                record["lobby"].append(content)
            elif kind == "observe":
                t_seen.append(content["t"])
                assert content["obs"].shape[0] == batch
                assert content["active"].dtype == np.bool_
                rewards += content["extrinsic"]
                # `actions` at step t is the joint action of step t - 1 (-1 before the first step)
                assert content["actions"].shape == (batch, n)
                if content["t"] == 0:
                    assert (content["actions"] == -1).all()
                else:
                    assert (content["actions"][:, client.seat] == action).all()
                acts = np.full(batch, action, dtype=np.int64)
                client.send("act", {"episode": content["episode"], "t": content["t"], "actions": acts}, header)
            elif kind == "pay_request":
                record["pay_requests"] += 1
                assert content["joint_action"].shape == (batch, n)
                amounts = np.zeros((batch, n), dtype=np.float32)
                amounts[:, pay_to] = amount
                if content["episode"] == 0 and content["t"] == 0:
                    amounts[0, client.seat] = amount  # pays itself: refused, counts as paying nothing
                client.send("pay", {"episode": content["episode"], "t": content["t"], "amounts": amounts}, header)
            elif kind == "episode_end":
                final = content["final"]
                rewards += final["extrinsic"]
                assert final["t"] == welcome["episode_length"]
                assert not final["active"].any()
                assert t_seen == list(range(welcome["episode_length"]))
                record["episodes"].append({"episode": content["episode"], "own_return": float(rewards.mean()),
                                           "summary": content["summary"], "last": content["last"]})
                rewards[:] = 0
                t_seen = []
                client.send("ready", {"episode": content["episode"]}, header)
            elif kind == "error":
                record["errors"].append(content)
                if content["fatal"]:
                    raise SpecError(f"fatal error from the arena: {content}")
            elif kind == "bye":
                record["bye"] = content
                break
            else:
                raise SpecError(f"unexpected message type {kind}")
        record["heartbeat_answers"] = client.heartbeat_answers
        return record
    finally:
        client.close()


# ---------------------------------------------------------------------------------------------- harness
def start_arena(run_dir: Path, **arena: Any) -> tuple[subprocess.Popen, dict[str, Any]]:
    settings = {"game": "ipd", "params": {"max_steps": STEPS}, "batch_size": BATCH, "episodes": EPISODES,
                "disclose": ["actions", "rewards"], **arena}
    seats = [{"name": "a", "kind": "always-defect"}, {"name": "b", "kind": "always-cooperate"}]
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "arena.json").write_text(json.dumps({"arena": settings, "seats": seats}), encoding="utf-8")
    out = open(run_dir / "arena.out", "wb")  # noqa: SIM115 - handed to the child
    process = subprocess.Popen([sys.executable, "-m", "arena", str(run_dir)], stdout=out,
                               stderr=subprocess.STDOUT, cwd=Path(__file__).resolve().parents[1])
    out.close()
    path = run_dir / "connection.json"
    give_up = time.monotonic() + 15
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise RuntimeError(f"arena exited early:\n{(run_dir / 'arena.out').read_text()}")
        if path.exists():
            try:
                return process, json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:  # written but not yet complete
                pass
        time.sleep(0.02)
    process.kill()
    raise RuntimeError("the arena wrote no connection.json within 15 s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=5)


def probe(address: str, key: bytes | None, msg_type: str, content: dict[str, Any],
          version: str = PROTOCOL_VERSION, frames_edit: Any = None) -> dict[str, Any]:
    """Send one message from a fresh connection (no heartbeats) and return the arena's error reply."""
    client = SpecClient(address, key, heartbeats=False)
    try:
        _, frames = client.encode(msg_type, content, version=version)
        if frames_edit is not None:
            frames = frames_edit(frames)
        client.send_frames(frames)
        return client.expect("error")[1]
    finally:
        client.close()


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def run_both(address: str, key: bytes | None, pay_to: int | None = None,
             amount: float = 0.0) -> tuple[dict[str, Any], dict[str, Any]]:
    with ThreadPoolExecutor(2) as pool:
        a = pool.submit(play, address, key, "a", 0, DEFECT)
        b = pool.submit(play, address, key, "b", None, COOPERATE, pay_to, amount)
        return a.result(timeout=30), b.result(timeout=30)


def check_records(run_dir: Path, a: dict[str, Any], b: dict[str, Any]) -> list[dict[str, Any]]:
    result = json.loads((run_dir / "result.json").read_text(encoding="utf-8"))
    assert result["status"] == "complete", result
    assert result["episodes"] == EPISODES
    episodes = read_jsonl(run_dir / "episodes.jsonl")
    assert [e["episode"] for e in episodes] == list(range(EPISODES))
    for line in episodes:  # always-defect vs always-cooperate: (D, C) pays (0, -3) per step
        assert line["returns"] == {"a": 0.0, "b": -3.0 * STEPS}
        assert line["steps"] == STEPS
        assert line["collective_return"] == -3.0 * STEPS
        assert line["batch_size"] == BATCH
    for record, own in ((a, 0.0), (b, -3.0 * STEPS)):
        assert record["bye"]["ok"] is True
        assert [e["own_return"] for e in record["episodes"]] == [own] * EPISODES
        assert [e["last"] for e in record["episodes"]] == [False] * (EPISODES - 1) + [True]
        assert record["lobby"][-1]["waiting_for"] == [] and record["lobby"][-1]["filled"] == 2
        assert record["heartbeat_answers"] >= 1
    assert a["welcome"]["seat"] == 0 and b["welcome"]["seat"] == 1  # b asked for no seat index: seated by its name
    assert a["welcome"]["names"] == ["a", "b"]
    assert a["welcome"]["action_spaces"][0] == {"type": "Discrete", "n": 2, "start": 0}
    assert a["welcome"]["observation_space"]["type"] == "Box"
    assert a["welcome"]["observation_space"]["shape"] == [5]
    return episodes


# ---------------------------------------------------------------------------------------------- tests
def test_spec_client_plays_ipd(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process, connection = start_arena(run_dir)
    try:
        assert connection["key"] is None and connection["signature_scheme"] is None
        assert len(connection["seats"]) == 2  # one entry per seat (see SPEC.md, "Connection file")
        assert os.stat(run_dir / "connection.json").st_mode & 0o777 == 0o600
        address = connection["address"]
        unknown = probe(address, None, "frobnicate", {})
        assert unknown["code"] == "unknown_type" and unknown["fatal"] is False
        newer = probe(address, None, "hello", {"name": "x"}, version="2.0")
        assert newer["code"] == "version_mismatch" and newer["fatal"] is True
        missing = probe(address, None, "act", {"episode": 0, "t": 0, "actions": np.zeros(BATCH, np.int64)})
        assert missing["code"] == "not_seated"
        a, b = run_both(address, None)
        process.wait(timeout=10)
        assert process.returncode == 0
        check_records(run_dir, a, b)
        assert a["errors"] == [] and b["errors"] == []
    finally:
        stop(process)


def test_spec_client_signed_with_payments(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    process, connection = start_arena(run_dir, sign=True, rmax=1.0, disclose=["actions", "rewards", "payments"])
    try:
        assert connection["signature_scheme"] == "hmac-sha256"
        key = connection["key"].encode("utf-8")
        address = connection["address"]

        def forge(frames: list[bytes]) -> list[bytes]:
            return [b"0" * 64, *frames[1:]]

        forged = probe(address, key, "hello", {"name": "mallory"}, frames_edit=forge)
        assert forged["code"] == "bad_signature"
        unsigned = probe(address, None, "hello", {"name": "mallory"})
        assert unsigned["code"] == "bad_signature"
        # a replayed message (same frames, same signature) is refused even though it verifies
        replayer = SpecClient(address, key, heartbeats=False)
        try:
            _, frames = replayer.encode("frobnicate", {})
            replayer.send_frames(frames)
            assert replayer.expect("error")[1]["code"] == "unknown_type"
            replayer.send_frames(frames)
            replay = replayer.expect("error")[1]
            assert replay["code"] == "bad_signature" and "replay" in replay["message"]
        finally:
            replayer.close()

        a, b = run_both(address, key, pay_to=0, amount=0.5)
        process.wait(timeout=10)
        assert process.returncode == 0
        episodes = check_records(run_dir, a, b)
        assert a["pay_requests"] == 0 and b["pay_requests"] == EPISODES * STEPS
        assert b["welcome"]["pays"] is True and a["welcome"]["pays"] is False
        # the refused self-payment (episode 0, step 0) counted as nothing; every other step paid 0.5
        assert [e["code"] for e in b["errors"]] == ["invalid_payment"]
        received = [e["incentives_received"]["a"] for e in episodes]
        assert received == pytest.approx([0.5 * (STEPS - 1)] + [0.5 * STEPS] * (EPISODES - 1))
        assert [e["incentives_given"]["b"] for e in episodes] == pytest.approx(received)
        ledger = read_jsonl(run_dir / "ledger.jsonl")
        assert [line["refused"] for line in ledger] == [{"a": 0, "b": 1}] + [{"a": 0, "b": 0}] * (EPISODES - 1)
        assert all(line["balanced"] for line in ledger)
        assert ledger[1]["received_units"]["a"] == BATCH * STEPS * 500_000
    finally:
        stop(process)
