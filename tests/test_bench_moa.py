"""bench/moa.py scores what it says: the share of copies whose box the opener opened, in the last 10%
of training and in the evaluation episodes of that stretch."""

from __future__ import annotations

import json
from pathlib import Path

from bench.lio import Run
from bench.moa import score, targets

CONFIG = {"arena": {"game": "box_trapped", "batch_size": 32},
          "agents": [{"name": "opener", "kind": "moa"}, {"name": "trapped", "kind": "box-escapee"}]}


def played_run(run_dir: Path, late_opened: float, eval_opened: float) -> list[dict]:
    (run_dir / "agents" / "opener").mkdir(parents=True)
    played = []
    for trained in range(20):
        opened = late_opened if trained >= 18 else 1.0
        played.append({"episode": len(played), "trained": trained, "events": {"opened": {"opener": opened}}})
        if trained == 18:
            played.append({"episode": len(played), "trained": 19, "evaluate": True,
                           "events": {"opened": {"opener": eval_opened}}})
    rows = [{"episode": e, "influence": 0.5, "moa_accuracy": 0.9} for e in range(len(played))]
    (run_dir / "agents" / "opener" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return played


def test_opened_is_judged_on_the_evaluation_episodes(tmp_path: Path) -> None:
    runs = []
    for seed, (late, evaluated) in enumerate([(0.1, 0.9), (0.2, 0.85), (1.0, 0.3)]):
        m = score("box_trapped_moa", CONFIG, played_run(tmp_path / str(seed), late, evaluated), tmp_path / str(seed))
        runs.append(Run("box", "box_trapped_moa", seed, status="ok", metrics=m))
    assert runs[0].metrics["opened"] == 0.1 and runs[0].metrics["eval_opened"] == 0.9
    assert runs[0].metrics["opened_first10"] == 1.0 and runs[0].metrics["opener"]["influence"] == 0.5
    (line,) = targets(runs)
    assert "2/3 seeds (MISS)" in line and "0.90, 0.85, 0.30" in line
