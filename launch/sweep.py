"""`arena sweep SWEEP.toml`: many runs (seeds × grid or list × pairings, or a cross-play tournament) on Ray.

Every cell is an ordinary run config, written to `<out>/<name>/configs/<cell>.toml` and played by one Ray
task that runs `arena launch` on it, so each cell has a normal run directory under `<out>/<name>/runs/`.
Ray does the scheduling (a local instance sized to this machine's cores by default, or a cluster with
`--address`); this module only expands the sweep, skips cells `sweep.jsonl` records as complete (a cell's
id ends in a digest of its whole run config, so a cell run with other settings is not one of them), and
tabulates the finished cells (`summary.md`, `summary.png`, and for tournaments `crossplay.md/png`).
"""

from __future__ import annotations

import glob
import hashlib
import itertools
import json
import math
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w
import tomllib
from pydantic import BaseModel, ConfigDict, Field, model_validator

from launch.config import ConfigError, line_of, load_config, load_toml
from launch.preflight import preflight
from launch.supervisor import final_means, run_dir_of

Name = Field(pattern=r"^[A-Za-z0-9_.-]+$", min_length=1, max_length=64)
#: Seconds a timed-out cell's launcher has to stop its arena and agents after SIGINT (its own shutdown
#: takes up to about 15 s) before it is killed.
STOP_GRACE_S = 60.0


class SweepSection(BaseModel):
    """The `[sweep]` table: what the cells start from, where they go, and how many run at once."""

    model_config = ConfigDict(extra="forbid")
    name: str = Name
    base: str = Field(description="run config every cell starts from (relative to the sweep file)")
    out: str = Field("sweeps", description="parent of the sweep directory (relative to the working directory)")
    seeds: list[int] = Field([0], min_length=1, description="[arena] seed of each cell; one cell per seed")
    concurrency: int = Field(0, ge=0, description="cells at once; 0 = this machine's cores / cpus_per_cell "
                             "(local Ray), or as many as the cluster's resources allow")
    cpus_per_cell: float = Field(1.0, gt=0, description="Ray CPUs one cell reserves (its arena and agents)")
    gpus_per_cell: float = Field(0.0, ge=0, description="Ray GPUs one cell reserves (Ray sets "
                                 "CUDA_VISIBLE_DEVICES; give seats device = \"cuda\")")
    devices: list[str] = Field(default_factory=list, description="torch devices dealt to the seats round-robin, "
                               "cell by cell and seat by seat, e.g. [\"cuda:0\", \"cuda:1\"]; [] keeps each "
                               "seat's own device")
    timeout_s: float = Field(86400.0, gt=0, description="a cell still running after this long is stopped")


class SeatOverride(BaseModel):
    """One seat of a pairing: what replaces the base config's seat at that index."""

    model_config = ConfigDict(extra="forbid")
    kind: str
    name: str | None = Field(None, pattern=r"^[A-Za-z0-9_.-]+$")
    options: dict[str, Any] | None = None
    resume: str | None = None


class Pairing(BaseModel):
    """Which agent kinds fill which seats: `kinds = [...]` or `seats = [{kind = ...}, ...]`, in seat order."""

    model_config = ConfigDict(extra="forbid")
    name: str = Name
    kinds: list[str] | None = None
    seats: list[SeatOverride] | None = None

    @model_validator(mode="after")
    def _one_form(self) -> Pairing:
        if (self.kinds is None) == (self.seats is None):
            raise ValueError("give either kinds = [\"KIND\", ...] or seats = [{ kind = \"KIND\" }, ...], not both "
                             "or neither")
        if self.kinds is not None:
            self.seats = [SeatOverride(kind=kind) for kind in self.kinds]
        return self


class Population(BaseModel):
    """A population of a tournament: one agent kind, and the checkpoints that are its members (fresh
    learners, or a scripted kind, when there are none)."""

    model_config = ConfigDict(extra="forbid")
    name: str = Name
    kind: str
    options: dict[str, Any] = Field(default_factory=dict)
    checkpoints: list[str] = Field(default_factory=list, description="checkpoint files or glob patterns "
                                   "(relative to the sweep file); the seats take them in turn")


class Tournament(BaseModel):
    """Cross-play, Melting Pot-style: every population in the focal seats against every population
    (itself included) in the background seats; scored by the per-capita return of the focal seats."""

    model_config = ConfigDict(extra="forbid")
    populations: list[Population] = Field(min_length=1)
    focal_seats: int = Field(1, ge=1, description="seats 0..focal_seats-1 are focal, the rest background")
    self_play: bool = Field(True, description="also play each population against itself")


class SweepConfig(BaseModel):
    """A whole sweep file."""

    model_config = ConfigDict(extra="forbid")
    sweep: SweepSection
    grid: dict[str, Any] = Field(default_factory=dict, description="nested tables of run-config keys, each "
                                 "leaf a list of values; every combination is a cell")
    cells: list[dict[str, Any]] = Field(default_factory=list, description="a list of cells instead of a grid, "
                                        "each a nested table of run-config keys")
    pairings: list[Pairing] = Field(default_factory=list)
    tournament: Tournament | None = None

    @model_validator(mode="after")
    def _exclusive(self) -> SweepConfig:
        if self.grid and self.cells:
            raise ValueError("give [grid] (every combination) or [[cells]] (a list), not both")
        if self.tournament is not None and self.pairings:
            raise ValueError("a [tournament] makes its own pairings; remove the [[pairings]] tables")
        return self


@dataclass
class Cell:
    """One run of the sweep: its id (also its config file's stem and run-directory prefix), the group it
    is averaged in over seeds, and its run config as plain data."""

    id: str
    group: str
    seed: int
    pairing: str | None
    overrides: dict[str, Any]
    config: dict[str, Any]
    focal: str | None = None
    background: str | None = None
    record: dict[str, Any] = field(default_factory=dict)


def flatten(table: dict[str, Any], prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    """Nested tables to {key path: leaf}."""
    leaves: dict[tuple[str, ...], Any] = {}
    for key, value in table.items():
        if isinstance(value, dict) and value:
            leaves.update(flatten(value, (*prefix, key)))
        else:
            leaves[(*prefix, key)] = value
    return leaves


def apply(config: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set `path` in a run-config dict; a numeric part indexes the [[agents]] list."""
    node: Any = config
    for part in path[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(path[-1])] = value
    else:
        node[path[-1]] = value


def assign_devices(n_seats: list[int], devices: list[str]) -> list[list[str] | None]:
    """Round-robin over `devices`, cell by cell and seat by seat: cell i's seats get the next n_seats[i]
    devices (None for every cell when there are no devices to deal)."""
    if not devices:
        return [None] * len(n_seats)
    dealt = itertools.cycle(devices)
    return [[next(dealt) for _ in range(n)] for n in n_seats]


def _slug(value: Any) -> str:
    text = json.dumps(value, sort_keys=True) if isinstance(value, (dict, list)) else str(value)
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_")[:40]


class SweepError(ValueError):
    """A sweep that cannot be run; the message names the file, line and fix."""


def _variants(config: SweepConfig, text: str, path: Path) -> list[dict[tuple[str, ...], Any]]:
    """The grid's combinations, or the listed cells, as {key path: value}."""
    if config.cells:
        return [flatten(cell) for cell in config.cells]
    leaves = flatten(config.grid)
    for key, values in leaves.items():
        if not isinstance(values, list) or not values:
            line = line_of(text, ("grid", *key))
            raise SweepError(f"{path}:{line}: [grid] {'.'.join(key)} must be a non-empty list of values to try, "
                             f"e.g. {key[-1]} = [{values!r}] (got {values!r})")
    keys = list(leaves)
    return [dict(zip(keys, combination)) for combination in itertools.product(*leaves.values())]


def _pairings(config: SweepConfig) -> list[tuple[Pairing | None, str | None, str | None]]:
    """(pairing, focal, background) for each pairing of the sweep; a tournament's are generated."""
    tournament = config.tournament
    if tournament is None:
        return [(p, None, None) for p in config.pairings] or [(None, None, None)]
    out = []
    for focal, background in itertools.product(tournament.populations, repeat=2):
        if focal.name == background.name and not tournament.self_play:
            continue
        out.append((None, focal.name, background.name))
    return out


def _members(population: Population, root: Path) -> list[str | None]:
    """The checkpoint files of a population (absolute), or [None] for a fresh or scripted one."""
    found: list[str | None] = []
    for pattern in population.checkpoints:
        full = pattern if Path(pattern).is_absolute() else str(root / pattern)
        matches = sorted(glob.glob(full))
        if not matches:
            raise SweepError(f"population '{population.name}': no checkpoint matches {full}; give existing "
                             "files (e.g. runs/NAME/agents/alice/checkpoints/final.pt) or a glob that matches some")
        found += matches
    return found or [None]


def expand(config: SweepConfig, text: str, path: Path, episodes: int | None = None) -> list[Cell]:
    """Every cell of the sweep, in a fixed order (variant, pairing, seed); devices dealt round-robin and
    `episodes` (`arena sweep --episodes`) applied before the ids are made, so that a cell's id names its
    whole run config and a rerun with other settings never takes an earlier cell as done."""
    base_path = (path.parent / config.sweep.base).resolve()
    try:
        load_config(base_path)
        base = tomllib.loads(base_path.read_text(encoding="utf-8"))
    except ConfigError as exc:
        raise SweepError(f"{path}:{line_of(text, ('sweep', 'base'))}: [sweep] base: {exc}") from None
    n_seats = len(base["agents"])
    populations = {p.name: p for p in config.tournament.populations} if config.tournament else {}
    members = {name: _members(p, path.parent) for name, p in populations.items()}
    if config.tournament and config.tournament.focal_seats >= n_seats:
        raise SweepError(f"{path}:{line_of(text, ('tournament', 'focal_seats'))}: focal_seats = "
                         f"{config.tournament.focal_seats} leaves no background seat in the base run's {n_seats} "
                         f"seats; use 1..{n_seats - 1}")
    for index, pairing in enumerate(config.pairings):
        if len(pairing.seats) != n_seats:
            line = line_of(text, ("pairings", index, "kinds" if pairing.kinds else "seats"))
            raise SweepError(f"{path}:{line}: pairing '{pairing.name}' fills "
                             f"{len(pairing.seats)} seats but the base run {base_path.name} has {n_seats}; give one "
                             "kind per seat")
    cells: list[Cell] = []
    for variant, (pairing, focal, background), seed in itertools.product(
            _variants(config, text, path), _pairings(config), config.sweep.seeds):
        cell_config = json.loads(json.dumps(base))
        for key, value in variant.items():
            try:
                apply(cell_config, key, value)
            except (IndexError, ValueError, AttributeError, TypeError):
                table = "grid" if config.grid else "cells"
                raise SweepError(f"{path}:{line_of(text, (table, *key))}: [{table}] {'.'.join(key)} names no place "
                                 f"in the base run config: [[agents]] are indexed 0..{n_seats - 1}, and other keys "
                                 "are [run], [arena] or [arena.params] keys") from None
        agents = cell_config["agents"]
        if pairing is not None:
            for agent, seat in zip(agents, pairing.seats):
                agent.update({k: v for k, v in seat.model_dump().items() if v is not None})
        if focal is not None:
            for index, agent in enumerate(agents):
                role, population = ("focal", focal) if index < config.tournament.focal_seats else \
                    ("background", background)
                chosen = members[population][(seed + index) % len(members[population])]
                agent.update(name=f"{role}{index}", kind=populations[population].kind,
                             options=populations[population].options)
                agent.pop("resume", None)
                if chosen is not None:
                    agent["resume"] = chosen
        cell_config["arena"]["seed"] = seed
        if episodes is not None:
            cell_config["arena"]["episodes"] = episodes
        label = "-".join([*([pairing.name] if pairing else []), *([f"{focal}_vs_{background}"] if focal else []),
                          *(f"{k[-1]}_{_slug(v)}" for k, v in variant.items())]) or "base"
        cells.append(Cell(id=f"{label}-s{seed}", group=label, seed=seed, pairing=pairing.name if pairing else None,
                          overrides={".".join(k): v for k, v in variant.items()}, config=cell_config,
                          focal=focal, background=background))
    for cell, devices in zip(cells, assign_devices([len(c.config["agents"]) for c in cells], config.sweep.devices)):
        if devices is not None:
            for agent, device in zip(cell.config["agents"], devices):
                agent["device"] = device
        cell.id += f"-{config_digest(cell.config)}"
    return cells


def config_digest(config: dict[str, Any]) -> str:
    """A short hash of a cell's run config as it will be run: [arena], [[agents]] (devices included) and
    [run] without `name` and `out`, which the sweep sets from the id itself and its directory."""
    run = {k: v for k, v in config.get("run", {}).items() if k not in ("name", "out")}
    return hashlib.sha1(json.dumps([config["arena"], config["agents"], run], sort_keys=True).encode()).hexdigest()[:8]


# ----- running -----

def run_cell(config_text: str, config_path: str, cwd: str, timeout_s: float) -> dict[str, Any]:
    """One cell, inside a Ray task: write its config where this node can read it, `arena launch` it, and
    return its record (the run's final means travel back, so the summary needs no shared file system)."""
    path = Path(config_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(config_text, encoding="utf-8")
    started = time.monotonic()
    record: dict[str, Any] = {"node": socket.gethostname()}
    launcher = subprocess.Popen([sys.executable, "-m", "launch.cli", "launch", str(path)], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, cwd=cwd if os.path.isdir(cwd) else None)
    try:
        output, _ = launcher.communicate(timeout=timeout_s)
        code = launcher.returncode
    except subprocess.TimeoutExpired:
        launcher.send_signal(signal.SIGINT)  # the launcher stops its arena and agents as on Ctrl-C
        error = f"still running after {timeout_s:.0f} s ([sweep] timeout_s)"
        try:
            output, _ = launcher.communicate(timeout=STOP_GRACE_S)
        except subprocess.TimeoutExpired:
            launcher.kill()
            output, _ = launcher.communicate()
            error += (f", and its launcher had not stopped {STOP_GRACE_S:.0f} s after SIGINT: it was killed, and "
                      f"its arena and agents may still run on {record['node']}")
        record.update(status="failed", error=error)
        code = None
    record["wall_s"] = round(time.monotonic() - started, 3)
    run_dir = run_dir_of(output)
    record["run_dir"] = str(run_dir) if run_dir else None
    if code is not None:
        result_file = run_dir / "result.json" if run_dir else None
        result = json.loads(result_file.read_text()) if result_file and result_file.exists() else {}
        complete = code == 0 and result.get("status") == "complete"
        record["status"] = "complete" if complete else "failed"
        if not complete:
            record["error"] = "\n".join(output.strip().splitlines()[-8:])
    record["means"] = final_means(run_dir) if run_dir else None
    return record


def read_records(path: Path) -> dict[str, dict[str, Any]]:
    """The last record of each cell in sweep.jsonl."""
    if not path.exists():
        return {}
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    return {r["cell"]: r for r in records}


def _ray(address: str | None, cores: int) -> Any:
    try:
        import ray
    except ImportError:
        raise SweepError("`arena sweep` runs its cells on Ray, which is not installed: "
                         "pip install 'social-arena[sweep]' (or pip install ray)") from None
    if address is None:  # a fresh local instance, not a cluster `ray start` left running on this machine
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # it reports nothing home unless asked to
        ray.init(address="local", num_cpus=cores, include_dashboard=False, log_to_driver=False,
                 configure_logging=False)
    else:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    return ray


def run_sweep(path: Path, address: str | None = None, concurrency: int | None = None, episodes: int | None = None,
              out: str | None = None, echo: Any = print) -> int:
    """Expand, check and run every cell not yet complete, then write the summaries. Returns an exit code:
    0 when every cell is complete, 1 when one failed, 2 when the sweep is invalid (nothing started)."""
    config, text = load_toml(path, SweepConfig, "sweep config")
    if out is not None:
        config.sweep.out = out
    cells = expand(config, text, path, episodes)
    sweep_dir = (Path(config.sweep.out) / config.sweep.name).resolve()
    configs_dir = sweep_dir / "configs"
    configs_dir.mkdir(parents=True, exist_ok=True)
    problems: list[str] = []
    texts: dict[str, str] = {}
    for cell in cells:
        cell.config["run"] = {**cell.config.get("run", {}), "name": cell.id, "out": str(sweep_dir / "runs")}
        texts[cell.id] = tomli_w.dumps(cell.config)
        cell_path = configs_dir / f"{cell.id}.toml"
        cell_path.write_text(texts[cell.id], encoding="utf-8")
        try:
            run_config = load_config(cell_path)
        except ConfigError as exc:
            problems.append(f"cell {cell.id}: {exc}")
            continue
        if address is None:  # on a cluster, each node checks its own cells (kinds, devices) in `arena launch`
            problems += [f"cell {cell.id}: {p}" for p in preflight(run_config, texts[cell.id], cell_path)]
    if problems:
        raise SweepError(f"sweep {path}: {len(problems)} problem(s) in its cells; nothing was started:\n  "
                         + "\n  ".join(problems))
    records_path = sweep_dir / "sweep.jsonl"
    done = {cid for cid, r in read_records(records_path).items() if r.get("status") == "complete"}
    todo = [c for c in cells if c.id not in done]
    echo(f"sweep {config.sweep.name}: {len(cells)} cells, {len(cells) - len(todo)} already complete, "
         f"{len(todo)} to run; directory {sweep_dir}")
    failed = 0
    if todo:
        cores = os.cpu_count() or 1
        limit = concurrency or config.sweep.concurrency or (
            max(1, int(cores // config.sweep.cpus_per_cell)) if address is None else len(todo))
        ray = _ray(address, cores)
        try:
            task = ray.remote(num_cpus=config.sweep.cpus_per_cell, num_gpus=config.sweep.gpus_per_cell,
                              max_retries=0)(run_cell)
            pending: dict[Any, tuple[Cell, float]] = {}
            queue = list(todo)
            with open(records_path, "a", encoding="utf-8") as records:
                while queue or pending:
                    while queue and len(pending) < limit:
                        cell = queue.pop(0)
                        pending[task.remote(texts[cell.id], str(configs_dir / f"{cell.id}.toml"), os.getcwd(),
                                            config.sweep.timeout_s)] = (cell, time.monotonic())
                    ready, _ = ray.wait(list(pending), num_returns=1)
                    cell, submitted = pending.pop(ready[0])
                    try:
                        outcome = ray.get(ready[0])
                    except Exception as exc:  # its task raised or its worker died: that cell failed, not the sweep
                        outcome = {"status": "failed", "wall_s": round(time.monotonic() - submitted, 3),
                                   "error": "its Ray task failed: " + "\n".join(str(exc).strip().splitlines()[-8:])}
                    record = {"cell": cell.id, "group": cell.group, "seed": cell.seed, "pairing": cell.pairing,
                              "focal": cell.focal, "background": cell.background, "overrides": cell.overrides,
                              "devices": [a.get("device", "cpu") for a in cell.config["agents"]], **outcome}
                    failed += record["status"] != "complete"
                    records.write(json.dumps(record) + "\n")
                    records.flush()
                    echo(f"  {record['status']}: {cell.id} in {record['wall_s']:.1f} s"
                         + (f"\n    {record['error']}" if record.get("error") else ""))
        finally:
            ray.shutdown()
    records = [r for r in read_records(records_path).values() if r["cell"] in {c.id for c in cells}]
    write_summary(sweep_dir, config.sweep.name, records)
    if config.tournament is not None:
        write_crossplay(sweep_dir, [p.name for p in config.tournament.populations], config.tournament.focal_seats,
                        records)
    echo(f"summary: {sweep_dir / 'summary.md'}")
    return 1 if failed else 0


# ----- summaries -----

def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error of the mean (nan with one value)."""
    n = len(values)
    mean = sum(values) / n
    if n < 2:
        return mean, math.nan
    variance = sum((v - mean) ** 2 for v in values) / (n - 1)
    return mean, math.sqrt(variance / n)


def _pm(values: list[float]) -> str:
    if not values:
        return "–"
    mean, se = mean_se(values)
    return f"{mean:.3f}" + (f" ± {se:.3f}" if not math.isnan(se) else "")


def group_rows(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per group (a cell up to its seed): the complete seeds' collective and per-agent returns."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for record in records:
        if record.get("status") == "complete" and record.get("means"):
            groups.setdefault(record["group"], []).append(record)
    rows = []
    for group, members in groups.items():
        names = list(members[0]["means"]["returns"])
        rows.append({"group": group, "seeds": sorted(r["seed"] for r in members),
                     "collective": [r["means"]["collective"] for r in members],
                     "eval_collective": [r["means"]["eval_collective"] for r in members
                                         if r["means"].get("eval_collective") is not None],
                     "returns": {n: [r["means"]["returns"][n] for r in members] for n in names}})
    return rows


def write_summary(sweep_dir: Path, name: str, records: list[dict[str, Any]]) -> None:
    """summary.md (mean ± s.e. over seeds per group) and summary.png (the collective return per group)."""
    rows = group_rows(records)
    failed = [r for r in records if r.get("status") != "complete"]
    lines = [f"# Sweep {name}", "",
             "Means over the last 10% of each run's training episodes (each a mean over the B copies), then "
             "mean ± standard error over seeds.", "",
             "| cell | seeds | collective | collective, evaluation | returns |", "|---|---|---|---|---|"]
    for row in rows:
        returns = "; ".join(f"{n} {_pm(v)}" for n, v in row["returns"].items())
        lines.append(f"| {row['group']} | {len(row['seeds'])} ({', '.join(map(str, row['seeds']))}) | "
                     f"{_pm(row['collective'])} | {_pm(row['eval_collective'])} | {returns} |")
    if failed:
        lines += ["", f"Not complete ({len(failed)}):", ""]
        for record in failed:
            error = (record.get("error") or "").strip()
            why = f": {error.splitlines()[-1]}" if error else ""
            lines.append(f"- {record['cell']}: {record.get('status')}{why}")
    (sweep_dir / "summary.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    if rows:
        from matplotlib.figure import Figure

        figure = Figure(figsize=(7, 1.0 + 0.4 * len(rows)), layout="constrained")
        axes = figure.add_subplot()
        stats = [mean_se(row["collective"]) for row in rows]
        axes.barh([row["group"] for row in rows], [m for m, _ in stats],
                  xerr=[0.0 if math.isnan(se) else se for _, se in stats], capsize=3)
        axes.set_xlabel("collective return (mean ± s.e. over seeds)")
        axes.set_title(f"sweep {name}")
        figure.savefig(sweep_dir / "summary.png", dpi=100)


def crossplay_matrix(populations: list[str], focal_seats: int, records: list[dict[str, Any]]
                     ) -> dict[tuple[str, str], list[float]]:
    """(focal, background) → per seed, the per-capita return of the focal seats (evaluation episodes
    where the run has them, else the last 10% of training)."""
    matrix: dict[tuple[str, str], list[float]] = {}
    for record in records:
        means = record.get("means")
        if record.get("status") != "complete" or not means or record.get("focal") is None:
            continue
        returns = means.get("eval_returns") or means["returns"]
        focal = [returns[f"focal{i}"] for i in range(focal_seats)]
        matrix.setdefault((record["focal"], record["background"]), []).append(sum(focal) / len(focal))
    return matrix


def write_crossplay(sweep_dir: Path, populations: list[str], focal_seats: int, records: list[dict[str, Any]]) -> None:
    """crossplay.md and crossplay.png: focal population (rows) against background population (columns)."""
    matrix = crossplay_matrix(populations, focal_seats, records)
    lines = ["# Cross-play", "", f"Per-capita return of the {focal_seats} focal seat(s), mean ± s.e. over seeds; "
             "rows: focal population, columns: background population.", "",
             "| focal \\ background | " + " | ".join(populations) + " |", "|---" * (len(populations) + 1) + "|"]
    for focal in populations:
        lines.append(f"| {focal} | " + " | ".join(_pm(matrix.get((focal, bg), [])) for bg in populations) + " |")
    (sweep_dir / "crossplay.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    from matplotlib.figure import Figure

    values = [[mean_se(matrix[(f, b)])[0] if matrix.get((f, b)) else math.nan for b in populations]
              for f in populations]
    figure = Figure(figsize=(1.5 + 1.1 * len(populations), 1.2 + 0.9 * len(populations)), layout="constrained")
    axes = figure.add_subplot()
    image = axes.imshow(values, cmap="viridis")
    axes.set_xticks(range(len(populations)), populations, rotation=30, ha="right")
    axes.set_yticks(range(len(populations)), populations)
    axes.set_xlabel("background population")
    axes.set_ylabel("focal population")
    for i, row in enumerate(values):
        for j, value in enumerate(row):
            if not math.isnan(value):
                axes.text(j, i, f"{value:.2f}", ha="center", va="center", color="white")
    figure.colorbar(image, ax=axes, label="per-capita focal return")
    figure.savefig(sweep_dir / "crossplay.png", dpi=100)
