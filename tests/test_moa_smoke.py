"""Smoke test of MOA social influence through the real arena: Box trapped, a moa opener against the
box-escapee probe (real processes, a few seconds). The influence reward and the MOA loss must be
computed and logged every training episode; learning itself is bench/results/moa.md's business."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tests.conftest import launch, write_config

EPISODES = 3


def test_moa_logs_its_influence_reward(tmp_path: Path) -> None:
    arena = {"game": "box_trapped", "episodes": EPISODES, "batch_size": 4, "disclose": ["actions", "visibility"]}
    agents = [{"name": "opener", "kind": "moa", "options": {"epochs": 1}}, {"name": "trapped", "kind": "box-escapee"}]
    done = launch(write_config(tmp_path / "run.toml", arena, agents, name="moa_smoke"), 180)
    assert done.code == 0, done.output[-2000:]
    lines = (done.run_dir / "agents" / "opener" / "metrics.jsonl").read_text().splitlines()
    metrics = [json.loads(line) for line in lines]
    assert len(metrics) == EPISODES
    for row in metrics:
        for key in ("influence", "influence_sparsity", "moa_loss", "moa_accuracy"):
            assert math.isfinite(row[key]), (key, row)
        assert row["influence"] >= 0.0  # a KL
        assert row["moa_loss"] > 0.0
