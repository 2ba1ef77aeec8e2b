"""Cleanup (games.md §3): a river fills with waste and apples grow only while it is clean enough.

One class serves both families, chosen by the `map` parameter, because they share every rule of
the world (beams, waste and apple spawning, moves) and differ only in presentation and in what the
agents may do:

| | `small7`, `small10` (LIO, §3a) | `ssd` (Social influence, §3b) |
|---|---|---|
| actions | 6: left, right, up, down, stay, clean (absolute: always facing UP) | 9, relative to orientation, with FIRE |
| spawn | fixed: the last spawn cells in row-major order, facing UP | random free spawn cells and orientations |
| beam order | agent id | random each step |
| observation | float32 RGB / 256, beams drawn, LIO fork colours | uint8 RGB, no beams, upstream colours, rotated |

Each map's parameters from games.md are the defaults; every one of them can be overridden.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from arena.games.base import GameParams, StepResult
from arena.games.gridworld import (
    APPLE,
    CLEAN,
    CLEAN_BEAM,
    FIRE,
    FIRE_BEAM,
    FLOOR,
    LIO_AGENT_COLOURS,
    MAX_AGENTS,
    MOVE_DOWN,
    MOVE_LEFT,
    MOVE_RIGHT,
    MOVE_UP,
    RIVER,
    SSD_AGENT_COLOURS,
    STAY,
    STREAM,
    TURN_CLOCKWISE,
    TURN_COUNTERCLOCKWISE,
    WALL,
    WASTE,
    GridworldGame,
    ViewRotation,
    build_palette,
    draw_slices,
    padded_grid,
)

MapName = Literal["small7", "small10", "ssd"]

MAPS: dict[str, tuple[str, ...]] = {
    # LIO `cleanup_small_sym`
    "small7": (
        "@@@@@@@",
        "@H  PB@",
        "@H   B@",
        "@    B@",
        "@    B@",
        "@ P  B@",
        "@@@@@@@",
    ),
    # LIO `cleanup_10x10_sym`
    "small10": (
        "@@@@@@@@@@",
        "@HH   P B@",
        "@RR    BB@",
        "@HH     B@",
        "@RR    BB@",
        "@HH P   B@",
        "@RR    BB@",
        "@HH     B@",
        "@RRP   BB@",
        "@@@@@@@@@@",
    ),
    # SSD `CLEANUP_MAP`
    "ssd": (
        "@@@@@@@@@@@@@@@@@@",
        "@RRRRRR     BBBBB@",
        "@HHHHHH      BBBB@",
        "@RRRRRR     BBBBB@",
        "@RRRRR  P    BBBB@",
        "@RRRRR    P BBBBB@",
        "@HHHHH       BBBB@",
        "@RRRRR      BBBBB@",
        "@HHHHHHSSSSSSBBBB@",
        "@HHHHHHSSSSSSBBBB@",
        "@RRRRR   P P BBBB@",
        "@HHHHH   P  BBBBB@",
        "@RRRRRR    P BBBB@",
        "@HHHHHH P   BBBBB@",
        "@RRRRR       BBBB@",
        "@HHHH    P  BBBBB@",
        "@RRRRR       BBBB@",
        "@HHHHH  P P BBBBB@",
        "@RRRRR       BBBB@",
        "@HHHH       BBBBB@",
        "@RRRRR       BBBB@",
        "@HHHHH      BBBBB@",
        "@RRRRR       BBBB@",
        "@HHHH       BBBBB@",
        "@@@@@@@@@@@@@@@@@@",
    ),
}

#: games.md §3a parameter table (LIO `config_ssd_lio.py`) and §3b.
MAP_DEFAULTS: dict[str, dict[str, Any]] = {
    "small7": {"n_agents": 2, "apple_respawn_prob": 0.5, "depletion_threshold": 0.6,
               "restoration_threshold": 0.0, "waste_spawn_prob": 0.5, "view_size": 4, "max_steps": 50},
    "small10": {"n_agents": 2, "apple_respawn_prob": 0.3, "depletion_threshold": 0.4,
                "restoration_threshold": 0.0, "waste_spawn_prob": 0.5, "view_size": 7, "max_steps": 50},
    "ssd": {"n_agents": 5, "apple_respawn_prob": 0.05, "depletion_threshold": 0.4,
            "restoration_threshold": 0.0, "waste_spawn_prob": 0.5, "view_size": 7, "max_steps": 1000},
}

LEGEND = {"@": WALL, "P": FLOOR, "B": FLOOR, " ": FLOOR, "H": WASTE, "R": RIVER, "S": STREAM}

#: LIO's 6-action mode (`disable_rotation_action`): env index -> engine action.
LIO_ACTIONS = (MOVE_LEFT, MOVE_RIGHT, MOVE_UP, MOVE_DOWN, STAY, CLEAN)
SSD_ACTIONS = (MOVE_LEFT, MOVE_RIGHT, MOVE_UP, MOVE_DOWN, STAY, TURN_CLOCKWISE, TURN_COUNTERCLOCKWISE,
               FIRE, CLEAN)

#: Object colours; the LIO fork and upstream SSD swap the colours of waste and river (§3b pitfall 5).
LIO_COLOURS = {WALL: (180, 180, 180), APPLE: (0, 255, 0), WASTE: (113, 75, 24), RIVER: (99, 156, 194),
               STREAM: (99, 156, 194), CLEAN_BEAM: (100, 255, 255), FIRE_BEAM: (255, 255, 0)}
SSD_COLOURS = {WALL: (180, 180, 180), APPLE: (0, 255, 0), WASTE: (99, 156, 194), RIVER: (113, 75, 24),
               STREAM: (113, 75, 24), CLEAN_BEAM: (100, 255, 255), FIRE_BEAM: (255, 255, 0)}

EVENTS = ("apples", "cleaned", "clean_actions", "fired", "hit", "fire_actions")


class CleanupParams(GameParams):
    """Cleanup parameters; any left as None take the chosen map's value from games.md."""

    map: MapName = Field("ssd", description="small7 / small10: LIO 7×7 and 10×10 maps (§3a); ssd: 25×18 (§3b)")
    n_agents: int | None = Field(None, ge=1, le=MAX_AGENTS,
                                 description="players (small maps 2, ssd 5); at most the map's spawn cells")
    apple_respawn_prob: float | None = Field(None, ge=0, le=1,
                                             description="pA, apple probability per free cell (0.5 / 0.3 / 0.05)")
    depletion_threshold: float | None = Field(None, ge=0, le=1,
                                              description="tD: waste density at which nothing spawns (0.6 / 0.4 / 0.4)")
    restoration_threshold: float | None = Field(None, ge=0, le=1,
                                                description="tR: waste density at or below which apples get pA (0)")
    waste_spawn_prob: float | None = Field(None, ge=0, le=1,
                                           description="pW, waste probability per tried clean cell (0.5)")
    view_size: int | None = Field(None, ge=1, le=20,
                                  description="v: the view is (2v+1)×(2v+1) cells (4 / 7 / 7)")
    max_steps: int | None = Field(None, ge=1, description="episode length T (50 / 50 / 1000)")
    clean_cost: float = Field(0.0, description="reward subtracted whenever CLEAN is used (LIO cleaning_penalty)")
    fire_cost: float = Field(1.0, description="reward subtracted whenever FIRE is used (ssd only)")
    hit_penalty: float = Field(50.0, description="reward subtracted per FIRE line that hits the agent (ssd only)")
    view_rotation: ViewRotation = Field(
        "upstream", description="ssd view rotation: 'upstream' (LEFT/RIGHT turned 180°, §3b pitfall 4) or "
        "'forward_up' (facing direction always at the top)")

    @model_validator(mode="before")
    @classmethod
    def _fill_map_defaults(cls, data: Any) -> Any:
        if not isinstance(data, dict) or data.get("map", "ssd") not in MAP_DEFAULTS:
            return data
        filled = dict(data)
        for key, value in MAP_DEFAULTS[filled.get("map", "ssd")].items():
            if filled.get(key) is None:
                filled[key] = value
        return filled

    @model_validator(mode="after")
    def _check(self) -> CleanupParams:
        if self.depletion_threshold <= self.restoration_threshold:
            raise ValueError(f"depletion_threshold ({self.depletion_threshold}) must exceed "
                             f"restoration_threshold ({self.restoration_threshold})")
        n_spawn = sum(row.count("P") for row in MAPS[self.map])
        if self.n_agents > n_spawn:
            raise ValueError(f"n_agents={self.n_agents} but map {self.map!r} has only {n_spawn} spawn cells")
        return self

    @property
    def is_lio(self) -> bool:
        return self.map != "ssd"


def spawn_probabilities(n_waste: np.ndarray, area: int, params: CleanupParams) -> tuple[np.ndarray, np.ndarray]:
    """Apple and waste probabilities from the number of waste cells (games.md §3, `compute_probabilities`)."""
    density = n_waste / area
    t_d, t_r = params.depletion_threshold, params.restoration_threshold
    below = density < t_d
    apple = params.apple_respawn_prob * np.clip(1.0 - (density - t_r) / (t_d - t_r), 0.0, 1.0) * below
    waste = params.waste_spawn_prob * below
    return apple, waste


class Cleanup(GridworldGame):
    """Cleanup on the LIO small maps or the SSD map; see the module docstring for the differences."""

    name = "cleanup"
    Params = CleanupParams

    def __init__(self, params: CleanupParams, batch_size: int) -> None:
        super().__init__(params, batch_size)
        self.p = params
        lio = params.is_lio
        grid = padded_grid(MAPS[params.map], params.view_size)
        colours, agent_colours = (LIO_COLOURS, LIO_AGENT_COLOURS) if lio else (SSD_COLOURS, SSD_AGENT_COLOURS)
        self._setup(grid=grid, legend=LEGEND, n_agents=params.n_agents,
                    game_actions=LIO_ACTIONS if lio else SSD_ACTIONS, view_size=params.view_size,
                    view_rotation=params.view_rotation,
                    palette=build_palette(colours, agent_colours, params.n_agents),
                    scale_obs=lio, beams_in_obs=lio, random_spawn=not lio, random_beam_order=not lio)
        self.apple_cells = grid.cells_of("B")
        self.waste_cells = grid.cells_of("HR")
        n_apple, n_waste, N = len(self.apple_cells), len(self.waste_cells), params.n_agents
        # One draw call per step: move priority, beam order, apple draws, waste draws.
        order = N if self.random_beam_order else 0
        self._draw_slices = draw_slices(N, order, n_apple, n_waste)

    def step(self, actions: np.ndarray) -> StepResult:
        engine_actions = self.engine_actions[np.asarray(actions, dtype=np.int64)]
        u = self.rng.uniform(self._draw_slices[-1].stop)
        priority, order, apple_u, waste_u = (u[:, part] for part in self._draw_slices)
        apples = self._turn_move_eat(engine_actions, priority)
        fired, hit, cleaned = self._fire_beams(engine_actions, order if self.random_beam_order else None)
        self._spawn(apple_u, waste_u)
        self.t += 1
        clean_actions = (engine_actions == CLEAN).astype(np.float32)
        fire_actions = (engine_actions == FIRE).astype(np.float32)
        rewards = (apples - self.p.clean_cost * clean_actions - self.p.fire_cost * fire_actions
                   - self.p.hit_penalty * hit)
        events = dict(zip(EVENTS, (apples, cleaned, clean_actions, fired, hit, fire_actions), strict=True))
        terminated = np.zeros(self.batch_size, dtype=bool)
        return StepResult(self.observe(), rewards.astype(np.float32), terminated, self._truncated(), events)

    def waste_count(self) -> np.ndarray:
        """Waste cells `[B]` in each copy."""
        return (self.cells[:, self.waste_cells] == WASTE).sum(axis=1)

    def _spawn(self, apple_u: np.ndarray, waste_u: np.ndarray) -> None:
        """Step 5: apples on free apple cells, then at most one waste cell (games.md §3 spawning)."""
        waste_now = self.cells[:, self.waste_cells]
        apple_p, waste_p = spawn_probabilities((waste_now == WASTE).sum(axis=1), len(self.waste_cells), self.p)

        apple_now = self.cells[:, self.apple_cells]
        grows = (apple_now != APPLE) & (self.agent_at[:, self.apple_cells] < 0) & (apple_u < apple_p[:, None])
        self.cells[:, self.apple_cells] = np.where(grows, APPLE, apple_now)

        # Visiting the clean cells in random order, one draw each, and stopping at the first draw below
        # pW picks a uniformly random cell among those whose draw succeeds. Given which cells succeed,
        # their draws are i.i.d. uniform on [0, pW), so the success with the smallest draw is such a
        # cell too: one draw per cell replaces both the visiting order and the draws.
        succeeds = (waste_now != WASTE) & (waste_u < waste_p[:, None])
        first = np.where(succeeds, waste_u, 2.0).argmin(axis=1)
        spawned = succeeds[self._batch_index, first]
        where = self._row_start[spawned] + self.waste_cells[first[spawned]]
        self.cells.reshape(-1)[where] = WASTE
