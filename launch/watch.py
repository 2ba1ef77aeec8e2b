"""`arena watch SOURCE`: follow runs live, from MQTT telemetry (SPEC §19) or, with no broker, from an
arena's own spectator stream (SPEC §20).

SOURCE is `mqtt://HOST[:PORT][/PREFIX]` (every run publishing there), a run directory (its
`connection.json` names the arena's stream) or the stream's `tcp://` address. A table with one row per
run: its state, episode progress, the last collective return and a sparkline of them, each seat's
sparkline of returns with its last return and incentives received, and which agents are present (gone
ones say why; MQTT only).
`--frames` shows the arena's rendering of copy 0 after every step (spectator stream only).
`--until-done` returns once every run seen is complete or aborted.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import zmq
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table
from rich.text import Text

from protocols.curve import ClientKeys, read_secret_file
from protocols.telemetry import TOPIC_VERSION, MqttTarget

SPARKS = "▁▂▃▄▅▆▇█"
ENDED = ("complete", "aborted")


def sparkline(values: list[float], width: int = 24) -> str:
    shown = values[-width:]
    if not shown:
        return ""
    low, high = min(shown), max(shown)
    span = high - low or 1.0
    return "".join(SPARKS[round((v - low) / span * (len(SPARKS) - 1))] for v in shown)


@dataclass
class RunView:
    """What the watcher knows of one run."""

    status: dict[str, Any] = field(default_factory=dict)
    episodes: list[dict[str, Any]] = field(default_factory=list)
    presence: dict[str, dict[str, Any]] = field(default_factory=dict)

    def take(self, parts: list[str], payload: dict[str, Any]) -> None:
        if parts == ["status"]:
            self.status = payload
        elif parts == ["episodes"]:
            self.episodes.append(payload)
        elif len(parts) == 3 and parts[0] == "agents" and parts[2] == "presence":
            self.presence[parts[1]] = payload


def table(runs: dict[str, RunView]) -> Table:
    view = Table(title="social-arena runs (live)", expand=True)
    for column in ("run", "state", "episode", "collective", "trend", "seats: trend, last return / incentives",
                   "agents"):
        view.add_column(column)
    for run_id, run in sorted(runs.items()):
        state = run.status.get("state", "?")
        if state == "lobby":
            state = f"lobby (waiting for {', '.join(run.status.get('waiting_for', []))})"
        elif state == "aborted":
            state = f"aborted: {run.status.get('reason', '')}"
        episode = f"{run.status.get('episode', len(run.episodes))}/{run.status.get('episodes', '?')}"
        last = run.episodes[-1] if run.episodes else {}
        collective = [e["collective_return"] for e in run.episodes if "collective_return" in e]
        seats = "\n".join(f"{name} {sparkline([e['returns'][name] for e in run.episodes], 12)} {value:+.2f} / "
                           f"{last.get('incentives_received', {}).get(name, 0.0):.2f}"
                           for name, value in last.get("returns", {}).items())
        agents = ", ".join(f"{name} " + ("✓" if p.get("present") else f"gone ({p.get('reason', '')})")
                           for name, p in sorted(run.presence.items()))
        view.add_row(run_id, state, episode, f"{collective[-1]:+.2f}" if collective else "–", sparkline(collective),
                     seats, agents)
    return view


async def follow(target: MqttTarget, run_filter: str | None, until_done: bool, console: Console) -> int:
    """Subscribe and keep the table current (redrawn in place on a terminal, printed once at the end
    otherwise)."""
    runs: dict[str, RunView] = {}
    root = f"{target.prefix}/{TOPIC_VERSION}/runs/"
    screen = Live(table(runs), console=console, refresh_per_second=4) if console.is_terminal else None
    async with aiomqtt.Client(target.host, target.port) as client:
        await client.subscribe(f"{root}{run_filter or '+'}/#", qos=1)
        if screen is not None:
            screen.start()
        try:
            async for message in client.messages:
                parts = str(message.topic).removeprefix(root).split("/")
                try:
                    payload = json.loads(message.payload)
                except ValueError:
                    continue
                runs.setdefault(parts[0], RunView()).take(parts[1:], payload)
                if screen is not None:
                    screen.update(table(runs))
                if until_done and runs and all(r.status.get("state") in ENDED for r in runs.values()):
                    break
        finally:
            if screen is not None:
                screen.stop()
    if screen is None:
        console.print(table(runs))
    return 0


def follow_stream(address: str, frames: bool, until_done: bool, console: Console,
                  curve: ClientKeys | None = None) -> int:
    """Subscribe to one arena's spectator stream (SPEC §20) and keep the table (and frame) current."""
    context = zmq.Context()
    socket = context.socket(zmq.SUB)
    if curve is not None:
        curve.apply(socket)
    for topic in ("welcome", "status", "episode", *(("frame",) if frames else ())):
        socket.setsockopt(zmq.SUBSCRIBE, topic.encode())
    socket.connect(address)
    runs: dict[str, RunView] = {}
    run = RunView()
    frame = Text("")

    def shown() -> Group | Table:
        return Group(table(runs), frame) if frames else table(runs)

    screen = Live(shown(), console=console, refresh_per_second=4) if console.is_terminal else None
    if screen is not None:
        screen.start()
    try:
        while True:
            if not socket.poll(250):
                continue
            topic, _, body = socket.recv().partition(b" ")
            payload = json.loads(body)
            if topic == b"welcome":
                runs[payload["run_id"]] = run
                run.status = payload["status"] or run.status
            elif topic == b"frame":
                frame = Text.from_ansi(f"episode {payload['episode']} t={payload['t']}\n{payload['text']}")
            else:
                run.take(["episodes" if topic == b"episode" else topic.decode()], payload)
            if screen is not None:
                screen.update(shown())
            if until_done and run.status.get("state") in ENDED:
                break
    finally:
        if screen is not None:
            screen.stop()
        socket.close(0)
        context.term()
    if screen is None:
        console.print(shown())
    return 0


def stream_address(source: str) -> str | None:
    """The spectator stream of a run directory or a tcp:// address; None for anything else."""
    if source.startswith(("tcp://", "ipc://")):
        return source
    connection = Path(source) / "connection.json"
    if connection.exists():
        return json.loads(connection.read_text(encoding="utf-8")).get("events")
    return None


def stream_keys(source: str) -> ClientKeys | None:
    """A CURVE run's stream takes the seats' keys (SPEC §21): watching its run directory on the arena's host
    uses a key pair the arena issued there; None for a run without CURVE."""
    connection = Path(source) / "connection.json"
    if not connection.exists():
        return None
    server_key = json.loads(connection.read_text(encoding="utf-8")).get("curve_server_key")
    if server_key is None:
        return None
    issued = sorted((Path(source) / "keys").glob("*.key_secret"))
    if not issued:
        raise ValueError(f"{source} is a CURVE run whose seats all hold their own keys: its event stream takes "
                         "only those; watch it with MQTT telemetry (arena launch --mqtt) instead")
    public, secret = read_secret_file(issued[0])
    return ClientKeys(server_key.encode(), public, secret)


def main(source: str, run_filter: str | None, until_done: bool, frames: bool = False) -> int:
    console = Console()
    if not source.startswith("mqtt://"):
        address = stream_address(source)
        if address is None:
            console.print(f"[red]error:[/] {source!r} is neither mqtt://HOST[:PORT][/PREFIX], a run directory with "
                          "a connection.json, nor an arena's tcp:// event stream address", highlight=False)
            return 2
        try:
            keys = stream_keys(source)
        except ValueError as exc:
            console.print(f"[red]error:[/] {exc}", highlight=False)
            return 2
        try:
            return follow_stream(address, frames, until_done, console, keys)
        except KeyboardInterrupt:
            return 130
    try:
        target = MqttTarget.parse(source)
    except ValueError as exc:
        console.print(f"[red]error:[/] {exc}", highlight=False)
        return 2
    try:
        return asyncio.run(follow(target, run_filter, until_done, console))
    except aiomqtt.MqttError as exc:
        console.print(f"[red]error:[/] no MQTT broker at {target.host}:{target.port} ({exc}); start one "
                      "(e.g. `mosquitto -p PORT`) or check the address", highlight=False)
        return 1
    except KeyboardInterrupt:
        return 130
