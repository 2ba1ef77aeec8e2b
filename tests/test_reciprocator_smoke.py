"""Smoke test of Reciprocators through the real arena: Coins with a Reciprocator (network estimators,
`petty_payoff`) against NL-PPO, and IPD with its frequency table (real processes, a few seconds).
The estimators must be refitted and the reciprocal reward computed and logged; learning itself is
the benchmark's business."""

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
             "params": {"max_steps": 8}}
    options = {"epochs": 1, "warmup": 1, "estimator_samples": 256, "estimator_minibatch": 128,
               "estimator_epochs": 2}
    agents = [{"name": "rec", "kind": "reciprocator", "options": options},
              {"name": "nl", "kind": "nl-ppo", "options": {"epochs": 1}}]
    done = launch(write_config(tmp_path / "run.toml", arena, agents, name=f"rec_smoke_{game}"), 180)
    assert done.code == 0, done.output[-2000:]
    metrics = [json.loads(line) for line in
               (done.run_dir / "agents" / "rec" / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == EPISODES
    trained = [row for row in metrics if not row.get("warmup")]
    assert trained, metrics  # after the warm-up the reciprocal reward enters the PPO update
    for row in trained:
        for key in ("reciprocal_reward", "vi_in", "vi_out"):
            assert math.isfinite(row[key]), (key, row)
    assert any(row["vi_in"] != 0.0 or row["vi_out"] != 0.0 for row in trained)
