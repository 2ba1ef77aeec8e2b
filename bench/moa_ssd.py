"""MOA against its baselines in SSD Cleanup and Harvest (5 agents), seeds through the real arena.

Each (game, variant, seed) is `examples/<variant>.toml` with `[arena] seed = s` (and `episodes` /
`batch_size` when given), launched and scored from its run directory (the runner of bench/lio.py).
Writes bench/results/moa_ssd.md and .json after every finished run, and moa_ssd.png (collective return
per training episode, mean over seeds per variant) at the end.

    python bench/moa_ssd.py --experiments cleanup --seeds 3 --jobs 1

Target (issue #11; Jaques et al. 2019 Fig. 6, algorithms.md §3): at equal environment steps the
collective return of the MOA influence agents is at least that of the PPO baseline, over ≥ 3 seeds.
The examples' budget (60 episodes × B 8 × 1000 steps, about an hour a run on 2 cores) is 0.16% of the
papers' 3e8 steps; variants: moa, ppo (same network, no influence), ppo_visible (others' actions in).
"""

from __future__ import annotations

import json
import math
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

EXPERIMENTS: dict[str, list[str]] = {game: [f"{game}_moa", f"{game}_ppo", f"{game}_ppo_visible"]
                                     for game in ("cleanup", "harvest")}
#: MOA learner metrics averaged over the agents and the last 10% of training episodes.
MOA_METRICS = ("influence", "moa_accuracy")


def score(variant: str, config: dict[str, Any], played: list[dict[str, Any]], run_dir: Path) -> dict[str, Any]:
    """Collective return per training episode (a mean over the B copies), its first and last 10%, the
    environment steps each agent saw, and the MOA agents' influence and accuracy over the last 10%."""
    training = [e for e in played if not e.get("evaluate")]
    tail = max(1, round(len(training) * LAST_FRACTION))
    batch = config["arena"].get("batch_size", 64)
    curve = [e["collective_return"] for e in training]
    m: dict[str, Any] = {"episodes": len(training), "batch_size": batch,
                         "env_steps": int(sum(e["steps"] for e in training) * batch),
                         "collective_first10": mean(curve[:tail]), "collective": mean(curve[-tail:]),
                         "curve": curve}
    rows = []
    for agent in config["agents"]:
        path = run_dir / "agents" / agent["name"] / "metrics.jsonl"
        if agent["kind"] == "moa" and path.exists():
            lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
            rows += [r for r in lines if not r.get("evaluate")][-tail:]
    if rows:
        m["moa"] = {k: mean([r[k] for r in rows if k in r]) for k in MOA_METRICS}
    return m


def spread(values: list[float]) -> str:
    """mean ± standard error over seeds."""
    if len(values) < 2:
        return fmt(mean(values))
    centre = mean(values)
    error = math.sqrt(sum((v - centre) ** 2 for v in values) / (len(values) - 1) / len(values))
    return f"{fmt(centre)} ± {fmt(error)}"


def targets(runs: list[Run]) -> list[str]:
    ok = metrics_by_variant(runs)
    lines = []
    for game, (moa, ppo, visible) in EXPERIMENTS.items():
        if not (ok.get(moa) and ok.get(ppo)):
            continue
        influenced = [m["collective"] for m in ok[moa]]
        baseline = [m["collective"] for m in ok[ppo]]
        steps = {m["env_steps"] for m in ok[moa] + ok[ppo]}
        verdict = "PASS" if mean(influenced) >= mean(baseline) and min(len(influenced), len(baseline)) >= 3 else \
            "MISS" if min(len(influenced), len(baseline)) >= 3 else "too few seeds"
        line = (f"{game}: collective return, last 10%, MOA {spread(influenced)} ({len(influenced)} seeds) vs PPO "
                f"{spread(baseline)} ({len(baseline)} seeds) at {', '.join(f'{s:,}' for s in sorted(steps))} env "
                f"steps per agent ({verdict}: MOA ≥ PPO over ≥ 3 seeds)")
        if ok.get(visible):
            line += f"; visible actions {spread([m['collective'] for m in ok[visible]])}"
        lines.append(line)
    return lines


def row(r: Run) -> str:
    m = r.metrics
    if r.status != "ok":
        return failed_row(r, 4)
    moa = ", ".join(f"{k} {fmt(v, 4)}" for k, v in m.get("moa", {}).items())
    return (f"| {r.experiment} | {r.variant} | {r.seed} | ok | {m['episodes']} × B {m['batch_size']} | "
            f"{m['env_steps']:,} | {fmt(m['collective_first10'])} | {fmt(m['collective'])} | {fmt(r.wall_s, 0)} | "
            f"{moa} |")


REPORT = Report(
    "MOA in SSD Cleanup and Harvest (real arena processes)",
    f"collective = summed extrinsic return of the 5 agents per episode (a mean over the B copies); last = the "
    f"last {int(LAST_FRACTION * 100)}% of training episodes",
    ["experiment", "variant", "seed", "status", "episodes", "env steps per agent", "collective, first 10%",
     "collective, last 10%", "wall s", "MOA metrics, last 10%"], targets, row)


def plot_curves(stem: Path) -> Path | None:
    """moa_ssd.png: collective return per training episode, mean over the seeds of each variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = [Run(**r) for r in json.loads(stem.with_suffix(".json").read_text())["runs"]]
    ok = metrics_by_variant(runs)
    games = [game for game, variants in EXPERIMENTS.items() if any(v in ok for v in variants)]
    if not games:
        return None
    figure, axes = plt.subplots(1, len(games), figsize=(6 * len(games), 4), squeeze=False)
    for ax, game in zip(axes[0], games):
        for variant in EXPERIMENTS[game]:
            curves = [m["curve"] for m in ok.get(variant, [])]
            if curves:
                length = min(len(c) for c in curves)
                ax.plot([mean([c[i] for c in curves]) for i in range(length)],
                        label=f"{variant} ({len(curves)} seeds)")
        ax.set(title=game, xlabel="training episode (B copies each)", ylabel="collective return")
        ax.legend()
    path = stem.with_suffix(".png")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = seed_bench_parser(__doc__, list(EXPERIMENTS), seeds=3, timeout=5400, results=RESULTS / "moa_ssd")
    args = parser.parse_args(argv)
    code = run_seeds(args, EXPERIMENTS, score, REPORT)
    plot_curves(args.results)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
