"""Manitokan, the hidden-gifts key-and-doors task (games.md §6), vectorized over B copies.

Each agent has its own locked door; there is one shared key. An agent that opens its door with the
key earns a small reward, and once every door is open every agent earns the larger collective
reward. The key must therefore be dropped for the others — a gift nobody else observes: other agents
see a dropped key only if it lies in their own 3×3 view, and `public_actions` never reveals a drop.

Coordinates follow MiniGrid: `(x, y)` = `(col, row)`, directions 0 = east, 1 = south, 2 = west,
3 = north. The world grid is stored `[B, y, x]`; positions are `[B, N, 2]` holding `(x, y)`.
Tests and tools may write `grid`, `pos`, `dirs`, `carrying` and `door_open` directly to set up a
layout; `observe()` reads nothing else.
"""

from __future__ import annotations

from typing import Literal

import gymnasium as gym
import numpy as np
from pydantic import Field, model_validator

from arena.games.base import Game, GameParams, StepResult

#: World cell codes; agent i's locked door is DOOR + i (an opened door is removed and becomes EMPTY).
EMPTY, WALL, KEY, DOOR = 0, 1, 2, 3
TURN_LEFT, TURN_RIGHT, FORWARD, PICK_UP, DROP, TOGGLE = range(6)
N_ACTIONS = 6
ACTION_NAMES = ["turn left", "turn right", "forward", "pick up", "drop", "toggle"]
#: (dx, dy) of each direction.
DIR_VEC = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]], dtype=np.int64)
VIEW = 3
#: MiniGrid object/colour/state indices used by the observation.
TYPE_EMPTY, TYPE_WALL, TYPE_DOOR, TYPE_KEY, TYPE_AGENT = 1, 2, 4, 5, 10
BLUE, GREY = 2, 5
AGENT_COLOUR_IDX = (3, 4, 6, 7)  # purple, yellow, orange, cyan
STATE_LOCKED = 2
MAX_AGENTS = len(AGENT_COLOUR_IDX)
#: (type, colour, state) of each cell code: EMPTY, WALL, KEY, then one locked door per agent.
CELL_ENCODING = np.array(
    [[TYPE_EMPTY, 0, 0], [TYPE_WALL, GREY, 0], [TYPE_KEY, BLUE, 0]]
    + [[TYPE_DOOR, colour, STATE_LOCKED] for colour in AGENT_COLOUR_IDX],
    dtype=np.uint8,
)
#: Cells that block sight: walls and locked doors (MiniGrid `see_behind` is False for them).
OPAQUE = np.array([False, True, False] + [True] * MAX_AGENTS)
#: Reference constants of the optional door/key flags (3 values each).
DOOR_OPENED, DOOR_CLOSED, KEY_HELD, KEY_NOT_HELD = 23, 37, 53, 59
HOLD_KEY_PENALTY = -0.5
RGB = {
    "purple": (112, 39, 195),
    "yellow": (255, 255, 0),
    "orange": (255, 128, 0),
    "cyan": (0, 255, 255),
    "blue": (0, 0, 255),
    "grey": (100, 100, 100),
}
AGENT_RGB = np.array([RGB["purple"], RGB["yellow"], RGB["orange"], RGB["cyan"]], dtype=np.uint8)
ANSI_AGENT = ("\x1b[35m", "\x1b[33m", "\x1b[38;5;208m", "\x1b[36m")
ANSI_KEY, ANSI_WALL, ANSI_RESET = "\x1b[34m", "\x1b[90m", "\x1b[0m"
ARROWS = ">v<^"
TILE = 16
EVENTS = ("door_opened", "key_picked", "key_dropped", "collective")


class ManitokanParams(GameParams):
    n_agents: int = Field(2, ge=2, le=MAX_AGENTS, description="N agents, one door each (paper: 2)")
    size: int = Field(4, ge=2, description="room size; the grid is (size + N)² cells including the wall")
    n_keys: int = Field(1, ge=1, description="keys in the room (paper: 1, fewer keys than agents)")
    episode_limit: int = Field(300, ge=1, description="step limit T (paper: 300)")
    p: float | list[float] = Field(
        0.5, description="per-agent door reward p_i (a scalar applies to all); the collective reward is Σ p_i"
    )
    only_sparse: bool = Field(False, description="suppress the +p_i for opening one's own door")
    only_immediate: bool = Field(False, description="suppress the collective reward")
    reward_coop: bool = Field(False, description="shaping: +2·p_i for dropping the key after opening one's door")
    credit_easy_af: bool = Field(
        False, description="shaping: −0.5 for using toggle while holding the key once one's door is open"
    )
    completion_signal: bool = Field(False, description="append 3 values: 23 if own door opened, else 37")
    key_signal: bool = Field(False, description="append 3 values: 53 if carrying the key, else 59")
    obs_last_action: bool = Field(False, description="append a one-hot of own previous action (zeros at t=0)")
    show_agents: bool = Field(
        False, description="write other agents in view as type 10 with their colour (reference: not shown)"
    )
    agent_order: Literal["fixed", "random_order", "turn_based"] = Field(
        "fixed",
        description="within-step acting order: ids in order every step; shuffled once per episode; "
        "or rotated by one each episode",
    )
    action_disclosure: Literal["movement", "none"] = Field(
        "movement",
        description="what public_actions shows others: turns and moves only (pick up, drop and toggle "
        "all read -1, so a -1 does not single out a drop), or nothing (every action reads -1)",
    )

    @model_validator(mode="after")
    def _check(self) -> ManitokanParams:
        if isinstance(self.p, list) and len(self.p) != self.n_agents:
            raise ValueError(f"p has {len(self.p)} entries but n_agents = {self.n_agents}")
        interior = (self.size + self.n_agents - 2) ** 2
        needed = 2 * self.n_agents + self.n_keys
        if interior < needed:
            raise ValueError(
                f"the {interior}-cell room cannot hold {self.n_agents} agents, {self.n_agents} doors and "
                f"{self.n_keys} keys; increase size"
            )
        if self.reward_coop and self.credit_easy_af:
            raise ValueError("reward_coop and credit_easy_af are mutually exclusive (the reference ignores both)")
        return self


def _visible(see: np.ndarray) -> np.ndarray:
    """MiniGrid's occlusion pass over `[..., x, y]` 3×3 windows with the agent at (1, 2).

    Light spreads from the agent's cell through see-through cells, row by row away from the agent;
    a wall or locked door is itself visible but hides what lies behind it.
    """
    mask = np.zeros_like(see)
    mask[..., 1, 2] = True
    for j in range(VIEW - 1, -1, -1):
        for i, step in [(i, 1) for i in range(VIEW - 1)] + [(i, -1) for i in range(VIEW - 1, 0, -1)]:
            spread = mask[..., i, j] & see[..., i, j]
            mask[..., i + step, j] |= spread
            if j > 0:
                mask[..., i + step, j - 1] |= spread
                mask[..., i, j - 1] |= spread
    return mask


class Manitokan(Game):
    """N agents, one key, one locked door each; sequential within-step order, 3×3 egocentric view."""

    name = "manitokan"
    Params = ManitokanParams

    def __init__(self, params: ManitokanParams, batch_size: int) -> None:
        super().__init__(params, batch_size)
        self.p: ManitokanParams = params
        n, b = params.n_agents, batch_size
        self.width = self.height = params.size + n
        self.door_reward = np.broadcast_to(np.asarray(params.p, dtype=np.float32), (n,)).copy()
        obs_len = VIEW * VIEW * 3 + 3 * (params.completion_signal + params.key_signal)
        obs_len += N_ACTIONS * params.obs_last_action
        self.observation_spaces = [gym.spaces.Box(0, 255, (obs_len,), np.uint8) for _ in range(n)]
        self.action_spaces = [gym.spaces.Discrete(N_ACTIONS) for _ in range(n)]
        self.action_names = [list(ACTION_NAMES) for _ in range(n)]
        self.grid = np.zeros((b, self.height, self.width), dtype=np.int8)
        self.pos = np.zeros((b, n, 2), dtype=np.int64)
        self.dirs = np.zeros((b, n), dtype=np.int64)
        self.carrying = np.zeros((b, n), dtype=bool)
        self.door_open = np.zeros((b, n), dtype=bool)
        self.order = np.tile(np.arange(n), (b, 1))
        self.last_action = np.full((b, n), -1, dtype=np.int64)
        self.terminated = np.zeros(b, dtype=bool)
        self._coop_paid = np.zeros((b, n), dtype=bool)
        self._t = 0
        self._episodes = 0

    @property
    def max_steps(self) -> int:
        return self.p.episode_limit

    def _place(self, allowed: np.ndarray) -> np.ndarray:
        """(x, y) `[B, 2]` of a uniformly random allowed cell per copy (random keys, masked argmax)."""
        keys = np.where(allowed, self.rng.uniform(self.height, self.width), -1.0)
        flat = keys.reshape(self.batch_size, -1).argmax(axis=1)
        return np.stack([flat % self.width, flat // self.width], axis=1)

    def reset(self, seeds: np.ndarray) -> list[np.ndarray]:
        self.rng.reseed(seeds)
        b, n, ar = self.batch_size, self.p.n_agents, np.arange(self.batch_size)
        self.grid[:] = EMPTY
        self.grid[:, [0, -1], :] = WALL
        self.grid[:, :, [0, -1]] = WALL
        # Reference order: split column, each agent (cell then direction), each door, each key.
        split = self.rng.integers(self.width - 2) + 2
        occupied = np.zeros(self.grid.shape, dtype=bool)
        left_of_split = np.arange(self.width)[None, None, :] < split[:, None, None]
        for i in range(n):
            self.pos[:, i] = self._place((self.grid == EMPTY) & left_of_split & ~occupied)
            occupied[ar, self.pos[:, i, 1], self.pos[:, i, 0]] = True
            self.dirs[:, i] = self.rng.integers(4)
        for code in [DOOR + i for i in range(n)] + [KEY] * self.p.n_keys:
            cell = self._place((self.grid == EMPTY) & ~occupied)
            self.grid[ar, cell[:, 1], cell[:, 0]] = code
        if self.p.agent_order == "random_order":
            self.order = np.argsort(self.rng.permutation_keys(n), axis=1)
        else:
            shift = self._episodes % n if self.p.agent_order == "turn_based" else 0
            self.order = np.tile(np.roll(np.arange(n), -shift), (b, 1))
        self._episodes += 1
        self.carrying[:] = False
        self.door_open[:] = False
        self._coop_paid[:] = False
        self.last_action[:] = -1
        self.terminated[:] = False
        self._t = 0
        return self.observe()

    def step(self, actions: np.ndarray) -> StepResult:
        b, n = self.batch_size, self.p.n_agents
        actions = np.asarray(actions, dtype=np.int64).reshape(b, n)
        ar = np.arange(b)
        live = ~self.terminated & (self._t < self.p.episode_limit)
        rewards = np.zeros((b, n), dtype=np.float32)
        events = {name: np.zeros((b, n), dtype=np.float32) for name in EVENTS}
        front = self.pos + DIR_VEC[self.dirs]
        self.last_action = np.where(live[:, None], actions, self.last_action)
        for turn in range(n):
            i = self.order[:, turn]
            a = np.where(live, actions[ar, i], -1)
            fx, fy = front[ar, i, 0], front[ar, i, 1]
            cell = self.grid[ar, fy, fx]
            holding = self.carrying[ar, i]
            opened_before = self.door_open[ar, i]
            turn_by = (a == TURN_RIGHT).astype(np.int64) - (a == TURN_LEFT)
            self.dirs[ar, i] = (self.dirs[ar, i] + turn_by) % 4
            move = (a == FORWARD) & (cell == EMPTY)
            self.pos[ar, i] = np.where(move[:, None], front[ar, i], self.pos[ar, i])
            pick = (a == PICK_UP) & (cell == KEY) & ~holding
            drop = (a == DROP) & (cell == EMPTY) & holding
            unlock = (a == TOGGLE) & (cell == DOOR + i) & holding
            self.grid[ar, fy, fx] = np.where(pick | unlock, EMPTY, np.where(drop, KEY, cell))
            self.carrying[ar, i] = (holding | pick) & ~drop
            self.door_open[ar, i] = opened_before | unlock
            p_i = self.door_reward[i]
            gain = np.where(unlock, 0.0 if self.p.only_sparse else p_i, 0.0)
            if self.p.reward_coop:
                bonus = drop & opened_before & ~self._coop_paid[ar, i]
                self._coop_paid[ar, i] |= bonus
                gain += np.where(bonus, 2 * p_i, 0.0)
            if self.p.credit_easy_af:
                gain += np.where((a == TOGGLE) & opened_before & holding, HOLD_KEY_PENALTY, 0.0)
            rewards[ar, i] += gain
            events["door_opened"][ar, i] = unlock
            events["key_picked"][ar, i] = pick
            events["key_dropped"][ar, i] = drop
        success = live & self.door_open.all(axis=1)
        if not self.p.only_immediate:
            rewards += np.where(success, self.door_reward.sum(), 0.0)[:, None].astype(np.float32)
        events["collective"][:] = success[:, None]
        self.terminated |= success
        self._t += 1
        truncated = np.full(b, self._t >= self.p.episode_limit) & ~self.terminated
        return StepResult(self.observe(), rewards, self.terminated.copy(), truncated, events)

    def _views(self) -> tuple[np.ndarray, np.ndarray]:
        """World cell codes `[B, N, 3, 3]` of each agent's window, indexed (view x, view y), and
        whether each of those cells is visible; cells off the map read as wall."""
        d = DIR_VEC[self.dirs]
        right = np.stack([-d[..., 1], d[..., 0]], axis=-1)
        ahead = (VIEW - 1) - np.arange(VIEW)  # view row j lies 2 - j cells ahead
        side = np.arange(VIEW) - VIEW // 2  # view column i lies i - 1 cells to the right
        cells = (
            self.pos[:, :, None, None, :]
            + side[None, None, :, None, None] * right[:, :, None, None, :]
            + ahead[None, None, None, :, None] * d[:, :, None, None, :]
        )
        x, y = cells[..., 0], cells[..., 1]
        inside = (x >= 0) & (x < self.width) & (y >= 0) & (y < self.height)
        ar = np.arange(self.batch_size)[:, None, None, None]
        codes = np.where(inside, self.grid[ar, y.clip(0, self.height - 1), x.clip(0, self.width - 1)], WALL)
        return codes, _visible(~OPAQUE[codes])

    def _view_coords(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`[B, N, N]` view column, view row of agent j in agent i's window, and whether it is inside."""
        d = DIR_VEC[self.dirs][:, :, None, :]
        right = np.stack([-d[..., 1], d[..., 0]], axis=-1)
        rel = self.pos[:, None, :, :] - self.pos[:, :, None, :]
        vx = (rel * right).sum(-1) + VIEW // 2
        vy = (VIEW - 1) - (rel * d).sum(-1)
        inside = (vx >= 0) & (vx < VIEW) & (vy >= 0) & (vy < VIEW)
        return vx.clip(0, VIEW - 1), vy.clip(0, VIEW - 1), inside

    def observe(self) -> list[np.ndarray]:
        b, n = self.batch_size, self.p.n_agents
        codes, visible = self._views()
        image = np.where(visible[..., None], CELL_ENCODING[codes], 0).astype(np.uint8)
        if self.p.show_agents:
            vx, vy, inside = self._view_coords()
            bi, ii = np.meshgrid(np.arange(b), np.arange(n), indexing="ij")
            for j in range(n):
                seen = inside[:, :, j] & visible[bi, ii, vx[:, :, j], vy[:, :, j]] & (ii != j)
                bs, is_ = bi[seen], ii[seen]
                image[bs, is_, vx[:, :, j][seen], vy[:, :, j][seen]] = (TYPE_AGENT, AGENT_COLOUR_IDX[j], 0)
        parts = [image.reshape(b, n, -1)]
        if self.p.completion_signal:
            parts.append(np.repeat(np.where(self.door_open, DOOR_OPENED, DOOR_CLOSED)[..., None], 3, -1))
        if self.p.key_signal:
            parts.append(np.repeat(np.where(self.carrying, KEY_HELD, KEY_NOT_HELD)[..., None], 3, -1))
        if self.p.obs_last_action:
            parts.append(self.last_action[..., None] == np.arange(N_ACTIONS))
        obs = np.concatenate([part.astype(np.uint8) for part in parts], axis=-1)
        return [obs[:, i].copy() for i in range(n)]

    def state(self) -> np.ndarray:
        """The reference global state: full grid encoding in (x, y, c) order, positions, directions."""
        grid = CELL_ENCODING[self.grid].transpose(0, 2, 1, 3).reshape(self.batch_size, -1)
        parts = [grid, self.pos.reshape(self.batch_size, -1), self.dirs]
        return np.concatenate([part.astype(np.uint8) for part in parts], axis=1)

    def visibility(self) -> np.ndarray:
        """Agent j is visible to agent i when j's cell is a visible cell of i's 3×3 window."""
        b, n = self.batch_size, self.p.n_agents
        _, visible = self._views()
        vx, vy, inside = self._view_coords()
        bi, ii = np.meshgrid(np.arange(b), np.arange(n), indexing="ij")
        seen = inside & visible[bi[..., None], ii[..., None], vx, vy]
        return seen | np.eye(n, dtype=bool)[None]

    def action_masks(self) -> list[np.ndarray]:
        """Drop and toggle are unavailable to an agent carrying nothing (reference `get_avail_actions`)."""
        masks = np.ones((self.batch_size, self.p.n_agents, N_ACTIONS), dtype=bool)
        masks[:, :, DROP] = self.carrying
        masks[:, :, TOGGLE] = self.carrying
        return [masks[:, i].copy() for i in range(self.p.n_agents)]

    def public_actions(self, actions: np.ndarray) -> np.ndarray:
        """Hide key interactions: a drop must not be told apart from a pick up or toggle attempt."""
        actions = np.asarray(actions, dtype=np.int64)
        if self.p.action_disclosure == "none":
            return np.full_like(actions, -1)
        return np.where(actions >= PICK_UP, -1, actions)

    def render(self, mode: str = "ansi", index: int = 0) -> str | np.ndarray:
        if mode == "rgb_array":
            return self._render_rgb(index)
        if mode != "ansi":
            raise ValueError(f"unknown render mode {mode!r}; use 'ansi' or 'rgb_array'")
        chars = []
        for y in range(self.height):
            row = []
            for x in range(self.width):
                code = int(self.grid[index, y, x])
                if code == WALL:
                    row.append(f"{ANSI_WALL}#{ANSI_RESET}")
                elif code == KEY:
                    row.append(f"{ANSI_KEY}K{ANSI_RESET}")
                elif code >= DOOR:
                    row.append(f"{ANSI_AGENT[code - DOOR]}{code - DOOR}{ANSI_RESET}")
                else:
                    row.append(".")
            chars.append(row)
        for i in range(self.p.n_agents):
            x, y = self.pos[index, i]
            chars[y][x] = f"{ANSI_AGENT[i]}{ARROWS[self.dirs[index, i]]}{ANSI_RESET}"
        status = " ".join(
            f"{ANSI_AGENT[i]}agent{i}{ANSI_RESET}:{'door open' if self.door_open[index, i] else 'locked'}"
            f"{'+key' if self.carrying[index, i] else ''}"
            for i in range(self.p.n_agents)
        )
        return "\n".join("".join(row) for row in chars) + f"\nt={self._t} {status}"

    def _render_rgb(self, index: int) -> np.ndarray:
        """Tiles of TILE pixels: grey walls, coloured locked doors, blue keys, agents as triangles
        pointing where they face, with a blue corner mark when carrying the key."""
        image = np.zeros((self.height * TILE, self.width * TILE, 3), dtype=np.uint8)
        image[::TILE, :] = 60
        image[:, ::TILE] = 60
        r, c = np.mgrid[0:TILE, 0:TILE]
        east = (c >= 3) & (c <= TILE - 3) & (np.abs(r - TILE / 2 + 0.5) <= (TILE - 2 - c) * 0.5)
        triangles = [np.rot90(east, -k) for k in range(4)]
        for y, x in zip(*np.nonzero(self.grid[index] != EMPTY)):
            tile = image[y * TILE : (y + 1) * TILE, x * TILE : (x + 1) * TILE]
            code = int(self.grid[index, y, x])
            if code == WALL:
                tile[:] = RGB["grey"]
            elif code == KEY:
                tile[4:12, 6:10] = RGB["blue"]
            else:
                tile[1:-1, 1:-1] = AGENT_RGB[code - DOOR]
                tile[3:-3, 3:-3] = (AGENT_RGB[code - DOOR] * 0.45).astype(np.uint8)
        for i in range(self.p.n_agents):
            x, y = self.pos[index, i]
            tile = image[y * TILE : (y + 1) * TILE, x * TILE : (x + 1) * TILE]
            tile[triangles[self.dirs[index, i]]] = AGENT_RGB[i]
            if self.carrying[index, i]:
                tile[1:4, 1:4] = RGB["blue"]
        return image
