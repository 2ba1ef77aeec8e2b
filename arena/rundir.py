"""The run directory: resolved config, per-episode summaries, the ledger and the final result.

Each episode's lines are flushed as soon as the episode ends, so an interrupted run keeps every
finished episode. A resumed run appends to the same files and notes in run.json and result.json where
it went on. The arena holds RUN_DIR/arena.lock for as long as it runs (the OS lets go of it when the
process dies, however it dies), so no second arena writes to the same files. With telemetry on, the same
records go to MQTT as well (SPEC §19): the run's retained status, each episode's record, and the final
result; the directory stays the source of truth.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path
from typing import Any

from arena.settings import ArenaSettings
from arena.spectators import Spectators
from protocols.telemetry import MqttTarget, Telemetry

LOCK_FILE = "arena.lock"


class RunDirBusy(Exception):
    """Another arena holds the run directory; the message names it and says what to do."""


def _take_lock(fd: int, run_dir: Path) -> None:
    """Lock `fd` (RUN_DIR/arena.lock) or raise RunDirBusy naming the arena that holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        stop = f"stop it (kill {pid})" if pid.isdigit() else f"stop the arena that holds {run_dir / LOCK_FILE}"
        raise RunDirBusy(f"run {run_dir} is still running (arena pid {pid}): {stop} or wait for it") from None


def lock_run_dir(run_dir: Path) -> int:
    """Hold RUN_DIR/arena.lock for this process (noting its pid there); returns the descriptor that holds it."""
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    _take_lock(fd, run_dir)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def ensure_stopped(run_dir: Path) -> None:
    """Raise RunDirBusy if an arena still runs in `run_dir` (for `arena launch --resume`); changes nothing."""
    try:
        fd = os.open(run_dir / LOCK_FILE, os.O_RDONLY)
    except FileNotFoundError:
        return
    _take_lock(fd, run_dir)
    os.close(fd)  # closing the only descriptor lets go of the lock


def started_run_id(run_dir: Path) -> str | None:
    """The run id of the arena session that last started playing in `run_dir` (its entry in run.json, written at
    the start); None before any did, or while run.json is being written."""
    try:
        record = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return (record.get("resumed") or [record])[-1]["run_id"]


class RunWriter:
    def __init__(self, run_dir: Path, run_id: str, telemetry: tuple[Telemetry, MqttTarget] | None = None) -> None:
        self.run_dir = run_dir
        self.run_id = run_id
        self.telemetry = telemetry
        #: the arena's spectator stream, once bound (arena.spectators)
        self.spectators: Spectators | None = None
        run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = lock_run_dir(run_dir)
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
        os.close(self._lock)

    def _publish(self, topic: str, payload: dict[str, Any], retain: bool = False) -> None:
        if self.spectators is not None:
            self.spectators.publish("episode" if topic == "episodes" else topic, payload)
        if self.telemetry is not None:
            telemetry, target = self.telemetry
            telemetry.publish(target.run_topic(self.run_id, topic), payload, retain=retain)
