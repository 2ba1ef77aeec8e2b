"""Where a gridworld step goes: ms per `step()` and per `observe()` alone, for Cleanup and Harvest.

`step()` includes building the observations, so the rest of the step is the difference. Each figure
is the median of `--repeats` timed runs of about `--seconds` each, under uniformly random actions
(as bench/games.py draws them). Prints a markdown table; writes nothing.

    python bench/ssd_split.py [--games cleanup harvest] [--batch-sizes 1 8 64] [--seconds 1] [--repeats 3]
                               [--system-malloc]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arena.games import make_game
from bench.games import ACTION_POOL, parse_game, random_actions
from protocols.memory import keep_freed_memory


def per_call_ms(call: Callable[[int], object], seconds: float) -> float:
    """Mean ms of `call(k)` over about `seconds`, after a short warm-up."""
    for k in range(5):
        call(k)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(20):
            call(calls)
            calls += 1
    return 1e3 * (time.perf_counter() - start) / calls


def measure(spec: str, batch_size: int, seconds: float) -> tuple[float, float]:
    """(ms per step, ms per observe) of one game at one batch size."""
    name, params = parse_game(spec)
    game = make_game(name, params, batch_size)
    seeds = np.arange(batch_size, dtype=np.uint64)
    game.reset(seeds)
    pool = random_actions(game, np.random.default_rng(0), ACTION_POOL)

    def step(k: int) -> None:
        result = game.step(pool[k % ACTION_POOL])
        if np.all(result.terminated | result.truncated):
            game.reset(seeds)

    step_ms = per_call_ms(step, seconds)
    observe_ms = per_call_ms(lambda _: game.observe(), seconds)
    return step_ms, observe_ms


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", default=["cleanup", "harvest"], help="name, optionally name:{json}")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 8, 64])
    parser.add_argument("--seconds", type=float, default=1.0, help="timed seconds per run")
    parser.add_argument("--system-malloc", action="store_true",
                        help="leave glibc's mmap threshold alone (the arena raises it: protocols/memory.py)")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure; the median is shown")
    args = parser.parse_args(argv)
    if not args.system_malloc:
        keep_freed_memory()

    print("| game | B | step ms | observe ms | step − observe ms | env-steps/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for spec in args.games:
        for batch_size in args.batch_sizes:
            runs = [measure(spec, batch_size, args.seconds) for _ in range(args.repeats)]
            step_ms = statistics.median(run[0] for run in runs)
            observe_ms = statistics.median(run[1] for run in runs)
            print(f"| {spec} | {batch_size} | {step_ms:.3f} | {observe_ms:.3f} | {step_ms - observe_ms:.3f} | "
                  f"{1e3 * batch_size / step_ms:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
