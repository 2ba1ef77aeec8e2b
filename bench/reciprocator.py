"""Reciprocator benchmark: seeds of the example configs run through the real arena (`arena launch` processes).

Each (experiment, variant, seed) becomes a config generated from `examples/<variant>.toml` with
`[arena] seed = s` (and `episodes` / `batch_size` when given), launched and scored from its
`episodes.jsonl` and its agents' `metrics.jsonl` (the machinery of bench/lio.py). After every finished
run the tables are rewritten to bench/results/reciprocator.md and .json, so partial results survive.

    python bench/reciprocator.py --experiments ipd coins --seeds 5 --jobs 2

Targets (Zhou, Hong & Kao 2024; algorithms.md §4):
  ipd    Reciprocator vs NL-PPO: the NL cooperates (P(cooperate) over the last 10% of episodes) ≥ 0.8
         in ≥ 4/5 seeds; Reciprocator vs Reciprocator: both ≥ 0.8 (mutual cooperation); NL vs NL is the
         baseline the shaping is measured against.
  coins  NL-PPO's P(own coin) is higher beside a Reciprocator than beside another NL-PPO, significant
         over the seeds (Welch's one-sided t-test, p < 0.05); the Reciprocator's return is not below the
         mean NL return of the NL pair.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

from scipy import stats

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
    read_jsonl,
    run_seeds,
    seed_bench_parser,
)

EXPERIMENTS: dict[str, list[str]] = {
    "ipd": ["ipd_reciprocator_vs_nl", "ipd_reciprocator_pair", "ipd_nl_pair"],
    "coins": ["coin_game_reciprocator_vs_nl", "coin_game_nl_pair"],
}
#: Learner metrics of a Reciprocator averaged over the last episodes.
RECIPROCATOR_METRICS = ("reciprocal_reward", "vi_in", "vi_out", "balance_end")


def tail(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return records[-max(1, round(len(records) * LAST_FRACTION)):]


def score(variant: str, config: dict[str, Any], played: list[dict[str, Any]], run_dir: Path) -> dict[str, Any]:
    """Per agent over the last 10% of training episodes (each a mean over the B copies): return, and
    P(cooperate) (IPD) or P(own coin) and coins per episode (Coins); a Reciprocator's learner metrics."""
    episodes = [e for e in played if not e.get("evaluate")]
    last = tail(episodes)
    agents = config["agents"]
    steps = config["arena"].get("params", {}).get("max_steps", 32)
    m: dict[str, Any] = {"episodes": len(episodes), "batch_size": config["arena"].get("batch_size", 64),
                         "steps": steps, "kinds": {a["name"]: a["kind"] for a in agents}}
    m["returns"] = {a["name"]: mean([e["returns"][a["name"]] for e in last]) for a in agents}
    if config["arena"]["game"] == "ipd":
        m["cooperation"] = {a["name"]: mean([e["events"]["cooperated"][a["name"]] for e in last]) / steps
                            for a in agents}
    else:
        own = {a["name"]: mean([e["events"]["own_coin"][a["name"]] for e in last]) for a in agents}
        other = {a["name"]: mean([e["events"]["other_coin"][a["name"]] for e in last]) for a in agents}
        m["own_coin"] = {n: own[n] / (own[n] + other[n]) if own[n] + other[n] else float("nan") for n in own}
        m["coins"] = {n: own[n] + other[n] for n in own}
    for a in agents:
        if a["kind"] != "reciprocator":
            continue
        learner = tail(read_jsonl(run_dir / "agents" / a["name"] / "metrics.jsonl"))
        m.setdefault("learner", {})[a["name"]] = {k: mean([r[k] for r in learner if k in r])
                                                  for k in RECIPROCATOR_METRICS}
    return m


def by_kind(m: dict[str, Any], key: str, kind: str) -> list[float]:
    """`m[key]` of every agent of `kind`."""
    return [v for name, v in m[key].items() if m["kinds"][name] == kind]


def mean_se(xs: list[float]) -> str:
    if len(xs) < 2:
        return f"{fmt(mean(xs), 3)} (n = {len(xs)})"
    s = math.sqrt(sum((x - mean(xs)) ** 2 for x in xs) / (len(xs) - 1) / len(xs))
    return f"{mean(xs):.3f} ± {s:.3f} (n = {len(xs)})"


def targets(runs: list[Run]) -> list[str]:
    """One line per target with the measured figures."""
    ok = metrics_by_variant(runs)
    lines = []
    if rec_nl := ok.get("ipd_reciprocator_vs_nl"):
        nl = [by_kind(m, "cooperation", "nl-ppo")[0] for m in rec_nl]
        k = sum(p >= 0.8 for p in nl)
        lines.append(f"IPD Reciprocator vs NL: NL P(cooperate) ≥ 0.8 in {k}/{len(nl)} seeds "
                     f"({'PASS' if k >= 0.8 * len(nl) else 'MISS'}); NL {mean_se(nl)}, Reciprocator "
                     f"{mean_se([by_kind(m, 'cooperation', 'reciprocator')[0] for m in rec_nl])}")
    if pair := ok.get("ipd_reciprocator_pair"):
        k = sum(min(m["cooperation"].values()) >= 0.8 for m in pair)
        both = [p for m in pair for p in m["cooperation"].values()]
        lines.append(f"IPD Reciprocator vs Reciprocator: both P(cooperate) ≥ 0.8 in {k}/{len(pair)} seeds "
                     f"({'PASS' if k >= 0.8 * len(pair) else 'MISS'}); per agent {mean_se(both)}")
    if nl_pair := ok.get("ipd_nl_pair"):
        lines.append(f"IPD NL vs NL (baseline): P(cooperate) per agent "
                     f"{mean_se([p for m in nl_pair for p in m['cooperation'].values()])}")
    if (rec_nl := ok.get("coin_game_reciprocator_vs_nl")) and (nl_pair := ok.get("coin_game_nl_pair")):
        beside_rec = [by_kind(m, "own_coin", "nl-ppo")[0] for m in rec_nl]
        # one number per NL-pair seed (the mean of its two agents), so the samples are independent runs
        beside_nl = [mean(list(m["own_coin"].values())) for m in nl_pair]
        test = stats.ttest_ind(beside_rec, beside_nl, equal_var=False, alternative="greater")
        verdict = "PASS" if test.pvalue < 0.05 else "MISS"
        lines.append(f"Coins NL P(own coin): beside a Reciprocator {mean_se(beside_rec)} vs beside an NL "
                     f"{mean_se(beside_nl)}; Welch one-sided t = {test.statistic:.2f}, p = {test.pvalue:.3g} "
                     f"{verdict}")
        rec_return = [by_kind(m, "returns", "reciprocator")[0] for m in rec_nl]
        nl_return = [mean(list(m["returns"].values())) for m in nl_pair]
        lines.append(f"Coins return: Reciprocator {mean_se(rec_return)} vs NL in the NL pair {mean_se(nl_return)} "
                     f"({'PASS' if mean(rec_return) >= mean(nl_return) else 'MISS'}; the target: not below)")
    return lines


def row(r: Run) -> str:
    m = r.metrics
    if r.status != "ok":
        return failed_row(r, 3)
    behaviour = m.get("cooperation") or m.get("own_coin")
    label = "P(cooperate)" if "cooperation" in m else "P(own coin)"
    detail = "; ".join(f"{name}: {', '.join(f'{k} {fmt(v, 3)}' for k, v in values.items())}"
                       for name, values in m.get("learner", {}).items())
    if "coins" in m:
        detail = "coins/episode " + ", ".join(f"{k} {fmt(v)}" for k, v in m["coins"].items()) + (
            f"; {detail}" if detail else "")
    budget = m["episodes"] * m["batch_size"] * m["steps"]
    return (f"| {r.experiment} | {r.variant} | {r.seed} | ok | {m['episodes']} ({budget:,} steps) | "
            f"{label} " + ", ".join(f"{k} {fmt(v, 3)}" for k, v in behaviour.items()) + " | "
            + ", ".join(f"{k} {fmt(v)}" for k, v in m["returns"].items()) + f" | {fmt(r.wall_s, 0)} | {detail} |")


REPORT = Report(
    "Reciprocator benchmark (real arena processes)",
    f"metric: mean over the last {int(LAST_FRACTION * 100)}% of training episodes, each a mean over the B copies; "
    "budget = episodes × B × steps per episode (env steps per agent)",
    ["experiment", "variant", "seed", "status", "episodes (budget)", "behaviour, last 10%", "return, last 10%",
     "wall s", "details"], targets, row)


def main(argv: list[str] | None = None) -> int:
    parser = seed_bench_parser(__doc__, list(EXPERIMENTS), seeds=5, timeout=3600, results=RESULTS / "reciprocator")
    return run_seeds(parser.parse_args(argv), EXPERIMENTS, score, REPORT)


if __name__ == "__main__":
    raise SystemExit(main())
