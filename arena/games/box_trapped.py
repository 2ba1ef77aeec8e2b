"""Box trapped (games.md §7, our definition of the Social Influence paper's supplementary §10.3).

Agent 1 is shut in a box; agent 0 can open it with OPEN_BOX at the price of one step not spent
eating. Apples never run out, so opening costs agent 0 one apple and is worth +25 to agent 1 (T=30).
MOA learners get what they need from the arena: disclosed joint actions and the default all-true
visibility (both agents always see the whole map).
"""

from __future__ import annotations

from typing import Literal

import gymnasium as gym
import numpy as np
from pydantic import Field

from arena.games.base import Game, GameParams, StepResult

MAP = (
    "@@@@@@@@@",
    "@AA   b2@",
    "@AA   bb@",
    "@   1   @",
    "@@@@@@@@@",
)
_CHARS = np.array([list(row) for row in MAP])
WALLS = _CHARS == "@"
BOX_CELLS = _CHARS == "b"
APPLE_CELLS = _CHARS == "A"
HEIGHT, WIDTH = _CHARS.shape
OPENER_START = np.argwhere(_CHARS == "1")[0]
TRAPPED_START = np.argwhere(_CHARS == "2")[0]
#: Columns of row OPENER_START[0] that are floor: where a randomized opener may start.
OPENER_ROW_FLOOR = np.flatnonzero(~WALLS[OPENER_START[0]])
#: Cells orthogonally next to a box wall (and not one): where `open_range="adjacent"` allows opening.
NEAR_BOX = np.zeros_like(BOX_CELLS)
NEAR_BOX[1:] |= BOX_CELLS[:-1]
NEAR_BOX[:-1] |= BOX_CELLS[1:]
NEAR_BOX[:, 1:] |= BOX_CELLS[:, :-1]
NEAR_BOX[:, :-1] |= BOX_CELLS[:, 1:]
NEAR_BOX &= ~BOX_CELLS & ~WALLS

LEFT, RIGHT, UP, DOWN, STAY, OPEN_BOX = range(6)
ACTION_NAMES = ["left", "right", "up", "down", "stay", "open_box"]
#: (row, col) displacement per action; OPEN_BOX does not move.
MOVES = np.array([[0, -1], [0, 1], [-1, 0], [1, 0], [0, 0], [0, 0]], dtype=np.int64)
OPENER, TRAPPED = 0, 1
#: Observation channels (channels last).
WALL_CH, BOX_CH, APPLE_CH, SELF_CH, OTHER_CH = range(5)
N_CHANNELS = 5
AGENT_RGB = np.array([[145, 30, 180], [0, 150, 150]], dtype=np.uint8)  # purple opener, teal trapped
ANSI_OPENER, ANSI_TRAPPED, ANSI_RESET = "\x1b[35m", "\x1b[36m", "\x1b[0m"


class BoxTrappedParams(GameParams):
    max_steps: int = Field(30, ge=1, description="episode length T (reference returns are for 30; variant 50)")
    open_range: Literal["global", "adjacent"] = Field(
        "global", description="where OPEN_BOX works: anywhere, or only orthogonally next to a box wall"
    )
    randomize_opener_start: bool = Field(
        False, description="agent 0 starts on a uniformly random floor cell of row 3 instead of (3, 4)"
    )


class BoxTrapped(Game):
    """Agent 0 eats apples or opens the box that traps agent 1; both then eat forever."""

    name = "box_trapped"
    Params = BoxTrappedParams
    default_action = STAY
    noop_action = STAY
    #: Planes `[HEIGHT, WIDTH, N_CHANNELS]` = (5, 9, 5): channels last (see `_planes`).
    observation_layout = "HWC"

    def __init__(self, params: BoxTrappedParams, batch_size: int) -> None:
        super().__init__(params, batch_size)
        self.p: BoxTrappedParams = params
        self.observation_spaces = [
            gym.spaces.Box(0.0, 1.0, (HEIGHT, WIDTH, N_CHANNELS), np.float32) for _ in range(2)
        ]
        self.action_spaces = [gym.spaces.Discrete(len(ACTION_NAMES)) for _ in range(2)]
        self.action_names = [ACTION_NAMES, ACTION_NAMES]
        self._positions = np.zeros((batch_size, 2, 2), dtype=np.int64)
        self._box_closed = np.ones(batch_size, dtype=bool)
        self._t = 0

    def reset(self, seeds: np.ndarray) -> list[np.ndarray]:
        self.rng.reseed(seeds)
        self._positions[:] = np.stack([OPENER_START, TRAPPED_START])
        if self.p.randomize_opener_start:
            self._positions[:, OPENER, 1] = OPENER_ROW_FLOOR[self.rng.integers(len(OPENER_ROW_FLOOR))]
        self._box_closed[:] = True
        self._t = 0
        return self.observe()

    def _apples(self) -> np.ndarray:
        """`[B, H, W]` apples present: every apple cell not occupied by an agent (regrowth rule)."""
        apples = np.broadcast_to(APPLE_CELLS, (self.batch_size, HEIGHT, WIDTH)).copy()
        batch = np.arange(self.batch_size)[:, None]
        apples[batch, self._positions[..., 0], self._positions[..., 1]] = False
        return apples

    def _resolve_moves(self, actions: np.ndarray) -> np.ndarray:
        """New positions `[B, 2, 2]` after walls and the two-agent conflict rules (games.md §7 step 1)."""
        old = self._positions
        target = old + MOVES[actions]
        blocked = WALLS[target[..., 0], target[..., 1]] | (
            self._box_closed[:, None] & BOX_CELLS[target[..., 0], target[..., 1]]
        )
        target = np.where(blocked[..., None], old, target)
        moving = (target != old).any(axis=-1)  # [B, 2]
        into_other = np.stack(
            [(target[:, 0] == old[:, 1]).all(-1), (target[:, 1] == old[:, 0]).all(-1)], axis=1
        )
        contested = (target[:, 0] == target[:, 1]).all(-1) & moving.all(axis=1)
        loser = self.rng.integers(2)  # drawn every step so the stream does not depend on the state
        swap = into_other.all(axis=1)
        # An agent entering the other's cell is cancelled unless the other leaves it; swaps cancel both.
        cancelled = swap[:, None] | (into_other & ~moving[:, ::-1])
        cancelled |= contested[:, None] & (np.arange(2)[None, :] == loser[:, None])
        return np.where(cancelled[..., None], old, target)

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.asarray(actions, dtype=np.int64)
        apples_before = self._apples()
        new = self._resolve_moves(actions)
        entered = (new != self._positions).any(axis=-1)
        batch = np.arange(self.batch_size)[:, None]
        ate = entered & apples_before[batch, new[..., 0], new[..., 1]]
        self._positions = new
        opener = new[:, OPENER]
        in_range = True if self.p.open_range == "global" else NEAR_BOX[opener[:, 0], opener[:, 1]]
        opened = (actions[:, OPENER] == OPEN_BOX) & self._box_closed & in_range
        self._box_closed &= ~opened
        self._t += 1
        events = {
            "opened": np.stack([opened, np.zeros_like(opened)], axis=1).astype(np.float32),
            "apples": ate.astype(np.float32),
        }
        truncated = np.full(self.batch_size, self._t >= self.p.max_steps)
        return StepResult(
            self.observe(), ate.astype(np.float32), np.zeros(self.batch_size, bool), truncated, events
        )

    def _planes(self, first: int) -> np.ndarray:
        """`[B, H, W, 5]` planes with agent `first` in the self channel and the other agent next."""
        planes = np.zeros((self.batch_size, HEIGHT, WIDTH, N_CHANNELS), dtype=np.float32)
        planes[..., WALL_CH] = WALLS
        planes[..., BOX_CH] = BOX_CELLS & self._box_closed[:, None, None]
        planes[..., APPLE_CH] = self._apples()
        batch = np.arange(self.batch_size)
        for channel, agent in ((SELF_CH, first), (OTHER_CH, 1 - first)):
            planes[batch, self._positions[:, agent, 0], self._positions[:, agent, 1], channel] = 1.0
        return planes

    def observe(self) -> list[np.ndarray]:
        return [self._planes(OPENER), self._planes(TRAPPED)]

    def state(self) -> np.ndarray:
        """Global planes `[B, H, W, 5]`: walls, closed box, apples, agent 0, agent 1."""
        return self._planes(OPENER)

    def render(self, mode: str = "ansi", index: int = 0) -> str | np.ndarray:
        if mode not in ("ansi", "rgb_array"):
            raise ValueError(f"unknown render mode {mode!r}; use 'ansi' or 'rgb_array'")
        planes = self._planes(OPENER)[index]
        if mode == "rgb_array":
            cell = 16
            colours = np.full((HEIGHT, WIDTH, 3), 220, np.uint8)
            colours[planes[..., WALL_CH] > 0] = (90, 90, 90)
            colours[planes[..., BOX_CH] > 0] = (150, 100, 50)
            colours[planes[..., APPLE_CH] > 0] = (60, 180, 75)
            colours[planes[..., SELF_CH] > 0] = AGENT_RGB[OPENER]
            colours[planes[..., OTHER_CH] > 0] = AGENT_RGB[TRAPPED]
            return np.repeat(np.repeat(colours, cell, axis=0), cell, axis=1)
        symbols = {
            WALL_CH: "\x1b[90m@",
            BOX_CH: "\x1b[33mb",
            APPLE_CH: "\x1b[32mA",
            SELF_CH: f"{ANSI_OPENER}0",
            OTHER_CH: f"{ANSI_TRAPPED}1",
        }
        lines = [f"t={self._t} box {'closed' if self._box_closed[index] else 'open'}"]
        for r in range(HEIGHT):
            row = ""
            for c in range(WIDTH):
                present = np.flatnonzero(planes[r, c])
                row += f"{symbols[int(present[-1])]}{ANSI_RESET}" if present.size else " "
            lines.append(row)
        return "\n".join(lines)
