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


def ssd_run(tmp_path: Path, variant: str, seed: int, collective: list[float]) -> Run:
    """A finished SSD run of `variant` whose training episodes had these collective returns."""
    from bench.moa_ssd import score as ssd_score

    run_dir = tmp_path / f"{variant}-{seed}"
    kind = "moa" if variant.endswith("_moa") else "ppo"
    config = {"arena": {"game": "cleanup", "batch_size": 8},
              "agents": [{"name": f"agent{i}", "kind": kind} for i in range(5)]}
    for i in range(5):
        (run_dir / "agents" / f"agent{i}").mkdir(parents=True)
        rows = [{"episode": e, "influence": 0.1 * i, "moa_accuracy": 0.5} for e in range(len(collective))]
        (run_dir / "agents" / f"agent{i}" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    played = [{"episode": e, "trained": e, "steps": 1000.0, "collective_return": c} for e, c in enumerate(collective)]
    return Run("cleanup", variant, seed, status="ok", metrics=ssd_score(variant, config, played, run_dir))


def test_ssd_bench_compares_moa_with_ppo_over_seeds_at_equal_steps(tmp_path: Path) -> None:
    from bench.moa_ssd import REPORT, plot_curves
    from bench.moa_ssd import targets as ssd_targets

    runs = [ssd_run(tmp_path, "cleanup_moa", s, [0.0] * 9 + [10.0 + s]) for s in range(3)]
    runs += [ssd_run(tmp_path, "cleanup_ppo", s, [0.0] * 9 + [5.0]) for s in range(3)]
    assert runs[0].metrics["env_steps"] == 10 * 1000 * 8 and runs[0].metrics["collective"] == 10.0
    assert runs[0].metrics["moa"]["influence"] == 0.2  # mean over the five agents' last episode
    assert "moa" not in runs[3].metrics
    (line,) = ssd_targets(runs)
    assert "MOA 11.00 ± 0.58 (3 seeds) vs PPO 5.00 ± 0.00 (3 seeds) at 80,000 env steps" in line and "(PASS" in line
    worse = [*runs[:3], *(ssd_run(tmp_path, "cleanup_ppo", s, [0.0] * 9 + [20.0]) for s in range(3, 6))]
    assert "(MISS" in ssd_targets([r for r in worse if r.seed >= 3 or r.variant.endswith("_moa")])[0]
    assert "too few seeds" in ssd_targets(runs[:1] + runs[3:4])[0]
    REPORT.write(runs, {"when": "now", "machine": "test", "jobs": 1}, tmp_path / "moa_ssd")
    assert plot_curves(tmp_path / "moa_ssd").stat().st_size > 0
