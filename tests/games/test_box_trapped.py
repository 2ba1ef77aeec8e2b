"""Rule tests for Box trapped: scripted optima, box walls, OPEN_BOX, apples and move conflicts."""

from __future__ import annotations

import numpy as np
import pytest

from arena.games import make_game
from arena.games.box_trapped import (
    APPLE_CH,
    BOX_CH,
    DOWN,
    LEFT,
    OPEN_BOX,
    OTHER_CH,
    RIGHT,
    SELF_CH,
    STAY,
    UP,
    BoxTrapped,
)


def make(batch_size: int = 1, **params: object) -> BoxTrapped:
    game = make_game("box_trapped", params, batch_size)
    assert isinstance(game, BoxTrapped)
    game.reset(np.arange(batch_size))
    return game


def step(game: BoxTrapped, *joint: int):
    return game.step(np.array([joint], dtype=np.int64))


def positions(game: BoxTrapped, copy: int = 0) -> list[tuple[int, int]]:
    return [(int(r), int(c)) for r, c in game._positions[copy]]


def play(game: BoxTrapped, opener: list[int], trapped: list[int]) -> np.ndarray:
    """Returns per-agent episode returns of a scripted episode of T steps."""
    returns = np.zeros(2)
    for t in range(game.max_steps):
        result = step(game, opener[t], trapped[t])
        returns += result.rewards[0]
    assert result.truncated[0] and not result.terminated[0]
    return returns


def alternate(n: int) -> list[int]:
    return [LEFT, RIGHT] * (n // 2) + [LEFT] * (n % 2)


def rollout(params: dict, seeds: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
    """Run `actions` `[T, B, 2]` from `reset(seeds)`; stack everything the game returns."""
    game = make_game("box_trapped", params, len(seeds))
    record: dict[str, list[np.ndarray]] = {"obs": [np.stack(game.reset(seeds), axis=1)]}
    for joint in actions:
        result = game.step(joint)
        for key, value in [
            ("obs", np.stack(result.obs, axis=1)),
            ("rewards", result.rewards),
            ("truncated", result.truncated),
            *result.events.items(),
        ]:
            record.setdefault(key, []).append(value)
    return {key: np.stack(values) for key, values in record.items()}


def test_selfish_optimum_is_28_and_the_box_keeps_agent_1_in() -> None:
    game = make()
    returns = play(game, [LEFT, LEFT, UP, *alternate(27)], [LEFT] * 30)
    np.testing.assert_array_equal(returns, [28, 0])
    assert positions(game)[1] == (1, 7)


def test_collective_optimum_is_52() -> None:
    game = make()
    opener = [OPEN_BOX, LEFT, LEFT, UP, *alternate(26)]
    trapped = [LEFT] * 6 + alternate(24)
    returns = play(game, opener, trapped)
    np.testing.assert_array_equal(returns, [27, 25])


def test_box_opens_after_the_moves_of_the_same_step() -> None:
    game = make()
    result = step(game, OPEN_BOX, LEFT)
    assert positions(game)[1] == (1, 7)  # moves use the map at the start of the step
    np.testing.assert_array_equal(result.events["opened"], [[1, 0]])
    assert result.obs[0][0, ..., BOX_CH].sum() == 0
    step(game, STAY, DOWN)
    assert positions(game)[1] == (2, 7)


def test_open_box_is_only_for_agent_0_and_is_a_stay_otherwise() -> None:
    game = make()
    result = step(game, STAY, OPEN_BOX)
    assert result.obs[1][0, ..., BOX_CH].sum() == 3
    np.testing.assert_array_equal(result.events["opened"], [[0, 0]])
    assert positions(game) == [(3, 4), (1, 7)]
    step(game, OPEN_BOX, STAY)
    result = step(game, OPEN_BOX, STAY)  # already open: no second opening
    np.testing.assert_array_equal(result.events["opened"], [[0, 0]])
    assert positions(game)[0] == (3, 4)


def test_adjacent_open_range_requires_agent_0_next_to_a_box_wall() -> None:
    game = make(open_range="adjacent")
    result = step(game, OPEN_BOX, STAY)
    assert result.events["opened"].sum() == 0
    step(game, RIGHT, STAY)
    step(game, RIGHT, STAY)
    assert positions(game)[0] == (3, 6)
    result = step(game, OPEN_BOX, STAY)
    np.testing.assert_array_equal(result.events["opened"], [[1, 0]])


def test_apples_are_eaten_by_entering_and_regrow_when_left() -> None:
    game = make()
    for action in (LEFT, LEFT, UP):
        result = step(game, action, STAY)
    np.testing.assert_array_equal(result.rewards, [[1, 0]])
    assert result.obs[0][0, 2, 2, APPLE_CH] == 0 and result.obs[0][0, 2, 1, APPLE_CH] == 1
    assert step(game, STAY, STAY).rewards[0, 0] == 0  # standing still does not re-eat
    result = step(game, LEFT, STAY)
    assert result.rewards[0, 0] == 1 and result.obs[0][0, 2, 2, APPLE_CH] == 1


def test_entering_a_cell_the_other_agent_just_left_finds_no_apple() -> None:
    game = make()
    game._box_closed[:] = False
    game._positions[0] = [(2, 2), (2, 3)]
    result = step(game, LEFT, LEFT)
    assert positions(game) == [(2, 1), (2, 2)]
    np.testing.assert_array_equal(result.rewards, [[1, 0]])


def test_two_agents_targeting_one_cell_have_one_random_winner() -> None:
    batch = 64
    game = make(batch_size=batch)
    game._positions[:] = [(3, 2), (3, 4)]
    game.step(np.tile([RIGHT, LEFT], (batch, 1)))
    moved = (game._positions != [(3, 2), (3, 4)]).any(axis=-1)
    assert (moved.sum(axis=1) == 1).all()
    assert 0.25 < moved[:, 0].mean() < 0.75
    winners = game._positions[moved]
    assert (winners == (3, 3)).all()


def test_moving_into_the_other_agent_needs_it_to_leave_and_swaps_are_cancelled() -> None:
    game = make()
    game._positions[0] = [(3, 3), (3, 4)]
    step(game, RIGHT, STAY)
    assert positions(game) == [(3, 3), (3, 4)]
    step(game, RIGHT, LEFT)
    assert positions(game) == [(3, 3), (3, 4)]
    step(game, RIGHT, RIGHT)
    assert positions(game) == [(3, 4), (3, 5)]


def test_walls_block_movement() -> None:
    game = make()
    step(game, DOWN, UP)
    assert positions(game) == [(3, 4), (1, 7)]


def test_observation_planes_are_allocentric_with_self_and_other_swapped() -> None:
    game = make()
    obs = game.observe()
    assert obs[0].shape == (1, 5, 9, 5)
    assert obs[0][0, 3, 4, SELF_CH] == 1 and obs[0][0, 1, 7, OTHER_CH] == 1
    assert obs[1][0, 1, 7, SELF_CH] == 1 and obs[1][0, 3, 4, OTHER_CH] == 1
    np.testing.assert_array_equal(obs[0][..., :SELF_CH], obs[1][..., :SELF_CH])
    assert obs[0][0, ..., APPLE_CH].sum() == 4 and obs[0][0, ..., BOX_CH].sum() == 3
    np.testing.assert_array_equal(game.state(), obs[0])
    assert game.visibility().all()


def test_randomized_opener_start_covers_row_3() -> None:
    game = make(batch_size=200, randomize_opener_start=True)
    starts = game._positions[:, 0]
    assert (starts[:, 0] == 3).all()
    assert set(starts[:, 1].tolist()) == set(range(1, 8))


@pytest.mark.parametrize("params", [{}, {"randomize_opener_start": True, "open_range": "adjacent"}])
def test_determinism_and_batch_equals_single_copies(params: dict) -> None:
    seeds = np.array([11, 4242, 4242, 2**50 + 1])
    draw = np.random.default_rng(2)
    actions = draw.integers(0, 6, size=(60, len(seeds), 2))
    actions[:, 2] = actions[:, 1]
    batch = rollout(params, seeds, actions)
    again = rollout(params, seeds, actions)
    for key in batch:
        np.testing.assert_array_equal(batch[key], again[key], err_msg=key)
        for b in range(len(seeds)):
            single = rollout(params, seeds[b : b + 1], actions[:, b : b + 1])
            np.testing.assert_array_equal(batch[key][:, b], single[key][:, 0], err_msg=f"{key} copy {b}")
    np.testing.assert_array_equal(batch["obs"][:, 1], batch["obs"][:, 2])
    if params:
        starts = rollout(params, np.arange(16), actions[:, :1].repeat(16, axis=1))["obs"][0]
        assert len({row.tobytes() for row in starts}) > 1


def test_conflict_winner_depends_on_the_seed_and_a_batch_matches_single_copies() -> None:
    def opener_wins(seeds: np.ndarray) -> np.ndarray:
        game = make(batch_size=len(seeds))
        game.reset(seeds)
        game._positions[:] = [(3, 2), (3, 4)]
        game.step(np.tile([RIGHT, LEFT], (len(seeds), 1)))
        return (game._positions[:, 0] == (3, 3)).all(axis=-1)

    seeds = np.arange(16) * 7919
    batch = opener_wins(seeds)
    np.testing.assert_array_equal(batch, np.concatenate([opener_wins(seeds[b : b + 1]) for b in range(16)]))
    assert 0 < batch.sum() < 16


def test_render_modes() -> None:
    game = make(batch_size=2)
    text = game.render("ansi", index=1)
    assert isinstance(text, str) and "\x1b[" in text and len(text.splitlines()) == 6
    image = game.render("rgb_array")
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.shape == (80, 144, 3)
    with pytest.raises(ValueError, match="'ansi' or 'rgb_array'"):
        game.render("human")
