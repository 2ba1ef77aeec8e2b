"""Every example config with non-learning agents runs one episode through the real arena and agent processes.

(That every example validates is checked in tests/test_config.py.) Examples whose agents learn
(lio, pg, ac, ...) belong to the learning benchmarks and are left out here.
"""

from __future__ import annotations

import math
from importlib.metadata import entry_points
from pathlib import Path

import pytest
import tomllib

from arena.games import game_class
from tests.conftest import REPO, launch, write_config

pytestmark = pytest.mark.slow

EXAMPLES = REPO / "examples"
#: Episodes longer than this (SSD Cleanup/Harvest: 1000 steps, Manitokan: 300) are cut to SHORT_STEPS
#: steps at batch size SHORT_BATCH, in a copy of the config, to keep the test fast.
LONG_EPISODE, SHORT_STEPS, SHORT_BATCH = 200, 100, 4
#: Packages holding learning algorithms; an agent kind that resolves into one of them is a learner.
LEARNER_PACKAGES = ("agents.algorithms", "agents.learners")


def implementation_module(kind: str) -> str:
    """Module of the class an agent kind names (entry point or module:Class), without importing it."""
    for entry in entry_points(group="arena.agents"):
        if entry.name == kind:
            return entry.value.partition(":")[0]
    return kind.partition(":")[0] if ":" in kind else ""


def is_learner(kind: str) -> bool:
    module = implementation_module(kind)
    return any(module == package or module.startswith(package + ".") for package in LEARNER_PACKAGES)


def game_examples() -> list[Path]:
    """Example configs whose agents are all non-learning (scripted, random)."""
    chosen = []
    for path in sorted(EXAMPLES.glob("*.toml")):
        agents = tomllib.loads(path.read_text(encoding="utf-8")).get("agents", [])
        if agents and not any(is_learner(agent.get("kind", "random")) for agent in agents):
            chosen.append(path)
    return chosen


def test_learners_are_told_apart() -> None:
    assert is_learner("lio") and is_learner("pg") and is_learner("ac")
    assert not is_learner("random") and not is_learner("tit-for-tat")
    names = [path.stem for path in game_examples()]
    assert "ipd" in names and "er21_lio" not in names


def quick_copy(example: Path, directory: Path) -> Path:
    """The example itself, or a copy with shorter episodes and a smaller batch when its episodes are long."""
    config = tomllib.loads(example.read_text(encoding="utf-8"))
    arena = config.get("arena", {})
    game = game_class(arena.get("game", "ipd"))
    params = game.Params.model_validate(arena.get("params", {}))
    long_keys = [key for key in ("max_steps", "episode_limit") if (getattr(params, key, None) or 0) > LONG_EPISODE]
    if not long_keys:
        return example
    quick = {**arena, "batch_size": min(arena.get("batch_size", 64), SHORT_BATCH),
             "params": {**arena.get("params", {}), **dict.fromkeys(long_keys, SHORT_STEPS)}}
    name = config.get("run", {}).get("name", "run")
    return write_config(directory / example.name, quick, config["agents"], name=name)


@pytest.mark.parametrize("example", game_examples(), ids=lambda path: path.stem)
def test_example_runs_one_episode(example: Path, tmp_path: Path) -> None:
    finished = launch(quick_copy(example, tmp_path), 120, "--episodes", "1", "--out", str(tmp_path))
    assert finished.code == 0, finished.output
    assert finished.run_dir is not None and finished.run_dir.parent == tmp_path, finished.output
    episodes = finished.episodes()
    assert len(episodes) == 1
    assert finished.result()["status"] == "complete"
    names = [agent["name"] for agent in tomllib.loads(example.read_text(encoding="utf-8"))["agents"]]
    returns = episodes[0]["returns"]
    assert sorted(returns) == sorted(names)
    for value in returns.values():
        assert isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    assert math.isfinite(episodes[0]["collective_return"])
