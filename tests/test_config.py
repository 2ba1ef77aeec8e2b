"""Run config validation: every mistake is reported with its line and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from launch.config import ConfigError, load_config

GOOD = """\
[run]
name = "t"

[arena]
game = "ipd"
episodes = 3
disclose = ["actions"]

[arena.params]
max_steps = 5

[[agents]]
name = "a"
kind = "tit-for-tat"

[[agents]]
name = "b"
kind = "always-defect"
"""


def load(tmp_path: Path, text: str):
    path = tmp_path / "run.toml"
    path.write_text(text)
    return load_config(path)


def test_good_config_loads(tmp_path: Path) -> None:
    config = load(tmp_path, GOOD)
    assert config.arena.params == {"max_steps": 5} and [a.kind for a in config.agents] == ["tit-for-tat",
                                                                                          "always-defect"]


def test_examples_are_valid() -> None:
    for path in sorted((Path(__file__).resolve().parents[1] / "examples").glob("*.toml")):
        load_config(path)


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("episodes = 3", "episodez = 3", ["run.toml:6", "unknown key 'arena.episodez'", "did you mean 'episodes'"]),
    ("episodes = 3", 'episodes = "many"', ["run.toml:6", "arena.episodes", "valid integer"]),
    ('kind = "always-defect"', 'kind = "always-defect"\ndevise = "cpu"',
     ["run.toml:19", "agents[1].devise", "did you mean 'device'"]),
    ('disclose = ["actions"]', 'disclose = ["gossip"]', ["run.toml:7", "unknown disclosure(s) ['gossip']"]),
    ('game = "ipd"', 'game = "chess"', ["run.toml:5", "unknown game 'chess'", "ipd"]),
    ("max_steps = 5", "max_step = 5", ["run.toml:10", "unknown parameter 'max_step'", "max_steps"]),
    ("max_steps = 5", "max_steps = 0", ["run.toml:10", "greater than or equal to 1"]),
    ("episodes = 3", "episodes = 3\nwarmup_episodes = 3", ["warmup_episodes (3) must be below episodes (3)"]),
    # ranges that would leave a dead agent unnoticed, busy-loop the heartbeats or never bind
    ("episodes = 3", "episodes = 3\nheartbeat_timeout_s = inf", ["run.toml:7", "arena.heartbeat_timeout_s",
                                                                 "less than or equal to 3600"]),
    ("episodes = 3", "episodes = 3\nheartbeat_interval_s = 1e-9", ["run.toml:7", "greater than or equal to 0.01"]),
    ("episodes = 3", "episodes = 3\nstep_timeout_s = inf", ["run.toml:7", "less than or equal to 86400"]),
    ("episodes = 3", 'episodes = 3\naddress = "tcp://127.0.0.1:99999"', ["run.toml:7", "PORT in 1–65535 or *"]),
    ("episodes = 3", 'episodes = 3\naddress = "udp://127.0.0.1:5555"', ["must start with tcp://, ipc://"]),
])
def test_mistakes_point_at_the_line(tmp_path: Path, old: str, new: str, expected: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        load(tmp_path, GOOD.replace(old, new))
    for text in expected:
        assert text in str(caught.value)


def test_wrong_number_of_agents(tmp_path: Path) -> None:
    text = GOOD + '\n[[agents]]\nname = "c"\nkind = "random"\n'
    with pytest.raises(ConfigError, match="has 2 players but the config has 3"):
        load(tmp_path, text)


def test_broken_toml_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(tmp_path, "[arena\n")
    with pytest.raises(ConfigError, match="cannot read run config"):
        load_config(tmp_path / "missing.toml")
