"""Rule tests for Harvest (games.md §4): regrowth by neighbour count, FIRE, eating, batch equivalence."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from arena.games import make_game
from arena.games.gridworld import APPLE, FIRE, FLOOR, LEFT, MOVE_UP, RIGHT, STAY, UP
from arena.games.harvest import HARVEST_MAP, Harvest, HarvestParams

REGROWTH = (0.0, 0.005, 0.02, 0.05)


def harvest(batch_size: int = 1, **params: object) -> Harvest:
    game = make_game("harvest", params, batch_size)
    game.reset(np.arange(batch_size, dtype=np.uint64))
    return game


def apple_grid(game: Harvest) -> np.ndarray:
    """`[B, H, W]` bool apples, cut out of the padded map."""
    g = game.grid
    padded = game.cells.reshape(game.batch_size, -1, g.padded_width) == APPLE
    return padded[:, g.margin : g.margin + g.height, g.margin : g.margin + g.width]


def neighbour_counts(apples: np.ndarray) -> np.ndarray:
    """Apples in each cell's 3×3 block (cells with j² + k² ≤ 2), computed on plain 2-D arrays."""
    padded = np.pad(apples, ((0, 0), (1, 1), (1, 1)))
    H, W = apples.shape[1:]
    return sum(padded[:, 1 + j : 1 + j + H, 1 + k : 1 + k + W].astype(int) for j in (-1, 0, 1) for k in (-1, 0, 1))


def park_on_spawn_cells(game: Harvest) -> None:
    """Agents on the first spawn cells (never apple cells), facing up."""
    rows, cols = game.grid.row_col(game.spawn_cells[: game.n_agents])
    game.place_agents(rows, cols, np.full(game.n_agents, UP))


def test_map_counts_match_games_md() -> None:
    text = "".join(HARVEST_MAP)
    assert (len(HARVEST_MAP), len(HARVEST_MAP[0])) == (16, 38)
    assert {ch: text.count(ch) for ch in "AP@"} == {"A": 155, "P": 20, "@": 104}


def test_reset_puts_an_apple_on_every_apple_cell() -> None:
    game = harvest(3)
    assert (game.apple_count() == 155).all()
    assert game.observation_spaces[0].shape == (15, 15, 3)
    assert game.action_names[0][-1] == "fire" and game.action_spaces[0].n == 8


def test_bad_parameters_are_rejected() -> None:
    with pytest.raises(ValidationError, match="regrowth_probs"):
        HarvestParams(regrowth_probs=(0.0, 0.1, 0.2, 1.5))
    with pytest.raises(ValidationError, match="n_agents"):
        HarvestParams(n_agents=11)


def test_regrowth_frequency_per_neighbour_count() -> None:
    """Random apple layouts; one step with everyone staying; per-count frequencies match the table."""
    B = 3000
    game = harvest(B)
    park_on_spawn_cells(game)
    present = np.random.default_rng(0).random((B, len(game.apple_cells))) < 0.5
    game.cells[:, game.apple_cells] = np.where(present, APPLE, FLOOR)
    before = apple_grid(game)
    counts = neighbour_counts(before)
    game.step(np.full((B, 5), STAY))
    after = apple_grid(game)
    candidate = np.zeros_like(before)
    rows, cols = game.grid.row_col(game.apple_cells)
    candidate[:, rows, cols] = True
    candidate &= ~before
    for n in range(10):
        trials = candidate & (counts == n)
        if not trials.any():
            continue
        p = REGROWTH[min(n, 3)]
        grown = (after & trials).sum()
        total = trials.sum()
        tolerance = 5 * np.sqrt(p * (1 - p) / total) + 1e-12
        assert abs(grown / total - p) <= tolerance, (n, grown, total)
    assert not (after & ~before & ~candidate).any()  # nothing grows off the apple cells


def test_isolated_cells_and_distance_two_never_regrow() -> None:
    """(r ± 2, c) is outside the 3×3 block: an apple there does not seed regrowth; a bare map stays bare."""
    B = 64
    game = harvest(B)
    park_on_spawn_cells(game)
    game.cells[:, game.apple_cells] = FLOOR
    # Apple cells (2, 9) and (4, 9) are two rows apart; (2, 9) only ever sees the apple at (4, 9)
    # and whatever grows from it, which never reaches row 3 without first passing (3, 8…10).
    seed, target = game.grid.flat(4, 9), game.grid.flat(2, 9)
    assert seed in game.apple_cells and target in game.apple_cells
    game.cells[:, seed] = APPLE
    for _ in range(200):
        before = neighbour_counts(apple_grid(game))[:, 2, 9]
        game.step(np.full((B, 5), STAY))
        grew = game.cells[:, target] == APPLE
        assert not (grew & (before == 0)).any()
    assert (apple_grid(game).sum(axis=(1, 2)) > 1).any()  # the seed's real neighbours do grow

    bare = harvest(B)
    park_on_spawn_cells(bare)
    bare.cells[:, bare.apple_cells] = FLOOR
    for _ in range(100):
        bare.step(np.full((B, 5), STAY))
    assert (bare.apple_count() == 0).all()


def test_no_cascade_within_a_step() -> None:
    """Regrowth reads the map before this step's new apples: certain regrowth spreads one ring per step."""
    game = harvest(1, regrowth_probs=(0.0, 1.0, 1.0, 1.0))
    park_on_spawn_cells(game)
    game.cells[:, game.apple_cells] = FLOOR
    game.cells[:, game.grid.flat(3, 9)] = APPLE  # inside the patch of rows 2–5 around column 9
    game.step(np.full((1, 5), STAY))
    grown = apple_grid(game)[0]
    rows, cols = np.nonzero(grown)
    assert (np.abs(rows - 3) <= 1).all() and (np.abs(cols - 9) <= 1).all()


def test_eating_and_fire() -> None:
    game = harvest(1)
    park_on_spawn_cells(game)
    # Agent 0 faces RIGHT at (1, 12) next to the apple at (1, 13); agent 2 at (4, 4) faces LEFT and
    # fires across the apple at (4, 2) at agent 1 on (4, 1).
    game.place_agents(np.array([1, 4, 4, 14, 14]), np.array([12, 1, 4, 8, 24]), np.array([RIGHT, UP, LEFT, UP, UP]))
    assert game.cells[0, game.grid.flat(1, 13)] == APPLE
    result = game.step(np.array([[MOVE_UP, STAY, FIRE, STAY, STAY]]))
    assert result.rewards[0].tolist() == [1, -50, -1, 0, 0]
    assert result.events["apples"][0, 0] == 1 and result.events["hit"][0, 1] == 1
    assert result.events["fired"][0, 2] == 1 and result.events["fire_actions"][0, 2] == 1
    assert game.cells[0, game.grid.flat(1, 13)] == FLOOR
    assert game.cells[0, game.grid.flat(4, 2)] == APPLE


def test_apples_never_grow_under_agents() -> None:
    B = 200
    game = harvest(B, regrowth_probs=(1.0, 1.0, 1.0, 1.0))
    rows, cols = game.grid.row_col(game.apple_cells[:5])
    game.place_agents(rows, cols, np.full(5, UP))
    game.cells[:, game.apple_cells[:5]] = FLOOR
    game.step(np.full((B, 5), STAY))
    assert (game.cells[:, game.apple_cells[:5]] == FLOOR).all()


def test_batch_equals_single_copies_and_is_deterministic() -> None:
    seeds = np.array([11, 12, 13, 2**33], dtype=np.uint64)
    batch, again = make_game("harvest", {}, 4), make_game("harvest", {}, 4)
    singles = [make_game("harvest", {}, 1) for _ in seeds]
    batch.reset(seeds)
    again.reset(seeds)
    for i, s in enumerate(singles):
        s.reset(seeds[i : i + 1])
    actions = np.random.default_rng(3).integers(0, 8, (400, 4, 5))
    for step in range(400):
        result, repeat = batch.step(actions[step]), again.step(actions[step])
        alone = [s.step(actions[step, i : i + 1]) for i, s in enumerate(singles)]
        assert np.array_equal(result.rewards, np.concatenate([r.rewards for r in alone]))
        assert np.array_equal(result.rewards, repeat.rewards)
        if step % 50 == 49:
            for agent in range(5):
                assert np.array_equal(result.obs[agent], np.concatenate([r.obs[agent] for r in alone]))
    assert np.array_equal(batch.cells, again.cells)
    assert batch.apple_count().tolist() == [s.apple_count()[0] for s in singles]


def test_random_play_depletes_the_orchard() -> None:
    """Sanity of the dynamics: random agents eat apples and the count never exceeds the 155 cells."""
    game = harvest(32)
    actions = np.random.default_rng(1).integers(0, 8, (300, 32, 5))
    eaten = 0.0
    for step in range(300):
        eaten += game.step(actions[step]).events["apples"].sum()
    assert eaten > 0 and (game.apple_count() <= 155).all()
    assert game.visibility().shape == (32, 5, 5)
    assert game.render("rgb_array").shape == (16 * 8, 38 * 8, 3)
