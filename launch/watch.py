"""`arena watch mqtt://HOST[:PORT][/PREFIX]`: follow runs live from their telemetry (SPEC §19).

A table with one row per run seen on the broker: its state, episode progress, the last collective
return and a sparkline of them, each seat's last return and incentives received, and which agents are
present (gone ones say why). `--until-done` returns once every run seen is complete or aborted.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from rich.console import Console
from rich.live import Live
from rich.table import Table

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
    for column in ("run", "state", "episode", "collective", "trend", "seats: last return / incentives", "agents"):
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
        seats = ", ".join(f"{name} {value:+.2f} / {last.get('incentives_received', {}).get(name, 0.0):.2f}"
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


def main(url: str, run_filter: str | None, until_done: bool) -> int:
    console = Console()
    try:
        target = MqttTarget.parse(url)
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
