"""`arena plot`: the data behind each figure matches the run directory, and the PNGs get written."""

from __future__ import annotations

import json
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest

from launch.plot import (
    PlotError,
    behaviour,
    cleanup_roles,
    incentives_by_action,
    load_run,
    moving_average,
    plot_run,
)
from tests.conftest import REPO, Finished, arena_command, launch, write_config

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
CLEANUP_ACTIONS = 6  # the LIO small maps: left, right, up, down, stay, clean


def assert_png(path: Path, min_bytes: int = 10_000) -> None:
    """A real PNG of a sensible size: signature, IHDR dimensions, and more than a blank canvas."""
    data = path.read_bytes()
    assert data.startswith(PNG_SIGNATURE), path
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 400 and height >= 300, (path, width, height)
    assert len(data) > min_bytes, (path, len(data))


@pytest.fixture(scope="module")
def ipd_paid_run(tmp_path_factory: pytest.TempPathFactory) -> Finished:
    """alice (pays-for-cooperation) defects and pays bob (always-cooperate) 1.0 every step."""
    path = tmp_path_factory.mktemp("plot_ipd")
    config = write_config(path / "run.toml",
                          {"game": "ipd", "episodes": 5, "batch_size": 4, "rmax": 2.0,
                           "disclose": ["actions", "payments"], "params": {"max_steps": 10}},
                          [{"name": "alice", "kind": "pays-for-cooperation"},
                           {"name": "bob", "kind": "always-cooperate"}])
    finished = launch(config)
    assert finished.code == 0, finished.output
    return finished


@pytest.mark.slow
def test_incentives_by_action_match_the_ledger(ipd_paid_run: Finished) -> None:
    data = incentives_by_action(ipd_paid_run.run_dir)
    steps = np.array([episode["steps"] for episode in ipd_paid_run.episodes()])
    assert set(data) == {"alice", "bob"}
    assert set(data["bob"]) == {"cooperate", "defect"}
    np.testing.assert_array_equal(data["bob"]["cooperate"], steps)  # exactly 1.0 per step, per copy
    np.testing.assert_array_equal(data["bob"]["defect"], np.zeros(5))
    assert all(not values.any() for values in data["alice"].values())
    received = np.array([episode["incentives_received"]["bob"] for episode in ipd_paid_run.episodes()])
    np.testing.assert_allclose(sum(data["bob"].values()), received)


@pytest.mark.slow
def test_plot_command_writes_the_ipd_figures(ipd_paid_run: Finished, tmp_path: Path) -> None:
    done = subprocess.run(arena_command("plot", str(ipd_paid_run.run_dir), "--out", str(tmp_path), "--smooth", "2"),
                          cwd=REPO, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    written = [Path(line) for line in done.stdout.splitlines()]
    assert {path.name for path in written} == {"returns.png", "incentives_by_action.png", "behaviour.png"}
    for path in written:
        assert path.parent == tmp_path
        assert_png(path)


def write_cleanup_run(run_dir: Path, episodes: int = 40, batch_size: int = 2) -> None:
    """A two-agent Cleanup run directory written by hand: `ann` cleans for the first half, `ben` after.

    The other agent pays the cleaner 0.5 per copy for each step it took CLEAN (action 5) and 0.1 for
    one step of STAY (action 4); each agent logs a learner metric.
    """
    run_dir.mkdir(parents=True)
    names = ["ann", "ben"]
    arena = {"game": "cleanup", "params": {"map": "small7"}, "batch_size": batch_size, "episodes": episodes,
             "rmax": 2.0}
    (run_dir / "run.json").write_text(json.dumps({"arena": arena, "seats": [{"seat": i, "name": name, "kind": "lio"}
                                                                            for i, name in enumerate(names)]}))
    with (run_dir / "episodes.jsonl").open("w") as summaries, (run_dir / "ledger.jsonl").open("w") as ledger:
        for episode in range(episodes):
            cleaner = 0 if episode < episodes // 2 else 1
            cleaned = [8.0 if i == cleaner else 1.0 for i in range(2)]
            paid = np.zeros((2, 2, CLEANUP_ACTIONS), dtype=np.int64)  # [giver, recipient, action] in units
            paid[1 - cleaner, cleaner, 5] = 5 * 500_000 * batch_size
            paid[1 - cleaner, cleaner, 4] = 100_000 * batch_size
            received = paid.sum(axis=(0, 2)) / 1_000_000 / batch_size
            summaries.write(json.dumps({
                "episode": episode, "steps": 50.0, "returns": {"ann": 3.0 + episode % 3, "ben": 4.0},
                "collective_return": 7.0 + episode % 3, "incentives_received": dict(zip(names, received.tolist())),
                "events": {"cleaned": dict(zip(names, cleaned)), "apples": {"ann": 3.0, "ben": 4.0}},
                "batch_size": batch_size}) + "\n")
            ledger.write(json.dumps({"episode": episode, "units_per_credit": 1_000_000,
                                     "paid_by_recipient_action_units": paid.tolist()}) + "\n")
    for i, name in enumerate(names):
        (run_dir / "agents" / name).mkdir(parents=True)
        lines = [json.dumps({"episode": e, "return": 3.0, "policy_loss": 1.0 / (e + 1) + i, "note": "text is skipped"})
                 for e in range(episodes)]
        (run_dir / "agents" / name / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_cleanup_data_and_figures(tmp_path: Path) -> None:
    run_dir = tmp_path / "cleanup-run"
    write_cleanup_run(run_dir)
    data = incentives_by_action(run_dir)
    assert list(data["ann"]) == ["move_left", "move_right", "move_up", "move_down", "stay", "clean"]
    np.testing.assert_allclose(data["ann"]["clean"], [2.5] * 20 + [0.0] * 20)
    np.testing.assert_allclose(data["ben"]["clean"], [0.0] * 20 + [2.5] * 20)
    np.testing.assert_allclose(data["ann"]["stay"], [0.1] * 20 + [0.0] * 20)

    roles = cleanup_roles(run_dir, window=10)
    np.testing.assert_array_equal(roles["start"], [0, 10, 20, 30])
    np.testing.assert_array_equal(roles["cleaner"], [0, 0, 1, 1])
    np.testing.assert_array_equal(roles["harvester"], [1, 1, 0, 0])
    np.testing.assert_allclose(roles["cleaner_cleaned"], 8.0)
    np.testing.assert_allclose(roles["cleaner_received"], 2.6)
    np.testing.assert_allclose(roles["harvester_received"], 0.0)

    written = plot_run(run_dir, smooth=5)
    assert [path.name for path in written] == ["returns.png", "incentives_by_action.png", "cleanup.png",
                                               "metrics.png"]
    for path in written:
        assert path.parent == run_dir / "plots"
        assert_png(path)


def test_figures_without_payments_or_metrics_are_skipped(tmp_path: Path) -> None:
    run_dir = tmp_path / "unpaid"
    write_cleanup_run(run_dir)
    (run_dir / "ledger.jsonl").write_text("")
    for name in ("ann", "ben"):
        (run_dir / "agents" / name / "metrics.jsonl").unlink()
    assert [path.name for path in plot_run(run_dir, tmp_path / "out")] == ["returns.png", "cleanup.png"]


def test_not_a_run_directory_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(PlotError, match=r"not a run directory: it has no run\.json or episodes\.jsonl"):
        load_run(tmp_path)
    with pytest.raises(PlotError, match="is not a directory"):
        load_run(tmp_path / "missing")
    done = subprocess.run(arena_command("plot", str(tmp_path)), cwd=REPO, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 2
    assert "not a run directory" in done.stderr


def test_moving_average_keeps_every_point() -> None:
    np.testing.assert_allclose(moving_average(np.array([1.0, 3.0, 5.0, 7.0]), 2), [1.0, 2.0, 4.0, 6.0])
    np.testing.assert_allclose(moving_average(np.array([1.0, 3.0]), 1), [1.0, 3.0])


def test_coin_game_behaviour_is_the_share_of_own_coins(tmp_path: Path) -> None:
    """P(own coin) = own / (own + others'), per agent and episode, NaN where an agent took nothing."""
    run_dir = tmp_path / "coins"
    run_dir.mkdir()
    arena = {"game": "coin_game", "params": {}, "batch_size": 4, "episodes": 3}
    (run_dir / "run.json").write_text(json.dumps({"arena": arena, "seats": [{"seat": 0, "name": "rec"},
                                                                            {"seat": 1, "name": "nl"}]}))
    taken = [((3.0, 1.0), (1.0, 1.0)), ((2.0, 0.0), (0.0, 0.0)), ((1.0, 3.0), (4.0, 0.0))]  # (own, other) per agent
    with (run_dir / "episodes.jsonl").open("w") as f:
        for episode, ((rec_own, rec_other), (nl_own, nl_other)) in enumerate(taken):
            f.write(json.dumps({"episode": episode, "steps": 32.0, "returns": {"rec": 0.0, "nl": 0.0},
                                "collective_return": 0.0, "batch_size": 4,
                                "events": {"own_coin": {"rec": rec_own, "nl": nl_own},
                                           "other_coin": {"rec": rec_other, "nl": nl_other}}}) + "\n")
    (run_dir / "ledger.jsonl").write_text("")
    curves = behaviour(run_dir)
    np.testing.assert_allclose(curves["P(own coin)"]["rec"], [0.75, 1.0, 0.25])
    np.testing.assert_allclose(curves["P(own coin)"]["nl"], [0.5, np.nan, 1.0])
    np.testing.assert_allclose(curves["others' coins taken per episode"]["rec"], [1.0, 0.0, 3.0])
    written = plot_run(run_dir, tmp_path / "plots", smooth=1)
    assert "behaviour.png" in {path.name for path in written}
    assert_png(tmp_path / "plots" / "behaviour.png")
