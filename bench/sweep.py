"""Sweep benchmark: the wall time of N ER(2,1) LIO seeds through `arena sweep` (Ray) against the same seeds
run one after another with `arena launch`, on this machine.

    nice -n 10 python bench/sweep.py --seeds 8 --episodes 200

Both sides run `examples/er21_lio.toml` with `[arena] seed = s` and the same episode budget; the sweep's
time includes starting its local Ray. Results go to bench/results/sweep.md and sweep.json (the bench/lio.py
`Report`, one row per run, scored by bench/lio.py's `score`).
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
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.lio import EXAMPLES, REPO, REPORT, RESULTS, Report, Run, fmt, launch, read_jsonl, score, seed_config

VARIANT = "er21_lio"


def run_serial(seeds: list[int], episodes: int, out: Path, timeout: float) -> tuple[list[Run], float]:
    """Each seed with `arena launch`, one after another."""
    started = time.perf_counter()
    runs = [launch(Run("serial", VARIANT, seed), episodes, None, out, timeout) for seed in seeds]
    return runs, time.perf_counter() - started


def run_sweep(seeds: list[int], episodes: int, out: Path, concurrency: int | None, timeout: float
              ) -> tuple[list[Run], float, str]:
    """The same seeds as one `arena sweep` on a local Ray."""
    sweep_file = out / "er21_lio_sweep.toml"
    sweep_file.write_text(f'[sweep]\nname = "er21"\nbase = "{EXAMPLES / (VARIANT + ".toml")}"\nout = "{out}"\n'
                          f"seeds = {seeds}\n", encoding="utf-8")
    command = [sys.executable, "-m", "launch.cli", "sweep", str(sweep_file), "--episodes", str(episodes)]
    if concurrency:
        command += ["--concurrency", str(concurrency)]
    started = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - started
    runs = []
    for record in read_jsonl(out / "er21" / "sweep.jsonl"):
        run = Run("sweep", VARIANT, record["seed"], status="ok" if record["status"] == "complete" else "failed",
                  wall_s=record["wall_s"], run_dir=record["run_dir"], error=record.get("error"))
        if run.status == "ok":
            config = seed_config(VARIANT, run.seed, episodes, out)
            run.metrics = score(VARIANT, config, read_jsonl(Path(record["run_dir"]) / "episodes.jsonl"))
            run.arena_wall_s = json.loads((Path(record["run_dir"]) / "result.json").read_text())["wall_time_s"]
        runs.append(run)
    return sorted(runs, key=lambda r: r.seed), wall, done.stdout + done.stderr


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=8, help="seeds 0 … n−1")
    parser.add_argument("--episodes", type=int, default=3000, help="training episodes per run (the example: 3000)")
    parser.add_argument("--concurrency", type=int, help="cells at once in the sweep (default: the sweep's own, "
                        "this machine's cores)")
    parser.add_argument("--timeout", type=float, default=7200, help="seconds per run, and for the whole sweep")
    parser.add_argument("--out", type=Path, help="parent of the run directories (default: a temp dir)")
    parser.add_argument("--results", type=Path, default=RESULTS / "sweep", help="results path stem")
    parser.add_argument("--notes", type=Path, help="markdown file whose text goes in the results' Notes section")
    args = parser.parse_args(argv)
    out = (args.out or Path(tempfile.mkdtemp(prefix="bench_sweep_"))).resolve()
    seeds = list(range(args.seeds))
    (out / "serial").mkdir(parents=True, exist_ok=True)
    (out / "sweep").mkdir(parents=True, exist_ok=True)
    print(f"{len(seeds)} seeds × {args.episodes} episodes, serial then sweep; runs under {out}", flush=True)
    serial, serial_wall = run_serial(seeds, args.episodes, out / "serial", args.timeout)
    print(f"serial: {serial_wall:.1f} s", flush=True)
    swept, sweep_wall, output = run_sweep(seeds, args.episodes, out / "sweep", args.concurrency, args.timeout)
    print(f"sweep: {sweep_wall:.1f} s", flush=True)
    if not swept:
        print(output, file=sys.stderr)
        return 1

    def targets(runs: list[Run]) -> list[str]:
        ok = {side: sum(r.status == "ok" for r in runs if r.experiment == side) for side in ("serial", "sweep")}
        def collective(side: list[Run]) -> str:
            done = [r.metrics["collective"] for r in side if r.status == "ok"]
            return fmt(sum(done) / len(done)) if done else "–"

        return [f"{len(seeds)} ER(2,1) LIO seeds × {args.episodes} episodes: one after another {serial_wall:.1f} s "
                f"({ok['serial']} complete); `arena sweep` {sweep_wall:.1f} s ({ok['sweep']} complete, local Ray "
                f"start included); speed-up {serial_wall / sweep_wall:.2f}×",
                f"collective return, last 10%, mean over seeds: serial {collective(serial)}, sweep {collective(swept)}"]

    report = Report("Sweep benchmark: `arena sweep` on Ray against runs one after another",
                    f"ER(2,1) LIO (examples/{VARIANT}.toml), {args.episodes} training episodes per run; rows: "
                    "experiment = serial or sweep; wall s per run", REPORT.columns, targets, REPORT.row)
    meta = {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.machine()} {os.cpu_count()} cores, Python {platform.python_version()}",
            "jobs": args.concurrency or "sweep default", "out": str(out),
            "serial_wall_s": round(serial_wall, 2), "sweep_wall_s": round(sweep_wall, 2),
            "notes": args.notes.read_text(encoding="utf-8") if args.notes else None}
    print(report.write(serial + swept, meta, args.results))
    return 0 if all(r.status == "ok" for r in serial + swept) else 1


if __name__ == "__main__":
    raise SystemExit(main())
