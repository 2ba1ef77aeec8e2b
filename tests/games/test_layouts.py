"""Every game declares the axis order of its rank-3 observations (`Game.observation_layout`).

Agents build their convs from the declared layout and never guess it, so a missing or wrong
declaration would silently convolve over the wrong axes.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from arena.games import GAMES, make_game

NAMES = sorted(GAMES)
#: The layout each game's observations really have, stated here independently of the games.
EXPECTED = {
    "box_trapped": "HWC",  # planes [HEIGHT=5, WIDTH=9, N_CHANNELS=5], channel index on the last axis
    "cleanup": "HWC",  # egocentric RGB views [side, side, 3]
    "coin_game": "CHW",  # one-hot planes [2N, g, g]
    "harvest": "HWC",
    "escape_room": None,
    "escape_room_asym": None,
    "ipd": None,
    "manitokan": None,  # a flat uint8 vector (its 3×3×3 view is flattened)
}
#: Parameter sets besides the defaults whose observations must keep the game's declared layout.
VARIANTS = {
    "cleanup": [{"map": "small7"}, {"map": "small10"}],
    "coin_game": [{"variant": "lola"}, {"n_agents": 3}],
}


def _rank3(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 3


def test_every_registered_game_has_an_expected_layout() -> None:
    assert set(EXPECTED) == set(GAMES), "state the real layout of each new game in EXPECTED"


@pytest.mark.parametrize("name", NAMES)
def test_rank3_games_declare_a_layout_and_flat_ones_none(name: str) -> None:
    for params in [{}, *VARIANTS.get(name, [])]:
        game = make_game(name, params, 2)
        image = [_rank3(s) for s in game.observation_spaces]
        assert len(set(image)) == 1, "a game's agents all observe images or all flat vectors"
        if image[0]:
            assert game.observation_layout in ("HWC", "CHW"), f"{name} must declare observation_layout"
        else:
            assert game.observation_layout is None, f"{name} has flat observations; its layout must be None"
        assert game.observation_layout == EXPECTED[name]
        obs = game.reset(np.arange(2, dtype=np.uint64))
        for o, space in zip(obs, game.observation_spaces):
            assert o.shape == (2, *space.shape)


@pytest.mark.parametrize("params", [{}, {"n_agents": 3}, {"variant": "lola"}])
def test_coin_game_channels_come_first(params: dict) -> None:
    """Each of the 2N (CHW) or 2 (LOLA) channel planes marks agents/coins: planes sum over H, W."""
    game = make_game("coin_game", params, 3)
    obs = game.reset(np.arange(3, dtype=np.uint64))[0]  # [B, C, g, g]
    n = game.n_agents
    per_channel = obs.sum(axis=(2, 3))
    assert obs.shape[1] == 2 * n
    np.testing.assert_array_equal(per_channel[:, :n], 1.0)  # one cell per agent position plane
    assert np.all(per_channel.sum(axis=1) == n + (1 if params.get("variant") == "lola" else n))


def test_box_trapped_channels_come_last() -> None:
    from arena.games.box_trapped import HEIGHT, N_CHANNELS, OTHER_CH, SELF_CH, WALL_CH, WALLS, WIDTH

    game = make_game("box_trapped", {}, 2)
    assert game.observation_spaces[0].shape == (HEIGHT, WIDTH, N_CHANNELS) == (5, 9, 5)
    obs = game.reset(np.arange(2, dtype=np.uint64))[0]  # [B, H, W, C]
    np.testing.assert_array_equal(obs[..., WALL_CH], np.broadcast_to(WALLS, (2, HEIGHT, WIDTH)))
    np.testing.assert_array_equal(obs[..., SELF_CH].sum(axis=(1, 2)), 1.0)
    np.testing.assert_array_equal(obs[..., OTHER_CH].sum(axis=(1, 2)), 1.0)
