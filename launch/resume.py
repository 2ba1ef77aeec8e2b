"""Resuming a run that stopped early: `arena launch --resume RUN_DIR`.

The arena seeds episode e with `SeedSequence([seed, e])` and plays a schedule (warm-up, training and
evaluation episodes) fixed by the settings, so a run goes on exactly where it stopped once the arena
starts at the right episode and every learning agent holds the state it had there. A learner's state
exists only in its checkpoints (`[run] checkpoint_every`, named by training episodes), so the run goes on
from the last point that every record and every learning agent has:

- only episodes that episodes.jsonl, ledger.jsonl and every launched agent's metrics.jsonl all hold
  count (a line torn by the kill is no record);
- with learning agents (kinds that write checkpoints): right after the latest training episode K for
  which each of them has a checkpoint, or from the start (K = 0, each seat's own `resume`) when there is
  none. The evaluation episodes after K are played again: acting draws from a learner's generators.

Nothing is deleted: the files as they were and the checkpoints after K are moved to RUN_DIR/resume-N/.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from agents.algorithm import Algorithm
from agents.registry import load_algorithm
from agents.runtime import checkpoint_path
from launch.config import RunConfig


class ResumeError(ValueError):
    """The run directory cannot be resumed; the message says why."""


@dataclass(frozen=True)
class ResumePoint:
    """Where a run goes on: the first episode to play, the training episodes before it, and the checkpoint
    each learning seat restores (by seat name)."""

    first_episode: int
    trained: int
    checkpoints: dict[str, str]


def record_count(path: Path) -> int:
    """How many records a JSONL file of episodes holds: complete lines numbered 0, 1, … in order (a torn
    last line, or anything after a gap, is no record)."""
    if not path.exists():
        return 0
    count = 0
    for line in path.read_text(encoding="utf-8").split("\n")[:-1]:  # the text after the last newline is torn
        try:
            record = json.loads(line)
        except ValueError:
            break
        if not isinstance(record, dict) or record.get("episode") != count:
            break
        count += 1
    return count


def learns(kind: str) -> bool:
    """Whether an agent of this kind has state to restore: it writes checkpoints (overrides `save`)."""
    try:
        return load_algorithm(kind).save is not Algorithm.save
    except Exception as exc:  # a user's module:Class may fail to import in any way
        raise ResumeError(f"agent kind '{kind}' cannot be loaded: {exc}") from None


def _record_files(config: RunConfig, run_dir: Path) -> list[Path]:
    agents = [run_dir / "agents" / seat.name / "metrics.jsonl" for seat in config.agents if not seat.external]
    return [run_dir / "episodes.jsonl", run_dir / "ledger.jsonl", *agents]


def plan_resume(config: RunConfig, run_dir: Path) -> ResumePoint:
    """Where the run in `run_dir` (played with `config`) goes on; changes nothing."""
    result = run_dir / "result.json"
    if result.exists() and json.loads(result.read_text(encoding="utf-8")).get("status") == "complete":
        raise ResumeError(f"run {run_dir} is complete; nothing to resume")
    if not (run_dir / "episodes.jsonl").exists():
        raise ResumeError(f"{run_dir} has no episodes.jsonl: not a run directory of `arena launch`")
    schedule = config.arena.schedule()
    recorded = min(record_count(path) for path in _record_files(config, run_dir))
    learners = [seat for seat in config.agents if not seat.external and learns(seat.kind)]
    if learners:
        # after[k]: the episode that follows the k-th training episode (after[0] = 0, the start)
        after = [0] + [episode + 1 for episode, evaluate in enumerate(schedule) if not evaluate]
        trained = max(k for k in range(len(after)) if after[k] <= recorded and (k == 0 or all(
            checkpoint_path(run_dir / "agents" / seat.name, k).exists() for seat in learners)))
        first = after[trained]
    else:
        first, trained = recorded, schedule[:recorded].count(False)
    if first >= len(schedule):
        raise ResumeError(f"run {run_dir} has all {len(schedule)} episodes; nothing to resume")
    checkpoints = {seat.name: str(checkpoint_path(run_dir / "agents" / seat.name, trained)) if trained
                   else seat.resume for seat in learners}
    return ResumePoint(first, trained, {name: path for name, path in checkpoints.items() if path})


def set_aside(config: RunConfig, run_dir: Path, point: ResumePoint) -> Path | None:
    """Cut the run's records back to `point.first_episode` episodes and move the checkpoints after it (and the
    stopped session's result.json) away; returns the folder that keeps what was there (None: nothing was)."""
    aside = next(run_dir / f"resume-{n}" for n in range(1, 10_000) if not (run_dir / f"resume-{n}").exists())
    moved = False

    def keep(path: Path) -> Path:
        nonlocal moved
        moved = True
        target = aside / path.relative_to(run_dir)
        target.parent.mkdir(parents=True, exist_ok=True)
        return target

    for path in _record_files(config, run_dir):
        if not path.exists():
            continue
        text = path.read_text(encoding="utf-8")
        lines = text.split("\n")[: point.first_episode]
        kept = "".join(f"{line}\n" for line in lines)
        if kept != text:
            shutil.copy2(path, keep(path))
            path.write_text(kept, encoding="utf-8")
    result = run_dir / "result.json"  # the stopped session's, if it got to write one
    if result.exists():
        shutil.move(result, keep(result))
    for seat in config.agents:
        out = run_dir / "agents" / seat.name
        later = [checkpoint_path(out, k) for k in range(point.trained + 1, config.arena.episodes + 1)]
        for path in [*later, checkpoint_path(out, None)]:
            if path.exists():
                shutil.move(path, keep(path))
    return aside if moved else None


def with_checkpoints(config: RunConfig, point: ResumePoint) -> RunConfig:
    """The run's config with each learning seat resuming from its checkpoint at `point`."""
    seats = [seat.model_copy(update={"resume": point.checkpoints.get(seat.name, seat.resume)})
             for seat in config.agents]
    return config.model_copy(update={"agents": seats})
