"""Rule tests for the Coin Game: Reciprocator N-player version (default) and LOLA's 2-player version."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from arena.games import make_game
from arena.games.coin_game import DOWN, LEFT, RIGHT, STAY, UP, CoinGame


def make(batch_size: int = 1, **params: object) -> CoinGame:
    game = make_game("coin_game", params, batch_size)
    assert isinstance(game, CoinGame)
    game.reset(np.arange(batch_size))
    return game


def place(game: CoinGame, agents: list, coins: list, owners: list | None = None) -> None:
    """Put copy 0 into a scripted state (cells as (row, col))."""
    game._agents[0] = agents
    game._coins[0] = coins
    if owners is not None:
        game._owners[0] = owners


def step(game: CoinGame, *joint: int):
    return game.step(np.array([joint], dtype=np.int64))


def cells_of(plane: np.ndarray) -> list[tuple[int, int]]:
    return [(int(r), int(c)) for r, c in np.argwhere(plane)]


def rollout(params: dict, seeds: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
    """Run `actions` `[T, B, N]` from `reset(seeds)`; stack everything the game returns."""
    game = make_game("coin_game", params, len(seeds))
    record: dict[str, list[np.ndarray]] = {"obs": [np.stack(game.reset(seeds), axis=1)]}
    for joint in actions:
        result = game.step(joint)
        for key, value in [
            ("obs", np.stack(result.obs, axis=1)),
            ("state", game.state()),
            ("rewards", result.rewards),
            ("truncated", result.truncated),
            *result.events.items(),
        ]:
            record.setdefault(key, []).append(value)
    return {key: np.stack(values) for key, values in record.items()}


def test_own_coin_pays_one_and_other_coin_costs_the_owner() -> None:
    game = make()
    place(game, agents=[(0, 0), (1, 1)], coins=[(0, 1), (2, 2)])
    result = step(game, RIGHT, STAY)
    np.testing.assert_array_equal(result.rewards, [[1, 0]])
    np.testing.assert_array_equal(result.events["own_coin"], [[1, 0]])
    np.testing.assert_array_equal(result.events["other_coin"], [[0, 0]])
    place(game, agents=[(0, 0), (1, 1)], coins=[(1, 2), (2, 2)])
    result = step(game, STAY, RIGHT)
    np.testing.assert_array_equal(result.rewards, [[-2, 1]])
    np.testing.assert_array_equal(result.events["other_coin"], [[0, 1]])


def test_three_players_owner_penalty_is_minus_one_and_a_half_per_foreign_collector() -> None:
    game = make(n_agents=3)
    place(game, agents=[(0, 0), (1, 0), (1, 2)], coins=[(1, 1), (2, 2), (0, 2)])
    result = step(game, STAY, RIGHT, LEFT)  # agents 1 and 2 both take agent 0's coin
    np.testing.assert_allclose(result.rewards, [[-3.0, 1, 1]])


def test_simultaneous_arrival_pays_every_collector() -> None:
    game = make()
    place(game, agents=[(1, 0), (1, 2)], coins=[(1, 1), (0, 0)])
    result = step(game, RIGHT, LEFT)
    np.testing.assert_array_equal(result.rewards, [[1 - 2, 1]])


def test_staying_on_a_coin_collects_it_and_several_coins_on_a_cell_are_all_collected() -> None:
    game = make()
    place(game, agents=[(1, 1), (0, 0)], coins=[(1, 1), (1, 1)])
    result = step(game, STAY, STAY)
    np.testing.assert_array_equal(result.rewards, [[2, -2]])


def test_torus_wraps_in_every_direction() -> None:
    game = make(grid_size=4)
    place(game, agents=[(0, 0), (3, 3)], coins=[(2, 1), (1, 2)])
    obs = step(game, LEFT, RIGHT).obs[0][0]
    assert cells_of(obs[0]) == [(0, 3)] and cells_of(obs[1]) == [(3, 0)]
    obs = step(game, UP, DOWN).obs[0][0]
    assert cells_of(obs[0]) == [(3, 3)] and cells_of(obs[1]) == [(0, 0)]


def test_collected_coins_respawn_uniformly_and_others_stay() -> None:
    batch = 900
    game = make(batch_size=batch)
    game._agents[:] = [(0, 0), (2, 2)]
    game._coins[:] = [(0, 1), (1, 1)]
    state = game.step(np.tile([RIGHT, STAY], (batch, 1))).obs[0]
    new_coin = state[:, 2].reshape(batch, 9).argmax(axis=1)
    assert (state[:, 2].sum(axis=(1, 2)) == 1).all()
    assert np.bincount(new_coin, minlength=9).min() > batch / 9 * 0.6
    assert (state[:, 3, 1, 1] == 1).all()


def test_observation_orders() -> None:
    game = make(n_agents=3)
    planes = game.state()
    obs = game.observe()
    np.testing.assert_array_equal(obs[1], planes[:, [1, 2, 0, 4, 5, 3]])
    roll = make(obs_order="reference_roll")
    np.testing.assert_array_equal(roll.observe()[1], roll.state()[:, [2, 3, 0, 1]])
    shared = make(n_agents=3, obs_order="shared")
    np.testing.assert_array_equal(shared.observe()[2], shared.state())
    assert game.observation_spaces[0].shape == (6, 3, 3)
    assert game.max_steps == 32


def test_reset_draws_all_positions_uniformly_and_overlaps_are_allowed() -> None:
    batch = 900
    game = make(batch_size=batch)
    cells = game.state().reshape(batch, 4, 9).argmax(axis=2)
    assert np.bincount(cells.ravel(), minlength=9).min() > 4 * batch / 9 * 0.7
    assert (cells[:, 0] == cells[:, 1]).any()


def test_lola_reset_puts_players_apart_and_the_coin_on_a_free_cell() -> None:
    batch = 600
    game = make(batch_size=batch, variant="lola")
    planes = game.observe()[0].reshape(batch, 4, 9)
    red, blue = planes[:, 0].argmax(axis=1), planes[:, 1].argmax(axis=1)
    coin_planes = planes[:, 2:].sum(axis=2)
    assert (coin_planes.sum(axis=1) == 1).all()
    coin = planes[:, 2:].sum(axis=1).argmax(axis=1)
    assert (red != blue).all() and (coin != red).all() and (coin != blue).all()
    assert 0.35 < coin_planes[:, 0].mean() < 0.65
    np.testing.assert_array_equal(game.observe()[0], game.observe()[1])  # LOLA gives both the same view
    assert game.action_spaces[0].n == 4 and game.max_steps == 150 and game.default_action == RIGHT
    owner_first = make(variant="lola", obs_order="owner_first")
    np.testing.assert_array_equal(owner_first.observe()[1], owner_first.state()[:, [1, 0, 3, 2]])


def test_lola_red_is_checked_first_and_the_next_coin_has_the_other_colour() -> None:
    game = make(variant="lola")
    place(game, agents=[(1, 0), (1, 2)], coins=[(1, 1)], owners=[1])  # blue coin
    result = step(game, RIGHT, LEFT)
    np.testing.assert_array_equal(result.rewards, [[1, -2]])  # red wins the tie on the blue coin
    planes = result.obs[0][0]
    assert planes[3].sum() == 0 and planes[2].sum() == 1  # a red coin replaced it
    assert cells_of(planes[2])[0] != (1, 1)
    place(game, agents=[(0, 0), (1, 2)], coins=[(1, 1)], owners=[0])  # red coin, blue takes it
    result = step(game, DOWN, LEFT)
    np.testing.assert_array_equal(result.rewards, [[-2, 1]])
    place(game, agents=[(0, 0), (1, 2)], coins=[(1, 1)], owners=[1])  # blue coin, blue takes it
    result = step(game, DOWN, LEFT)
    np.testing.assert_array_equal(result.rewards, [[0, 1]])


def test_lola_new_coin_never_lands_on_a_player() -> None:
    batch = 300
    game = make(batch_size=batch, variant="lola")
    game._agents[:] = [(1, 0), (1, 2)]
    game._coins[:] = [(1, 1)]
    planes = game.step(np.tile([RIGHT, UP], (batch, 1))).obs[0].reshape(batch, 4, 9)
    coin = planes[:, 2:].sum(axis=1).argmax(axis=1)
    assert not np.isin(coin, [4, 2]).any()
    assert len(np.unique(coin)) == 7


def test_parameter_validation() -> None:
    with pytest.raises(ValidationError, match="exactly 2 players"):
        make_game("coin_game", {"variant": "lola", "n_agents": 3}, 1)
    assert make(owner_penalty=-1.0).p.penalty == -1.0


@pytest.mark.parametrize("params", [{"n_agents": 3}, {"variant": "lola"}])
def test_determinism_and_batch_equals_single_copies(params: dict) -> None:
    seeds = np.array([5, 99, 99, 2**33 + 7])
    n = params.get("n_agents", 2)
    n_actions = 4 if params.get("variant") == "lola" else 5
    actions = np.random.default_rng(1).integers(0, n_actions, size=(40, len(seeds), n))
    actions[:, 2] = actions[:, 1]
    batch = rollout(params, seeds, actions)
    again = rollout(params, seeds, actions)
    for key in batch:
        np.testing.assert_array_equal(batch[key], again[key], err_msg=key)
        for b in range(len(seeds)):
            single = rollout(params, seeds[b : b + 1], actions[:, b : b + 1])
            np.testing.assert_array_equal(batch[key][:, b], single[key][:, 0], err_msg=f"{key} copy {b}")
    np.testing.assert_array_equal(batch["obs"][:, 1], batch["obs"][:, 2])
    assert not np.array_equal(batch["obs"][:, 0], batch["obs"][:, 1])
    assert batch["truncated"][-1].all() == (params.get("variant") != "lola")


@pytest.mark.parametrize("variant", ["reciprocator", "lola"])
def test_render_modes(variant: str) -> None:
    game = make(batch_size=2, variant=variant)
    text = game.render("ansi", index=1)
    assert isinstance(text, str) and "\x1b[" in text and len(text.splitlines()) == 4
    image = game.render("rgb_array")
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape[2] == 3
    with pytest.raises(ValueError, match="'ansi' or 'rgb_array'"):
        game.render("human")
