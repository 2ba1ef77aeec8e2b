"""MOA benchmark: seeds of the example configs run through the real arena (`arena launch` processes).

Each (experiment, variant, seed) becomes a config from `examples/<variant>.toml` with `[arena] seed = s`
(and `episodes` / `batch_size` when given), launched and scored from its `episodes.jsonl` (the runner of
bench/lio.py). Results are rewritten to bench/results/moa.md and .json after every finished run.

    python bench/moa.py --experiments box --seeds 5 --jobs 2

Targets (Social influence, Jaques et al. 2019, supp. §10.3; algorithms.md §3):
  box    the MOA opener with the influence reward opens the box in ≥ 80% of evaluation episodes
         (ε-free, `eval_every`) in ≥ 4/5 seeds; the same opener without it (influence_weight = 0) ≤ 20%.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lio import (
    LAST_FRACTION,
    RESULTS,
    Report,
    Run,
    failed_row,
    fmt,
    mean,
    metrics_by_variant,
    run_seeds,
    seed_bench_parser,
)

EXPERIMENTS: dict[str, list[str]] = {"box": ["box_trapped_moa", "box_trapped_moa_noinfluence"]}
OPENER = "opener"
#: Learner metrics of the opener averaged over the last episodes.
OPENER_METRICS = ("influence", "moa_accuracy")


def score(variant: str, config: dict[str, Any], played: list[dict[str, Any]], run_dir: Path) -> dict[str, Any]:
    """The share of copies whose box the opener opened (each copy can open it once), over the last 10%
    of training episodes and over the evaluation episodes played in that stretch; opener metrics."""
    training = [e for e in played if not e.get("evaluate")]
    last = training[-max(1, round(len(training) * LAST_FRACTION)):]
    evaluations = [e for e in played if e.get("evaluate") and e["trained"] >= last[0]["trained"]]
    m: dict[str, Any] = {"episodes": len(training), "batch_size": config["arena"].get("batch_size", 64),
                         "opened_first10": mean([e["events"]["opened"][OPENER] for e in training[:len(last)]]),
                         "opened": mean([e["events"]["opened"][OPENER] for e in last])}
    if evaluations:
        m["eval_opened"] = mean([e["events"]["opened"][OPENER] for e in evaluations])
        m["eval_episodes"] = len(evaluations)
    metrics_path = run_dir / "agents" / OPENER / "metrics.jsonl"
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    rows = [r for r in rows if not r.get("evaluate")][-len(last):]
    m["opener"] = {k: mean([r[k] for r in rows if k in r]) for k in OPENER_METRICS}
    return m


def judged(m: dict[str, Any]) -> float:
    return m.get("eval_opened", m["opened"])


def targets(runs: list[Run]) -> list[str]:
    ok = metrics_by_variant(runs)
    lines = []
    if moa := ok.get("box_trapped_moa"):
        k = sum(judged(m) >= 0.8 for m in moa)
        lines.append(f"Box trapped, MOA with influence opens in ≥ 80% of evaluation episodes: {k}/{len(moa)} seeds "
                     f"({'PASS' if k >= 0.8 * len(moa) else 'MISS'}); opened per seed "
                     + ", ".join(fmt(judged(m)) for m in moa))
    if base := ok.get("box_trapped_moa_noinfluence"):
        k = sum(judged(m) <= 0.2 for m in base)
        lines.append(f"Box trapped, the same opener without influence opens ≤ 20%: {k}/{len(base)} seeds "
                     f"({'PASS' if k == len(base) else 'MISS'}); opened per seed "
                     + ", ".join(fmt(judged(m)) for m in base))
    return lines


def row(r: Run) -> str:
    m = r.metrics
    if r.status != "ok":
        return failed_row(r, 4)
    opener = ", ".join(f"{k} {fmt(v, 4)}" for k, v in m["opener"].items())
    return (f"| {r.experiment} | {r.variant} | {r.seed} | ok | {m['episodes']} × B {m['batch_size']} | "
            f"{fmt(m['opened_first10'])} | {fmt(m['opened'])} | {fmt(m.get('eval_opened'))} | {fmt(r.wall_s, 0)} | "
            f"{opener} |")


REPORT = Report(
    "MOA benchmark (real arena processes)",
    f"opened = share of copies whose box the opener opened, mean over the last {int(LAST_FRACTION * 100)}% of "
    "training episodes and over the evaluation episodes (no exploration) in that stretch",
    ["experiment", "variant", "seed", "status", "episodes", "opened, first 10%", "opened, last 10%",
     "opened, evaluation", "wall s", "opener metrics, last 10%"], targets, row)


def main(argv: list[str] | None = None) -> int:
    parser = seed_bench_parser(__doc__, list(EXPERIMENTS), seeds=5, timeout=3600, results=RESULTS / "moa")
    return run_seeds(parser.parse_args(argv), EXPERIMENTS, score, REPORT)


if __name__ == "__main__":
    raise SystemExit(main())
