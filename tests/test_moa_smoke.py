"""Smoke test of MOA social influence through the real arena: Box trapped, a moa opener against the
box-escapee probe (real processes, a few seconds). The influence reward and the MOA loss must be
computed and logged every training episode, and once the MOA has been fitted on the warm-up episodes
(where the untrained opener opens the box in nearly every copy) OPEN_BOX must earn a clear influence:
it is zero if the arena's actions, visibility or the counterfactual pass are wrong. Learning the policy
is bench/results/moa.md's business."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tests.conftest import launch, write_config

EPISODES, WARMUP = 5, 3


def test_moa_logs_its_influence_reward(tmp_path: Path) -> None:
    arena = {"game": "box_trapped", "episodes": EPISODES, "warmup_episodes": WARMUP, "batch_size": 16,
             "disclose": ["actions", "visibility"]}
    options = {"epochs": 1, "lr": 0.01, "moa_steps": 30}
    agents = [{"name": "opener", "kind": "moa", "options": options}, {"name": "trapped", "kind": "box-escapee"}]
    done = launch(write_config(tmp_path / "run.toml", arena, agents, name="moa_smoke"), 180)
    assert done.code == 0, done.output[-2000:]
    lines = (done.run_dir / "agents" / "opener" / "metrics.jsonl").read_text().splitlines()
    metrics = [json.loads(line) for line in lines]
    assert len(metrics) == EPISODES
    warmup, trained = metrics[:WARMUP], metrics[WARMUP:]
    assert all(row["warmup"] == 1.0 and "influence" not in row for row in warmup)
    for row in trained:
        for key in ("influence", "influence_sparsity", "moa_loss", "moa_accuracy"):
            assert math.isfinite(row[key]), (key, row)
        assert row["moa_loss"] > 0.0
        # about one opening in 30 steps, credited −log π(OPEN_BOX) ≈ 1.8 nats by a fitted MOA
        assert row["influence"] > 0.01, row
