"""Throughput through the arena (real processes, ZeroMQ) next to the same game stepped in-process.

    python bench/throughput.py [--game ipd] [--batch-sizes 1 32 256] [--seconds 5]

env-steps/s counts game copies stepped (B per lock-step); agent-steps/s counts agent decisions
(env-steps × N). Arena figures use the episodes' own wall times, so process start-up is excluded.
Writes bench/results/throughput.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arena.games import make_game  # noqa: E402


def in_process(game_name: str, batch: int, seconds: float) -> float:
    """env-steps/s of the bare game with uniformly random actions."""
    game = make_game(game_name, {}, batch)
    rng = np.random.default_rng(0)
    sizes = [int(space.n) for space in game.action_spaces]
    game.reset(np.arange(batch))
    steps, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        actions = np.stack([rng.integers(0, n, batch) for n in sizes], axis=1)
        result = game.step(actions)
        steps += 1
        if (result.terminated | result.truncated).all():
            game.reset(np.arange(batch) + steps)
    return steps * batch / (time.perf_counter() - started)


def through_arena(game_name: str, batch: int, seconds: float, in_process_rate: float) -> dict[str, float]:
    """Launch a run with random agents sized to last about `seconds`; read its episode wall times."""
    game = make_game(game_name, {}, 1)
    n_agents, steps = game.n_agents, game.max_steps
    guess = min(in_process_rate, 4000.0 * batch)  # lock-steps cost ~0.25 ms of messaging each
    episodes = max(3, int(seconds * guess / (batch * steps)))
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "bench.toml"
        agents = "\n".join(f'[[agents]]\nname = "random{i}"\nkind = "random"\n' for i in range(n_agents))
        config.write_text(f'[run]\nname = "bench"\nout = "{tmp}/runs"\n\n[arena]\ngame = "{game_name}"\n'
                          f"episodes = {episodes}\nbatch_size = {batch}\n\n{agents}")
        done = subprocess.run([sys.executable, "-m", "launch.cli", "launch", str(config)], cwd=ROOT,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"arena launch failed:\n{done.stdout}{done.stderr}")
        lines = next(Path(tmp, "runs").iterdir()).joinpath("episodes.jsonl").read_text().splitlines()
    records = [json.loads(line) for line in lines]
    wall = sum(r["wall_time_s"] for r in records)
    env_steps = sum(r["steps"] for r in records) * batch
    return {"episodes": len(records), "env_steps_per_s": env_steps / wall,
            "agent_steps_per_s": env_steps * n_agents / wall, "lock_steps_per_s": env_steps / batch / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default="ipd")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 32, 256])
    parser.add_argument("--seconds", type=float, default=5.0, help="target duration of each measurement")
    args = parser.parse_args()
    rows = []
    for batch in args.batch_sizes:
        bare = in_process(args.game, batch, min(args.seconds, 2.0))
        arena = through_arena(args.game, batch, args.seconds, bare)
        rows.append({"batch_size": batch, "in_process_env_steps_per_s": bare, **arena})
        print(f"B={batch:>4}: arena {arena['env_steps_per_s']:>12,.0f} env-steps/s "
              f"{arena['agent_steps_per_s']:>12,.0f} agent-steps/s | in-process {bare:>12,.0f} env-steps/s",
              flush=True)
    header = ("| B | arena env-steps/s | arena agent-steps/s | lock-steps/s | in-process env-steps/s | "
              "arena / in-process |\n|---:|---:|---:|---:|---:|---:|\n")
    table = header + "".join(
        f"| {r['batch_size']} | {r['env_steps_per_s']:,.0f} | {r['agent_steps_per_s']:,.0f} | "
        f"{r['lock_steps_per_s']:,.0f} | {r['in_process_env_steps_per_s']:,.0f} | "
        f"{r['env_steps_per_s'] / r['in_process_env_steps_per_s']:.3f} |\n" for r in rows)
    machine = f"{platform.machine()}, {platform.python_implementation()} {platform.python_version()}"
    title = f"# Throughput: {args.game}, 2 random agents, through the arena vs in-process ({machine})\n\n"
    print("\n" + table)
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "throughput.md").write_text(title + table, encoding="utf-8")
    (out / "throughput.json").write_text(json.dumps({"game": args.game, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
