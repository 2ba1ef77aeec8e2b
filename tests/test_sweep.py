"""`arena sweep`: cells expanded from a sweep file, run as ordinary runs on a local Ray, resumed, summarized."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import torch

import launch.sweep as sweep_module
from launch.supervisor import final_means
from launch.sweep import SweepConfig, SweepError, assign_devices, expand, load_toml, mean_se, run_sweep
from tests.conftest import REPO, arena_command, launch, read_jsonl, write_config

IPD = {"game": "ipd", "episodes": 3, "batch_size": 8, "disclose": ["actions"], "params": {"max_steps": 10}}


def write_sweep(tmp_path: Path, body: str, agents: list[dict] | None = None, **arena: object) -> Path:
    write_config(tmp_path / "base.toml", {**IPD, **arena},
                 agents or [{"name": "alice", "kind": "tit-for-tat"}, {"name": "bob", "kind": "always-defect"}])
    path = tmp_path / "sweep.toml"
    path.write_text(f'[sweep]\nname = "s"\nbase = "base.toml"\nout = "{tmp_path / "out"}"\n{body}', encoding="utf-8")
    return path


def sweep(path: Path, *extra: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(arena_command("sweep", str(path), *extra), cwd=REPO, capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.slow
def test_sweep_runs_every_cell_on_ray_summarizes_and_skips_finished_cells_on_rerun(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    path = write_sweep(tmp_path, 'seeds = [0, 1]\n\n[[pairings]]\nname = "tft-alld"\n'
                       'kinds = ["tit-for-tat", "always-defect"]\n\n[[pairings]]\nname = "tft-allc"\n'
                       'kinds = ["tit-for-tat", "always-cooperate"]\n')
    first = sweep(path)
    output = first.stdout + first.stderr
    assert first.returncode == 0, output
    assert "4 cells, 0 already complete, 4 to run" in output
    sweep_dir = tmp_path / "out" / "s"
    records = read_jsonl(sweep_dir / "sweep.jsonl")
    assert sorted((r["pairing"], r["seed"], r["status"]) for r in records) == [
        ("tft-allc", 0, "complete"), ("tft-allc", 1, "complete"), ("tft-alld", 0, "complete"),
        ("tft-alld", 1, "complete")]
    # every cell is a normal run with its own directory, config and episodes (exact IPD payoffs, T = 10)
    expected = {"tft-alld": {"alice": -3 - 2 * 9, "bob": -2 * 9}, "tft-allc": {"alice": -10.0, "bob": -10.0}}
    run_dirs = {Path(r["run_dir"]) for r in records}
    assert len(run_dirs) == 4 and all(d.parent == sweep_dir / "runs" for d in run_dirs)
    for record in records:
        run_dir = Path(record["run_dir"])
        assert json.loads((run_dir / "result.json").read_text())["status"] == "complete"
        assert f"seed = {record['seed']}" in (run_dir / "config.toml").read_text()
        episodes = read_jsonl(run_dir / "episodes.jsonl")
        assert len(episodes) == 3
        assert all(e["returns"] == expected[record["pairing"]] for e in episodes)
        assert record["means"]["returns"] == expected[record["pairing"]]
    summary = (sweep_dir / "summary.md").read_text()
    assert "| tft-alld | 2 (0, 1) | -39.000 ± 0.000 | – | alice -21.000 ± 0.000; bob -18.000 ± 0.000 |" in summary
    assert "| tft-allc | 2 (0, 1) | -20.000 ± 0.000 | – | alice -10.000 ± 0.000; bob -10.000 ± 0.000 |" in summary
    assert (sweep_dir / "summary.png").read_bytes()[:4] == b"\x89PNG"

    again = sweep(path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "4 cells, 4 already complete, 0 to run" in again.stdout + again.stderr
    assert len(list((sweep_dir / "runs").iterdir())) == 4
    assert len(read_jsonl(sweep_dir / "sweep.jsonl")) == 4


@pytest.mark.slow
def test_a_rerun_without_the_episodes_override_runs_the_cell_again_and_summarizes_that_run(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    path = write_sweep(tmp_path, "")
    sweep_dir = tmp_path / "out" / "s"
    short = sweep(path, "--episodes", "1")
    assert short.returncode == 0, short.stdout + short.stderr
    full = sweep(path)
    output = full.stdout + full.stderr
    assert full.returncode == 0, output
    assert "1 cells, 0 already complete, 1 to run" in output
    records = read_jsonl(sweep_dir / "sweep.jsonl")
    assert [r["means"]["episodes"] for r in records] == [1, 3]
    assert len(read_jsonl(Path(records[1]["run_dir"]) / "episodes.jsonl")) == 3
    # the summary is of the run as configured now: tit-for-tat vs always-defect, 10 steps, in every episode
    assert "| base | 1 (0) | -39.000 | – | alice -21.000; bob -18.000 |" in (sweep_dir / "summary.md").read_text()
    again = sweep(path, "--episodes", "1")
    assert "1 cells, 1 already complete, 0 to run" in again.stdout + again.stderr


@pytest.mark.slow
def test_a_cell_whose_task_fails_is_recorded_as_failed_and_the_sweep_goes_on(tmp_path: Path,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("ray")
    path = write_sweep(tmp_path, "seeds = [0, 1]\nconcurrency = 1\n")
    real = sweep_module.run_cell

    def run_cell(config_text: str, config_path: str, cwd: str, timeout_s: float) -> dict:
        if "seed = 0" in config_text:  # as when its worker dies or a node's disk is full
            raise OSError("No space left on device")
        return real(config_text, config_path, cwd, timeout_s)

    monkeypatch.setattr(sweep_module, "run_cell", run_cell)  # Ray ships the function by value to its workers
    echoed: list[str] = []
    assert run_sweep(path, echo=echoed.append) == 1
    sweep_dir = tmp_path / "out" / "s"
    records = {r["seed"]: r for r in read_jsonl(sweep_dir / "sweep.jsonl")}
    assert {seed: r["status"] for seed, r in records.items()} == {0: "failed", 1: "complete"}
    assert "No space left on device" in records[0]["error"]
    summary = (sweep_dir / "summary.md").read_text()
    assert "| base | 1 (1) | -39.000 | – |" in summary
    assert f"- {records[0]['cell']}: failed: " in summary and "No space left on device" in summary


def test_final_means_skip_a_torn_last_line(tmp_path: Path) -> None:
    episode = {"evaluate": False, "trained": 1, "returns": {"a": 1.0}, "incentives_given": {"a": 0.0},
               "incentives_received": {"a": 0.0}, "collective_return": 1.0, "collective_per_step": 0.1}
    lines = [json.dumps({**episode, "episode": e}) + "\n" for e in range(2)]
    (tmp_path / "episodes.jsonl").write_text("".join(lines) + lines[0][:30])  # killed while writing the third
    means = final_means(tmp_path)
    assert means is not None and means["episodes"] == 2 and means["collective"] == 1.0


def test_grid_times_pairings_times_seeds_and_devices_dealt_round_robin(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, 'seeds = [3, 4]\ndevices = ["cuda:0", "cuda:1", "cuda:2"]\n\n'
                       '[grid.arena.params]\nmax_steps = [5, 7]\n\n[grid.agents.1.options]\np = [0.1]\n')
    config, text = load_toml(path, SweepConfig, "sweep config")
    cells = expand(config, text, path)
    assert [(c.config["arena"]["params"]["max_steps"], c.seed) for c in cells] == [(5, 3), (5, 4), (7, 3), (7, 4)]
    assert all(c.config["agents"][1]["options"] == {"p": 0.1} for c in cells)
    assert len({c.id for c in cells}) == 4 and cells[0].group == cells[1].group != cells[2].group
    assert [[a["device"] for a in c.config["agents"]] for c in cells] == [
        ["cuda:0", "cuda:1"], ["cuda:2", "cuda:0"], ["cuda:1", "cuda:2"], ["cuda:0", "cuda:1"]]


def test_a_cell_id_names_its_whole_run_config(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, "seeds = [0]\n")
    config, text = load_toml(path, SweepConfig, "sweep config")
    plain = expand(config, text, path)[0].id
    assert expand(config, text, path)[0].id == plain
    assert expand(config, text, path, episodes=3)[0].id == plain  # the base's own count: the same run
    assert expand(config, text, path, episodes=10)[0].id != plain  # `--episodes 10` is another run
    config.sweep.devices = ["cuda:0"]
    assert expand(config, text, path)[0].id != plain


def test_assign_devices_keeps_seats_devices_when_none_are_given() -> None:
    assert assign_devices([2, 3], []) == [None, None]
    assert assign_devices([3, 1], ["cuda:0", "cuda:1"]) == [["cuda:0", "cuda:1", "cuda:0"], ["cuda:1"]]


def test_mean_and_standard_error_over_seeds() -> None:
    assert mean_se([1.0, 3.0]) == (2.0, 1.0)
    mean, se = mean_se([4.0])
    assert mean == 4.0 and se != se  # one seed: no standard error


@pytest.mark.parametrize(("body", "message"), [
    ('[[pairings]]\nname = "solo"\nkinds = ["tit-for-tat"]\n', "fills 1 seats but the base run base.toml has 2"),
    ("[grid.agents.5.options]\nlr = [0.1]\n", "names no place in the base run config"),
    ('[sweep.extra]\n', "unknown key 'sweep.extra'"),
    ('[tournament]\nfocal_seats = 2\n[[tournament.populations]]\nname = "a"\nkind = "tit-for-tat"\n',
     "focal_seats = 2 leaves no background seat"),
])
def test_bad_sweep_files_name_the_line_and_fix(tmp_path: Path, body: str, message: str) -> None:
    path = write_sweep(tmp_path, body)
    with pytest.raises((SweepError, ValueError)) as caught:
        config, text = load_toml(path, SweepConfig, "sweep config")
        expand(config, text, path)
    assert message in str(caught.value)
    assert re.search(rf"{path}:\d+: ", str(caught.value))


def test_grid_values_must_be_lists(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, "[grid.arena.params]\nmax_steps = 5\n")
    config, text = load_toml(path, SweepConfig, "sweep config")
    with pytest.raises(SweepError, match=rf"{path}:\d+: \[grid\] arena.params.max_steps must be a non-empty list"):
        expand(config, text, path)


def test_an_invalid_cell_starts_nothing_and_names_the_problem(tmp_path: Path) -> None:
    path = write_sweep(tmp_path, '[[pairings]]\nname = "typo"\nkinds = ["tit-for-tatt", "always-defect"]\n')
    done = sweep(path, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "nothing was started" in output and "kind 'tit-for-tatt' cannot be loaded" in output
    assert not (tmp_path / "out" / "s" / "runs").exists()


@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no GPU on this machine: the cuda part is skipped")
def test_a_learner_runs_unchanged_on_the_gpu_a_sweep_deals_it(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    path = write_sweep(tmp_path, 'devices = ["cuda:0"]\n',
                       agents=[{"name": "alice", "kind": "pg"}, {"name": "bob", "kind": "always-defect"}])
    done = sweep(path)
    assert done.returncode == 0, done.stdout + done.stderr
    record = read_jsonl(tmp_path / "out" / "s" / "sweep.jsonl")[0]
    assert record["status"] == "complete" and record["devices"] == ["cuda:0", "cuda:0"]
    assert 'device = "cuda:0"' in (Path(record["run_dir"]) / "config.toml").read_text()


@pytest.mark.slow
def test_tournament_plays_every_population_against_every_other_with_checkpoints_as_background(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    trained = launch(write_config(tmp_path / "train.toml", {**IPD, "episodes": 2},
                                  [{"name": "alice", "kind": "pg"}, {"name": "bob", "kind": "always-defect"}]))
    assert trained.code == 0, trained.output
    checkpoint = trained.run_dir / "agents" / "alice" / "checkpoints" / "final.pt"
    assert checkpoint.exists()
    path = write_sweep(tmp_path, '\n[tournament]\nfocal_seats = 1\n\n[[tournament.populations]]\nname = "pg"\n'
                       'kind = "pg"\ncheckpoints = ["runs/*/agents/alice/checkpoints/final.pt"]\n\n'
                       '[[tournament.populations]]\nname = "alld"\nkind = "always-defect"\n')
    done = sweep(path)
    assert done.returncode == 0, done.stdout + done.stderr
    sweep_dir = tmp_path / "out" / "s"
    records = read_jsonl(sweep_dir / "sweep.jsonl")
    assert sorted((r["focal"], r["background"]) for r in records) == [
        ("alld", "alld"), ("alld", "pg"), ("pg", "alld"), ("pg", "pg")]
    for record in records:
        config = (Path(record["run_dir"]) / "config.toml").read_text()
        assert ('resume = "' + str(checkpoint) + '"' in config) == ("pg" in (record["focal"], record["background"]))
    alld = next(r for r in records if r["focal"] == r["background"] == "alld")
    assert alld["means"]["returns"] == {"focal0": -20.0, "background1": -20.0}  # DD for 10 steps
    crossplay = (sweep_dir / "crossplay.md").read_text()
    assert "| focal \\ background | pg | alld |" in crossplay
    assert re.search(r"\| alld \| -?\d+\.\d{3} \| -20\.000 \|", crossplay), crossplay
    assert (sweep_dir / "crossplay.png").read_bytes()[:4] == b"\x89PNG"
