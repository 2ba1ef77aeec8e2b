"""The human seat as a person uses it: `arena launch` waits for the external seat, the person joins with
the printed command in a terminal (tmux), reads the screen and types keys; the run directory must
show exactly what was typed."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import write_config

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
REPO = Path(__file__).resolve().parents[1]


class Terminal:
    """One tmux session running a command, read with capture-pane and driven with send-keys."""

    def __init__(self, command: str, width: int = 120, height: int = 40) -> None:
        self.name = f"human-{uuid.uuid4().hex[:8]}"
        subprocess.run(["tmux", "new-session", "-d", "-s", self.name, "-x", str(width), "-y", str(height),
                        f"{command}; echo EXITED $?; sleep 60"], check=True)

    def screen(self, colours: bool = False) -> str:
        flags = ["-e"] if colours else []
        return subprocess.run(["tmux", "capture-pane", "-p", *flags, "-t", self.name], capture_output=True,
                              text=True, check=True).stdout

    def text(self) -> str:
        """The screen's words, whitespace and line wrapping collapsed to single spaces."""
        return " ".join(self.screen().split())

    def wait_for(self, text: str, timeout: float = 30.0) -> str:
        """The screen's words (see `text`) once `text` is among them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.text()
            if text in screen:
                return screen
            time.sleep(0.1)
        raise AssertionError(f"{text!r} never appeared on the screen:\n{self.screen()}")

    def keys(self, *keys: str) -> None:
        subprocess.run(["tmux", "send-keys", "-t", self.name, *keys], check=True)

    def resize(self, width: int, height: int) -> None:
        subprocess.run(["tmux", "resize-window", "-t", self.name, "-x", str(width), "-y", str(height)], check=True)

    def close(self) -> None:
        subprocess.run(["tmux", "kill-session", "-t", self.name], capture_output=True)


class Run:
    """`arena launch CONFIG` in the background, with the join command it prints for the human seat."""

    def __init__(self, config: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-m", "launch.cli", "launch", str(config)], cwd=REPO,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.output: list[str] = []
        while not any("arena agent human" in line for line in self.output):
            line = self.process.stdout.readline()
            if not line:
                raise AssertionError("arena launch ended before asking for the human seat:\n" + "".join(self.output))
            self.output.append(line)
        self.run_dir = Path(next(line for line in self.output if line.startswith("run directory: "))
                            .removeprefix("run directory: ").strip())
        printed = next(line for line in self.output if "arena agent human" in line).strip()
        # the printed command, run with this interpreter (`arena` may not be on this PATH)
        self.join = f"{shlex.quote(sys.executable)} -m launch.cli {printed.removeprefix('arena ')}"

    def finish(self, timeout: float = 60.0) -> int:
        out, _ = self.process.communicate(timeout=timeout)
        self.output.append(out)
        return self.process.returncode

    def records(self, name: str) -> list[dict]:
        return [json.loads(line) for line in (self.run_dir / name).read_text().splitlines()]


@pytest.fixture
def terminals() -> Iterator[list[Terminal]]:
    opened: list[Terminal] = []
    yield opened
    for terminal in opened:
        terminal.close()


def join(config: Path, terminals: list[Terminal]) -> tuple[Run, Terminal]:
    """Launch `config` and take its human seat in a new terminal, as a person would."""
    run = Run(config)
    terminal = Terminal(run.join)
    terminals.append(terminal)
    return run, terminal


def ipd_config(tmp_path: Path, **arena: object) -> Path:
    human = {"name": "me", "kind": "human", "external": True}
    if arena.get("rmax"):
        human["options"] = {"pay": True}
    return write_config(tmp_path / "run.toml", {"game": "ipd", "episodes": 1, "batch_size": 1, "deadline": "wait",
                                                "disclose": ["actions", "rewards", "payments"],
                                                "params": {"max_steps": 3}, **arena},
                        [human, {"name": "tft", "kind": "tit-for-tat"}], name="human_ipd")


def test_a_person_plays_ipd_against_tit_for_tat(tmp_path: Path, terminals: list[Terminal]) -> None:
    run, terminal = join(ipd_config(tmp_path), terminals)
    screen = terminal.wait_for("your move")
    assert "me (seat 0 of 2) · ipd" in screen
    assert "[1/c] cooperate [2/d] defect [q] quit" in screen and "no time limit" in screen
    assert "step 1/3" in screen
    for step, key in enumerate(["c", "c", "d"], start=1):
        terminal.wait_for(f"step {step}/3")
        terminal.wait_for("your move")
        terminal.keys(key)
        if step == 2:
            assert "tft: last action cooperate, last reward -1.00" in terminal.text()
    # C, C, D against tit-for-tat's C, C, C: me -1 -1 +0, tft -1 -1 -3
    screen = terminal.wait_for("the run is complete")
    assert "episode 1 over: returns me -2.00, tft -5.00" in screen
    terminal.keys("q")
    terminal.wait_for("EXITED 0")
    assert run.finish() == 0
    (episode,) = run.records("episodes.jsonl")
    assert episode["returns"] == {"me": -2.0, "tft": -5.0}
    assert episode["events"]["cooperated"] == {"me": 2.0, "tft": 3.0}


def test_a_person_pays_an_incentive_and_the_ledger_shows_it(tmp_path: Path, terminals: list[Terminal]) -> None:
    run, terminal = join(ipd_config(tmp_path, rmax=2.0), terminals)
    assert "--options" in run.join and "pay" in run.join  # the printed command carries the seat's options
    for step, (key, amount) in enumerate([("c", "1.5"), ("d", "7"), ("c", "")], start=1):
        terminal.wait_for(f"step {step}/3")
        terminal.wait_for("your move")
        terminal.keys(key)
        terminal.wait_for("Pay phase")
        if amount:
            terminal.keys(amount)
        terminal.keys("Enter")
        if amount == "7":  # above rmax: refused on screen, typed again
            terminal.wait_for("'7' is not an amount between 0 and 2")
            terminal.keys("0.5", "Enter")
    terminal.wait_for("the run is complete")
    terminal.keys("q")
    terminal.wait_for("EXITED 0")
    assert run.finish() == 0
    (ledger,) = run.records("ledger.jsonl")
    assert ledger["paid_units"] == [[0, 2_000_000], [0, 0]]  # 1.5 + 0.5 + 0 credits from me to tft
    assert ledger["balanced"] and ledger["refused"] == {"me": 0, "tft": 0}
    (episode,) = run.records("episodes.jsonl")
    assert episode["incentives_received"]["tft"] == 2.0 and episode["incentives_given"]["me"] == 2.0


def test_a_person_plays_cleanup_beside_a_learner_with_a_countdown(tmp_path: Path, terminals: list[Terminal]) -> None:
    config = write_config(tmp_path / "run.toml", {
        "game": "cleanup", "episodes": 1, "batch_size": 2, "deadline": "default", "step_timeout_s": 3.0,
        "params": {"map": "small7", "max_steps": 4}},
        [{"name": "me", "kind": "human", "external": True, "options": {"other_copies": "random"}},
         {"name": "learner", "kind": "ac"}], name="human_cleanup")
    run, terminal = join(config, terminals)
    screen = terminal.wait_for("s left")
    assert "you play copy 0 of 2; copies 1–1 play the agent kind 'random'" in screen
    assert "[1/←/a] move_left" in screen and "[6/c] clean" in screen
    assert "then your default action" in screen
    # the 9 × 9 view (view_size 4) is drawn as cells with background colours, one screen line per row
    coloured_rows = [line for line in terminal.screen(colours=True).splitlines()
                     if len(re.findall(r"\x1b\[(?:\d+;)*48;[25];", line)) >= 2]
    assert len(coloured_rows) >= 9, terminal.screen(colours=True)
    terminal.resize(90, 36)  # the screen survives a resize
    # step 1 is left to the clock: the default action (stay) is played, and the screen says so
    screen = terminal.wait_for("step 1: time ran out, your default action stay was played", timeout=10)
    for step, key in [(2, "Left"), (3, "Up"), (4, "c")]:
        terminal.wait_for(f"step {step}/4")
        terminal.wait_for("your move")
        terminal.keys(key)
    terminal.wait_for("the run is complete")
    terminal.keys("q")
    terminal.wait_for("EXITED 0")
    assert run.finish() == 0
    (episode,) = run.records("episodes.jsonl")
    assert episode["steps"] == 4.0 and episode["deadline_misses"]["me"] == 0  # the clock ran out on screen, in time
    # copy 0's last action was CLEAN; the random copy may clean too, so at least half a clean per copy
    assert episode["events"]["clean_actions"]["me"] >= 0.5
