"""Where one lock-step's time goes, piece by piece, in one process (no sockets):

    python bench/lockstep_profile.py [--game cleanup] [--batch-size 64] [--steps 200]

Times the arena building and encoding every seat's `observe`, the agents decoding them and encoding
their `act`s plus the arena decoding those, and `game.step`, each in µs per lock-step. Compare with the
end-to-end and raw figures of bench/throughput.py to see what transport and scheduling add.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arena.games import make_game
from arena.server import Arena, StepMemory
from arena.settings import ArenaSettings, SeatSpec
from protocols.codec import Codec
from protocols.messages import Act


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--game", default="cleanup")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    batch, steps = args.batch_size, args.steps
    n = make_game(args.game, {}, 1).n_agents
    arena = Arena(ArenaSettings(game=args.game, batch_size=batch), [SeatSpec(name=f"p{i}") for i in range(n)],
                  Path(tempfile.mkdtemp()))
    game, agent = arena.game, Codec()
    obs = game.reset(np.arange(batch, dtype=np.uint64))
    joint = np.zeros((batch, n), np.int64)
    memory = StepMemory(joint, joint, *(np.zeros((batch, n), np.float32),) * 3, np.zeros((batch, n, n), np.float32),
                        joint)
    active, terminated = np.ones(batch, bool), np.zeros(batch, bool)
    noop = np.full((batch, n), game.noop_action or 0)

    def arena_side() -> list[list[bytes]]:
        observes = arena._observations(0, 1, obs, memory, active, terminated, 30.0, False)
        return [arena.codec.encode_fields(observe) for observe in observes]

    def agents_side(frames: list[list[bytes]]) -> None:
        for message in frames:
            agent.decode(message)
            arena.codec.decode(agent.encode(Act(episode=0, t=1, actions=np.zeros(batch, np.int64))))

    frames = arena_side()
    timings = {}
    for name, run in (("arena: build and encode every observe", arena_side),
                      ("agents: decode observe, encode act; arena: decode act", lambda: agents_side(frames)),
                      ("game.step", lambda: game.step(noop))):
        for _ in range(10):
            run()
        started = time.perf_counter()
        for _ in range(steps):
            run()
        timings[name] = (time.perf_counter() - started) / steps * 1e6
    print(f"{args.game}, B = {batch}, {n} agents, µs per lock-step:")
    for name, micros in timings.items():
        print(f"  {name:<55} {micros:>8,.0f}")


if __name__ == "__main__":
    main()
