"""Throughput through the arena (real processes, ZeroMQ) next to a raw-pyzmq lock-step and the bare game.

    python bench/throughput.py [--games ipd cleanup] [--batch-sizes 1 32 | ipd=1,32 cleanup=8] [--seconds 4]

Each row (one game at one batch size B, random agents in every seat) has three measurements:

- in-process: the game stepped alone with random actions (env-steps/s);
- arena: `python -m launch.cli launch` with random agents; its episodes' own wall times give the rates,
  so process start-up (and the launcher's preflight) is excluded;
- raw: the messaging limit for the same traffic. This process binds a ROUTER, N agent processes
  (DEALER) connect; each lock-step sends every agent one multipart message with the byte sizes of
  the arena's real `observe` frames and awaits every agent's reply with the sizes of a real `act`.
  Frames are preallocated plain bytes (no msgpack, no pydantic, no game), over the same tcp loopback.

A lock-step is one observe → act round with every agent (B env-steps); env-steps/s = B × lock-steps/s.
Default batch sizes: ipd 1 32 256, cleanup 1 8 64 (others 1 32 256). Writes bench/results/throughput.{md,json}.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import zmq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from arena.games import make_game  # noqa: E402
from arena.server import Arena, StepMemory  # noqa: E402
from arena.settings import ArenaSettings, SeatSpec  # noqa: E402
from protocols.codec import Codec  # noqa: E402
from protocols.memory import keep_freed_memory  # noqa: E402
from protocols.messages import Act  # noqa: E402

RESULTS = ROOT / "bench" / "results"
DEFAULT_BATCHES: dict[str, list[int]] = {"ipd": [1, 32, 256], "cleanup": [1, 8, 64]}
#: Rough arena cost per agent message on a small machine; only used to size the arena run's episode count.
GUESS_S_PER_AGENT_MESSAGE = 0.7e-3
#: Raw lock-steps played before timing starts (connections, TCP buffers, caches).
RAW_WARMUP_STEPS = 200


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


def frame_sizes(game_name: str, batch: int) -> tuple[list[list[int]], list[int]]:
    """Byte sizes of the frames the arena really sends: each seat's first `observe` (built by an
    in-process `Arena` and encoded with its codec) and a random agent's `act` reply ([B] int64).
    Frames are signature, header, content, then one per array; the ROUTER identity is not counted."""
    game = make_game(game_name, {}, 1)
    settings = ArenaSettings(game=game_name, batch_size=batch, episodes=1)
    seats = [SeatSpec(name=f"random{i}") for i in range(game.n_agents)]
    with tempfile.TemporaryDirectory() as tmp:
        arena = Arena(settings, seats, Path(tmp) / "run")
        n = arena.game.n_agents
        obs = arena.game.reset(np.random.SeedSequence([0, 0]).generate_state(batch, np.uint64))
        arena.ledger.start_episode()
        start = np.full((batch, n), -1 if arena.game.noop_action is None else arena.game.noop_action, np.int64)
        zeros = np.zeros((batch, n), np.float32)
        memory = StepMemory(actions=start, played=start, extrinsic=zeros, incentives=zeros, total=zeros,
                            payments=np.zeros((batch, n, n), np.float32), messages=np.full((batch, n), -1, np.int64))
        observes = arena._observations(0, 0, obs, memory, np.ones(batch, bool), np.zeros(batch, bool),
                                       settings.step_timeout_s, False)
        encoded = [arena.codec.encode_fields(observe) for observe in observes]
        arena.writer.finish("complete", "frame sizes only", 0, [])
    parent = arena.codec.decode(encoded[0]).header
    act = Codec().encode(Act(episode=0, t=0, actions=np.zeros(batch, np.int64)), parent)
    return [[len(f) for f in frames] for frames in encoded], [len(f) for f in act]


def _raw_agent(address: str, reply_sizes: list[int]) -> None:
    """A DEALER that answers every message with preallocated frames of `reply_sizes` until b"stop"."""
    context = zmq.Context()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    reply = [bytes(size) for size in reply_sizes]
    sock.send(b"hello")
    while True:
        frames = sock.recv_multipart()
        if frames == [b"stop"]:
            break
        sock.send_multipart(reply)
    sock.close()
    context.term()


def raw_lock_step(observe_sizes: list[list[int]], act_sizes: list[int], seconds: float) -> float:
    """Lock-steps/s of a minimal pyzmq ROUTER (this process) and one DEALER process per agent."""
    context = zmq.Context()
    sock = context.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    address = f"tcp://127.0.0.1:{sock.bind_to_random_port('tcp://127.0.0.1')}"
    spawn = multiprocessing.get_context("spawn")
    agents = [spawn.Process(target=_raw_agent, args=(address, act_sizes), daemon=True) for _ in observe_sizes]
    for agent in agents:
        agent.start()
    try:
        identities = [sock.recv_multipart()[0] for _ in agents]
        observes = [[bytes(size) for size in sizes] for sizes in observe_sizes]

        def lock_step() -> None:
            for identity, frames in zip(identities, observes):
                sock.send_multipart([identity, *frames])
            for _ in identities:
                sock.recv_multipart()

        for _ in range(RAW_WARMUP_STEPS):
            lock_step()
        steps, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            lock_step()
            steps += 1
        rate = steps / (time.perf_counter() - started)
        for identity in identities:
            sock.send_multipart([identity, b"stop"])
    finally:
        for agent in agents:
            agent.join(timeout=5)
            if agent.is_alive():
                agent.terminate()
        sock.close()
        context.term()
    return rate


def through_arena(game_name: str, batch: int, seconds: float, in_process_rate: float) -> dict[str, float]:
    """Launch a run with random agents sized to last about `seconds`; read its episode wall times."""
    game = make_game(game_name, {}, 1)
    n_agents, steps = game.n_agents, game.max_steps
    guess_lock_s = batch / in_process_rate + GUESS_S_PER_AGENT_MESSAGE * n_agents
    episodes = max(1, math.ceil(100 / steps), round(seconds / (guess_lock_s * steps)))
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
    return {"episodes": len(records), "wall_s": wall, "env_steps_per_s": env_steps / wall,
            "agent_steps_per_s": env_steps * n_agents / wall, "lock_steps_per_s": env_steps / batch / wall}


def measure(game_name: str, batch: int, seconds: float) -> dict[str, Any]:
    """One row: in-process, arena and raw figures for `game_name` at batch size `batch`."""
    observe_sizes, act_sizes = frame_sizes(game_name, batch)
    bare = in_process(game_name, batch, min(seconds, 2.0))
    raw = raw_lock_step(observe_sizes, act_sizes, seconds)
    arena = through_arena(game_name, batch, seconds, bare)
    return {"game": game_name, "batch_size": batch, "n_agents": len(observe_sizes),
            "in_process_env_steps_per_s": bare, **arena, "raw_lock_steps_per_s": raw,
            "arena_us_per_lock_step": 1e6 / arena["lock_steps_per_s"], "raw_us_per_lock_step": 1e6 / raw,
            "raw_over_arena": raw / arena["lock_steps_per_s"],
            "observe_bytes": sum(observe_sizes[0]), "act_bytes": sum(act_sizes),
            "observe_frames": observe_sizes[0], "act_frames": act_sizes}


def batch_plan(games: list[str], tokens: list[str] | None) -> dict[str, list[int]]:
    """Batch sizes per game: the defaults, overridden by plain sizes (every game) or GAME=1,8,64 tokens."""
    plan = {game: DEFAULT_BATCHES.get(game, [1, 32, 256]) for game in games}
    plain = [int(token) for token in tokens or [] if "=" not in token]
    for game in games:
        plan[game] = plain or plan[game]
    for token in tokens or []:
        if "=" in token:
            game, sizes = token.split("=", 1)
            if game not in plan:
                raise SystemExit(f"--batch-sizes names {game!r}, which is not in --games {games}")
            plan[game] = [int(size) for size in sizes.split(",")]
    return plan


def machine_info() -> dict[str, Any]:
    """Where and when the figures were taken."""
    return {"when": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, {platform.system()} "
                       f"{platform.release()}",
            "python": f"{platform.python_implementation()} {platform.python_version()}",
            "pyzmq": f"{zmq.__version__} (libzmq {zmq.zmq_version()})", "numpy": np.__version__,
            "load_before": round(os.getloadavg()[0], 2)}


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any], seconds: float) -> str:
    """A table per game."""
    out = [f"# Throughput: arena vs raw pyzmq lock-step vs in-process ({meta['when']})\n",
           f"{meta['machine']}; {meta['python']}; pyzmq {meta['pyzmq']}; numpy {meta['numpy']}; "
           f"{seconds:g} s per measurement; random agents in every seat; 1-min load average {meta['load_before']} "
           "before the run (other work on the machine lowers every figure).\n",
           "A lock-step is one observe → act round with every agent (B env-steps). *raw* is a minimal pyzmq "
           "ROUTER in the bench process and one DEALER process per agent exchanging plain bytes frames of the "
           "arena's own observe/act frame sizes, no codec and no game. *raw ÷ arena* is how many times slower "
           "the arena's lock-step is than that messaging limit.\n"]
    header = ("| B | arena env-steps/s | arena lock-steps/s | raw lock-steps/s | raw ÷ arena (× slower) | "
              "arena µs/lock-step | raw µs/lock-step | in-process env-steps/s | observe / act bytes |\n"
              "|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
    for game in dict.fromkeys(r["game"] for r in rows):
        mine = [r for r in rows if r["game"] == game]
        spec = make_game(game, {}, 1)
        shape = "×".join(str(s) for s in spec.observation_spaces[0].shape)
        out.append(f"## {game}: {mine[0]['n_agents']} agents, {spec.max_steps} steps per episode, "
                   f"obs {shape} {spec.observation_spaces[0].dtype} per agent and copy\n")
        out.append(header + "".join(
            f"| {r['batch_size']} | {r['env_steps_per_s']:,.0f} | {r['lock_steps_per_s']:,.0f} | "
            f"{r['raw_lock_steps_per_s']:,.0f} | ×{r['raw_over_arena']:.1f} | {r['arena_us_per_lock_step']:,.0f} | "
            f"{r['raw_us_per_lock_step']:,.0f} | {r['in_process_env_steps_per_s']:,.0f} | "
            f"{r['observe_bytes']:,} / {r['act_bytes']:,} |\n" for r in mine))
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--games", nargs="+", default=["ipd", "cleanup"], help="games, default params")
    parser.add_argument("--batch-sizes", nargs="+", metavar="B|GAME=B,B",
                        help="sizes for every game, or per game as GAME=1,8,64 (defaults: ipd 1 32 256, "
                             "cleanup 1 8 64)")
    parser.add_argument("--seconds", type=float, default=4.0, help="target duration of each measurement")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where throughput.{md,json} go")
    args = parser.parse_args()
    keep_freed_memory()  # the in-process figure as the arena process runs the game
    meta = machine_info()
    rows = []
    for game, batches in batch_plan(args.games, args.batch_sizes).items():
        for batch in batches:
            row = measure(game, batch, args.seconds)
            rows.append(row)
            print(f"{game:>8} B={batch:>4}: arena {row['env_steps_per_s']:>10,.0f} env-steps/s "
                  f"{row['lock_steps_per_s']:>7,.0f} lock-steps/s ({row['arena_us_per_lock_step']:,.0f} µs) | "
                  f"raw {row['raw_lock_steps_per_s']:>7,.0f} lock-steps/s ({row['raw_us_per_lock_step']:,.0f} µs) "
                  f"×{row['raw_over_arena']:.1f} | in-process {row['in_process_env_steps_per_s']:>11,.0f} "
                  f"env-steps/s | observe/act {row['observe_bytes']:,}/{row['act_bytes']:,} B", flush=True)
    table = markdown(rows, meta, args.seconds)
    print("\n" + table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "throughput.md").write_text(table, encoding="utf-8")
    record = {**meta, "seconds": args.seconds, "rows": rows}
    (args.out / "throughput.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
