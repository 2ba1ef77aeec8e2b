"""CURVE across "hosts": the arena on 127.0.0.2, agents joining through a TCP relay on 127.0.0.1 that records
every byte on the wire. With CURVE the run works, strangers and borrowed keys are refused, and the wire
carries no readable protocol; without it the same capture shows the msgpack field names."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zmq

from launch.config import ConfigError, load_config
from protocols.curve import ClientKeys, read_secret_file
from protocols.messages import Heartbeat, Hello
from tests.conftest import REPO, RawPeer, arena_command, read_jsonl, write_config

pytestmark = pytest.mark.slow
ARENA_HOST = "127.0.0.2"


class Relay:
    """A TCP relay from 127.0.0.1 (a random port) to the arena: forwards both ways and keeps a copy."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.captured = bytearray()
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target)
            except OSError:  # the arena has gone (agents' sockets reconnect while they close)
                client.close()
                continue
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while chunk := source.recv(65536):
                with self.lock:
                    self.captured += chunk
                sink.sendall(chunk)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                with contextlib.suppress(OSError):
                    end.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.listener.close()


def _serve(config: Path) -> tuple[subprocess.Popen, list[str]]:
    """`arena serve` and the two join commands it prints."""
    server = subprocess.Popen(arena_command("serve", str(config)), cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    commands: list[str] = []
    deadline = time.monotonic() + 60
    while len(commands) < 2 and time.monotonic() < deadline:
        commands += re.findall(r"(arena agent .*)$", server.stdout.readline().strip())
    assert len(commands) == 2, "arena serve printed no join commands"
    return server, commands


def _agent(command: str, address: str, relay: Relay, **replace: str) -> subprocess.Popen:
    """Run a printed join command through the relay (and with any flag's value replaced)."""
    words = shlex.split(command.replace(address, f"tcp://127.0.0.1:{relay.port}"))
    for flag, value in replace.items():
        words[words.index(f"--{flag.replace('_', '-')}") + 1] = value
    return subprocess.Popen(arena_command(*words[1:]), cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def _run(tmp_path: Path, curve: bool) -> tuple[bytes, list[dict], dict[str, str]]:
    """Serve a CURVE (or plain) IPD run on ARENA_HOST; in a CURVE run, first a stranger's key and then
    alice's key asking for bob's seat try to join; then alice and bob (bob with the key he made himself with
    `arena keys`) play through the relay. Returns the capture, the episodes and the refused agents' output."""
    bob_key = None
    if curve:
        made = subprocess.run(arena_command("keys", str(tmp_path / "mine"), "bob", "mallory"), cwd=REPO,
                              capture_output=True, text=True, timeout=60)
        assert made.returncode == 0, made.stderr
        bob_key = re.search(r"bob: public key (\S+)", made.stdout + made.stderr).group(1)
    bob = {"name": "bob", "kind": "always-defect", "external": True, **({"client_key": bob_key} if curve else {})}
    config = write_config(tmp_path / "run.toml",
                          {"game": "ipd", "episodes": 3, "batch_size": 4, "disclose": ["actions"], "curve": curve,
                           "address": f"tcp://{ARENA_HOST}:*", "params": {"max_steps": 6}},
                          [{"name": "alice", "kind": "tit-for-tat", "external": True}, bob])
    server, commands = _serve(config)
    address = re.search(r"--connect (\S+)", commands[0]).group(1)
    assert address.startswith(f"tcp://{ARENA_HOST}:")
    relay = Relay((ARENA_HOST, int(address.rsplit(":", 1)[1])))
    refused: dict[str, str] = {}
    processes = [server]
    try:
        if curve:
            assert f"--client-key {tmp_path / 'runs'}" in commands[0]  # alice's key was issued by the arena
            stranger = _agent(commands[1], address, relay, client_key=str(tmp_path / "mine" / "mallory.key_secret"))
            borrowed = _agent(commands[0].replace("--seat 0 --name alice", "--seat 1 --name bob"), address, relay)
            processes += [stranger, borrowed]
            for name, process in (("stranger", stranger), ("borrowed", borrowed)):
                refused[name] = process.communicate(timeout=60)[0]
                assert process.returncode == 1, refused[name]
            commands[1] = commands[1].replace("bob.key_secret", str(tmp_path / "mine" / "bob.key_secret"))
        agents = [_agent(command, address, relay) for command in commands]
        processes += agents
        output, _ = server.communicate(timeout=120)
        assert server.returncode == 0, output
        assert all(agent.wait(timeout=30) == 0 for agent in agents)
    finally:
        relay.close()
        for process in processes:
            if process.poll() is None:
                process.kill()
    run_dir = next((tmp_path / "runs").iterdir())
    with relay.lock:
        return bytes(relay.captured), read_jsonl(run_dir / "episodes.jsonl"), refused


def test_curve_run_across_two_addresses_refuses_wrong_keys_and_hides_the_traffic(tmp_path: Path) -> None:
    captured, episodes, refused = _run(tmp_path, curve=True)
    # tit-for-tat (alice) vs always-defect (bob), T = 6: CD once, then DD
    assert [e["returns"] for e in episodes] == [{"alice": -3.0 - 2 * 5, "bob": -2.0 * 5}] * 3
    assert "refused this agent's CURVE client key" in refused["stranger"], refused["stranger"]
    assert "seat 1 ('bob') takes only the CURVE client key issued for it; this connection's key is seat 0's " \
           "('alice')" in refused["borrowed"], refused["borrowed"]
    assert len(captured) > 5000
    for plaintext in (b"observe", b"actions", b"hello", b"tit-for-tat", b"episode_end"):
        assert plaintext not in captured


def test_the_same_capture_without_curve_shows_the_protocol(tmp_path: Path) -> None:
    captured, episodes, _ = _run(tmp_path, curve=False)
    assert len(episodes) == 3
    for plaintext in (b"observe", b"actions", b"hello", b"tit-for-tat", b"episode_end"):
        assert plaintext in captured


def test_a_seat_is_taken_and_taken_back_only_with_its_own_key(tmp_path: Path) -> None:
    """The key is that of the connection a `hello` comes on: not remembered per routing id (a later connection
    may reuse one), and checked when a seat token rejoins a seat too (SPEC §21.5)."""
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "arena.json").write_text(json.dumps({
        "arena": {"game": "ipd", "batch_size": 2, "curve": True, "reconnect_grace_s": 60.0},
        "seats": [{"name": "a"}, {"name": "b"}]}))
    arena = subprocess.Popen([sys.executable, "-m", "arena", str(run_dir)], cwd=REPO, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL)
    context = zmq.Context()
    try:
        path = run_dir / "connection.json"
        deadline = time.monotonic() + 30
        while not (path.exists() and path.read_text().strip().endswith("}")) and time.monotonic() < deadline:
            time.sleep(0.05)
        connection = json.loads(path.read_text())
        server = connection["curve_server_key"].encode()
        keys = {name: ClientKeys(server, *read_secret_file(run_dir / "keys" / f"{name}.key_secret")) for name in "ab"}

        def peer(name: str, routing_id: bytes | None = None) -> RawPeer:
            return RawPeer(context, connection["address"], curve=keys[name], routing_id=routing_id)

        first = peer("a", b"reused")  # with a's key: its first message must not vouch for a later connection
        first.send(Heartbeat())
        assert first.receive().type == "heartbeat"
        first.socket.close(0)
        for _ in range(50):  # until the arena has dropped the first connection and takes the routing id again
            later = peer("b", b"reused")
            later.send(Hello(name="a", seat=0))
            reply = later.receive(0.2)
            if reply is not None:
                break
            later.socket.close(0)
        assert reply.type == "error", reply
        assert reply.content.code == "wrong_key" and "this connection's key is seat 1's ('b')" in reply.content.message

        seated = {name: peer(name) for name in "ab"}
        tokens = {}
        for index, (name, joined) in enumerate(seated.items()):
            joined.send(Hello(name=name, seat=index))
            tokens[name] = joined.expect("welcome").content.seat_token
        thief = peer("a")  # a's key and b's leaked token
        thief.send(Hello(name="b", seat=1, seat_token=tokens["b"]))
        error = thief.expect("error").content
        assert error.code == "wrong_key" and error.fatal
        assert "seat 1 ('b') takes only the CURVE client key issued for it; this connection's key is seat 0's " \
               "('a')" in error.message
        back = peer("b")  # b's own key and token: it rejoins
        back.send(Hello(name="b", seat=1, seat_token=tokens["b"]))
        assert back.expect("welcome").content.seat == 1
    finally:
        context.destroy(0)
        arena.terminate()
        arena.wait(timeout=10)


@pytest.mark.parametrize(("arena", "seat", "message"), [
    ({"curve": True}, {"client_key": "not-a-key", "external": True}, "is not a CURVE public key"),
    ({}, {"client_key": "0=b57kYP$3NGp5tq/#.B}#)cDx8a#hBg(nIbuyaJ", "external": True},
     "set [arena] curve = true, or remove client_key"),
    ({"curve": True}, {"client_key": "0=b57kYP$3NGp5tq/#.B}#)cDx8a#hBg(nIbuyaJ"}, "set external = true"),
])
def test_client_keys_are_checked_in_the_run_config(tmp_path: Path, arena: dict, seat: dict, message: str) -> None:
    config = write_config(tmp_path / "run.toml", {"game": "ipd", **arena},
                          [{"name": "alice", "kind": "tit-for-tat", **seat}, {"name": "bob", "kind": "always-defect"}])
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(config)


def test_an_agent_without_its_key_is_told_what_to_give(tmp_path: Path) -> None:
    done = subprocess.run(arena_command("agent", "tit-for-tat", "--connect", "tcp://127.0.0.1:1", "--server-key",
                                        "0=b57kYP$3NGp5tq/#.B}#)cDx8a#hBg(nIbuyaJ"), cwd=REPO, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 2
    assert "this run uses CURVE: give --client-key NAME.key_secret" in done.stderr
