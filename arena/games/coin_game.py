"""Coin Game (games.md §5): the N-player Reciprocator version and LOLA's 2-player version.

Both variants share one representation: agent cells `[B, N, 2]` and coins as cells `[B, C, 2]` with
owners `[B, C]` (Reciprocator: C = N coins, coin c owned by agent c; LOLA: C = 1 coin whose owner is
its colour). Pickup payoffs then follow one rule: +1 per coin collected, and the owner of a coin
pays `owner_penalty` per collector other than itself.
"""

from __future__ import annotations

from typing import Literal

import gymnasium as gym
import numpy as np
from pydantic import Field, model_validator

from arena.games.base import Game, GameParams, StepResult

RIGHT, LEFT, DOWN, UP, STAY = 0, 1, 2, 3, 4
#: (row, col) displacement per action.
MOVES = np.array([[0, 1], [0, -1], [1, 0], [-1, 0], [0, 0]], dtype=np.int64)
MOVE_NAMES = ["right", "left", "down", "up", "stay"]
DEFAULT_MAX_STEPS = {"reciprocator": 32, "lola": 150}
#: Per-agent colours for renderers, cycled for N > 6 (agent 0 red, agent 1 blue as in LOLA).
AGENT_COLOURS = np.array(
    [[220, 50, 50], [40, 100, 220], [60, 180, 75], [245, 130, 48], [145, 30, 180], [70, 200, 200]], np.uint8
)
ANSI_AGENT = ("\x1b[31m", "\x1b[34m", "\x1b[32m", "\x1b[33m", "\x1b[35m", "\x1b[36m")
ANSI_RESET = "\x1b[0m"


class CoinGameParams(GameParams):
    variant: Literal["reciprocator", "lola"] = Field(
        "reciprocator",
        description="reciprocator: N coins always present, 5 actions, all collectors paid; "
        "lola: 2 players, one coin whose colour alternates, 4 actions, red wins ties",
    )
    n_agents: int = Field(2, ge=2, le=10, description="N (lola: must be 2; Reciprocator config: 3)")
    grid_size: int = Field(3, ge=2, description="side g of the g × g torus")
    max_steps: int | None = Field(
        None, ge=1, description="episode length T; None = the variant's default (reciprocator 32, lola 150)"
    )
    owner_penalty: float | None = Field(
        None,
        description="reward of a coin's owner per pickup by another agent; None = −N/(N−1) "
        "(−2 for N = 2, the LOLA value)",
    )
    obs_order: Literal["owner_first", "reference_roll", "shared"] | None = Field(
        None,
        description="channel order of agent i's planes: owner_first = own position and coin first, then "
        "the others cyclically; reference_roll = the Reciprocator repository's roll by 2i; shared = "
        "the global order [pos_0..pos_N−1, coin_0..coin_N−1] for everyone, as in the LOLA repository; "
        "None = owner_first for reciprocator, shared for lola",
    )

    @model_validator(mode="after")
    def _check_variant(self) -> CoinGameParams:
        if self.variant == "lola" and self.n_agents != 2:
            raise ValueError(f"the lola coin game has exactly 2 players (red, blue), got n_agents={self.n_agents}")
        return self

    @property
    def episode_length(self) -> int:
        return self.max_steps if self.max_steps is not None else DEFAULT_MAX_STEPS[self.variant]

    @property
    def channel_order(self) -> str:
        if self.obs_order is not None:
            return self.obs_order
        return "shared" if self.variant == "lola" else "owner_first"

    @property
    def penalty(self) -> float:
        if self.owner_penalty is not None:
            return self.owner_penalty
        return -self.n_agents / (self.n_agents - 1)


class CoinGame(Game):
    """Agents on a torus collect coins; taking another's coin gains +1 and costs its owner more."""

    name = "coin_game"
    Params = CoinGameParams
    default_action = STAY
    noop_action = STAY
    #: Planes `[2N, g, g]`: channels first.
    observation_layout = "CHW"

    def __init__(self, params: CoinGameParams, batch_size: int) -> None:
        super().__init__(params, batch_size)
        self.p: CoinGameParams = params
        n, g = params.n_agents, params.grid_size
        self._lola = params.variant == "lola"
        if self._lola:
            # LOLA has no stay action; moving right is as neutral as any other default.
            self.default_action = RIGHT
            self.noop_action = None
        n_actions = 4 if self._lola else 5
        self.observation_spaces = [gym.spaces.Box(0.0, 1.0, (2 * n, g, g), np.float32) for _ in range(n)]
        self.action_spaces = [gym.spaces.Discrete(n_actions) for _ in range(n)]
        self.action_names = [MOVE_NAMES[:n_actions] for _ in range(n)]
        self._channel_order = [self._channels_for(i) for i in range(n)]
        n_coins = 1 if self._lola else n
        self._agents = np.zeros((batch_size, n, 2), dtype=np.int64)
        self._coins = np.zeros((batch_size, n_coins, 2), dtype=np.int64)
        self._owners = np.tile(np.arange(n_coins, dtype=np.int64), (batch_size, 1))
        self._t = 0

    def _channels_for(self, agent: int) -> np.ndarray:
        """Indices into the global planes `[pos_0..pos_{N-1}, coin_0..coin_{N-1}]` for this agent."""
        n = self.p.n_agents
        if self.p.channel_order == "owner_first":
            cyclic = (np.arange(n) + agent) % n
            return np.concatenate([cyclic, n + cyclic])
        if self.p.channel_order == "reference_roll":
            return (np.arange(2 * n) + 2 * agent) % (2 * n)
        return np.arange(2 * n)

    @property
    def max_steps(self) -> int:
        return self.p.episode_length

    def _random_free_cell(self, occupied: np.ndarray) -> np.ndarray:
        """Uniform cell per copy among those not `occupied` (`[B, g²]` bool), as (row, col) `[B, 2]`.

        One draw per call whatever the occupancy, so the random stream stays aligned across copies.
        """
        free = ~occupied
        rank = np.floor(self.rng.uniform() * free.sum(axis=1)).astype(np.int64)
        flat = np.argmax(np.cumsum(free, axis=1) > rank[:, None], axis=1)
        return np.stack(np.divmod(flat, self.p.grid_size), axis=1)

    def _occupancy(self, cells: np.ndarray) -> np.ndarray:
        """`[B, g²]` bool of the cells listed in `cells` `[B, K, 2]`."""
        g = self.p.grid_size
        occupied = np.zeros((self.batch_size, g * g), dtype=bool)
        np.put_along_axis(occupied, cells[..., 0] * g + cells[..., 1], True, axis=1)
        return occupied

    def reset(self, seeds: np.ndarray) -> list[np.ndarray]:
        self.rng.reseed(seeds)
        g, n = self.p.grid_size, self.p.n_agents
        self._t = 0
        if self._lola:
            # Players on distinct cells, a coin of random colour on a cell free of both.
            self._agents[:, 0] = self.rng.integers(g, 2)
            self._agents[:, 1] = self._random_free_cell(self._occupancy(self._agents[:, :1]))
            self._owners[:, 0] = self.rng.integers(2)
            self._coins[:, 0] = self._random_free_cell(self._occupancy(self._agents))
        else:
            cells = self.rng.integers(g, 2 * n, 2)
            self._agents, self._coins = cells[:, :n].copy(), cells[:, n:].copy()
        return self.observe()

    def step(self, actions: np.ndarray) -> StepResult:
        actions = np.asarray(actions, dtype=np.int64)
        n = self.p.n_agents
        self._agents = (self._agents + MOVES[actions]) % self.p.grid_size
        # collectors[b, k, c]: agent k stands on coin c after the move.
        collectors = (self._agents[:, :, None, :] == self._coins[:, None, :, :]).all(axis=-1)
        if self._lola:
            collectors[:, 1] &= ~collectors[:, 0]  # red is checked first and wins ties
        owned = self._owners[:, None, :] == np.arange(n)[None, :, None]  # owned[b, k, c]: k owns c
        pickups_per_coin = collectors.sum(axis=1)
        foreign_per_coin = pickups_per_coin - (collectors & owned).sum(axis=1)
        rewards = collectors.sum(axis=2) + self.p.penalty * (owned * foreign_per_coin[:, None, :]).sum(axis=2)
        collected = pickups_per_coin > 0
        self._respawn(collected)
        self._t += 1
        events = {
            "own_coin": (collectors & owned).sum(axis=2).astype(np.float32),
            "other_coin": (collectors & ~owned).sum(axis=2).astype(np.float32),
        }
        no_end = np.zeros(self.batch_size, bool)
        truncated = np.full(self.batch_size, self._t >= self.max_steps)
        return StepResult(self.observe(), rewards.astype(np.float32), no_end, truncated, events)

    def _respawn(self, collected: np.ndarray) -> None:
        """Replace collected coins: Reciprocator anywhere; LOLA the other colour, off both players."""
        if self._lola:
            fresh = self._random_free_cell(self._occupancy(self._agents))[:, None, :]
            self._owners = np.where(collected, 1 - self._owners, self._owners)
        else:
            fresh = self.rng.integers(self.p.grid_size, self._coins.shape[1], 2)
        self._coins = np.where(collected[..., None], fresh, self._coins)

    def _global_planes(self) -> np.ndarray:
        """`[B, 2N, g, g]` one-hot planes `[pos_0..pos_{N-1}, coin_0..coin_{N-1}]` (coin plane = owner)."""
        n, g = self.p.n_agents, self.p.grid_size
        planes = np.zeros((self.batch_size, 2 * n, g, g), dtype=np.float32)
        batch = np.arange(self.batch_size)[:, None]
        planes[batch, np.arange(n)[None, :], self._agents[..., 0], self._agents[..., 1]] = 1.0
        planes[batch, n + self._owners, self._coins[..., 0], self._coins[..., 1]] = 1.0
        return planes

    def observe(self) -> list[np.ndarray]:
        planes = self._global_planes()
        return [planes[:, order] for order in self._channel_order]

    def state(self) -> np.ndarray:
        """Global planes `[B, 2N, g, g]` in id order (agent 0's owner-first view)."""
        return self._global_planes()

    def render(self, mode: str = "ansi", index: int = 0) -> str | np.ndarray:
        if mode not in ("ansi", "rgb_array"):
            raise ValueError(f"unknown render mode {mode!r}; use 'ansi' or 'rgb_array'")
        g = self.p.grid_size
        agents, coins, owners = self._agents[index], self._coins[index], self._owners[index]
        if mode == "rgb_array":
            cell = 24
            image = np.full((g * cell, g * cell, 3), 30, np.uint8)
            for r in range(g):
                for c in range(g):
                    image[r * cell + 1 : (r + 1) * cell - 1, c * cell + 1 : (c + 1) * cell - 1] = 70
            for (r, c), owner in zip(coins, owners):
                top, left = r * cell + 14, c * cell + 14
                image[top : top + 8, left : left + 8] = AGENT_COLOURS[owner % len(AGENT_COLOURS)]
            for k, (r, c) in enumerate(agents):
                top, left = r * cell + 2 + 3 * (k % 4), c * cell + 2 + 3 * (k % 4)
                image[top : top + 8, left : left + 8] = AGENT_COLOURS[k % len(AGENT_COLOURS)]
            return image
        # Each cell lists its agents (digits) and coins ("o"), coloured by agent / owner.
        tokens: list[list[list[str]]] = [[[] for _ in range(g)] for _ in range(g)]
        for k, (r, c) in enumerate(agents):
            tokens[r][c].append(f"{ANSI_AGENT[k % len(ANSI_AGENT)]}{k}{ANSI_RESET}")
        for (r, c), owner in zip(coins, owners):
            tokens[r][c].append(f"{ANSI_AGENT[owner % len(ANSI_AGENT)]}o{ANSI_RESET}")
        width = max(1, *(len(cell) for row in tokens for cell in row))
        lines = [f"t={self._t} (digits: agents; o: coin in its owner's colour)"]
        for row in tokens:
            lines.append(" ".join("".join(cell) + "." * (width - len(cell)) for cell in row))
        return "\n".join(lines)
