"""Helpers shared by the tests: write a run config, launch it as real processes, read its results."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return repr(value)


def write_config(path: Path, arena: dict[str, Any], agents: list[dict[str, Any]], name: str = "test") -> Path:
    """A run config TOML from plain dicts (`params` and `options` become sub-tables)."""
    lines = ["[run]", f'name = "{name}"', f'out = "{path.parent / "runs"}"', "", "[arena]"]
    lines += [f"{k} = {toml_value(v)}" for k, v in arena.items() if k != "params"]
    if arena.get("params"):
        lines += ["", "[arena.params]"] + [f"{k} = {toml_value(v)}" for k, v in arena["params"].items()]
    for agent in agents:
        lines += ["", "[[agents]]"] + [f"{k} = {toml_value(v)}" for k, v in agent.items() if k != "options"]
        if agent.get("options"):
            lines += ["[agents.options]"] + [f"{k} = {toml_value(v)}" for k, v in agent["options"].items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@dataclass
class Finished:
    code: int
    output: str
    run_dir: Path | None

    def episodes(self) -> list[dict[str, Any]]:
        return read_jsonl(self.run_dir / "episodes.jsonl")

    def ledger(self) -> list[dict[str, Any]]:
        return read_jsonl(self.run_dir / "ledger.jsonl")

    def result(self) -> dict[str, Any]:
        return json.loads((self.run_dir / "result.json").read_text())


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def run_dir_of(output: str) -> Path | None:
    for line in output.splitlines():
        if line.startswith("run directory: "):
            return Path(line.removeprefix("run directory: ").strip())
    return None


def run_processes(run_dir: Path) -> dict[str, int]:
    """The pids of the arena ("arena") and of the launched agents (by seat name) of `run_dir` that still run,
    found by their command lines (`python -m arena RUN_DIR`, `python -m agents KIND --connection-file
    RUN_DIR/connection.json ... --name NAME`)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                args = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")[:-1]
            except OSError:
                continue
            if args[1:] == ["-m", "arena", str(run_dir)]:
                found["arena"] = int(entry.name)
            elif args[1:3] == ["-m", "agents"] and str(run_dir / "connection.json") in args and "--name" in args:
                found[args[args.index("--name") + 1]] = int(entry.name)
    return found


def arena_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "launch.cli", *args]


def launch(config: Path, timeout: float = 120, *extra: str) -> Finished:
    """`arena launch CONFIG` as a real process tree; returns its exit code, output and run directory."""
    done = subprocess.run(arena_command("launch", str(config), *extra), cwd=REPO, capture_output=True,
                          text=True, timeout=timeout)
    output = done.stdout + done.stderr
    return Finished(done.returncode, output, run_dir_of(output))


@pytest.fixture
def ipd_run(tmp_path: Path):
    """Launch a short IPD run between two agent kinds; returns the finished run."""

    def run(kind_a: str, kind_b: str, **arena: Any) -> Finished:
        settings = {"game": "ipd", "episodes": 3, "batch_size": 8, "disclose": ["actions"],
                    "params": {"max_steps": 10}, **arena}
        config = write_config(tmp_path / "run.toml", settings,
                              [{"name": "alice", "kind": kind_a}, {"name": "bob", "kind": kind_b}])
        return launch(config)

    return run
