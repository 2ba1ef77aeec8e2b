"""Contract tests every registered game must pass, parametrized over whatever `GAMES` holds.

Games with default parameters are rolled out under random (mask-respecting) actions drawn from fixed
numpy generators: a run must be reproducible from its seeds, a batch must equal its copies run one
by one, observations must lie in their spaces, and the PettingZoo adapter must pass PettingZoo's
own API, render and seed tests.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field

import gymnasium as gym
import numpy as np
import pytest
from annotated_types import Ge, Gt, Le, Lt
from pettingzoo.test import parallel_api_test, parallel_seed_test, render_test
from pettingzoo.utils.conversions import parallel_to_aec
from pydantic import ValidationError

from arena.games import GAMES, Game, game_class, make_game
from arena.pettingzoo_env import ArenaParallelEnv

NAMES = sorted(GAMES)
STEPS = 64


@dataclass
class Trajectory:
    """Everything a rollout returned, step by step, for exact comparison."""

    obs: list[list[np.ndarray]] = field(default_factory=list)
    rewards: list[np.ndarray] = field(default_factory=list)
    terminated: list[np.ndarray] = field(default_factory=list)
    truncated: list[np.ndarray] = field(default_factory=list)
    events: list[dict[str, np.ndarray]] = field(default_factory=list)
    masks: list[list[np.ndarray] | None] = field(default_factory=list)
    states: list[np.ndarray] = field(default_factory=list)
    visibility: list[np.ndarray] = field(default_factory=list)
    ansi: list[list[str]] = field(default_factory=list)

    def copy_view(self, b: int) -> Trajectory:
        """The trajectory of copy b alone, shaped as if it had been run with B = 1."""
        pick = slice(b, b + 1)
        return Trajectory(
            obs=[[o[pick] for o in obs] for obs in self.obs],
            rewards=[r[pick] for r in self.rewards],
            terminated=[t[pick] for t in self.terminated],
            truncated=[t[pick] for t in self.truncated],
            events=[{k: v[pick] for k, v in e.items()} for e in self.events],
            masks=[None if m is None else [x[pick] for x in m] for m in self.masks],
            states=[s[pick] for s in self.states],
            visibility=[v[pick] for v in self.visibility],
            ansi=[[a[b]] for a in self.ansi],
        )


def assert_same(a: Trajectory, b: Trajectory) -> None:
    for name in ("obs", "rewards", "terminated", "truncated", "masks", "states", "visibility", "ansi"):
        left, right = getattr(a, name), getattr(b, name)
        assert len(left) == len(right), name
        for t, (x, y) in enumerate(zip(left, right)):
            if isinstance(x, list):
                assert len(x) == len(y), f"{name} at step {t}"
                for xi, yi in zip(x, y):
                    _assert_equal(xi, yi, f"{name} at step {t}")
            else:
                _assert_equal(x, y, f"{name} at step {t}")
    for t, (x, y) in enumerate(zip(a.events, b.events)):
        assert x.keys() == y.keys(), f"event keys at step {t}"
        for key in x:
            _assert_equal(x[key], y[key], f"event {key!r} at step {t}")


def _assert_equal(x: object, y: object, what: str) -> None:
    if isinstance(x, str) or x is None:
        assert x == y, what
    else:
        np.testing.assert_array_equal(x, y, err_msg=what)


def random_actions(game: Game, rngs: list[np.random.Generator]) -> np.ndarray:
    """`[B, N]` uniformly random available actions, copy b's drawn from `rngs[b]` alone."""
    masks = game.action_masks()
    actions = np.zeros((game.batch_size, game.n_agents), dtype=np.int64)
    for i, space in enumerate(game.action_spaces):
        assert isinstance(space, gym.spaces.Discrete), "arena actions are integers"
        for b, rng in enumerate(rngs):
            keys = rng.random(int(space.n))
            if masks is not None:
                keys = np.where(masks[i][b], keys, -1.0)
            actions[b, i] = int(space.start) + int(np.argmax(keys))
    return actions


def _record(game: Game, traj: Trajectory, obs: list[np.ndarray]) -> None:
    for i, (o, space) in enumerate(zip(obs, game.observation_spaces)):
        assert o.shape == (game.batch_size, *space.shape), f"agent {i} obs shape {o.shape}"
        for b in range(game.batch_size):
            assert space.contains(o[b]), f"agent {i} copy {b} obs outside its space: {o[b]}"
    masks = game.action_masks()
    if masks is not None:
        for mask, space in zip(masks, game.action_spaces):
            assert mask.shape == (game.batch_size, space.n) and mask.dtype == bool
            assert mask.any(axis=1).all(), "some agent has no available action"
    visibility = game.visibility()
    assert visibility.shape == (game.batch_size, game.n_agents, game.n_agents)
    traj.obs.append([o.copy() for o in obs])
    traj.masks.append(None if masks is None else [m.copy() for m in masks])
    traj.states.append(np.asarray(game.state()).copy())
    traj.visibility.append(visibility.copy())
    traj.ansi.append([game.render("ansi", b) for b in range(game.batch_size)])


def rollout(
    game: Game, seeds: list[int], action_seed: int, action_keys: list[int] | None = None, steps: int = STEPS
) -> Trajectory:
    """Reset `game` with `seeds` and step it `steps` times; copy b's actions come from a generator
    seeded by (action_seed, action_keys[b]), by default the copy's own seed, so the same copy gets
    the same actions in any batch."""
    keys = seeds if action_keys is None else action_keys
    rngs = [np.random.default_rng([action_seed, key]) for key in keys]
    traj = Trajectory()
    _record(game, traj, game.reset(np.array(seeds, dtype=np.uint64)))
    ended = np.zeros(game.batch_size, dtype=bool)
    for _ in range(steps):
        result = game.step(random_actions(game, rngs))
        assert result.rewards.shape == (game.batch_size, game.n_agents)
        assert result.terminated.shape == result.truncated.shape == (game.batch_size,)
        assert result.terminated[ended].all(), "a terminated copy must stay terminated"
        assert (result.rewards[ended] == 0).all(), "a terminated copy must get zero rewards"
        for key, value in result.events.items():
            assert value.shape == (game.batch_size, game.n_agents), f"event {key!r} shape"
        ended |= result.terminated
        _record(game, traj, result.obs)
        traj.rewards.append(np.asarray(result.rewards).copy())
        traj.terminated.append(np.asarray(result.terminated).copy())
        traj.truncated.append(np.asarray(result.truncated).copy())
        traj.events.append({k: np.asarray(v).copy() for k, v in result.events.items()})
    return traj


@pytest.mark.parametrize("name", NAMES)
def test_registry_entry(name: str) -> None:
    cls = game_class(name)
    assert cls.name == name
    game = make_game(name, None, 2)
    assert game.n_agents >= 1 and len(game.observation_spaces) == game.n_agents
    assert len(game.action_names) == game.n_agents
    for names, space in zip(game.action_names, game.action_spaces):
        assert len(names) == space.n
    assert game.max_steps >= 1


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_trajectory(name: str) -> None:
    game = make_game(name, None, 2)
    first = rollout(game, [7, 8], action_seed=1)
    rollout(game, [9, 10], action_seed=2)
    again = rollout(game, [7, 8], action_seed=1)
    fresh = rollout(make_game(name, None, 2), [7, 8], action_seed=1)
    assert_same(first, again)
    assert_same(first, fresh)


@pytest.mark.parametrize("name", NAMES)
def test_different_seeds_differ(name: str) -> None:
    """Copies with different seeds but the same actions must part ways somewhere. Skipped for games
    that draw no random number (deterministic under default parameters); several action streams are
    tried because some games draw numbers that matter only in rare states (e.g. move conflicts)."""
    game = make_game(name, None, 8)
    draws = []
    uniform = game.rng.uniform

    def counting(*shape: int) -> np.ndarray:
        draws.append(shape)
        return uniform(*shape)

    game.rng.uniform = counting  # type: ignore[method-assign]
    for action_seed in range(8):
        seeds = [100 + 8 * action_seed + b for b in range(8)]
        traj = rollout(game, seeds, action_seed, action_keys=[0] * 8, steps=2 * STEPS)
        if not draws:
            pytest.skip(f"{name} draws no random numbers under default parameters")
        for b in range(1, 8):
            try:
                assert_same(traj.copy_view(0), traj.copy_view(b))
            except AssertionError:
                return
    pytest.fail(f"{name} draws random numbers but different seeds gave identical trajectories")


@pytest.mark.parametrize("name", NAMES)
def test_batch_equals_single_copies(name: str) -> None:
    seeds = [3, 1000, 2**40 + 5, 17]
    batch = rollout(make_game(name, None, len(seeds)), seeds, action_seed=5)
    for b, seed in enumerate(seeds):
        single = rollout(make_game(name, None, 1), [seed], action_seed=5)
        assert_same(batch.copy_view(b), single)


@pytest.mark.parametrize("name", NAMES)
def test_episode_ends_by_max_steps(name: str) -> None:
    game = make_game(name, None, 3)
    game.reset(np.array([1, 2, 3], dtype=np.uint64))
    rngs = [np.random.default_rng(b) for b in range(3)]
    for t in range(1, game.max_steps + 1):
        result = game.step(random_actions(game, rngs))
        if t < game.max_steps:
            assert not result.truncated.any(), f"truncated early at step {t}"
    assert (result.terminated | result.truncated).all()


@pytest.mark.parametrize("name", NAMES)
def test_render_modes(name: str) -> None:
    game = make_game(name, None, 2)
    game.reset(np.array([4, 5], dtype=np.uint64))
    rngs = [np.random.default_rng(b) for b in range(2)]
    for _ in range(3):
        for index in range(2):
            assert isinstance(game.render("ansi", index), str)
            image = game.render("rgb_array", index)
            assert isinstance(image, np.ndarray) and image.dtype == np.uint8
            assert image.ndim == 3 and image.shape[2] == 3 and image.shape[0] > 0 and image.shape[1] > 0
        game.step(random_actions(game, rngs))
    with pytest.raises(ValueError):
        game.render("no_such_mode", 0)


def _violations(annotation_metadata: list[object]) -> list[float]:
    """Values that break a field's numeric bounds."""
    values: list[float] = []
    for bound in annotation_metadata:
        if isinstance(bound, Ge):
            values.append(bound.ge - 1)
        elif isinstance(bound, Gt):
            values.append(bound.gt)
        elif isinstance(bound, Le):
            values.append(bound.le + 1)
        elif isinstance(bound, Lt):
            values.append(bound.lt)
    return values


@pytest.mark.parametrize("name", NAMES)
def test_bad_params_raise_validation_error(name: str) -> None:
    with pytest.raises(ValidationError, match="no_such_param"):
        make_game(name, {"no_such_param": 1}, 1)
    for field_name, info in game_class(name).Params.model_fields.items():
        for value in _violations(info.metadata):
            with pytest.raises(ValidationError, match=field_name):
                make_game(name, {field_name: value}, 1)
        if info.annotation in (int, float, bool):
            with pytest.raises(ValidationError, match=field_name):
                make_game(name, {field_name: "not a number"}, 1)


@pytest.mark.parametrize("name", NAMES)
def test_pettingzoo_parallel_api(name: str) -> None:
    with contextlib.redirect_stdout(io.StringIO()):
        parallel_api_test(ArenaParallelEnv(name), num_cycles=1000)
        parallel_seed_test(lambda: ArenaParallelEnv(name), num_cycles=200)


@pytest.mark.parametrize("name", NAMES)
def test_pettingzoo_render(name: str) -> None:
    def env_fn(render_mode: str | None = None) -> object:
        return parallel_to_aec(ArenaParallelEnv(name, render_mode=render_mode))

    with contextlib.redirect_stdout(io.StringIO()):
        render_test(env_fn)


@pytest.mark.parametrize("name", NAMES)
def test_pettingzoo_matches_game_copy(name: str) -> None:
    """The adapter seeded s plays exactly the arena copy seeded s, and drops agents when done."""
    env = ArenaParallelEnv(name)
    game = make_game(name, None, 1)
    obs, infos = env.reset(seed=21)
    expected = game.reset(np.array([21], dtype=np.uint64))
    rngs = [np.random.default_rng(0)]
    for _ in range(game.max_steps):
        for i, agent in enumerate(env.possible_agents):
            np.testing.assert_array_equal(obs[agent], expected[i][0])
            assert env.observation_space(agent).contains(obs[agent])
        actions = random_actions(game, rngs)
        obs, rewards, terms, truncs, infos = env.step(dict(zip(env.possible_agents, actions[0].tolist())))
        result = game.step(actions)
        expected = result.obs
        assert list(rewards.values()) == result.rewards[0].tolist()
        masks = game.action_masks()
        for i, agent in enumerate(env.possible_agents):
            assert infos[agent]["events"] == {k: float(v[0, i]) for k, v in result.events.items()}
            if masks is not None:
                np.testing.assert_array_equal(infos[agent]["action_mask"], masks[i][0])
        if result.terminated[0] or result.truncated[0]:
            assert env.agents == [] and all(terms[a] or truncs[a] for a in env.possible_agents)
            break
        assert env.agents == env.possible_agents
    else:
        pytest.fail("episode did not end within max_steps")
    with pytest.raises(RuntimeError):
        env.step({})
