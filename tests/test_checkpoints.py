"""Checkpoints: written by agents run as real processes at the configured period and at the end and
resumed from; made only of tensors and plain data, so that resuming never unpickles code; and every
file `load` cannot use refused with one clear `CheckpointError`."""

from __future__ import annotations

import os
import shlex
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from agents.algorithms.ac import ActorCritic
from agents.algorithms.lio import LIO
from agents.algorithms.pg import PolicyGradient
from agents.learners.common import CHECKPOINT_FORMAT, CheckpointError, LearningAlgorithm
from tests.agents.helpers import random_trajectory, seat_info, step_view
from tests.conftest import launch, write_config


@pytest.mark.slow
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
        state = torch.load(folder / "final.pt", weights_only=True)  # plain data only: loads without code
        assert {"_rng", "_extra"} <= set(state) and len(state) > 4
        assert state["_format"] == CHECKPOINT_FORMAT and state["_kind"] == "PolicyGradient"
    # a second run resumes both agents from the first run's final checkpoints
    resumed = config.read_text().replace('kind = "pg"', 'kind = "pg"\nresume = "{}"')
    resumed = resumed.format(*(str(finished.run_dir / "agents" / n / "checkpoints" / "final.pt") for n in "ab"))
    config.write_text(resumed)
    again = launch(config)
    assert again.code == 0, again.output
    assert "resumed from" in (again.run_dir / "agents" / "a.log").read_text()


# ----- in-process unit tests: no arena, no sockets -----

def make(cls: type[LearningAlgorithm], seed: int = 0, **options: Any) -> LearningAlgorithm:
    agent = cls()
    if cls is LIO:
        info = seat_info(obs_dim=6, own_obs_dim=7, seed=seed,
                         options={"policy_hidden": [8, 4], "incentive_hidden": [8, 4], **options})
    else:
        info = seat_info(seed=seed, options={"hidden": [8, 4], **options})
    agent.setup(info)
    return agent


def train(agent: LearningAlgorithm, episodes: int, seed: int = 1) -> None:
    """Play (drawing from the agent's RNGs) and learn, so that every piece of state has moved."""
    rng = np.random.default_rng(seed)
    for _ in range(episodes):
        agent.act(step_view(rng.uniform(size=(6, agent.info.observation_space.shape[0])).astype(np.float32)))
        agent.np_rng.random(3)
        agent.end_episode(random_trajectory(rng, agent.info), {})


def assert_same(a: Any, b: Any, where: str = "state") -> None:
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and set(a) == set(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert type(a) is type(b) and len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{k}]")
    else:
        assert a == b, where


class Pwn:
    """Unpickling this runs a shell command: what a crafted `resume = ...` file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return os.system, (f"touch {shlex.quote(str(self.marker))}",)


def test_a_checkpoint_that_would_run_code_is_refused_unread(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"_format": CHECKPOINT_FORMAT, "_kind": "PolicyGradient", "policy": Pwn(marker)}, path)
    agent = make(PolicyGradient)
    with pytest.raises(CheckpointError) as err:
        agent.load(str(path))
    assert not marker.exists()
    message = str(err.value)
    assert str(path) in message and "could run arbitrary code" in message and "system" in message
    assert "checkpoints/*.pt" in message and "weights_only" not in message


def test_a_torch_file_that_is_not_a_checkpoint_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.pt"
    torch.save({"a": torch.zeros(1)}, path)
    with pytest.raises(CheckpointError, match="not a social-arena checkpoint") as err:
        make(PolicyGradient).load(str(path))
    assert str(path) in str(err.value)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a torch file at all")
    with pytest.raises(CheckpointError, match="not a readable torch checkpoint") as err:
        make(PolicyGradient).load(str(garbage))
    assert str(garbage) in str(err.value)


def test_a_missing_path_or_a_folder_is_refused(tmp_path: Path) -> None:
    agent = make(PolicyGradient)
    with pytest.raises(CheckpointError, match="no such file") as err:
        agent.load(str(tmp_path / "nope.pt"))
    assert str(tmp_path / "nope.pt") in str(err.value)
    with pytest.raises(CheckpointError, match="not a file"):
        agent.load(str(tmp_path))


def test_a_checkpoint_of_another_kind_or_seat_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "pg.pt"
    make(PolicyGradient).save(str(path))
    with pytest.raises(CheckpointError, match="written by a PolicyGradient agent; this agent's kind is ActorCritic"):
        make(ActorCritic).load(str(path))
    with pytest.raises(CheckpointError, match="does not fit this agent"):
        make(PolicyGradient, hidden=[5]).load(str(path))


def test_save_refuses_state_that_would_not_load_weights_only(tmp_path: Path) -> None:
    agent = make(PolicyGradient)
    agent.extra_state = lambda: {"epsilon_k": np.int64(3)}  # type: ignore[method-assign]
    with pytest.raises(TypeError, match=r"\['_extra'\]\['epsilon_k'\] is a numpy.int64"):
        agent.save(str(tmp_path / "x.pt"))
    assert not (tmp_path / "x.pt").exists()


@pytest.mark.parametrize(("cls", "options", "episodes"), [
    (PolicyGradient, {}, 3), (ActorCritic, {}, 3),
    (LIO, {}, 1), (LIO, {}, 2), (LIO, {"learner": "ac"}, 3)],
    ids=["pg", "ac", "lio-after-tau", "lio-after-tau-hat", "lio-ac-after-tau"])
def test_save_then_load_restores_everything(tmp_path: Path, cls: type[LearningAlgorithm], options: dict[str, Any],
                                            episodes: int) -> None:
    trained = make(cls, **options)
    train(trained, episodes)
    path = tmp_path / "checkpoints" / "final.pt"
    trained.save(str(path))
    assert set(torch.load(path, weights_only=True)) >= {"_format", "_kind", "_extra", "_rng"}
    resumed = make(cls, **options)
    resumed.load(str(path))
    for name, obj in trained.state_objects().items():
        assert_same(obj.state_dict(), resumed.state_objects()[name].state_dict(), name)
    assert trained.opts == resumed.opts and resumed.epsilon.k == trained.epsilon.k == (episodes if cls is not LIO
                                                                                      else episodes // 2)
    if cls is LIO:
        assert resumed.phase == trained.phase == episodes % 2
        assert (resumed.tau_episode is None) == (trained.tau_episode is None) == (episodes % 2 == 0)
        if trained.tau_episode is not None:
            assert set(resumed.tau_episode.recipients) == {1}
            assert_same(vars(trained.tau_episode) | {"recipients": None},
                        vars(resumed.tau_episode) | {"recipients": None}, "tau")
            assert_same(vars(trained.tau_episode.recipients[1]), vars(resumed.tau_episode.recipients[1]), "tau[1]")
    assert torch.equal(torch.rand(5, generator=trained.gen), torch.rand(5, generator=resumed.gen))
    assert np.array_equal(trained.np_rng.random(5), resumed.np_rng.random(5))
    # the two now learn identically (LIO after τ: the incentive update reads the restored τ)
    train(trained, 1, seed=7)
    train(resumed, 1, seed=7)
    for name, obj in trained.state_objects().items():
        assert_same(obj.state_dict(), resumed.state_objects()[name].state_dict(), f"after one more: {name}")
