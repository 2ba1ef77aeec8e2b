"""Harvest (games.md §4): a common-pool resource whose apples regrow only next to other apples.

Same engine as Cleanup's SSD map (moves relative to orientation, FIRE beam, rotated uint8 views);
step 5 is regrowth: an empty apple cell with no agent on it grows an apple with a probability set by
the number n of apples in its 3×3 block, read after this step's eating and before any new apple.
"""

from __future__ import annotations

import numpy as np
from pydantic import Field, field_validator

from arena.games.base import GameParams, StepResult
from arena.games.gridworld import (
    APPLE,
    FIRE,
    FIRE_BEAM,
    FLOOR,
    MAX_AGENTS,
    MOVE_DOWN,
    MOVE_LEFT,
    MOVE_RIGHT,
    MOVE_UP,
    SSD_AGENT_COLOURS,
    STAY,
    TURN_CLOCKWISE,
    TURN_COUNTERCLOCKWISE,
    WALL,
    GridworldGame,
    ViewRotation,
    build_palette,
    draw_slices,
    padded_grid,
)

#: SSD `HARVEST_MAP`.
HARVEST_MAP = (
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
    "@ P   P      A    P AAAAA    P  A P  @",
    "@  P     A P AA    P    AAA    A  A  @",
    "@     A AAA  AAA    A    A AA AAAA   @",
    "@ A  AAA A    A  A AAA  A  A   A A   @",
    "@AAA  A A    A  AAA A  AAA        A P@",
    "@ A A  AAA  AAA  A A    A AA   AA AA @",
    "@  A A  AAA    A A  AAA    AAA  A    @",
    "@   AAA  A      AAA  A    AAAA       @",
    "@ P  A       A  A AAA    A  A      P @",
    "@A  AAA  A  A  AAA A    AAAA     P   @",
    "@    A A   AAA  A A      A AA   A  P @",
    "@     AAA   A A  AAA      AA   AAA P @",
    "@ A    A     AAA  A  P          A    @",
    "@       P     A         P  P P     P @",
    "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@",
)

LEGEND = {"@": WALL, "P": FLOOR, " ": FLOOR, "A": APPLE}
ACTIONS = (MOVE_LEFT, MOVE_RIGHT, MOVE_UP, MOVE_DOWN, STAY, TURN_CLOCKWISE, TURN_COUNTERCLOCKWISE, FIRE)
COLOURS = {WALL: (180, 180, 180), APPLE: (0, 255, 0), FIRE_BEAM: (255, 255, 0)}
EVENTS = ("apples", "fired", "hit", "fire_actions")
#: The block counted for regrowth: j² + k² ≤ 2, i.e. the 3×3 block (upstream's "radius 2").
NEIGHBOURHOOD = tuple((j, k) for j in (-1, 0, 1) for k in (-1, 0, 1))


class HarvestParams(GameParams):
    n_agents: int = Field(5, ge=1, le=MAX_AGENTS, description="players (Social influence paper: 5)")
    regrowth_probs: tuple[float, float, float, float] = Field(
        (0.0, 0.005, 0.02, 0.05),
        description="regrowth probability with 0, 1, 2 and ≥3 apples in the 3×3 block (upstream `spawn_apples`)")
    view_size: int = Field(7, ge=1, le=20, description="v: the view is (2v+1)×(2v+1) cells")
    max_steps: int = Field(1000, ge=1, description="episode length T")
    fire_cost: float = Field(1.0, description="reward subtracted whenever FIRE is used")
    hit_penalty: float = Field(50.0, description="reward subtracted per FIRE line that hits the agent")
    view_rotation: ViewRotation = Field(
        "upstream", description="'upstream' (LEFT/RIGHT turned 180°, games.md §3b pitfall 4) or 'forward_up'")

    @field_validator("regrowth_probs")
    @classmethod
    def _probabilities(cls, probs: tuple[float, ...]) -> tuple[float, ...]:
        if not all(0.0 <= p <= 1.0 for p in probs):
            raise ValueError(f"regrowth_probs must lie in [0, 1], got {probs}")
        return probs


class Harvest(GridworldGame):
    """Five agents (by default) gather apples; over-harvesting a patch kills it for the episode."""

    name = "harvest"
    Params = HarvestParams

    def __init__(self, params: HarvestParams, batch_size: int) -> None:
        super().__init__(params, batch_size)
        self.p = params
        grid = padded_grid(HARVEST_MAP, params.view_size)
        self._setup(grid=grid, legend=LEGEND, n_agents=params.n_agents, game_actions=ACTIONS,
                    view_size=params.view_size, view_rotation=params.view_rotation,
                    palette=build_palette(COLOURS, SSD_AGENT_COLOURS, params.n_agents),
                    scale_obs=False, beams_in_obs=False, random_spawn=True, random_beam_order=True)
        self.apple_cells = grid.cells_of("A")
        self._neighbours = self.apple_cells[:, None] + grid.offset(*np.array(NEIGHBOURHOOD).T)[None, :]
        # Index by neighbour count 0…9 (the block holds at most 9 cells); counts ≥ 3 share one value.
        self._regrowth = np.array(params.regrowth_probs + (params.regrowth_probs[-1],) * 6)
        N = params.n_agents
        self._draw_slices = draw_slices(N, N, len(self.apple_cells))

    def step(self, actions: np.ndarray) -> StepResult:
        engine_actions = self.engine_actions[np.asarray(actions, dtype=np.int64)]
        u = self.rng.uniform(self._draw_slices[-1].stop)
        priority, order, regrowth_u = (u[:, part] for part in self._draw_slices)
        apples = self._turn_move_eat(engine_actions, priority)
        fired, hit, _ = self._fire_beams(engine_actions, order)
        self._regrow(regrowth_u)
        self.t += 1
        fire_actions = (engine_actions == FIRE).astype(np.float32)
        rewards = apples - self.p.fire_cost * fire_actions - self.p.hit_penalty * hit
        events = dict(zip(EVENTS, (apples, fired, hit, fire_actions), strict=True))
        terminated = np.zeros(self.batch_size, dtype=bool)
        return StepResult(self.observe(), rewards.astype(np.float32), terminated, self._truncated(), events)

    def apple_count(self) -> np.ndarray:
        """Apples `[B]` on the map of each copy."""
        return (self.cells[:, self.apple_cells] == APPLE).sum(axis=1)

    def _regrow(self, regrowth_u: np.ndarray) -> None:
        """Step 5: regrowth from the apples of the 3×3 block (games.md §4), no cascade within a step."""
        now = self.cells[:, self.apple_cells]
        n_near = (self.cells[:, self._neighbours] == APPLE).sum(axis=2)
        grows = (now != APPLE) & (self.agent_at[:, self.apple_cells] < 0) & (regrowth_u < self._regrowth[n_near])
        self.cells[:, self.apple_cells] = np.where(grows, APPLE, now)
