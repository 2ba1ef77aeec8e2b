"""The README's promises: its agent example runs as written, and CI runs its test command."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import REPO, launch, write_config

README = (REPO / "README.md").read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.DOTALL)


def test_ci_runs_the_readme_test_command() -> None:
    test_command = code_blocks("bash")[1].strip()
    assert test_command in (REPO / ".ci" / "run").read_text(encoding="utf-8")


@pytest.mark.slow
def test_readme_agent_example_plays_as_described(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = next(block for block in code_blocks("python") if "class Grudger" in block)
    (tmp_path / "readme_agent.py").write_text(example, encoding="utf-8")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    config = write_config(tmp_path / "run.toml",
                          {"game": "ipd", "episodes": 2, "batch_size": 4, "disclose": ["actions"],
                           "params": {"max_steps": 5}},
                          [{"name": "grudger", "kind": "readme_agent:Grudger"},
                           {"name": "defector", "kind": "always-defect"}])
    finished = launch(config)
    assert finished.code == 0, finished.output
    # t=0: C against D (-3, 0); then both defect for 4 steps (-2, -2 each)
    assert [e["returns"] for e in finished.episodes()] == [{"grudger": -11.0, "defector": -8.0}] * 2
    metrics = (finished.run_dir / "agents" / "grudger" / "metrics.jsonl").read_text()
    assert '"betrayed": 1.0' in metrics
