"""The run directory: resolved config, per-episode summaries, the ledger and the final result.

Each episode's lines are flushed as soon as the episode ends, so an interrupted run keeps every
finished episode. A resumed run appends to the same files and notes in run.json and result.json where
it went on. With telemetry on, the same records go to MQTT as well (SPEC §19): the run's
retained status, each episode's record, and the final result; the directory stays the source of truth.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from arena.settings import ArenaSettings
from arena.spectators import Spectators
from protocols.telemetry import MqttTarget, Telemetry


class RunWriter:
    def __init__(self, run_dir: Path, run_id: str, telemetry: tuple[Telemetry, MqttTarget] | None = None) -> None:
        self.run_dir = run_dir
        self.run_id = run_id
        self.telemetry = telemetry
        #: the arena's spectator stream, once bound (arena.spectators)
        self.spectators: Spectators | None = None
        run_dir.mkdir(parents=True, exist_ok=True)
        self._episodes = open(run_dir / "episodes.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._ledger = open(run_dir / "ledger.jsonl", "a", encoding="utf-8")  # noqa: SIM115
        self._started = time.time()

    def start(self, settings: ArenaSettings, seats: list[dict[str, Any]], run_id: str, address: str,
              first_episode: int = 0, resumed: bool = False) -> None:
        """Record who actually joined which seat, next to the settings the run used. A resumed run keeps the
        first start's record and adds one entry to its `resumed` list (where it went on, and who joined)."""
        started = time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(self._started))
        path = self.run_dir / "run.json"
        this = {"run_id": run_id, "address": address, "seats": seats, "started": started}
        if resumed and path.exists():
            record = json.loads(path.read_text(encoding="utf-8"))
            record.setdefault("resumed", []).append({"from_episode": first_episode, **this})
        else:
            record = {**this, "arena": settings.model_dump()}
        path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        self._publish("run", record, retain=True)
        self._publish("status", {"state": "running", "episode": first_episode, "episodes": settings.total_episodes},
                      retain=True)

    def lobby(self, settings: ArenaSettings, waiting_for: list[str], address: str) -> None:
        self._publish("status", {"state": "lobby", "waiting_for": waiting_for, "address": address,
                                 "game": settings.game, "episodes": settings.total_episodes}, retain=True)

    def episode(self, summary: dict[str, Any], ledger_record: dict[str, Any], total_episodes: int) -> None:
        for handle, record in ((self._episodes, summary), (self._ledger, ledger_record)):
            handle.write(json.dumps(record) + "\n")
            handle.flush()
        self._publish("episodes", summary)
        self._publish("status", {"state": "running", "episode": summary["episode"] + 1, "episodes": total_episodes},
                      retain=True)

    def finish(self, status: str, reason: str, episodes: int, seats: list[dict[str, Any]],
               first_episode: int = 0, resumed: bool = False) -> None:
        self._episodes.close()
        self._ledger.close()
        result = {"status": status, "reason": reason, "episodes": episodes, "seats": seats,
                  "wall_time_s": round(time.time() - self._started, 3)}
        if resumed:
            result["resumed_from"] = first_episode
        self._publish("status", {"state": status, "reason": reason, "episodes": episodes}, retain=True)
        if self.telemetry is not None:
            telemetry = self.telemetry[0]
            telemetry.close()
            result["telemetry"] = telemetry.counts
        (self.run_dir / "result.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")

    def _publish(self, topic: str, payload: dict[str, Any], retain: bool = False) -> None:
        if self.spectators is not None:
            self.spectators.publish("episode" if topic == "episodes" else topic, payload)
        if self.telemetry is not None:
            telemetry, target = self.telemetry
            telemetry.publish(target.run_topic(self.run_id, topic), payload, retain=retain)
