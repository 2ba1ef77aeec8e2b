"""Learning agents run as real processes write checkpoints at the configured period and at the end,
and resume from them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.conftest import launch, write_config

pytestmark = pytest.mark.slow


def test_pg_agents_checkpoint_periodically_and_at_the_end(tmp_path: Path) -> None:
    config = write_config(tmp_path / "run.toml",
                          {"game": "escape_room", "episodes": 5, "batch_size": 8, "params": {"max_steps": 5}},
                          [{"name": "a", "kind": "pg"}, {"name": "b", "kind": "pg"}])
    text = config.read_text().replace('out = ', 'checkpoint_every = 2\nout = ', 1)
    config.write_text(text)
    finished = launch(config)
    assert finished.code == 0, finished.output
    for name in ("a", "b"):
        folder = finished.run_dir / "agents" / name / "checkpoints"
        assert sorted(p.name for p in folder.iterdir()) == ["episode_2.pt", "episode_4.pt", "final.pt"]
        state = torch.load(folder / "final.pt", weights_only=False)
        assert {"_rng", "_extra"} <= set(state) and len(state) > 2
    # a second run resumes both agents from the first run's final checkpoints
    resumed = config.read_text().replace('kind = "pg"', 'kind = "pg"\nresume = "{}"')
    resumed = resumed.format(*(str(finished.run_dir / "agents" / n / "checkpoints" / "final.pt") for n in "ab"))
    config.write_text(resumed)
    again = launch(config)
    assert again.code == 0, again.output
    assert "resumed from" in (again.run_dir / "agents" / "a.log").read_text()
