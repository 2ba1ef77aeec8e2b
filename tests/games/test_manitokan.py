"""Rule tests for Manitokan (games.md §6): each fails if the rule it names is implemented wrongly.

Layouts are written as ASCII maps (x = column, y = row, as in MiniGrid) and loaded by writing the
game's state arrays directly after a reset.
"""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from arena.games import StepResult, make_game
from arena.games.manitokan import (
    DOOR,
    DROP,
    EMPTY,
    FORWARD,
    KEY,
    PICK_UP,
    TOGGLE,
    TURN_LEFT,
    TURN_RIGHT,
    WALL,
    Manitokan,
)

EAST, SOUTH, WEST, NORTH = range(4)
#: A no-op for an agent whose front cell holds no key.
NOOP = PICK_UP
UNSEEN = (0, 0, 0)
FLOOR = (1, 0, 0)
GREY_WALL = (2, 5, 0)
BLUE_KEY = (5, 2, 0)
DOOR_0 = (4, 3, 2)
DOOR_1 = (4, 4, 2)


def make(
    layout: str,
    dirs: tuple[int, ...],
    *,
    batch: int = 1,
    carrying: tuple[bool, ...] | None = None,
    positions: dict[int, tuple[int, int]] | None = None,
    resets: int = 1,
    **params: object,
) -> Manitokan:
    """Every copy holds `layout`: '#' wall, '.' floor, 'K' key, '0'-'3' locked door of that agent,
    'a'-'d' agent 0-3 on floor. A door missing from the map counts as already opened. The layout is
    written after the `resets`-th reset."""
    rows = layout.split()
    n = len(dirs)
    game = make_game("manitokan", {"n_agents": n, "size": len(rows) - n, **params}, batch)
    assert isinstance(game, Manitokan)
    for _ in range(resets):
        game.reset(np.arange(batch))
    codes = {"#": WALL, ".": EMPTY, "K": KEY} | {str(i): DOOR + i for i in range(n)}
    pos = dict(positions or {})
    for y, row in enumerate(rows):
        for x, char in enumerate(row):
            if char in "abcd":
                pos.setdefault("abcd".index(char), (x, y))
                char = "."
            game.grid[:, y, x] = codes[char]
    game.pos[:] = [pos[i] for i in range(n)]
    game.dirs[:] = dirs
    game.carrying[:] = carrying or (False,) * n
    game.door_open[:] = [str(i) not in layout for i in range(n)]
    return game


def act(game: Manitokan, *actions: int) -> StepResult:
    return game.step(np.tile(np.array(actions, dtype=np.int64), (game.batch_size, 1)))


def view(obs: np.ndarray) -> list[list[tuple[int, ...]]]:
    """`view(o)[j][i]`: (type, colour, state) at view row j (0 = two ahead) and column i (0 = left)."""
    cells = obs[:27].reshape(3, 3, 3)  # flat index 9·i + 3·j + c
    return [[tuple(int(v) for v in cells[i, j]) for i in range(3)] for j in range(3)]


def reference_view(game: Manitokan, b: int, i: int) -> np.ndarray:
    """Slow MiniGrid-style view, written independently of the vectorized one: cut the 3×3 square the
    agent faces, turn it so the agent faces up, then hide what walls and locked doors occlude."""
    x, y = game.pos[b, i]
    d = int(game.dirs[b, i])
    left, top = {EAST: (x, y - 1), SOUTH: (x - 1, y), WEST: (x - 2, y - 1), NORTH: (x - 1, y - 2)}[d]

    def code(cx: int, cy: int) -> int:
        inside = 0 <= cx < game.width and 0 <= cy < game.height
        return int(game.grid[b, cy, cx]) if inside else WALL

    square = [[code(left + u, top + v) for v in range(3)] for u in range(3)]  # square[u][v], u = x
    for _ in range(d + 1):  # rotate counter-clockwise: new[v][2 - u] = old[u][v]
        turned = [[0] * 3 for _ in range(3)]
        for u in range(3):
            for v in range(3):
                turned[v][2 - u] = square[u][v]
        square = turned
    see = [[square[u][v] == EMPTY or square[u][v] == KEY for v in range(3)] for u in range(3)]
    lit = [[False] * 3 for _ in range(3)]
    lit[1][2] = True
    for v in (2, 1, 0):  # rows away from the agent; sweep each left-to-right, then right-to-left
        for step, columns in ((1, (0, 1)), (-1, (2, 1))):
            for u in columns:
                if lit[u][v] and see[u][v]:
                    lit[u + step][v] = True
                    if v > 0:
                        lit[u + step][v - 1] = lit[u][v - 1] = True
    table = {EMPTY: FLOOR, WALL: GREY_WALL, KEY: BLUE_KEY} | {
        DOOR + k: (4, colour, 2) for k, colour in enumerate((3, 4, 6, 7))
    }
    out = np.zeros((3, 3, 3), dtype=np.uint8)
    for u in range(3):
        for v in range(3):
            if lit[u][v]:
                out[u, v] = table[square[u][v]]
    return out.reshape(-1)


SPEC_LAYOUT = """
######
#.a.0#
#..K.#
#b..1#
#....#
######
"""


def test_spec_layout_view_encoding() -> None:
    """The illustrative layout of games.md §6: agent 0 faces east toward its door, agent 1 south."""
    game = make(SPEC_LAYOUT, (EAST, SOUTH))
    obs0, obs1 = (o[0] for o in game.observe())
    assert obs0.shape == (27,) and obs0.dtype == np.uint8
    # Agent 0 at (2,1) facing east: its left is north (the wall), its right is south.
    assert view(obs0) == [
        [GREY_WALL, DOOR_0, FLOOR],
        [GREY_WALL, FLOOR, BLUE_KEY],
        [GREY_WALL, FLOOR, FLOOR],
    ]
    # Agent 1 at (1,3) facing south: its left is east, its right is the west wall.
    assert view(obs1) == [
        [GREY_WALL, GREY_WALL, GREY_WALL],
        [FLOOR, FLOOR, GREY_WALL],
        [FLOOR, FLOOR, GREY_WALL],
    ]
    assert tuple(obs0[15:18]) == FLOOR  # own cell is (i=1, j=2), indices 15-17


def test_walls_and_locked_doors_occlude() -> None:
    game = make(
        """
        ######
        #.K..#
        #01..#
        #a...#
        #..b.#
        ######
        """,
        (NORTH, EAST),
    )
    assert view(game.observe()[0][0]) == [
        [UNSEEN, UNSEEN, UNSEEN],  # the key at (2,1) is hidden behind the two doors and the wall
        [GREY_WALL, DOOR_0, DOOR_1],
        [GREY_WALL, FLOOR, FLOOR],
    ]
    # A single locked door with floor beside it hides nothing: MiniGrid lights the cell behind it
    # diagonally through the neighbouring floor.
    game.grid[0, 2, 2] = EMPTY
    game.grid[0, 1, 1:3] = [KEY, EMPTY]
    assert view(game.observe()[0][0])[0] == [GREY_WALL, BLUE_KEY, FLOOR]


def test_off_map_cells_read_as_wall_and_are_occluded() -> None:
    game = make(SPEC_LAYOUT, (NORTH, SOUTH), positions={0: (1, 1)})
    assert view(game.observe()[0][0]) == [
        [UNSEEN, UNSEEN, UNSEEN],
        [GREY_WALL, GREY_WALL, GREY_WALL],
        [GREY_WALL, FLOOR, FLOOR],
    ]


def test_vectorized_view_matches_slow_reference() -> None:
    """Random layouts and states: the vectorized view equals the square-rotate-occlude reference."""
    game = make_game("manitokan", {"n_agents": 3, "n_keys": 2}, 48)
    assert isinstance(game, Manitokan)
    game.reset(np.arange(48) + 500)
    rng = np.random.default_rng(0)
    for _ in range(30):
        obs = game.observe()
        for b in range(game.batch_size):
            for i in range(game.n_agents):
                np.testing.assert_array_equal(obs[i][b], reference_view(game, b, i))
        game.step(rng.integers(0, 6, (48, 3)))


def test_turns() -> None:
    game = make(SPEC_LAYOUT, (EAST, NORTH))
    act(game, TURN_LEFT, TURN_RIGHT)
    assert game.dirs[0].tolist() == [NORTH, EAST]
    act(game, TURN_LEFT, TURN_RIGHT)
    assert game.dirs[0].tolist() == [WEST, SOUTH]
    act(game, TURN_LEFT, TURN_LEFT)
    assert game.dirs[0].tolist() == [SOUTH, EAST]
    act(game, TURN_LEFT, TURN_LEFT)
    assert game.dirs[0].tolist() == [EAST, NORTH]


MOVES = """
######
#a0K.#
#....#
#b...#
#...1#
######
"""


@pytest.mark.parametrize(
    ("start", "direction", "end"),
    [
        ((1, 1), EAST, (1, 1)),  # own locked door blocks
        ((1, 1), NORTH, (1, 1)),  # wall blocks
        ((4, 1), WEST, (4, 1)),  # key blocks
        ((1, 1), SOUTH, (1, 2)),  # floor
        ((1, 2), SOUTH, (1, 3)),  # the other agent's cell: agents never block
    ],
)
def test_forward(start: tuple[int, int], direction: int, end: tuple[int, int]) -> None:
    game = make(MOVES, (direction, NORTH), positions={0: start})
    result = act(game, FORWARD, NOOP)
    assert tuple(game.pos[0, 0]) == end
    assert result.rewards.sum() == 0


def test_forward_through_an_opened_door_and_onto_a_shared_cell() -> None:
    game = make(MOVES, (EAST, NORTH), carrying=(True, False))
    act(game, TOGGLE, NOOP)
    assert game.grid[0, 1, 2] == EMPTY and game.door_open[0].tolist() == [True, False]
    act(game, FORWARD, NOOP)
    assert tuple(game.pos[0, 0]) == (2, 1)
    both = make(MOVES, (SOUTH, NORTH), positions={0: (1, 2), 1: (1, 4)})
    act(both, FORWARD, FORWARD)  # they meet on (1,3) in the same step
    assert both.pos[0].tolist() == [[1, 3], [1, 3]]


def test_forward_outcomes_differ_per_copy_in_one_batch() -> None:
    game = make(MOVES, (EAST, NORTH), batch=3)
    game.dirs[:, 0] = [EAST, SOUTH, NORTH]
    act(game, FORWARD, NOOP)
    assert game.pos[:, 0].tolist() == [[1, 1], [1, 2], [1, 1]]


def test_pick_up() -> None:
    game = make(MOVES, (NORTH, NORTH), positions={0: (4, 1)})
    result = act(game, PICK_UP, NOOP)
    assert not game.carrying[0, 0] and result.events["key_picked"].sum() == 0  # key not in front
    game.dirs[0, 0] = WEST
    result = act(game, PICK_UP, NOOP)
    assert game.carrying[0].tolist() == [True, False]
    assert game.grid[0, 1, 3] == EMPTY
    assert result.events["key_picked"][0].tolist() == [1.0, 0.0]
    assert result.rewards.sum() == 0


def test_pick_up_needs_empty_hands() -> None:
    game = make(MOVES, (WEST, NORTH), positions={0: (4, 1)}, carrying=(True, False), n_keys=2)
    act(game, PICK_UP, NOOP)
    assert game.grid[0, 1, 3] == KEY and game.carrying[0, 0]


@pytest.mark.parametrize(("front", "dropped"), [(EMPTY, True), (WALL, False), (KEY, False), (DOOR + 1, False)])
def test_drop_needs_an_object_free_front_cell(front: int, dropped: bool) -> None:
    game = make(MOVES, (SOUTH, EAST), carrying=(True, False), n_keys=2)
    game.grid[0, 2, 1] = front
    result = act(game, DROP, NOOP)
    assert game.carrying[0, 0] == (not dropped)
    assert game.grid[0, 2, 1] == (KEY if dropped else front)
    assert result.events["key_dropped"][0, 0] == float(dropped)


def test_drop_onto_another_agent_who_cannot_pick_it_up_in_place() -> None:
    layout = """
        ######
        #a...#
        #b...#
        #....#
        #..01#
        ######
        """
    game = make(layout, (SOUTH, SOUTH), carrying=(True, False))
    act(game, DROP, PICK_UP)  # dropped onto agent 1's cell, which is not in front of agent 1
    assert game.grid[0, 2, 1] == KEY and game.carrying[0].tolist() == [False, False]
    assert view(game.observe()[1][0])[2][1] == BLUE_KEY  # agent 1 sees the key on its own cell
    act(game, TURN_LEFT, FORWARD)  # agent 0 looks away so that its no-ops stay no-ops
    act(game, NOOP, TURN_LEFT)
    act(game, NOOP, TURN_LEFT)
    act(game, NOOP, PICK_UP)
    assert game.carrying[0].tolist() == [False, True]


def test_masks_follow_carrying() -> None:
    game = make(MOVES, (EAST, NORTH), carrying=(True, False))
    mask0, mask1 = (m[0] for m in game.action_masks())
    assert mask0.tolist() == [True] * 6
    assert mask1.tolist() == [True, True, True, True, False, False]


def test_masked_actions_are_no_ops() -> None:
    game = make(MOVES, (EAST, NORTH))
    before = [a.copy() for a in (game.grid, game.pos, game.dirs, game.carrying, game.door_open)]
    act(game, TOGGLE, DROP)
    after = (game.grid, game.pos, game.dirs, game.carrying, game.door_open)
    for x, y in zip(before, after):
        np.testing.assert_array_equal(x, y)


TWO_DOORS = """
######
#a0..#
#....#
#b1..#
#....#
######
"""


def test_toggle_opens_only_own_door_and_only_with_the_key() -> None:
    game = make(TWO_DOORS, (EAST, EAST), carrying=(False, True))
    game.pos[0, 1] = (1, 1)  # agent 1 faces agent 0's door
    result = act(game, TOGGLE, TOGGLE)
    assert game.grid[0, 1, 2] == DOOR + 0 and result.rewards.sum() == 0
    game.pos[0, 1] = (1, 3)
    result = act(game, NOOP, TOGGLE)
    assert game.grid[0, 3, 2] == EMPTY
    assert result.rewards[0].tolist() == [0.0, 0.5]
    assert game.carrying[0, 1], "the key is kept after opening"
    assert result.events["door_opened"][0].tolist() == [0.0, 1.0]
    assert not result.terminated[0]


def _gift_steps() -> list[tuple[int, int]]:
    """From TWO_DOORS with agent 0 (facing east) holding the key and agent 1 facing north: agent 0
    opens its door, turns and drops the key in front of agent 1, which picks it up in the same step
    (it acts second), turns to its door and opens it."""
    return [(TOGGLE, NOOP), (TURN_RIGHT, NOOP), (DROP, PICK_UP), (NOOP, TURN_RIGHT), (NOOP, TOGGLE)]


def _gift_episode(**params: object) -> list[StepResult]:
    game = make(TWO_DOORS, (EAST, NORTH), carrying=(True, False), **params)
    return [act(game, *step) for step in _gift_steps()]


def test_collective_reward_only_when_every_door_is_open() -> None:
    results = _gift_episode()
    rewards = np.array([r.rewards[0] for r in results])
    np.testing.assert_allclose(rewards, [[0.5, 0], [0, 0], [0, 0], [0, 0], [1.0, 1.5]])
    assert [bool(r.terminated[0]) for r in results] == [False] * 4 + [True]
    assert results[2].events["key_dropped"][0].tolist() == [1.0, 0.0]
    assert results[2].events["key_picked"][0].tolist() == [0.0, 1.0]
    assert results[-1].events["collective"][0].tolist() == [1.0, 1.0]
    np.testing.assert_allclose(rewards.sum(), 3.0)  # the known optimum: 1.5 per agent


def test_one_open_door_never_pays_the_collective_reward() -> None:
    game = make(TWO_DOORS, (EAST, NORTH), carrying=(True, False), episode_limit=20)
    total = act(game, TOGGLE, NOOP).rewards.copy()
    for _ in range(19):
        result = act(game, TOGGLE, NOOP)
        total += result.rewards
    np.testing.assert_allclose(total[0], [0.5, 0.0])
    assert not result.terminated[0] and result.truncated[0]


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"only_sparse": True}, [[0, 0], [0, 0], [0, 0], [0, 0], [1.0, 1.0]]),
        ({"only_immediate": True}, [[0.5, 0], [0, 0], [0, 0], [0, 0], [0, 0.5]]),
        ({"p": [0.2, 0.7]}, [[0.2, 0], [0, 0], [0, 0], [0, 0], [0.9, 1.6]]),
        ({"reward_coop": True}, [[0.5, 0], [0, 0], [1.0, 0], [0, 0], [1.0, 1.5]]),
    ],
)
def test_reward_variants(params: dict[str, object], expected: list[list[float]]) -> None:
    rewards = np.array([r.rewards[0] for r in _gift_episode(**params)])
    np.testing.assert_allclose(rewards, expected, atol=1e-6)


def test_credit_easy_af_penalises_toggling_while_holding_after_opening() -> None:
    game = make(TWO_DOORS, (EAST, NORTH), carrying=(True, False), credit_easy_af=True)
    assert act(game, TOGGLE, NOOP).rewards[0].tolist() == [0.5, 0.0]  # the opening toggle is not penalised
    assert act(game, TOGGLE, NOOP).rewards[0].tolist() == [-0.5, 0.0]
    act(game, TURN_RIGHT, NOOP)
    act(game, DROP, NOOP)
    assert act(game, TOGGLE, NOOP).rewards[0].tolist() == [0.0, 0.0]


def test_terminated_copy_is_frozen_with_zero_rewards() -> None:
    game = make(TWO_DOORS, (EAST, EAST), carrying=(True, True), n_keys=2, batch=2)
    game.carrying[1] = (True, False)
    result = act(game, TOGGLE, TOGGLE)
    assert result.terminated.tolist() == [True, False]
    frozen = [o[0].copy() for o in result.obs]
    for _ in range(3):
        result = act(game, FORWARD, TURN_LEFT)
        assert result.terminated.tolist() == [True, False]
        assert (result.rewards[0] == 0).all()
        assert all(v[0].sum() == 0 for v in result.events.values())
        for before, now in zip(frozen, result.obs):
            np.testing.assert_array_equal(before, now[0])
    assert game.pos[1, 1].tolist() == [1, 3] and game.dirs[1, 1] == SOUTH  # the live copy moved on


def test_key_race_goes_to_the_first_in_agent_order() -> None:
    layout = """
        ######
        #aKb.#
        #....#
        #....#
        #.01.#
        ######
        """
    fixed = make(layout, (EAST, WEST))
    act(fixed, PICK_UP, PICK_UP)
    assert fixed.carrying[0].tolist() == [True, False]
    first = make(layout, (EAST, WEST), agent_order="turn_based")
    second = make(layout, (EAST, WEST), agent_order="turn_based", resets=2)
    assert first.order[0].tolist() == [0, 1] and second.order[0].tolist() == [1, 0]
    act(second, PICK_UP, PICK_UP)
    assert second.carrying[0].tolist() == [False, True]
    shuffled = make(layout, (EAST, WEST), agent_order="random_order", batch=64)
    act(shuffled, PICK_UP, PICK_UP)
    winner = shuffled.carrying.argmax(axis=1)
    np.testing.assert_array_equal(winner, shuffled.order[:, 0])
    assert 0 < winner.sum() < 64


def test_reset_layout_rules() -> None:
    game = make_game("manitokan", {}, 400)
    assert isinstance(game, Manitokan)
    game.reset(np.arange(400))
    assert game.grid.shape == (400, 6, 6)
    border = np.ones((6, 6), dtype=bool)
    border[1:-1, 1:-1] = False
    assert (game.grid[:, border] == WALL).all() and (game.grid[:, ~border] != WALL).all()
    for code in (DOOR, DOOR + 1, KEY):
        assert ((game.grid == code).sum(axis=(1, 2)) == 1).all()
    ar = np.arange(400)
    for i in range(2):
        assert (game.grid[ar, game.pos[:, i, 1], game.pos[:, i, 0]] == EMPTY).all()
    assert (game.pos[:, 0] != game.pos[:, 1]).any(axis=1).all(), "agents start on distinct cells"
    assert set(np.unique(game.dirs)) == {0, 1, 2, 3}
    assert (game.pos[:, :, 0] <= 4).all()
    # x < split with split uniform in {2..5}: P(x = 1) = (1 + 1/2 + 1/3 + 1/4)/4 ≈ 0.52 for agent 0.
    assert 0.42 < (game.pos[:, 0, 0] == 1).mean() < 0.62
    assert not game.carrying.any() and not game.door_open.any()


def test_observation_options() -> None:
    game = make(
        TWO_DOORS,
        (EAST, NORTH),
        carrying=(True, False),
        completion_signal=True,
        key_signal=True,
        obs_last_action=True,
    )
    obs0, obs1 = (o[0] for o in game.observe())
    assert obs0.shape == (27 + 3 + 3 + 6,) == game.observation_spaces[0].shape
    assert obs0[27:].tolist() == [37] * 3 + [53] * 3 + [0] * 6
    assert obs1[27:].tolist() == [37] * 3 + [59] * 3 + [0] * 6
    obs0, obs1 = (o[0] for o in act(game, TOGGLE, TURN_RIGHT).obs)
    assert obs0[27:].tolist() == [23] * 3 + [53] * 3 + [0, 0, 0, 0, 0, 1]
    assert obs1[27:].tolist() == [37] * 3 + [59] * 3 + [0, 1, 0, 0, 0, 0]


def test_show_agents_writes_visible_agents_only() -> None:
    layout = """
        ########
        #......#
        #..b...#
        #..a...#
        #......#
        #0....1#
        #......#
        ########
        """
    plain = make(layout, (NORTH, SOUTH), size=6)
    shown = make(layout, (NORTH, SOUTH), size=6, show_agents=True)
    assert view(plain.observe()[0][0])[1][1] == FLOOR, "by default agents are not encoded"
    assert view(shown.observe()[0][0])[1][1] == (10, 4, 0)  # agent 1 (yellow) one step ahead
    assert view(shown.observe()[1][0])[1][1] == (10, 3, 0)  # agent 0 (purple), seen by agent 1
    shown.grid[0, 2, 2:5] = [WALL, DOOR, WALL]
    shown.pos[0, 1] = (3, 1)
    assert view(shown.observe()[0][0])[0][1] == UNSEEN, "an occluded agent stays hidden"
    assert shown.visibility()[0].tolist() == [[True, False], [False, True]]
    shown.pos[0, 1] = (4, 3)  # right beside agent 0, which in turn is in agent 1's view
    assert view(shown.observe()[0][0])[2][2] == (10, 4, 0)
    assert shown.visibility()[0].tolist() == [[True, True], [True, True]]


def test_public_actions_never_single_out_a_drop() -> None:
    game = make(TWO_DOORS, (EAST, NORTH))
    joint = np.array([[TURN_LEFT, TURN_RIGHT], [FORWARD, PICK_UP], [DROP, TOGGLE]])
    assert game.public_actions(joint).tolist() == [[TURN_LEFT, TURN_RIGHT], [FORWARD, -1], [-1, -1]]
    hidden = make(TWO_DOORS, (EAST, NORTH), action_disclosure="none")
    assert (hidden.public_actions(joint) == -1).all()


def test_a_drop_is_invisible_to_others_unless_in_their_own_view() -> None:
    """Counterfactual pairs over random layouts: agent 0 drops the key or does nothing. Everything
    agent 1 observes (all optional signals on) is identical unless the drop cell is a visible cell of
    agent 1's 3×3 window."""
    params = {
        "completion_signal": True,
        "key_signal": True,
        "obs_last_action": True,
        "show_agents": True,
    }
    n = 256
    games = []
    for _ in range(2):
        game = make_game("manitokan", params, n)
        assert isinstance(game, Manitokan)
        game.reset(np.arange(n) + 77)
        game.grid[game.grid == KEY] = EMPTY
        game.carrying[:, 0] = True
        games.append(game)
    dropper, idle = games
    ar = np.arange(n)
    front = dropper.pos[:, 0] + np.array([[1, 0], [0, 1], [-1, 0], [0, -1]])[dropper.dirs[:, 0]]
    can_drop = dropper.grid[ar, front[:, 1], front[:, 0]] == EMPTY
    turn = np.full(n, TURN_LEFT)
    r_drop = dropper.step(np.stack([np.where(can_drop, DROP, NOOP), turn], axis=1))
    r_idle = idle.step(np.stack([np.full(n, NOOP), turn], axis=1))
    assert r_drop.events["key_dropped"][:, 0].sum() == can_drop.sum() > 50
    seen_by_1 = np.zeros(n, dtype=bool)
    for b in np.nonzero(can_drop)[0]:
        with_key = reference_view(dropper, b, 1)
        dropper.grid[b, front[b, 1], front[b, 0]] = EMPTY
        seen_by_1[b] = not np.array_equal(with_key, reference_view(dropper, b, 1))
        dropper.grid[b, front[b, 1], front[b, 0]] = KEY
    differs = (r_drop.obs[1] != r_idle.obs[1]).any(axis=1)
    np.testing.assert_array_equal(differs, seen_by_1)
    assert 0 < seen_by_1.sum() < can_drop.sum()
    np.testing.assert_array_equal(dropper.action_masks()[1], idle.action_masks()[1])
    np.testing.assert_array_equal(r_drop.rewards, r_idle.rewards)
    np.testing.assert_array_equal(dropper.public_actions(np.array([[DROP, 0]])), [[-1, 0]])


def test_global_state_layout() -> None:
    game = make(SPEC_LAYOUT, (EAST, SOUTH))
    state = game.state()[0]
    assert state.shape == (114,)
    grid = state[:108].reshape(6, 6, 3)  # (x, y, c)
    assert tuple(grid[3, 2]) == BLUE_KEY and tuple(grid[4, 1]) == DOOR_0 and tuple(grid[4, 3]) == DOOR_1
    assert tuple(grid[0, 0]) == GREY_WALL and tuple(grid[1, 1]) == FLOOR
    assert state[108:].tolist() == [2, 1, 1, 3, EAST, SOUTH]


def test_render() -> None:
    game = make(SPEC_LAYOUT, (EAST, SOUTH), carrying=(False, True))
    text = game.render("ansi")
    assert ">" in text and "v" in text and "K" in text and "+key" in text
    image = game.render("rgb_array")
    assert image.shape == (96, 96, 3) and image.dtype == np.uint8
    tile = (image[16:32, 32:48] == (112, 39, 195)).all(axis=-1)  # agent 0 at (2,1), facing east
    rows, cols = np.nonzero(tile)
    assert cols.size and np.ptp(rows[cols == cols.max()]) < np.ptp(rows[cols == cols.min()]), "points east"
    with pytest.raises(ValueError, match="render mode"):
        game.render("svg")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"n_agents": 1}, "n_agents"),
        ({"n_agents": 5}, "n_agents"),
        ({"p": [0.5, 0.5, 0.5]}, "p has 3 entries"),
        ({"size": 2}, "increase size"),
        ({"reward_coop": True, "credit_easy_af": True}, "mutually exclusive"),
        ({"agent_order": "backwards"}, "agent_order"),
        ({"episode_limit": 0}, "episode_limit"),
    ],
)
def test_bad_params(params: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        make_game("manitokan", params, 1)


def test_reset_forgets_the_previous_episode() -> None:
    params = {"completion_signal": True, "key_signal": True, "obs_last_action": True, "reward_coop": True}
    played = make(TWO_DOORS, (EAST, NORTH), carrying=(True, False), **params)
    for step in _gift_steps():
        played.step(np.array([step]))
    assert played.terminated[0]
    fresh = make_game("manitokan", params, 1)
    seeds = np.array([42])
    for game in (played, fresh):
        game.reset(seeds)
    for a, b in zip(played.observe() + played.action_masks(), fresh.observe() + fresh.action_masks()):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(played.state(), fresh.state())
    for _ in range(2):
        result_played = act(played, TOGGLE, DROP)
        result_fresh = act(fresh, TOGGLE, DROP)
        assert not result_played.terminated[0] and not result_fresh.terminated[0]
        np.testing.assert_array_equal(result_played.rewards, result_fresh.rewards)
