"""N-player Escape Room ER(N, M) and LIO's baseline variants (games.md §2), vectorized over B copies.

`EscapeRoom` is the symmetric game; with `give_actions=True` it becomes the give-action baseline
of PG-d / LOLA-d (gifts are part of the action). `EscapeRoomAsym` is the 2-player asymmetric game
LIO's LOLA baseline was run on.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
from pydantic import Field, model_validator

from arena.games.base import Game, GameParams, StepResult

LEVER, START, DOOR = 0, 1, 2
N_LOCATIONS = 3
LOCATION_NAMES = ("lever", "start", "door")
DOOR_REWARD = 10.0
MOVE_PENALTY = -1.0
#: Agent colours for renderers (RGB), cycled when N exceeds the palette.
AGENT_COLOURS = np.array(
    [[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180],
     [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212], [170, 110, 40]],
    dtype=np.uint8,
)
ANSI_AGENT = ("\x1b[31m", "\x1b[32m", "\x1b[34m", "\x1b[33m", "\x1b[35m", "\x1b[36m")
ANSI_RESET = "\x1b[0m"
GIFT_PARAMS = ("gift_value", "gift_cost_coeff")


def _check_render_mode(mode: str) -> None:
    if mode not in ("ansi", "rgb_array"):
        raise ValueError(f"unknown render mode {mode!r}; use 'ansi' or 'rgb_array'")


def _render_locations(occupants: list[list[int]], names: list[str], door_open: bool, t: int,
                      mode: str) -> str | np.ndarray:
    """Draw abstract locations as boxes holding the agents standing there (shared by both games)."""
    if mode == "ansi":
        cells = []
        for name, ids in zip(names, occupants):
            tag = name.upper() if name == "door" and door_open else name
            agents = " ".join(f"{ANSI_AGENT[i % len(ANSI_AGENT)]}{i}{ANSI_RESET}" for i in ids)
            cells.append(f"[{tag}: {agents}]")
        state = "\x1b[32mopen\x1b[0m" if door_open else "\x1b[31mclosed\x1b[0m"
        return f"t={t} door {state} " + " ".join(cells)
    cell = 32
    image = np.full((cell + 8, len(names) * (cell + 8), 3), 40, np.uint8)
    for column, ids in enumerate(occupants):
        left = column * (cell + 8) + 4
        is_open_door = names[column] == "door" and door_open
        image[4 : 4 + cell, left : left + cell] = (200, 200, 120) if is_open_door else (110, 110, 110)
        for slot, agent in enumerate(ids):
            top, right = 6 + 8 * (slot // 4), left + 2 + 8 * (slot % 4)
            image[top : top + 6, right : right + 6] = AGENT_COLOURS[agent % len(AGENT_COLOURS)]
    return image


class EscapeRoomParams(GameParams):
    n_agents: int = Field(2, ge=2, le=10, description="N, number of agents (paper: 2, 3, 5)")
    min_at_lever: int = Field(
        1, ge=1, description="M, agents that must choose the lever in a step to open the door (paper: 1, 2, 3)"
    )
    max_steps: int = Field(5, ge=1, description="episode length T (LIO: 5)")
    randomize: bool = Field(
        False, description="draw each start position uniformly from {lever, start, door} instead of start"
    )
    give_actions: bool = Field(
        False,
        description="PG-d/LOLA-d baseline: 3·2^(N−1) actions, movement = a mod 3, bit k of a // 3 gives "
        "`gift_value` to the k-th other agent (id order); the observation then ends with the N−1 "
        "amounts this agent has given to each other agent this episode",
    )
    gift_value: float = Field(2.0, gt=0, description="amount one gift adds to the recipient (LIO: 2.0)")
    gift_cost_coeff: float = Field(
        1.0,
        ge=0,
        description="the giver pays gift_cost_coeff · gift_value per gift (paper: 1, equal cost; "
        "committed config_room_pg.py: 1e-4)",
    )
    fixed_episode_length: bool = Field(
        False,
        description="never terminate on success: run to T and pay 0 after the door was used (LOLA-d); "
        "otherwise the episode terminates on success (LIO)",
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> EscapeRoomParams:
        if self.min_at_lever >= self.n_agents:
            raise ValueError(
                f"min_at_lever (M={self.min_at_lever}) must be < n_agents (N={self.n_agents}): "
                "ER(N, M) needs at least one agent free to reach the door"
            )
        unused = sorted(set(GIFT_PARAMS) & self.model_fields_set)
        if unused and not self.give_actions:
            raise ValueError(f"{', '.join(unused)} only apply with give_actions=True")
        return self


class EscapeRoom(Game):
    """M agents must pull the lever (paying −1 to move) so that the others can exit for +10.

    Rewards use positions before the move and observations positions after it, as in LIO's
    `room_symmetric.py`; the arena appends the cumulative incentives given when incentives are on.
    With `give_actions` the gifts are part of the game, so the game itself appends what was given
    (as `room_symmetric_baseline.py` does) and the arena appends nothing more.
    """

    name = "escape_room"
    Params = EscapeRoomParams
    obs_includes_incentives_given = True
    default_action = START

    def __init__(self, params: EscapeRoomParams, batch_size: int) -> None:
        super().__init__(params, batch_size)
        self.p: EscapeRoomParams = params
        self.obs_includes_incentives_given = not params.give_actions
        n = params.n_agents
        self._n_gift_patterns = 2 ** (n - 1) if params.give_actions else 1
        #: others[i] = ids of the agents other than i, in increasing order (observation and gift order).
        self._others = np.array([[j for j in range(n) if j != i] for i in range(n)], dtype=np.int64)
        obs_len = N_LOCATIONS * n + (n - 1 if params.give_actions else 0)
        high = np.inf if params.give_actions else 1.0
        self.observation_spaces = [gym.spaces.Box(0.0, high, (obs_len,), np.float32) for _ in range(n)]
        self.action_spaces = [gym.spaces.Discrete(N_LOCATIONS * self._n_gift_patterns) for _ in range(n)]
        self.action_names = [self._names_for(i) for i in range(n)]
        self._positions = np.full((batch_size, n), START, dtype=np.int64)
        self._given = np.zeros((batch_size, n, n - 1), dtype=np.float32)
        self._solved = np.zeros(batch_size, dtype=bool)
        self._door_open = np.zeros(batch_size, dtype=bool)
        self._t = 0

    def _names_for(self, agent: int) -> list[str]:
        """Action names in action-index order: movement varies fastest, then the gift bit pattern."""
        names = []
        for pattern in range(self._n_gift_patterns):
            recipients = [str(j) for k, j in enumerate(self._others[agent]) if (pattern >> k) & 1]
            suffix = f"+give{','.join(recipients)}" if recipients else ""
            names.extend(f"{location}{suffix}" for location in LOCATION_NAMES)
        return names

    def reset(self, seeds: np.ndarray) -> list[np.ndarray]:
        self.rng.reseed(seeds)
        if self.p.randomize:
            self._positions = self.rng.integers(N_LOCATIONS, self.p.n_agents)
        else:
            self._positions = np.full((self.batch_size, self.p.n_agents), START, dtype=np.int64)
        self._given[:] = 0.0
        self._solved[:] = False
        self._door_open[:] = False
        self._t = 0
        return self.observe()

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.asarray(actions, dtype=np.int64)
        moves = actions % N_LOCATIONS
        door_open = (moves == LEVER).sum(axis=1) >= self.p.min_at_lever
        exits = door_open[:, None] & (moves == DOOR)
        extrinsic = np.where(exits, DOOR_REWARD, np.where(moves == self._positions, 0.0, MOVE_PENALTY))
        bits = ((actions // N_LOCATIONS)[:, :, None] >> np.arange(self.p.n_agents - 1)) & 1
        gifts = bits.astype(np.float32) * self.p.gift_value  # [B, giver, k-th other]
        received = np.zeros_like(extrinsic)
        for giver in range(self.p.n_agents):
            received[:, self._others[giver]] += gifts[:, giver]
        paid = self.p.gift_cost_coeff * gifts.sum(axis=2)
        live = ~self._solved
        rewards = ((extrinsic + received - paid) * live[:, None]).astype(np.float32)
        self._given += gifts * live[:, None, None]
        self._positions = moves
        self._door_open = door_open
        self._solved |= door_open & (moves == DOOR).any(axis=1)
        self._t += 1
        terminated = np.zeros(self.batch_size, bool) if self.p.fixed_episode_length else self._solved.copy()
        truncated = np.full(self.batch_size, self._t >= self.p.max_steps)
        live_f = live[:, None].astype(np.float32)
        events = {
            "lever_pulls": (moves == LEVER) * live_f,
            "door_exits": exits * live_f,
            "gifts_given": gifts.sum(axis=2) * live_f,
        }
        return StepResult(self.observe(), rewards, terminated, truncated, events)

    def observe(self) -> list[np.ndarray]:
        onehot = np.eye(N_LOCATIONS, dtype=np.float32)[self._positions]  # [B, N, 3]
        observations = []
        for agent in range(self.p.n_agents):
            parts = [onehot[:, agent], onehot[:, self._others[agent]].reshape(self.batch_size, -1)]
            if self.p.give_actions:
                parts.append(self._given[:, agent])
            observations.append(np.concatenate(parts, axis=1))
        return observations

    def state(self) -> np.ndarray:
        """One-hot position of every agent in id order, `[B, 3N]`."""
        return np.eye(N_LOCATIONS, dtype=np.float32)[self._positions].reshape(self.batch_size, -1)

    def render(self, mode: str = "ansi", index: int = 0) -> str | np.ndarray:
        _check_render_mode(mode)
        positions = self._positions[index]
        occupants = [[int(i) for i in np.flatnonzero(positions == loc)] for loc in range(N_LOCATIONS)]
        return _render_locations(occupants, list(LOCATION_NAMES), bool(self._door_open[index]), self._t, mode)


# Asymmetric LOLA variant: agent 0 (A1) moves between start and door, agent 1 (A2) between start and lever.
ASYM_START, ASYM_DOOR = 0, 1
ASYM_LEVER = 1
ASYM_GIVE = 2  # A1 actions >= ASYM_GIVE give a gift


class EscapeRoomAsymParams(GameParams):
    max_steps: int = Field(5, ge=1, description="episode length T; episodes always last T steps")
    allow_giving: bool = Field(
        True, description="A1 has 4 actions (start, door, start+give, door+give) instead of 2"
    )
    gift_value: float = Field(2.0, gt=0, description="amount each give transfers from A1 to A2 (LIO: 2.0)")


class EscapeRoomAsym(Game):
    """Two-player asymmetric Escape Room of LIO's LOLA baseline (`room_asymmetric_lola.py`).

    A1 (agent 0) pays −1 on every step unless it takes the door while A2 (agent 1) pulls the lever
    (+10); A2 pays −1 to move and receives A1's gifts. After A1 has stood at an open door every
    reward is 0, but the episode runs to T. A1 observes both positions and its total given; the
    A2 action LOLA's training loop adds to A1's observation comes from the arena's action disclosure.
    """

    name = "escape_room_asym"
    Params = EscapeRoomAsymParams
    default_action = ASYM_START

    def __init__(self, params: EscapeRoomAsymParams, batch_size: int) -> None:
        super().__init__(params, batch_size)
        self.p: EscapeRoomAsymParams = params
        self.observation_spaces = [
            gym.spaces.Box(0.0, np.inf, (5,), np.float32),
            gym.spaces.Box(0.0, 1.0, (2,), np.float32),
        ]
        a1_actions = ["start", "door", "start+give", "door+give"] if params.allow_giving else ["start", "door"]
        self.action_spaces = [gym.spaces.Discrete(len(a1_actions)), gym.spaces.Discrete(2)]
        self.action_names = [a1_actions, ["start", "lever"]]
        self._positions = np.zeros((batch_size, 2), dtype=np.int64)
        self._total_given = np.zeros(batch_size, dtype=np.float32)
        self._solved = np.zeros(batch_size, dtype=bool)
        self._door_open = np.zeros(batch_size, dtype=bool)
        self._t = 0

    def reset(self, seeds: np.ndarray) -> list[np.ndarray]:
        self.rng.reseed(seeds)
        self._positions[:] = ASYM_START
        self._total_given[:] = 0.0
        self._solved[:] = False
        self._door_open[:] = False
        self._t = 0
        return self.observe()

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.asarray(actions, dtype=np.int64)
        a1_move, a2_move = actions[:, 0] % 2, actions[:, 1]
        door_open = a2_move == ASYM_LEVER
        exits = door_open & (a1_move == ASYM_DOOR)
        gift = (actions[:, 0] >= ASYM_GIVE) * np.float32(self.p.gift_value)
        a1_reward = np.where(exits, DOOR_REWARD, MOVE_PENALTY) - gift
        a2_reward = np.where(a2_move != self._positions[:, 1], MOVE_PENALTY, 0.0) + gift
        live = ~self._solved
        rewards = (np.stack([a1_reward, a2_reward], axis=1) * live[:, None]).astype(np.float32)
        self._total_given += gift * live
        self._positions = np.stack([a1_move, a2_move], axis=1)
        self._door_open = door_open
        self._solved |= exits
        self._t += 1
        live_f = live.astype(np.float32)
        zero = np.zeros(self.batch_size, np.float32)
        events = {
            "door_exits": np.stack([exits * live_f, zero], axis=1),
            "lever_pulls": np.stack([zero, door_open * live_f], axis=1),
            "gifts_given": np.stack([gift * live_f, zero], axis=1),
        }
        truncated = np.full(self.batch_size, self._t >= self.p.max_steps)
        return StepResult(self.observe(), rewards, np.zeros(self.batch_size, bool), truncated, events)

    def observe(self) -> list[np.ndarray]:
        onehot = np.eye(2, dtype=np.float32)[self._positions]  # [B, 2 agents, 2 positions]
        a1 = np.concatenate([onehot[:, 0], onehot[:, 1], self._total_given[:, None]], axis=1)
        return [a1, onehot[:, 1].copy()]

    def state(self) -> np.ndarray:
        """A1's observation: both positions and A1's total given, `[B, 5]`."""
        return self.observe()[0]

    def render(self, mode: str = "ansi", index: int = 0) -> str | np.ndarray:
        _check_render_mode(mode)
        a1, a2 = (int(x) for x in self._positions[index])
        # Locations in ER order: lever (A2 only), start (both), door (A1 only).
        occupants: list[list[int]] = [[], [], []]
        occupants[DOOR if a1 == ASYM_DOOR else START].append(0)
        occupants[LEVER if a2 == ASYM_LEVER else START].append(1)
        return _render_locations(occupants, list(LOCATION_NAMES), bool(self._door_open[index]), self._t, mode)
