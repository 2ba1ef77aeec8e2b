"""Preflight: every mistake in a run config's seats is reported before any process starts, all at once,
with the file, line, seat, what is wrong and how to fix it (exit 2, no traceback, no run directory)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import torch

from tests.conftest import REPO, arena_command, launch, write_config

IPD = {"game": "ipd", "episodes": 2, "batch_size": 2, "params": {"max_steps": 3}}


def check(config: Path, command: str = "check") -> tuple[int, str]:
    done = subprocess.run(arena_command(command, str(config)), cwd=REPO, capture_output=True, text=True,
                          timeout=120)
    return done.returncode, done.stdout + done.stderr


def config_with(tmp_path: Path, seat: dict, arena: dict | None = None, other: dict | None = None) -> Path:
    seats = [{"name": "alice", **seat}, other or {"name": "bob", "kind": "always-defect"}]
    return write_config(tmp_path / "run.toml", {**IPD, **(arena or {})}, seats)


def line_of(config: Path, text: str) -> int:
    """1-based line of the first line of `config` containing `text`."""
    return next(n for n, line in enumerate(config.read_text().splitlines(), 1) if text in line)


def assert_refused(config: Path, output: str, code: int, line_text: str, *fragments: str) -> None:
    assert code == 2, output
    assert "Traceback" not in output, output
    assert f"{config}:{line_of(config, line_text)}: seat 0 'alice'" in output, output
    for fragment in fragments:
        assert fragment in output, output
    assert not (config.parent / "runs").exists(), "a run directory was made: something started"


def test_unknown_option_names_the_line_and_a_close_match(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"kind": "pg", "options": {"lrr": 0.1}})
    code, output = check(config)
    assert_refused(config, output, code, "lrr", "unknown option 'lrr' for kind 'pg'", "did you mean 'lr'?",
                   "Allowed options:")
    assert "pydantic" not in output and "extra_forbidden" not in output


def test_device_that_is_not_a_device(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"kind": "pg", "device": "gpu"})
    code, output = check(config)
    assert_refused(config, output, code, 'device = "gpu"', "'gpu' is not a torch device", '"cpu"', '"cuda:K"')


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_on_a_machine_without_it(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"kind": "pg", "device": "cuda"})
    code, output = check(config)
    assert_refused(config, output, code, 'device = "cuda"', "no usable CUDA GPU", 'use device = "cpu"',
                   "CUDA build of torch")


def test_scripted_agent_on_cuda_would_silently_run_on_cpu(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"kind": "tit-for-tat", "device": "cuda"}, {"disclose": ["actions"]})
    code, output = check(config)
    assert_refused(config, output, code, 'device = "cuda"', "runs no torch model", "remove the `device` line")


def test_kind_that_does_not_import(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"kind": "mypkg.mod:Agent"})
    code, output = check(config)
    assert_refused(config, output, code, "mypkg.mod:Agent", "cannot be loaded: No module named 'mypkg'",
                   "Installed kinds:")


def test_resume_that_does_not_exist(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"kind": "pg", "resume": "runs-old/final.pt"})
    code, output = check(config)
    assert_refused(config, output, code, "resume =", "'runs-old/final.pt' does not exist", "checkpoints/*.pt")


def test_resume_from_another_kinds_checkpoint(tmp_path: Path) -> None:
    from agents.algorithms.pg import PolicyGradient
    from tests.agents.helpers import seat_info

    agent = PolicyGradient()
    agent.setup(seat_info(game="ipd", obs_dim=5, n_actions=2))
    checkpoint = tmp_path / "pg.pt"
    agent.save(str(checkpoint))
    config = config_with(tmp_path, {"kind": "ac", "resume": str(checkpoint)})
    code, output = check(config)
    assert_refused(config, output, code, "resume =", "written by a PolicyGradient agent",
                   "this agent's kind is ActorCritic")


def test_needs_the_run_does_not_disclose(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"kind": "tit-for-tat"}, {"disclose": []})
    code, output = check(config)
    assert code == 2 and "Traceback" not in output, output
    assert f"{config}:{line_of(config, 'disclose')}: seat 0 'alice' (tit-for-tat)" in output, output
    assert "needs others' actions" in output and 'disclose = ["actions"]' in output, output


def test_payer_in_a_run_without_payments(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"kind": "pays-for-cooperation"})
    code, output = check(config)
    assert code == 2 and "Traceback" not in output, output
    assert f"{config}:{line_of(config, '[arena]')}: seat 0 'alice' (pays-for-cooperation)" in output, output
    assert "pays incentives but the run has rmax = 0" in output and "set rmax = 2.0" in output, output


def test_human_seat_that_is_not_external(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"kind": "human"})
    code, output = check(config)
    assert_refused(config, output, code, 'kind = "human"', "played from a terminal", "set external = true")


def test_ipd_only_agent_in_another_game(tmp_path: Path) -> None:
    config = write_config(tmp_path / "run.toml",
                          {"game": "cleanup", "episodes": 1, "disclose": ["actions"],
                           "params": {"map": "small7"}},
                          [{"name": "alice", "kind": "tit-for-tat"}, {"name": "bob", "kind": "random"}])
    code, output = check(config)
    assert_refused(config, output, code, "tit-for-tat", "plays only ipd, not 'cleanup'",
                   "choose a kind that plays it")


def test_every_problem_at_once_and_nothing_started_by_launch(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"kind": "pg", "options": {"lrr": 0.1}, "device": "gpu"},
                         other={"name": "bob", "kind": "tit-for-tat", "resume": "nope.pt"})
    code, output = check(config, "launch")
    assert code == 2 and "Traceback" not in output, output
    assert "has 4 problem(s); nothing was started" in output, output
    assert "seat 1 'bob' (tit-for-tat)" in output and "needs others' actions" in output
    assert "run directory:" not in output and not (tmp_path / "runs").exists()
    code, output = check(config, "serve")
    assert code == 2 and "nothing was started" in output, output


def test_a_good_config_checks_ok(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"kind": "tit-for-tat"}, {"disclose": ["actions"]})
    code, output = check(config)
    assert code == 0 and "ok (2 seats, game 'ipd')" in output, output
    assert not (tmp_path / "runs").exists()


def test_arena_agent_checks_itself_before_connecting() -> None:
    done = subprocess.run(arena_command("agent", "pg", "--connect", "tcp://127.0.0.1:9", "--options",
                                        '{"lrr": 1}', "--device", "gpu", "--resume", "missing.pt"),
                          cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "3 problem(s), not connecting" in done.stderr and "Traceback" not in done.stderr
    assert "unknown option 'lrr'" in done.stderr and "'gpu' is not a torch device" in done.stderr
    assert "'missing.pt' does not exist" in done.stderr


@pytest.mark.slow
def test_launched_seats_with_a_preset_run(tmp_path: Path) -> None:
    """A launched agent gets its seat's options on its command line and checks them before it knows the
    game: a preset (whose values are per game) must pass that check and be applied after `welcome`."""
    config = write_config(tmp_path / "preset.toml", {"game": "ipd", "episodes": 1, "batch_size": 4,
                                                     "disclose": ["actions", "rewards"], "params": {"max_steps": 4}},
                          [{"name": "reciprocator", "kind": "reciprocator", "options": {"preset": "paper"}},
                           {"name": "nl", "kind": "nl-ppo"}])
    finished = launch(config, 180)
    assert finished.code == 0, finished.output
    assert len(finished.episodes()) == 1


def test_a_preset_the_kind_does_not_have_is_refused_before_connecting() -> None:
    done = subprocess.run(arena_command("agent", "a2c", "--connect", "tcp://127.0.0.1:9", "--options",
                                        '{"preset": "ssd-ppo"}'), cwd=REPO, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "preset 'ssd-ppo' is not one of this kind's presets: paper-a3c" in done.stderr


@pytest.mark.slow
def test_an_agent_failing_mid_run_is_named_as_the_cause(tmp_path: Path) -> None:
    config = config_with(tmp_path, {"kind": "tests.faulty_agents:Crasher"})
    finished = launch(config)
    assert finished.code == 1
    assert "run failed: agent 'alice'" in finished.output and "simulated bug in act()" in finished.output
    assert "cause: agent 'alice'" in finished.output, finished.output
    assert "then the other agents stopped because the run ended: 'bob'" in finished.output, finished.output
    assert "cause: agent 'bob'" not in finished.output


def test_what_an_algorithm_checks_about_the_run_itself(tmp_path: Path) -> None:
    """Algorithm.check_run: pg-d needs give actions, LIO's "clean" incentive input a clean action, and a
    payment option must fit rmax; each used to pass and then fail inside the agent with a traceback."""
    config = write_config(tmp_path / "run.toml",
                          {"game": "escape_room", "episodes": 1, "rmax": 1.0,
                           "disclose": ["actions", "rewards", "observations", "payments"],
                           "params": {"n_agents": 2}},
                          [{"name": "alice", "kind": "pg-d"},
                           {"name": "bob", "kind": "lio", "options": {"incentive_action_input": "clean"}}])
    code, output = check(config)
    assert code == 2 and "Traceback" not in output, output
    assert "seat 0 'alice' (pg-d): kind 'pg-d' cannot play this run: pg-d needs the game's give-action" in output
    assert "give_actions = true" in output
    assert "seat 1 'bob' (lio): kind 'lio' cannot play this run: incentive_action_input = \"clean\"" in output
    payer = config_with(tmp_path, {"kind": "pays-for-cooperation", "options": {"amount": 3.0}}, {"rmax": 2.0})
    code, output = check(payer)
    assert_refused(payer, output, code, "kind =", "option amount = 3 exceeds the run's rmax = 2")


def test_lines_are_found_under_commented_headers(tmp_path: Path) -> None:
    config = tmp_path / "run.toml"
    config.write_text('[run]\nname = "c"\nout = "runs"\n[arena]  # the arena\ngame = "ipd"\n'
                      '[[agents]]   # first seat\nname = "alice"\nkind = "pg"\n[agents.options]  # its options\n'
                      'lrr = 1\n[[agents]] # second\nname = "bob"\nkind = "pg"\ndevice = "gpu"\n')
    code, output = check(config)
    assert code == 2, output
    assert f"{config}:10: seat 0 'alice' (pg): unknown option 'lrr'" in output, output
    assert f"{config}:14: seat 1 'bob' (pg): device = 'gpu'" in output, output
