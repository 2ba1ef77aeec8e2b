"""LIO benchmark: seeds of the example configs run through the real arena (`arena launch` processes).

Each (experiment, variant, seed) becomes a config generated from `examples/<variant>.toml` with
`[arena] seed = s` (and `episodes` when given), launched as `python -m launch.cli launch`, and scored
from its `episodes.jsonl`. Runs go in parallel up to `--jobs` (one run is 1 + N processes). After every
finished run the table is rewritten to bench/results/lio.md and lio.json, so partial results survive.

    python bench/lio.py --experiments er21 er32 ipd ipd_vs_pg cleanup7 --seeds 10 --episodes N --jobs 2

Targets (LIO paper, Yang et al. 2020; games.md):
  er21       two lio: collective extrinsic return >= 8.0 over the last 10% in >= 8/10 seeds;
             two pg: <= 0 in every seed; one LIO run on 2 cores < 10 min
  er32       three lio: >= 6.5 in >= 7/10 seeds
  ipd        two lio: per-step collective >= -2.3 (5-step IPD)
  ipd_vs_pg  pg cooperates >= 80% of steps, lio defects >= 80% (the game's `cooperated` event)
  cleanup7   lio pair collects more apples/episode than an ac pair; division of labour (one agent does
             most cleaning and receives most incentives); scripted reference about 39 apples/episode
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import tomllib

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from launch.supervisor import run_dir_of

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"
RESULTS = REPO / "bench" / "results"
LAST_FRACTION = 0.1

#: experiment → variants (example config stems); the first is the LIO variant.
EXPERIMENTS: dict[str, list[str]] = {
    "er21": ["er21_lio", "er21_pg"],
    "er32": ["er32_lio", "er32_pg"],
    "ipd": ["ipd_lio", "ipd_pg"],
    "ipd_vs_pg": ["ipd_lio_vs_pg"],
    "cleanup7": ["cleanup7_lio", "cleanup7_ac"],
}


# ----- config writing -----

def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(v)}" for k, v in value.items()) + " }"
    return repr(value)


def dump_toml(config: dict[str, Any]) -> str:
    """The run-config subset of TOML: `[run]`, `[arena]` (+ `[arena.params]`), `[[agents]]`."""
    lines: list[str] = []
    for section in ("run", "arena"):
        table = config.get(section, {})
        lines.append(f"[{section}]")
        lines += [f"{k} = {toml_value(v)}" for k, v in table.items() if not isinstance(v, dict)]
        for k, v in table.items():
            if isinstance(v, dict):
                lines += ["", f"[{section}.{k}]"] + [f"{kk} = {toml_value(vv)}" for kk, vv in v.items()]
        lines.append("")
    for agent in config.get("agents", []):
        lines.append("[[agents]]")
        lines += [f"{k} = {toml_value(v)}" for k, v in agent.items()]
        lines.append("")
    return "\n".join(lines)


def seed_config(variant: str, seed: int, episodes: int | None, out: Path,
                batch_size: int | None = None) -> dict[str, Any]:
    with open(EXAMPLES / f"{variant}.toml", "rb") as f:
        config = tomllib.load(f)
    config.setdefault("run", {})
    config["run"]["name"] = f"{variant}_s{seed}"
    config["run"]["out"] = str(out)
    config["arena"]["seed"] = seed
    if episodes:
        config["arena"]["episodes"] = episodes
    if batch_size:
        config["arena"]["batch_size"] = batch_size
    return config


# ----- scoring -----

def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def mean(xs: list[float]) -> float:
    return sum(xs) / len(xs) if xs else float("nan")


def score(variant: str, config: dict[str, Any], played: list[dict[str, Any]]) -> dict[str, Any]:
    """Metrics over the last 10% of training episodes (each already a mean over the B copies), and the
    collective return of the evaluation episodes (ε = 0, `eval_every`) played in that stretch."""
    episodes = [e for e in played if not e.get("evaluate")]
    tail = episodes[-max(1, round(len(episodes) * LAST_FRACTION)):]
    names = [a["name"] for a in config["agents"]]
    kinds = {a["name"]: a["kind"] for a in config["agents"]}
    m: dict[str, Any] = {"episodes": len(episodes),
                         "collective": mean([e["collective_return"] for e in tail]),
                         "collective_first10": mean([e["collective_return"] for e in episodes[:len(tail)]])}
    evaluations = [e for e in played if e.get("evaluate") and e["trained"] >= tail[0]["trained"]]
    if evaluations:
        m["eval_collective"] = mean([e["collective_return"] for e in evaluations])
        m["eval_episodes"] = len(evaluations)
    incentives = {n: mean([e["incentives_received"].get(n, 0.0) for e in tail]) for n in names}
    m["incentives_received"] = incentives
    if config["arena"]["game"] == "ipd":
        steps = config["arena"].get("params", {}).get("max_steps", 32)
        m["collective_per_step"] = m["collective"] / steps
        m["cooperation"] = {f"{n}({kinds[n]})": mean([e["events"]["cooperated"][n] for e in tail]) / steps
                            for n in names}
    if config["arena"]["game"] == "cleanup":
        apples = {n: mean([e["events"]["apples"][n] for e in tail]) for n in names}
        cleaned = {n: mean([e["events"]["cleaned"][n] for e in tail]) for n in names}
        m["apples"] = sum(apples.values())
        m["apples_each"] = apples
        m["cleaned_each"] = cleaned
        total_clean, total_inc = sum(cleaned.values()), sum(incentives.values())
        cleaner = max(names, key=lambda n: cleaned[n])
        m["cleaner"] = cleaner
        m["cleaner_share_cleaning"] = cleaned[cleaner] / total_clean if total_clean else float("nan")
        m["cleaner_share_incentives"] = incentives[cleaner] / total_inc if total_inc else float("nan")
    return m


# ----- running -----

#: (variant, config, episode records, run directory) -> metrics of one run.
Scorer = Callable[[str, dict[str, Any], list[dict[str, Any]], Path], dict[str, Any]]

@dataclass
class Run:
    experiment: str
    variant: str
    seed: int
    status: str = "pending"
    wall_s: float = 0.0
    arena_wall_s: float | None = None
    run_dir: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def finished_dir(out: Path, run: Run, arena: dict[str, Any]) -> Path | None:
    """A complete earlier run directory of this variant and seed under `out` with the episodes and batch
    size of `arena` (for --reuse)."""
    for d in sorted(out.glob(f"{run.variant}_s{run.seed}-*"), reverse=True):
        try:
            complete = json.loads((d / "result.json").read_text()).get("status") == "complete"
            batch = json.loads((d / "run.json").read_text())["arena"]["batch_size"]
            trained = sum(not e.get("evaluate") for e in read_jsonl(d / "episodes.jsonl"))
        except (OSError, ValueError, KeyError):
            continue
        if complete and trained == arena["episodes"] and batch == arena.get("batch_size", 64):
            return d
    return None


def launch(run: Run, episodes: int | None, batch_size: int | None, out: Path, timeout: float,
           reuse: bool = False, scorer: Scorer | None = None) -> Run:
    """Run one seed of one variant through `arena launch` (or reuse a finished one) and score it with
    `scorer(variant, config, episodes, run_dir)`, LIO's `score` by default."""
    scorer = scorer or (lambda variant, config, played, _run_dir: score(variant, config, played))
    config = seed_config(run.variant, run.seed, episodes, out, batch_size)
    if reuse and (old := finished_dir(out, run, config["arena"])) is not None:
        result = json.loads((old / "result.json").read_text())
        run.arena_wall_s = run.wall_s = result.get("wall_time_s")
        run.metrics = scorer(run.variant, config, read_jsonl(old / "episodes.jsonl"), old)
        run.run_dir, run.status = str(old), "ok"
        return run
    cfg_path = out / "configs" / f"{run.variant}_s{run.seed}.toml"
    cfg_path.parent.mkdir(parents=True, exist_ok=True)
    cfg_path.write_text(dump_toml(config), encoding="utf-8")
    start = time.perf_counter()
    try:
        done = subprocess.run([sys.executable, "-m", "launch.cli", "launch", str(cfg_path)], cwd=REPO,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        run.status, run.error, run.wall_s = "timeout", f"over {timeout:.0f} s", time.perf_counter() - start
        return run
    run.wall_s = time.perf_counter() - start
    output = done.stdout + done.stderr
    run_dir = run_dir_of(output)
    run.run_dir = str(run_dir) if run_dir else None
    if done.returncode != 0 or run_dir is None:
        run.status, run.error = "failed", f"exit {done.returncode}: {output[-800:]}"
        return run
    try:
        run.arena_wall_s = json.loads((run_dir / "result.json").read_text()).get("wall_time_s")
        run.metrics = scorer(run.variant, config, read_jsonl(run_dir / "episodes.jsonl"), run_dir)
        run.status = "ok"
    except Exception as exc:  # record and keep benchmarking
        run.status, run.error = "failed", f"scoring: {exc!r}"
    return run


# ----- reporting -----

def fmt(x: Any, digits: int = 2) -> str:
    return "–" if x is None or (isinstance(x, float) and x != x) else f"{x:.{digits}f}"


def failed_row(r: Run, blanks: int) -> str:
    """The table row of a run that did not finish: `blanks` empty metric columns, its wall time, its error."""
    detail = (r.error or "").replace("\n", " ")[:200]
    return (f"| {r.experiment} | {r.variant} | {r.seed} | {r.status} | " + "– | " * blanks
            + f"{fmt(r.wall_s, 0)} | {detail} |")


def metrics_by_variant(runs: list[Run]) -> dict[str, list[dict[str, Any]]]:
    """The metrics of the finished runs, per variant, in run order."""
    ok: dict[str, list[dict[str, Any]]] = {}
    for r in runs:
        if r.status == "ok":
            ok.setdefault(r.variant, []).append(r.metrics)
    return ok


def count_ok(runs: list[Run], pred) -> tuple[int, int]:
    ok = [r for r in runs if r.status == "ok"]
    return sum(1 for r in ok if pred(r.metrics)), len(ok)


def judged(m: dict[str, Any]) -> float:
    """The collective return a target is judged on: evaluation episodes (ε = 0, as in the paper) where
    the run has them, else training episodes."""
    return m.get("eval_collective", m["collective"])


def basis(rs: list[Run]) -> str:
    ok = [r for r in rs if r.status == "ok"]
    evaluated = sum("eval_collective" in r.metrics for r in ok)
    if evaluated == len(ok):
        return "evaluation episodes, ε = 0"
    return "training returns" if not evaluated else f"evaluation in {evaluated}/{len(ok)} runs, else training"


def targets(runs: list[Run]) -> list[str]:
    """One line per target with the measured figures."""
    by: dict[str, list[Run]] = {}
    for r in runs:
        by.setdefault(r.variant, []).append(r)
    lines = []

    def walls(rs: list[Run]) -> str:
        ok = [r.wall_s for r in rs if r.status == "ok"]
        return f"wall {min(ok):.0f}–{max(ok):.0f} s" if ok else "no finished run"

    if "er21_lio" in by:
        k, n = count_ok(by["er21_lio"], lambda m: judged(m) >= 8.0)
        lines.append(f"ER(2,1) lio collective ≥ 8.0 in ≥ 8/10 seeds: {k}/{n} "
                     f"{'PASS' if n and k >= 0.8 * n else 'MISS'} ({basis(by['er21_lio'])}; "
                     f"{walls(by['er21_lio'])})")
    if "er21_pg" in by:
        k, n = count_ok(by["er21_pg"], lambda m: judged(m) <= 0.0)
        lines.append(f"ER(2,1) pg collective ≤ 0 in every seed: {k}/{n} {'PASS' if n and k == n else 'MISS'} "
                     f"({basis(by['er21_pg'])})")
    if "er32_lio" in by:
        k, n = count_ok(by["er32_lio"], lambda m: judged(m) >= 6.5)
        lines.append(f"ER(3,2) lio collective ≥ 6.5 in ≥ 7/10 seeds: {k}/{n} "
                     f"{'PASS' if n and k >= 0.7 * n else 'MISS'} ({basis(by['er32_lio'])}; "
                     f"{walls(by['er32_lio'])})")
    if "er32_pg" in by:
        k, n = count_ok(by["er32_pg"], lambda m: judged(m) <= 0.0)
        lines.append(f"ER(3,2) pg collective ≤ 0: {k}/{n} ({basis(by['er32_pg'])})")
    if "ipd_lio" in by:
        ok = [r.metrics["collective_per_step"] for r in by["ipd_lio"] if r.status == "ok"]
        k, n = count_ok(by["ipd_lio"], lambda m: m["collective_per_step"] >= -2.3)
        lines.append(f"IPD lio per-step collective ≥ −2.3: {k}/{n} seeds, mean {fmt(mean(ok))} "
                     f"{'PASS' if ok and mean(ok) >= -2.3 else 'MISS'}")
    if "ipd_pg" in by:
        ok = [r.metrics["collective_per_step"] for r in by["ipd_pg"] if r.status == "ok"]
        lines.append(f"IPD pg per-step collective (reference −4): mean {fmt(mean(ok))}")
    if "ipd_lio_vs_pg" in by:
        def split(m: dict[str, Any]) -> tuple[float, float]:
            coop = m["cooperation"]
            pg = next(v for k, v in coop.items() if k.endswith("(pg)"))
            lio = next(v for k, v in coop.items() if k.endswith("(lio)"))
            return pg, 1.0 - lio
        k, n = count_ok(by["ipd_lio_vs_pg"], lambda m: split(m)[0] >= 0.8 and split(m)[1] >= 0.8)
        lines.append(f"IPD lio vs pg: pg cooperates ≥ 80% and lio defects ≥ 80%: {k}/{n} seeds "
                     f"{'PASS' if n and k >= 0.8 * n else 'MISS'}")
    if "cleanup7_lio" in by and "cleanup7_ac" in by:
        lio = mean([r.metrics["apples"] for r in by["cleanup7_lio"] if r.status == "ok"])
        ac = mean([r.metrics["apples"] for r in by["cleanup7_ac"] if r.status == "ok"])
        n_eps = min(r.metrics.get("episodes", 0) for r in by["cleanup7_lio"] + by["cleanup7_ac"] if r.status == "ok")
        verdict = "PASS" if lio > ac else "MISS"
        if n_eps < 1000:
            verdict = f"NOT MEASURED (only {n_eps} episodes: no training signal yet)"
        lines.append(f"Cleanup 7×7 apples/episode: lio {fmt(lio)} vs ac {fmt(ac)} (scripted ≈ 39) {verdict}")
    if "cleanup7_lio" in by:
        k, n = count_ok(by["cleanup7_lio"], lambda m: m["cleaner_share_cleaning"] >= 0.7
                        and m["cleaner_share_incentives"] >= 0.7)
        lines.append(f"Cleanup 7×7 division of labour (cleaner does ≥ 70% of cleaning, gets ≥ 70% of "
                     f"incentives): {k}/{n} seeds")
    return lines


def row(r: Run) -> str:
    m = r.metrics
    extra = ""
    if "cooperation" in m:
        extra = "coop " + ", ".join(f"{k} {v:.2f}" for k, v in m["cooperation"].items())
        extra = f"per-step {fmt(m['collective_per_step'])}; {extra}"
    if "apples" in m:
        extra = (f"apples {fmt(m['apples'])}; cleaned " + ", ".join(f"{k} {fmt(v)}" for k, v in
                 m["cleaned_each"].items()) + f"; cleaner {m['cleaner']} share clean "
                 f"{fmt(m['cleaner_share_cleaning'])} / incentives {fmt(m['cleaner_share_incentives'])}")
    if m.get("incentives_received") and "apples" not in m:
        inc = ", ".join(f"{k} {fmt(v)}" for k, v in m["incentives_received"].items())
        extra = f"{extra}; incentives recv {inc}" if extra else f"incentives recv {inc}"
    if r.status != "ok":
        extra = (r.error or "").replace("\n", " ")[:200]
    return (f"| {r.experiment} | {r.variant} | {r.seed} | {r.status} | {m.get('episodes', '–')} | "
            f"{fmt(m.get('collective_first10'))} | {fmt(m.get('collective'))} | {fmt(m.get('eval_collective'))} | "
            f"{fmt(r.wall_s, 0)} | {extra} |")


@dataclass(frozen=True)
class Report:
    """How a seed benchmark writes its results: bench/results/<stem>.md (targets, notes, one row per
    run) and <stem>.json (every run's metrics)."""

    title: str
    #: what the metrics mean, after the date, machine and job count
    caption: str
    columns: list[str]
    targets: Callable[[list[Run]], list[str]]
    row: Callable[[Run], str]

    def write(self, runs: list[Run], meta: dict[str, Any], stem: Path) -> str:
        done = [r for r in runs if r.status != "pending"]
        md = [f"# {self.title}", "", f"{meta['when']} · {meta['machine']} · jobs {meta['jobs']} · {self.caption}",
              "", "## Targets", ""]
        md += [f"- {line}" for line in self.targets(done)]
        if meta.get("notes"):
            md += ["", "## Notes", "", meta["notes"].strip()]
        md += ["", "## Runs", "", "| " + " | ".join(self.columns) + " |", "|" + "---|" * len(self.columns)]
        md += [self.row(r) for r in done]
        text = "\n".join(md) + "\n"
        stem.parent.mkdir(parents=True, exist_ok=True)
        stem.with_suffix(".md").write_text(text, encoding="utf-8")
        stem.with_suffix(".json").write_text(json.dumps({"meta": meta, "runs": [asdict(r) for r in done]},
                                                        indent=1), encoding="utf-8")
        return text


REPORT = Report(
    "LIO benchmark (real arena processes)",
    f"metric: mean over the last {int(LAST_FRACTION * 100)}% of training episodes (each a mean over B copies), and "
    "over the evaluation episodes (ε = 0) played in that stretch; collective = summed extrinsic return; ER "
    "targets are judged on evaluation where a run has it",
    ["experiment", "variant", "seed", "status", "episodes", "collective first 10%", "collective last 10%",
     "evaluation last 10%", "wall s", "details"], targets, row)


def load_previous(stem: Path, experiments: dict[str, list[str]]) -> list[Run]:
    """Runs recorded by earlier invocations, so that experiments can be run one at a time."""
    path = stem.with_suffix(".json")
    if not path.exists():
        return []
    order = {v: i for i, v in enumerate(v for vs in experiments.values() for v in vs)}
    runs = [Run(**r) for r in json.loads(path.read_text())["runs"]]
    return sorted(runs, key=lambda r: (order.get(r.variant, 99), r.seed))


def seed_bench_parser(doc: str, experiments: list[str], seeds: int, timeout: float, results: Path
                      ) -> argparse.ArgumentParser:
    """The command line every seed benchmark takes (this one and bench/reciprocator.py)."""
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument("--experiments", nargs="+", default=experiments, choices=experiments)
    parser.add_argument("--variants", nargs="+", help="only these variants (config stems), e.g. er21_lio")
    parser.add_argument("--seeds", type=int, default=seeds, help="seeds 0 … n−1")
    parser.add_argument("--seed-list", type=int, nargs="+", help="explicit seeds (overrides --seeds)")
    parser.add_argument("--episodes", type=int, help="override each config's [arena] episodes")
    parser.add_argument("--batch-size", type=int, help="override each config's [arena] batch_size")
    parser.add_argument("--jobs", type=int, default=2, help="runs in parallel")
    parser.add_argument("--timeout", type=float, default=timeout, help="seconds per run")
    parser.add_argument("--out", type=Path, help="parent of the run directories (default: a temp dir)")
    parser.add_argument("--results", type=Path, default=results, help="results path stem")
    parser.add_argument("--reuse", action="store_true",
                        help="score complete run directories already under --out instead of re-running them")
    parser.add_argument("--only-existing", action="store_true",
                        help="with --reuse: score what is under --out and launch nothing (missing runs are left out)")
    parser.add_argument("--notes", type=Path, help="markdown file whose text goes in the results' Notes section")
    parser.add_argument("--fresh", action="store_true",
                        help="drop earlier results in --results (default: keep runs not re-run now)")
    return parser


def run_seeds(args: argparse.Namespace, experiments: dict[str, list[str]], scorer: Scorer | None,
              report: Report) -> int:
    """Run (or, with --reuse, score) every (variant, seed) the command line asks for, `--jobs` at a time,
    rewriting the results with `report` after each finished run; keeps earlier results of other runs."""
    prefix = f"bench_{args.results.name}_"
    out = (args.out or Path(tempfile.mkdtemp(prefix=prefix))).resolve()
    seeds = args.seed_list or list(range(args.seeds))
    runs = [Run(exp, variant, s) for exp in args.experiments for variant in experiments[exp]
            if not args.variants or variant in args.variants for s in seeds]
    meta = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
            "jobs": args.jobs, "out": str(out),
            "notes": args.notes.read_text(encoding="utf-8") if args.notes else None}
    print(f"{len(runs)} runs, {args.jobs} at a time; run directories under {out}", flush=True)
    if args.only_existing:
        runs = [r for r in runs if finished_dir(out, r, seed_config(r.variant, r.seed, args.episodes, out,
                                                                    args.batch_size)["arena"]) is not None]
        args.reuse = True
    previous = load_previous(args.results, experiments) if not args.fresh else []
    keys = {(r.variant, r.seed) for r in runs}
    kept = [r for r in previous if (r.variant, r.seed) not in keys]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = [pool.submit(launch, r, args.episodes, args.batch_size, out, args.timeout, args.reuse, scorer)
                   for r in runs]
        finished: list[Run] = []
        for fut in as_completed(futures):
            finished.append(fut.result())
            print(report.row(finished[-1]), flush=True)
            report.write(kept + sorted(finished, key=runs.index), meta, args.results)
    print(report.write(kept + runs, meta, args.results))
    return 0 if all(r.status == "ok" for r in runs) else 1


def main(argv: list[str] | None = None) -> int:
    parser = seed_bench_parser(__doc__, list(EXPERIMENTS), seeds=10, timeout=1800, results=RESULTS / "lio")
    return run_seeds(parser.parse_args(argv), EXPERIMENTS, None, REPORT)


if __name__ == "__main__":
    raise SystemExit(main())
