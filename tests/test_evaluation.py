"""Evaluation episodes (`eval_every`): scheduled between training episodes, flagged on the wire and in
the run directory, played without exploration, and never learned from."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from agents.algorithms.ac import ActorCritic
from agents.algorithms.ia import InequityAversion
from agents.algorithms.lio import LIO
from agents.algorithms.pg import PolicyGradient
from agents.algorithms.pg_c import PolicyGradientContinuousGive
from arena.settings import ArenaSettings
from launch.plot import load_run
from tests.agents.helpers import seat_info, step_view
from tests.conftest import launch, read_jsonl, write_config


def test_schedule_interleaves_evaluation_after_every_period() -> None:
    settings = ArenaSettings(episodes=5, eval_every=2, eval_episodes=2)
    assert settings.schedule() == [False, False, True, True, False, False, True, True, False]
    assert settings.total_episodes == len(settings.schedule()) == 9
    assert ArenaSettings(episodes=5).schedule() == [False] * 5


@pytest.mark.parametrize("cls", [PolicyGradient, PolicyGradientContinuousGive, ActorCritic, InequityAversion, LIO])
def test_evaluation_steps_sample_the_policy_without_exploration(cls: type[Any]) -> None:
    """With ε = 1 training acts uniformly; evaluation follows the (here nearly deterministic) policy."""
    agent = cls()
    agent.setup(seat_info(obs_dim=6, own_obs_dim=7, batch_size=600,
                          options={"epsilon_start": 1.0, "epsilon_end": 1.0}))
    last = [m for m in agent.policy.modules() if isinstance(m, torch.nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(-10.0)
        last.bias[1] = 10.0
    view = step_view(np.random.default_rng(0).uniform(size=(600, 7)).astype(np.float32))
    training = agent.act(view)
    evaluation = agent.act(replace(view, evaluate=True))
    assert (evaluation == 1).all()
    assert 0.05 < (training == 1).mean() < 0.6


@pytest.mark.slow
def test_evaluation_episodes_are_flagged_and_not_learned_from(tmp_path: Path) -> None:
    config = write_config(tmp_path / "run.toml",
                          {"game": "escape_room", "episodes": 6, "eval_every": 3, "eval_episodes": 2,
                           "batch_size": 8, "params": {"max_steps": 5}},
                          [{"name": "a", "kind": "pg"}, {"name": "b", "kind": "random"}])
    config.write_text(config.read_text().replace("out = ", "checkpoint_every = 3\nout = ", 1))
    finished = launch(config)
    assert finished.code == 0, finished.output
    assert finished.result()["reason"] == "run complete: 10 episodes (4 for evaluation)"
    played = finished.episodes()
    plan = [False, False, False, True, True, False, False, False, True, True]
    assert [e["evaluate"] for e in played] == plan
    assert [e["episode"] for e in played] == list(range(10))
    assert [e["trained"] for e in played] == [0, 1, 2, 3, 3, 3, 4, 5, 6, 6]
    assert [e["evaluate"] for e in finished.ledger()] == plan
    metrics = read_jsonl(finished.run_dir / "agents" / "a" / "metrics.jsonl")
    assert [m.get("evaluate", False) for m in metrics] == plan
    learned = [m for m in metrics if "policy_loss" in m]
    assert len(learned) == 6 and all(not m.get("evaluate") for m in learned)
    epsilons = [m["epsilon"] for m in learned]  # the schedule steps once per training episode only
    assert epsilons == sorted(epsilons, reverse=True) and len(set(epsilons)) == 6
    checkpoints = finished.run_dir / "agents" / "a" / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["episode_3.pt", "episode_6.pt", "final.pt"]
    run = load_run(finished.run_dir)
    assert len(run.episodes) == 6 and len(run.evaluations) == 4 and len(run.ledger) == 6
