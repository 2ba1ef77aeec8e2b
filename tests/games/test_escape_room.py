"""Rule tests for Escape Room ER(N, M), its give-action baseline and the asymmetric LOLA variant."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from arena.games import make_game
from arena.games.escape_room import DOOR, LEVER, START, EscapeRoom, EscapeRoomAsym

ONE_HOT = {LEVER: [1, 0, 0], START: [0, 1, 0], DOOR: [0, 0, 1]}


def make(batch_size: int = 1, **params: object) -> EscapeRoom:
    game = make_game("escape_room", params, batch_size)
    assert isinstance(game, EscapeRoom)
    game.reset(np.arange(batch_size))
    return game


def step(game: EscapeRoom | EscapeRoomAsym, *joint: int):
    return game.step(np.array([joint], dtype=np.int64))


def rollout(name: str, params: dict, seeds: np.ndarray, actions: np.ndarray) -> dict[str, np.ndarray]:
    """Run `actions` `[T, B, N]` from `reset(seeds)`; stack everything the game returns."""
    game = make_game(name, params, len(seeds))
    record: dict[str, list[np.ndarray]] = {"obs": [np.concatenate(game.reset(seeds), axis=1)]}
    for joint in actions:
        result = game.step(joint)
        for key, value in [
            ("obs", np.concatenate(result.obs, axis=1)),
            ("rewards", result.rewards),
            ("terminated", result.terminated),
            ("truncated", result.truncated),
            *result.events.items(),
        ]:
            record.setdefault(key, []).append(value)
    return {key: np.stack(values) for key, values in record.items()}


def test_door_opens_only_with_m_lever_actions_this_step() -> None:
    game = make(n_agents=3, min_at_lever=2)
    result = step(game, LEVER, DOOR, DOOR)
    np.testing.assert_array_equal(result.rewards, [[-1, -1, -1]])
    assert not result.terminated[0]
    result = step(game, LEVER, LEVER, DOOR)
    np.testing.assert_array_equal(result.rewards, [[0, -1, 10]])
    assert result.terminated[0]


def test_door_counts_lever_actions_not_positions_and_rewards_use_pre_move_positions() -> None:
    game = make()
    result = step(game, LEVER, START)
    np.testing.assert_array_equal(result.rewards, [[-1, 0]])
    assert not result.terminated[0]  # door open, but nobody at the door
    result = step(game, LEVER, START)
    np.testing.assert_array_equal(result.rewards, [[0, 0]])  # staying is free
    result = step(game, START, DOOR)
    np.testing.assert_array_equal(result.rewards, [[-1, -1]])  # agent 0 left the lever: door closed
    assert not result.terminated[0]
    result = step(game, LEVER, DOOR)
    np.testing.assert_array_equal(result.rewards, [[-1, 10]])  # already at the door still collects
    assert result.terminated[0]


def test_open_door_without_anyone_ending_there_does_not_terminate() -> None:
    game = make()
    step(game, START, DOOR)
    result = step(game, LEVER, START)
    np.testing.assert_array_equal(result.rewards, [[-1, -1]])
    assert not result.terminated[0]


def test_observation_one_hots_own_position_first_then_others_in_id_order() -> None:
    game = make(n_agents=3, min_at_lever=2)
    for obs in game.observe():
        np.testing.assert_array_equal(obs, [ONE_HOT[START] * 3])
    obs = step(game, LEVER, START, DOOR).obs
    np.testing.assert_array_equal(obs[0], [ONE_HOT[LEVER] + ONE_HOT[START] + ONE_HOT[DOOR]])
    np.testing.assert_array_equal(obs[1], [ONE_HOT[START] + ONE_HOT[LEVER] + ONE_HOT[DOOR]])
    np.testing.assert_array_equal(obs[2], [ONE_HOT[DOOR] + ONE_HOT[LEVER] + ONE_HOT[START]])
    assert game.observation_spaces[0].shape == (9,)
    assert game.obs_includes_incentives_given
    np.testing.assert_array_equal(game.state(), obs[0])


def test_episode_truncates_at_max_steps() -> None:
    game = make(max_steps=5)
    truncated = [bool(step(game, START, START).truncated[0]) for _ in range(5)]
    assert truncated == [False] * 4 + [True]


def test_terminated_copy_stays_terminated_with_zero_rewards() -> None:
    game = make(batch_size=2)
    result = game.step(np.array([[LEVER, DOOR], [START, DOOR]]))
    np.testing.assert_array_equal(result.terminated, [True, False])
    result = game.step(np.array([[LEVER, DOOR], [LEVER, DOOR]]))
    np.testing.assert_array_equal(result.terminated, [True, True])
    np.testing.assert_array_equal(result.rewards, [[0, 0], [-1, 10]])
    np.testing.assert_array_equal(result.events["door_exits"], [[0, 0], [0, 1]])


@pytest.mark.parametrize(("n", "m", "optimum"), [(2, 1, 9), (3, 2, 8), (5, 3, 17)])
def test_scripted_optimum_from_fixed_start(n: int, m: int, optimum: int) -> None:
    game = make(n_agents=n, min_at_lever=m)
    result = step(game, *([LEVER] * m + [DOOR] * (n - m)))
    assert result.rewards.sum() == optimum == 10 * (n - m) - m
    assert result.terminated[0]


def test_random_starts_are_uniform_and_the_optimum_counts_agents_already_at_the_lever() -> None:
    n, m, batch = 3, 2, 512
    game = make(batch_size=batch, n_agents=n, min_at_lever=m, randomize=True)
    starts = game.observe()[0][:, :3].argmax(axis=1)
    counts = np.bincount(starts, minlength=3)
    assert counts.min() > batch / 3 * 0.75
    positions = game.state().reshape(batch, n, 3).argmax(axis=2)
    # Optimal joint action: the M agents nearest to pulling (those at the lever first) pull, the rest exit.
    lever_rank = np.argsort(np.argsort(positions != LEVER, axis=1, kind="stable"), axis=1)
    actions = np.where(lever_rank < m, LEVER, DOOR)
    returns = game.step(actions).rewards.sum(axis=1)
    at_lever = (positions == LEVER).sum(axis=1)
    np.testing.assert_array_equal(returns, 10 * (n - m) - np.maximum(0, m - at_lever))
    assert abs(returns.mean() - (10 - 28 / 27)) < 0.15


def test_give_actions_two_agents() -> None:
    game = make(give_actions=True)
    assert game.action_spaces[0].n == 6
    assert game.observation_spaces[0].shape == (7,)
    result = step(game, LEVER + 3, DOOR)
    np.testing.assert_array_equal(result.rewards, [[-1 - 2, 10 + 2]])
    np.testing.assert_array_equal(result.obs[0], [ONE_HOT[LEVER] + ONE_HOT[DOOR] + [2.0]])
    np.testing.assert_array_equal(result.obs[1], [ONE_HOT[DOOR] + ONE_HOT[LEVER] + [0.0]])
    np.testing.assert_array_equal(result.events["gifts_given"], [[2, 0]])


def test_give_actions_three_agents_bit_pattern_and_cost() -> None:
    game = make(n_agents=3, min_at_lever=2, give_actions=True, gift_value=1.5, gift_cost_coeff=0.5)
    assert game.action_spaces[0].n == 12
    # agent 0: start + give to both (9..11); agent 1: start + give to its second other = agent 2 (6..8);
    # agent 2: start + give to its first other = agent 0 (3..5).
    result = step(game, START + 9, START + 6, START + 3)
    np.testing.assert_allclose(result.rewards, [[-1.5 + 1.5, 1.5 - 0.75, 1.5 + 1.5 - 0.75]])
    np.testing.assert_allclose(result.obs[0][0, 9:], [1.5, 1.5])
    np.testing.assert_allclose(result.obs[1][0, 9:], [0.0, 1.5])
    np.testing.assert_allclose(result.obs[2][0, 9:], [1.5, 0.0])
    assert game.action_names[1][6] == "lever+give2"


def test_fixed_episode_length_runs_to_t_and_pays_nothing_after_success() -> None:
    game = make(give_actions=True, fixed_episode_length=True, max_steps=3)
    result = step(game, LEVER, DOOR)
    assert not result.terminated[0]
    np.testing.assert_array_equal(result.rewards, [[-1, 10]])
    result = step(game, START + 3, DOOR)
    np.testing.assert_array_equal(result.rewards, [[0, 0]])
    assert not result.terminated[0]
    assert step(game, START, DOOR).truncated[0]


def test_parameter_validation_messages() -> None:
    with pytest.raises(ValidationError, match=r"min_at_lever \(M=2\) must be < n_agents \(N=2\)"):
        make_game("escape_room", {"n_agents": 2, "min_at_lever": 2}, 1)
    with pytest.raises(ValidationError, match="gift_value only apply with give_actions=True"):
        make_game("escape_room", {"gift_value": 1.0}, 1)


def test_asymmetric_variant_rules() -> None:
    game = make_game("escape_room_asym", {"max_steps": 4}, 1)
    assert isinstance(game, EscapeRoomAsym)
    obs = game.reset(np.array([0]))
    np.testing.assert_array_equal(obs[0], [[1, 0, 1, 0, 0]])
    np.testing.assert_array_equal(obs[1], [[1, 0]])
    result = step(game, 0, 0)  # A1 stays at start: still −1; A2 stays: 0
    np.testing.assert_array_equal(result.rewards, [[-1, 0]])
    result = step(game, 3, 0)  # door + give, but the door is closed
    np.testing.assert_array_equal(result.rewards, [[-1 - 2, 2]])
    np.testing.assert_array_equal(result.obs[0], [[0, 1, 1, 0, 2]])
    result = step(game, 1, 1)  # A2 pulls the lever: A1 at the door collects, episode is solved
    np.testing.assert_array_equal(result.rewards, [[10, -1]])
    assert not result.terminated[0]
    result = step(game, 2, 0)
    np.testing.assert_array_equal(result.rewards, [[0, 0]])
    assert result.truncated[0] and not result.terminated[0]
    assert [space.n for space in game.action_spaces] == [4, 2]
    no_gifts = make_game("escape_room_asym", {"allow_giving": False}, 1)
    assert no_gifts.action_spaces[0].n == 2


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("escape_room", {"n_agents": 3, "min_at_lever": 2, "randomize": True}),
        ("escape_room", {"n_agents": 3, "min_at_lever": 1, "randomize": True, "give_actions": True}),
        ("escape_room_asym", {}),
    ],
)
def test_determinism_and_batch_equals_single_copies(name: str, params: dict) -> None:
    game = make_game(name, params, 1)
    seeds = np.array([3, 17, 17, 123456789, 2**40])
    draw = np.random.default_rng(0)
    actions = np.stack(
        [draw.integers(0, space.n, size=(5, len(seeds))) for space in game.action_spaces], axis=-1
    )
    actions[:, 2] = actions[:, 1]  # copies 1 and 2 share a seed and actions, so must agree
    batch = rollout(name, params, seeds, actions)
    again = rollout(name, params, seeds, actions)
    for key in batch:
        np.testing.assert_array_equal(batch[key], again[key], err_msg=key)
        for b, seed in enumerate(seeds):
            single = rollout(name, params, seeds[b : b + 1], actions[:, b : b + 1])
            np.testing.assert_array_equal(batch[key][:, b], single[key][:, 0], err_msg=f"{key} seed {seed}")
    np.testing.assert_array_equal(batch["obs"][:, 1], batch["obs"][:, 2])
    if params.get("randomize"):
        starts = rollout(name, params, np.arange(16), actions[:, :1].repeat(16, axis=1))["obs"][0]
        assert len({row.tobytes() for row in starts}) > 1


@pytest.mark.parametrize("name", ["escape_room", "escape_room_asym"])
def test_render_modes(name: str) -> None:
    game = make_game(name, {}, 2)
    game.reset(np.arange(2))
    text = game.render("ansi", index=1)
    assert isinstance(text, str) and "\x1b[" in text
    image = game.render("rgb_array")
    assert isinstance(image, np.ndarray) and image.dtype == np.uint8 and image.ndim == 3
    with pytest.raises(ValueError, match="'ansi' or 'rgb_array'"):
        game.render("human")
