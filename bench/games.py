"""Throughput of every registered game, stepped in-process with uniformly random valid actions.

Prints env-steps per second (B × steps per second) at each batch size and writes the table to
bench/results/games.md and games.json. A game is named as in the registry, optionally with
parameters: `cleanup:{"map": "small7"}`.

    python bench/games.py [--games cleanup harvest] [--seconds 2] [--batch-sizes 1 64 256]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import traceback
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arena.games import GAMES, Game, make_game
from protocols.memory import keep_freed_memory

RESULTS = Path(__file__).resolve().parent / "results"
#: Distinct random joint actions cycled through when a game has no action masks, so that drawing
#: them stays out of the timed loop.
ACTION_POOL = 64


@dataclass
class Row:
    game: str
    n_agents: int | None
    rates: dict[int, float | None]
    error: str | None = None


def parse_game(spec: str) -> tuple[str, dict[str, Any]]:
    """`name` or `name:{json params}`."""
    name, _, params = spec.partition(":")
    return name, json.loads(params) if params else {}


def random_actions(game: Game, rng: np.random.Generator, count: int) -> np.ndarray:
    """`[count, B, N]` uniformly random actions of each agent's action space."""
    B = game.batch_size
    columns = []
    for space in game.action_spaces:
        if isinstance(space, gym.spaces.Discrete):
            columns.append(space.start + rng.integers(0, space.n, (count, B)))
        else:
            raise TypeError(f"bench only draws Discrete actions, got {space}")
    return np.stack(columns, axis=-1).astype(np.int64)


def masked_actions(masks: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
    """`[B, N]` uniform choice among each agent's currently valid actions."""
    return np.stack([np.argmax(rng.random(m.shape) * m, axis=1) for m in masks], axis=1).astype(np.int64)


def steps_per_second(name: str, params: dict[str, Any], batch_size: int, seconds: float) -> tuple[float, int]:
    """Env-steps per second over about `seconds`, resetting whenever every copy is done."""
    game = make_game(name, params, batch_size)
    rng = np.random.default_rng(0)
    seeds = np.arange(batch_size, dtype=np.uint64)
    game.reset(seeds)
    pool = random_actions(game, rng, ACTION_POOL)

    def run(steps: int) -> None:
        for k in range(steps):
            masks = game.action_masks()
            actions = masked_actions(masks, rng) if masks is not None else pool[k % ACTION_POOL]
            result = game.step(actions)
            if np.all(result.terminated | result.truncated):
                game.reset(seeds)

    run(5)
    steps, start = 0, time.perf_counter()
    chunk = 10
    while (elapsed := time.perf_counter() - start) < seconds:
        run(chunk)
        steps += chunk
        chunk = min(chunk * 2, 1000) if elapsed < seconds / 4 else chunk
    return batch_size * steps / (time.perf_counter() - start), game.n_agents


def bench(specs: list[str], batch_sizes: list[int], seconds: float) -> list[Row]:
    rows = []
    for spec in specs:
        name, params = parse_game(spec)
        row = Row(spec, None, {})
        for batch_size in batch_sizes:
            try:
                row.rates[batch_size], row.n_agents = steps_per_second(name, params, batch_size, seconds)
            except Exception as error:  # one broken game must not stop the others from being measured
                row.rates[batch_size] = None
                row.error = f"{type(error).__name__}: {error}"
                traceback.print_exc()
                break
        rows.append(row)
    return rows


def fmt(rate: float | None) -> str:
    return "—" if rate is None else f"{rate:,.0f}"


def markdown(rows: list[Row], batch_sizes: list[int], header: str) -> str:
    head = "| game | agents | " + " | ".join(f"B={b}" for b in batch_sizes) + " |"
    rule = "|---|---:|" + "---:|" * len(batch_sizes)
    lines = [header, "", "env-steps/s (B × steps per second), in-process, uniformly random valid actions.", "",
             head, rule]
    for row in rows:
        cells = " | ".join(fmt(row.rates.get(b)) for b in batch_sizes)
        lines.append(f"| {row.game} | {row.n_agents or '—'} | {cells} |")
    errors = [f"- {row.game}: {row.error}" for row in rows if row.error]
    return "\n".join(lines + (["", *errors] if errors else [])) + "\n"


def show(rows: list[Row], batch_sizes: list[int]) -> None:
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        width = max(len(row.game) for row in rows)
        print(f"{'game':<{width}} {'agents':>6} " + " ".join(f"{'B=' + str(b):>12}" for b in batch_sizes))
        for row in rows:
            rates = " ".join(f"{fmt(row.rates.get(b)):>12}" for b in batch_sizes)
            print(f"{row.game:<{width}} {row.n_agents or '—':>6} {rates}")
        return
    table = Table(title="env-steps/s (in-process, random actions)")
    table.add_column("game")
    table.add_column("agents", justify="right")
    for b in batch_sizes:
        table.add_column(f"B={b}", justify="right")
    for row in rows:
        table.add_row(row.game, str(row.n_agents or "—"), *(fmt(row.rates.get(b)) for b in batch_sizes))
    Console().print(table)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", default=sorted(GAMES), help="registry names, optionally name:{json}")
    parser.add_argument("--seconds", type=float, default=2.0, help="timed seconds per game and batch size")
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[1, 64, 256])
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for games.md and games.json")
    args = parser.parse_args(argv)
    keep_freed_memory()  # as the arena process does

    unknown = [spec for spec in args.games if parse_game(spec)[0] not in GAMES]
    if unknown:
        parser.error(f"unknown games {unknown}; known: {', '.join(sorted(GAMES))}")
    rows = bench(args.games, args.batch_sizes, args.seconds)
    show(rows, args.batch_sizes)

    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, numpy {np.__version__}"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "games.md").write_text(markdown(rows, args.batch_sizes, f"# Game throughput ({when}; {machine})"))
    record = {"when": when, "machine": machine, "seconds": args.seconds, "rows": [asdict(row) for row in rows]}
    (args.out / "games.json").write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
