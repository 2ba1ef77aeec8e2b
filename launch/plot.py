"""`arena plot RUN_DIR`: the figures of a finished (or interrupted) run, written as PNG files.

Everything is read from the run directory alone, so a run can be plotted anywhere after it ends. The
figures are drawn with matplotlib's object API (`Figure`, saved through the Agg canvas), which needs
no display and leaves pyplot's global state alone.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from arena.games import make_game

#: The Cleanup event counting waste cells an agent removed (arena/games/cleanup.py `EVENTS`).
CLEANED = "cleaned"
#: Columns the agent runtime writes for every agent (agents/runtime.py); `return` is already in returns.png.
RUNTIME_COLUMNS = frozenset({"episode", "return"})
#: Most metric panels `metrics.png` draws, so that a chatty learner still gives a readable grid.
MAX_METRICS = 12


class PlotError(Exception):
    """RUN_DIR cannot be plotted (not a run directory, or no finished episode yet)."""


@dataclass
class Run:
    """The parts of a run directory the figures need."""

    path: Path
    game: str
    params: dict[str, Any]
    batch_size: int
    names: list[str]
    episodes: list[dict[str, Any]]
    ledger: list[dict[str, Any]]
    evaluations: list[dict[str, Any]]


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """One record per line; a torn last line (a run killed mid-write) is dropped, not fatal."""
    if not path.is_file():
        return []
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    records = []
    for number, line in enumerate(lines, start=1):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if number < len(lines):
                raise PlotError(f"{path}:{number}: not valid JSON ({exc})") from exc
    return records


def load_run(run_dir: Path | str) -> Run:
    """Read RUN_DIR, or raise PlotError saying what a run directory should hold."""
    path = Path(run_dir)
    if not path.is_dir():
        raise PlotError(f"{path} is not a directory; give a run directory (runs/<name>-<time>)")
    missing = [name for name in ("run.json", "episodes.jsonl") if not (path / name).is_file()]
    if missing:
        raise PlotError(f"{path} is not a run directory: it has no {' or '.join(missing)} "
                        "(a run directory is what `arena launch` prints as 'run directory: ...')")
    info = json.loads((path / "run.json").read_text(encoding="utf-8"))
    episodes = read_jsonl(path / "episodes.jsonl")
    if not episodes:
        raise PlotError(f"{path} has no finished episode yet (episodes.jsonl is empty)")
    arena = info.get("arena", {})
    training = [record for record in episodes if not record.get("evaluate")]
    if not training:
        raise PlotError(f"{path} has no finished training episode yet (only evaluation episodes)")
    return Run(path=path, game=arena.get("game", ""), params=arena.get("params", {}),
               batch_size=int(arena.get("batch_size", episodes[0].get("batch_size", 1))),
               names=[seat["name"] for seat in info.get("seats", [])] or list(episodes[0]["returns"]),
               episodes=training, evaluations=[record for record in episodes if record.get("evaluate")],
               ledger=[record for record in read_jsonl(path / "ledger.jsonl") if not record.get("evaluate")])


def _as_run(source: Run | Path | str) -> Run:
    return source if isinstance(source, Run) else load_run(source)


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing moving average that keeps every point (the first ones average what exists so far)."""
    if window <= 1 or len(values) == 0:
        return values
    sums = np.cumsum(np.insert(values, 0, 0.0))
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def auto_window(n_episodes: int) -> int:
    """About 50 smoothed points per run: raw curves of thousands of episodes are unreadable."""
    return max(1, n_episodes // 50)


def training_episode(record: dict[str, Any]) -> int:
    """x of a record: training episodes played before it (runs with evaluation interleave other episodes)."""
    return record.get("trained", record["episode"])


def episode_numbers(run: Run) -> np.ndarray:
    return np.array([training_episode(record) for record in run.episodes])


def per_agent(run: Run, key: str) -> dict[str, np.ndarray]:
    """`episodes.jsonl` field `key` ({agent: value}) as one series per agent (NaN where absent)."""
    return {name: np.array([record.get(key, {}).get(name, np.nan) for record in run.episodes], dtype=float)
            for name in run.names}


def event_per_agent(run: Run, event: str) -> dict[str, np.ndarray]:
    """Per-copy event counts of each agent over episodes (NaN in episodes that lack the event)."""
    return {name: np.array([record.get("events", {}).get(event, {}).get(name, np.nan) for record in run.episodes],
                           dtype=float) for name in run.names}


def action_names(run: Run, n_actions: int) -> list[list[str]]:
    """Each agent's action names from the game class; generic names if the game cannot be built."""
    try:
        names = make_game(run.game, run.params, 1).action_names
    except (KeyError, ValueError):
        names = [[] for _ in run.names]
    return [list(own) or [f"action {k}" for k in range(n_actions)] for own in names]


def incentives_by_action(source: Run | Path | str) -> dict[str, dict[str, np.ndarray]]:
    """Incentives each recipient received per episode, split by the action it took when paid.

    `{recipient: {action name: array over ledger episodes}}` in credits per copy of the game (summed
    over givers, divided by the batch size), the same unit as `incentives_received` in episodes.jsonl.
    """
    run = _as_run(source)
    if not run.ledger:
        return {}
    units = np.array([record["paid_by_recipient_action_units"] for record in run.ledger], dtype=np.float64)
    per_credit = np.array([record["units_per_credit"] for record in run.ledger], dtype=np.float64)
    received = units.sum(axis=1) / (per_credit[:, None, None] * run.batch_size)  # [episode, recipient, action]
    names = action_names(run, received.shape[2])
    return {recipient: {action: received[:, r, a] for a, action in enumerate(names[r][:received.shape[2]])}
            for r, recipient in enumerate(run.names)}


def cleanup_roles(source: Run | Path | str, window: int) -> dict[str, np.ndarray]:
    """Cleaner vs harvester per window of `window` episodes.

    In each window the agent with the most waste cleaned is the cleaner and the one with the least the
    harvester (with two agents: the other one). Returns window start episodes, each role's agent index,
    and the role's mean cleaning count and incentives received per copy over the window.
    """
    run = _as_run(source)
    cleaned = np.nan_to_num(np.stack(list(event_per_agent(run, CLEANED).values()), axis=1))
    received = np.nan_to_num(np.stack(list(per_agent(run, "incentives_received").values()), axis=1))
    starts = np.arange(0, len(cleaned), window)
    clean_mean = np.stack([cleaned[s:s + window].mean(axis=0) for s in starts])
    received_mean = np.stack([received[s:s + window].mean(axis=0) for s in starts])
    cleaner, harvester = clean_mean.argmax(axis=1), clean_mean.argmin(axis=1)
    rows = np.arange(len(starts))
    return {"start": episode_numbers(run)[starts], "cleaner": cleaner, "harvester": harvester,
            "cleaner_cleaned": clean_mean[rows, cleaner], "harvester_cleaned": clean_mean[rows, harvester],
            "cleaner_received": received_mean[rows, cleaner], "harvester_received": received_mean[rows, harvester]}


def _curve(ax: Axes, x: np.ndarray, y: np.ndarray, window: int, label: str, color: str | None = None) -> None:
    """Smoothed line with the raw values faint behind it; NaN points (missing data) are left out."""
    keep = ~np.isnan(y)
    x, y = x[keep], y[keep]
    if len(y) == 0:
        return
    line = ax.plot(x, moving_average(y, window), label=label, color=color, linewidth=1.8)[0]
    if window > 1:
        ax.plot(x, y, color=line.get_color(), alpha=0.2, linewidth=0.8)


def _finish(ax: Axes, title: str, ylabel: str, legend: bool = True) -> None:
    ax.set_title(title, fontsize=11)
    ax.set_xlabel("episode")
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if legend and ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="best")


def _figure(n_panels: int, ncols: int, title: str, width: float = 5.2, height: float = 3.6) -> tuple[Figure, list]:
    nrows = math.ceil(n_panels / ncols)
    ncols = min(ncols, n_panels)
    fig = Figure(figsize=(width * ncols, height * nrows + 0.6), layout="constrained")
    axes = list(np.atleast_1d(fig.subplots(nrows, ncols, squeeze=False)).ravel())
    for ax in axes[n_panels:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=12)
    return fig, axes[:n_panels]


def _subtitle(run: Run, window: int) -> str:
    smoothing = f"moving average of {window} episodes, raw faint" if window > 1 else "unsmoothed"
    return f"{run.path.name} — {run.game}, {len(run.episodes)} episodes × {run.batch_size} copies ({smoothing})"


def plot_returns(run: Run, window: int, out: Path) -> Path:
    x = episode_numbers(run)
    fig, (collective, agents) = _figure(2, 2, "Extrinsic returns\n" + _subtitle(run, window))
    collective_return = np.array([record["collective_return"] for record in run.episodes], dtype=float)
    _curve(collective, x, collective_return, window, "collective (training)", color="black")
    if run.evaluations:
        collective.plot([training_episode(record) for record in run.evaluations],
                        [record["collective_return"] for record in run.evaluations], "o", markersize=3,
                        color="tab:red", label="collective (evaluation, ε = 0)")
    _finish(collective, "Collective extrinsic return (sum over agents)", "return per episode",
            legend=bool(run.evaluations))
    for name, values in per_agent(run, "returns").items():
        _curve(agents, x, values, window, name)
    _finish(agents, "Each agent's extrinsic return", "return per episode")
    fig.savefig(out, dpi=110)
    return out


def plot_incentives_by_action(run: Run, window: int, out: Path) -> Path | None:
    """One panel per recipient; only actions that were ever paid for get a line."""
    data = incentives_by_action(run)
    if not data or not any(values.any() for by_action in data.values() for values in by_action.values()):
        return None
    x = np.array([training_episode(record) for record in run.ledger])
    fig, axes = _figure(len(data), 3, "Incentives received per action type\n" + _subtitle(run, window))
    for ax, (recipient, by_action) in zip(axes, data.items()):
        for action, values in by_action.items():
            if values.any():
                _curve(ax, x, values, window, action)
        if not ax.lines:
            ax.text(0.5, 0.5, "received nothing", transform=ax.transAxes, ha="center", color="grey")
        _finish(ax, f"received by {recipient}", "incentive per copy")
    fig.savefig(out, dpi=110)
    return out


def plot_cleanup(run: Run, window: int, out: Path) -> Path | None:
    """Per-agent cleaning and incentives, then the same by role (LIO Fig. 5): does the cleaner get paid?"""
    cleaned = event_per_agent(run, CLEANED)
    if all(np.isnan(values).all() for values in cleaned.values()):
        return None
    x = episode_numbers(run)
    title = "Cleanup: cleaning and incentives, per agent and by role\n" + _subtitle(run, window)
    fig, (clean_ax, paid_ax, role_clean, role_paid) = _figure(4, 2, title)
    for name, values in cleaned.items():
        _curve(clean_ax, x, values, window, name)
    _finish(clean_ax, "Waste cells cleaned by each agent", "cells cleaned per copy")
    for name, values in per_agent(run, "incentives_received").items():
        _curve(paid_ax, x, values, window, name)
    _finish(paid_ax, "Incentives received by each agent", "incentive per copy")
    roles = cleanup_roles(run, window)
    edges = np.append(roles["start"], episode_numbers(run)[-1] + 1)  # the last window's step reaches the end
    for ax, key in ((role_clean, "cleaned"), (role_paid, "received")):
        for role, color in (("cleaner", "tab:blue"), ("harvester", "tab:orange")):
            values = roles[f"{role}_{key}"]
            ax.step(edges, np.append(values, values[-1]), where="post", label=role, color=color, linewidth=1.8)
    previous = None
    for start, index, value in zip(roles["start"], roles["cleaner"], roles["cleaner_cleaned"]):
        if index != previous:
            role_clean.annotate(run.names[index], (start, value), textcoords="offset points", xytext=(2, -12),
                                fontsize=8, color="tab:blue")
            previous = index
    _finish(role_clean, "Cleaning by role (cleaner's name marked)", "cells cleaned per copy")
    _finish(role_paid, "Incentives received by role", "incentive per copy")
    for ax in (role_clean, role_paid):
        ax.set_xlabel(f"episode (windows of {window}; cleaner = the agent cleaning most in the window)")
    fig.savefig(out, dpi=110)
    return out


def behaviour(source: Run | Path | str) -> dict[str, dict[str, np.ndarray]]:
    """The Reciprocator paper's behaviour curves, per agent and episode: IPD P(cooperate); Coin Game
    P(own coin) (the share of an agent's pickups that were its own coins) and coins taken, own and
    others'. {} for other games."""
    run = _as_run(source)
    if run.game == "ipd":
        steps = np.array([record["steps"] for record in run.episodes], dtype=float)
        return {"P(cooperate)": {name: values / steps for name, values in event_per_agent(run, "cooperated").items()}}
    if run.game != "coin_game":
        return {}
    own, other = event_per_agent(run, "own_coin"), event_per_agent(run, "other_coin")
    with np.errstate(invalid="ignore", divide="ignore"):
        share = {name: np.where(own[name] + other[name] > 0, own[name] / (own[name] + other[name]), np.nan)
                 for name in own}
    return {"P(own coin)": share, "own coins taken per episode": own, "others' coins taken per episode": other}


def plot_behaviour(run: Run, window: int, out: Path) -> Path | None:
    curves = behaviour(run)
    if not curves:
        return None
    x = episode_numbers(run)
    fig, axes = _figure(len(curves), 3, "Behaviour\n" + _subtitle(run, window))
    for ax, (title, per_name) in zip(axes, curves.items()):
        for name, values in per_name.items():
            _curve(ax, x, values, window, name)
        _finish(ax, title, "")
    fig.savefig(out, dpi=110)
    return out


def read_metrics(run: Run) -> dict[str, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """`{metric: {agent: (episodes, values)}}` from agents/<name>/metrics.jsonl: the learner's own numeric
    columns, so scripted agents (which log only their return) get no metrics figure.

    Learners log some metrics only in some episodes (LIO alternates phases), so each series keeps its
    own episode numbers instead of being padded with gaps.
    """
    metrics: dict[str, dict[str, tuple[list[float], list[float]]]] = {}
    for path in sorted(run.path.glob("agents/*/metrics.jsonl")):
        for index, record in enumerate(read_jsonl(path)):
            for key, value in record.items():
                if key not in RUNTIME_COLUMNS and isinstance(value, (int, float)) and not isinstance(value, bool):
                    xs, ys = metrics.setdefault(key, {}).setdefault(path.parent.name, ([], []))
                    xs.append(record.get("episode", index))
                    ys.append(value)
    return {key: {agent: (np.array(xs, dtype=float), np.array(ys, dtype=float)) for agent, (xs, ys) in series.items()}
            for key, series in metrics.items()}


def plot_metrics(run: Run, window: int, out: Path) -> Path | None:
    metrics = read_metrics(run)
    if not metrics:
        return None
    shown = list(metrics)[:MAX_METRICS]
    title = "Learner metrics (agents/<name>/metrics.jsonl)\n" + _subtitle(run, window)
    fig, axes = _figure(len(shown), 4, title, width=4.2, height=3.0)
    for ax, key in zip(axes, shown):
        for agent, (xs, ys) in metrics[key].items():
            _curve(ax, xs, ys, window, agent)
        _finish(ax, key, "")
    fig.savefig(out, dpi=110)
    return out


def plot_run(run_dir: Path | str, out_dir: Path | str | None = None, smooth: int | None = None) -> list[Path]:
    """Write every figure the run has data for; returns the PNG paths.

    `out_dir` defaults to `RUN_DIR/plots`; `smooth` is the moving-average window in episodes (default:
    about 50 points over the run).
    """
    run = load_run(run_dir)
    out = Path(out_dir) if out_dir is not None else run.path / "plots"
    out.mkdir(parents=True, exist_ok=True)
    window = smooth if smooth is not None else auto_window(len(run.episodes))
    if window < 1:
        raise PlotError(f"--smooth must be at least 1 (got {window})")
    written = [plot_returns(run, window, out / "returns.png"),
               plot_incentives_by_action(run, window, out / "incentives_by_action.png"),
               plot_cleanup(run, window, out / "cleanup.png") if run.game == "cleanup" else None,
               plot_behaviour(run, window, out / "behaviour.png"),
               plot_metrics(run, window, out / "metrics.png")]
    return [path for path in written if path is not None]


def main(args: argparse.Namespace) -> int:
    """`arena plot`: print each written path; a clear message and exit code 2 if RUN_DIR is unusable."""
    try:
        paths = plot_run(args.run_dir, args.out, args.smooth)
    except PlotError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in paths:
        print(path)
    return 0
