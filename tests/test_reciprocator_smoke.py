"""Smoke test of Reciprocators through the real arena: Coins with a Reciprocator (network estimators,
`petty_payoff`) against NL-PPO, and IPD with its frequency table (real processes, a few seconds).
The estimators must be refitted and the reciprocal reward computed and logged, and the run-level
warm-up must freeze every seat's policy while the Reciprocator fits; learning itself is the
benchmark's business."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from tests.conftest import launch, write_config

EPISODES = 3


@pytest.mark.parametrize("game", ["ipd", "coin_game"])
def test_reciprocator_logs_its_reciprocal_reward(tmp_path: Path, game: str) -> None:
    arena = {"game": game, "episodes": EPISODES, "batch_size": 4, "disclose": ["actions", "rewards"],
             "params": {"max_steps": 8}, "warmup_episodes": 1}
    options = {"epochs": 1, "warmup": 1, "estimator_samples": 256, "estimator_minibatch": 128,
               "estimator_epochs": 2}
    agents = [{"name": "rec", "kind": "reciprocator", "options": options},
              {"name": "nl", "kind": "nl-ppo", "options": {"epochs": 1}}]
    done = launch(write_config(tmp_path / "run.toml", arena, agents, name=f"rec_smoke_{game}"), 180)
    assert done.code == 0, done.output[-2000:]
    metrics, nl_metrics = ([json.loads(line) for line in
                            (done.run_dir / "agents" / name / "metrics.jsonl").read_text().splitlines()]
                           for name in ("rec", "nl"))
    assert len(metrics) == len(nl_metrics) == EPISODES
    episodes = [json.loads(line) for line in (done.run_dir / "episodes.jsonl").read_text().splitlines()]
    assert [e["warmup"] for e in episodes] == [True] + [False] * (EPISODES - 1)
    # the warm-up episode: the Reciprocator fits its estimators, neither policy takes a PPO step
    assert metrics[0]["warmup"] == 1.0 and "policy_loss" not in metrics[0]
    assert metrics[0]["refit"] == 1.0
    assert nl_metrics[0] == {"episode": 0, "return": episodes[0]["returns"]["nl"], "warmup": 1.0}
    assert all("policy_loss" in row for row in nl_metrics[1:])
    trained = [row for row in metrics if not row.get("warmup")]
    assert trained, metrics  # after the warm-up the reciprocal reward enters the PPO update
    for row in trained:
        for key in ("reciprocal_reward", "vi_in", "vi_out"):
            assert math.isfinite(row[key]), (key, row)
    assert any(row["vi_in"] != 0.0 or row["vi_out"] != 0.0 for row in trained)
