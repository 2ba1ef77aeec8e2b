"""Smoke test of LIO-dec learning through the real arena: ER(2,1) with two lio agents for a few hundred
episodes must move the collective extrinsic return clearly upward (real processes, ~1 min on 2 cores).

The options are examples/er21_lio.toml's with ε decayed over 100 iterations instead of 500, so that the
incentive-driven division of labour (one pulls the lever, the other exits) appears within a few hundred
episodes. Checked on seeds 0 and 1 at 600–900 episodes: first 20% ≈ 3.1–3.6, last 20% ≈ 7.7–8.4 (the
return first dips while ε decays, then rises once the incentives work); faster rates (lr_actor 0.03–0.05,
lr_reward 0.03–0.1) were unreliable (payments saturate at Rmax and the pair sticks near −1).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import launch, write_config

pytestmark = pytest.mark.slow

EPISODES = 700
OPTIONS = {"lr_actor": 0.02, "lr_reward": 0.01, "lr_opp": 0.01, "lr_cost": 0.001, "epsilon_div": 100}


def test_lio_er21_collective_return_rises(tmp_path: Path) -> None:
    arena = {"game": "escape_room", "episodes": EPISODES, "batch_size": 64, "seed": 1, "rmax": 2.0,
             "disclose": ["actions", "rewards", "observations", "payments"],
             "params": {"n_agents": 2, "min_at_lever": 1, "max_steps": 5}}
    agents = [{"name": f"lio{i}", "kind": "lio", "options": OPTIONS} for i in range(2)]
    done = launch(write_config(tmp_path / "run.toml", arena, agents, name="lio_smoke"), 300)
    assert done.code == 0, done.output[-2000:]
    collective = [e["collective_return"] for e in done.episodes()]
    assert len(collective) == EPISODES
    k = EPISODES // 5
    first, last = sum(collective[:k]) / k, sum(collective[-k:]) / k
    # Random play collects about 3.6; the learned division of labour about 8–9 (optimum 9).
    assert last > first + 2.0, f"collective return did not rise: first 20% {first:.2f}, last 20% {last:.2f}"
    assert sum(e["incentives_given"]["lio0"] + e["incentives_given"]["lio1"] for e in done.episodes()) > 0
