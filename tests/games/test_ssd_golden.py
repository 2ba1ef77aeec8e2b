"""Golden regression test of Cleanup and Harvest: every output is pinned to a SHA-256 digest.

The digests were computed from the implementation before its performance work, so any change to the
engine that alters a single bit of what a game returns — observations, rewards, flags, events, state,
visibility, renders or the random stream — fails here. Actions lean heavily on FIRE and CLEAN so that
beams, hits and their clashes are exercised. Outputs are hashed once when returned and once more at
the end of the run, which also catches a game handing out buffers that it overwrites later.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest

from arena.games import make_game
from arena.games.gridworld import CLEAN, FIRE, LEFT, GridworldGame

STEPS = 300

CASES: dict[str, tuple[str, dict[str, Any], int]] = {
    "cleanup_ssd_crowd_B3": ("cleanup", {}, 3),
    "cleanup_ssd_B1": ("cleanup", {}, 1),
    "cleanup_ssd_B3": ("cleanup", {}, 3),
    "cleanup_ssd_forward_up_B3": ("cleanup", {"view_rotation": "forward_up"}, 3),
    "cleanup_ssd_2agents_B3": ("cleanup", {"n_agents": 2}, 3),
    "cleanup_small7_B1": ("cleanup", {"map": "small7"}, 1),
    "cleanup_small7_B3": ("cleanup", {"map": "small7"}, 3),
    "cleanup_small10_3agents_B3": ("cleanup", {"map": "small10", "n_agents": 3}, 3),
    "harvest_B1": ("harvest", {}, 1),
    "harvest_B3": ("harvest", {}, 3),
    "harvest_forward_up_2agents_B3": ("harvest", {"view_rotation": "forward_up", "n_agents": 2}, 3),
}

#: Cases whose agents start side by side facing the river, so that CLEAN lines often end on one cell.
CROWDED = {"cleanup_ssd_crowd_B3"}

GOLDEN: dict[str, str] = {
    "cleanup_small10_3agents_B3": "60b6dcde2e2e748ef96e875670d278441c7e1a3d640680914f8e5af0e950f6e1",
    "cleanup_small7_B1": "4b164578f51f45a00c02f96ceb3365b48b3ba29ed6ec89da06c12b1569087c11",
    "cleanup_small7_B3": "6d7186592d3feb91e40ea109dd9f92f2bc873e56692a39b5b9fd334b32d352a1",
    "cleanup_ssd_2agents_B3": "159f297d19ea76dd0ef850aa7efea46adf5b6d1b2b51ad46e9ce740890ae42cf",
    "cleanup_ssd_crowd_B3": "4986c9b67c883c7ed56b753117fd94e9a21fcf897afe05dfe62a1d7514779dbb",
    "cleanup_ssd_B1": "f3dbac8281a7a6dc97cc83fde7758f192d9856237534a1dc9a9b9d914494b65e",
    "cleanup_ssd_B3": "bcae77f0841e160b42de151e9fd212389f93832168c87a1c44f14105a04916c9",
    "cleanup_ssd_forward_up_B3": "3e6a5dbe00904a5318200bdbcee31f63b42495fbe12c6468dca7051465d7a114",
    "harvest_B1": "37ba2940f7083a63a40e4987a67ab0b765ca1de232b5792e275a0cd427eb5761",
    "harvest_B3": "89bd84cff30d1e18f0683c42d234034b0aa8a21c0142219722cade1852343532",
    "harvest_forward_up_2agents_B3": "e2c4152678c053a7268248e46fb5b833e9a4f6e445488597066f9b3b0f7cd053",
}


def actions_for(game: GridworldGame, rng: np.random.Generator) -> np.ndarray:
    """`[B, N]` actions: the game's beam actions half of the time, otherwise uniform."""
    n_actions = int(game.action_spaces[0].n)
    beams = np.flatnonzero(np.isin(game.engine_actions, (FIRE, CLEAN)))
    shape = (game.batch_size, game.n_agents)
    uniform = rng.integers(0, n_actions, shape)
    return np.where(rng.random(shape) < 0.5, rng.choice(beams, shape), uniform).astype(np.int64)


def update(digest: Any, value: Any) -> None:
    """Feed one output (array, list or dict of arrays, or text) into `digest` with its dtype and shape."""
    if isinstance(value, dict):
        for key, item in value.items():
            digest.update(key.encode())
            update(digest, item)
    elif isinstance(value, list):
        for item in value:
            update(digest, item)
    elif isinstance(value, str):
        digest.update(value.encode())
    else:
        array = np.ascontiguousarray(value)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())


def crowd(game: GridworldGame) -> None:
    """Agents in one column next to the SSD river, all facing it."""
    rows = 2 + np.arange(game.n_agents)
    game.place_agents(rows, np.full(game.n_agents, 7), np.full(game.n_agents, LEFT))


def rollout(case: str) -> tuple[str, str]:
    """Digest of every output as returned, and of the same outputs re-read after the run."""
    name, params, batch_size = CASES[case]
    game = make_game(name, params, batch_size)
    rng = np.random.default_rng(12345)
    digest, kept = hashlib.sha256(), []

    def emit(value: Any) -> None:
        update(digest, value)
        kept.append(value)

    episode = 0
    emit(game.reset(1000 + np.arange(batch_size, dtype=np.uint64)))
    if case in CROWDED:
        crowd(game)
        emit(game.observe())
    for t in range(STEPS):
        actions = actions_for(game, rng)
        result = game.step(actions)
        emit([result.obs, result.rewards, result.terminated, result.truncated, result.events])
        emit([game.state(), game.visibility(), game.public_actions(actions), game.observe()])
        if t % 50 == 0:
            emit([game.render("ansi", b) for b in range(batch_size)])
            emit(game.render("rgb_array", batch_size - 1))
        if np.all(result.terminated | result.truncated):
            episode += 1
            emit(game.reset(1000 + 17 * episode + np.arange(batch_size, dtype=np.uint64)))
    emit([game.rng.uniform(7), game.rng.integers(5, 3)])
    again = hashlib.sha256()
    for value in kept:
        update(again, value)
    return digest.hexdigest(), again.hexdigest()


@pytest.mark.parametrize("case", sorted(CASES))
def test_outputs_match_golden_digest(case: str) -> None:
    as_returned, after_run = rollout(case)
    assert as_returned == after_run, "an output was changed after it was returned"
    assert as_returned == GOLDEN[case]
