"""The `arena` command: launch a run, serve an arena, or join one as an agent."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.markup import escape

from agents.cli import build_parser as build_agent_parser
from agents.cli import run_agent
from arena.rundir import RunDirBusy, ensure_stopped
from launch.config import ConfigError, RunConfig, load_config
from launch.preflight import preflight
from launch.resume import plan_resume, with_checkpoints
from launch.supervisor import console, launch_run, resume_run, serve_run
from protocols.curve import make_key_pair


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="arena", description="social-arena: decentralized multi-agent runs")
    commands = parser.add_subparsers(dest="command", required=True)
    launch = commands.add_parser("launch", help="start the arena and every agent of a run config")
    launch.add_argument("config", type=Path, nargs="?", help="run config (TOML), e.g. examples/ipd.toml")
    launch.add_argument("--resume", type=Path, metavar="RUN_DIR",
                        help="go on with a run that stopped early, in its own directory (instead of a config)")
    launch.add_argument("--episodes", type=int, help="override [arena] episodes")
    launch.add_argument("--out", help="override [run] out (parent directory of run directories)")
    launch.add_argument("--mqtt", help="publish telemetry to mqtt://HOST[:PORT][/PREFIX] (overrides [run] mqtt)")
    serve = commands.add_parser("serve", help="start only the arena and print how agents join")
    serve.add_argument("config", type=Path)
    serve.add_argument("--address", help="override [arena] address, e.g. tcp://0.0.0.0:5555")
    serve.add_argument("--out", help="override [run] out")
    serve.add_argument("--mqtt", help="publish telemetry to mqtt://HOST[:PORT][/PREFIX] (overrides [run] mqtt)")
    sweep = commands.add_parser("sweep", help="run a sweep or tournament of runs on Ray (local, or a cluster)")
    sweep.add_argument("config", type=Path, help="sweep file (TOML), e.g. examples/sweeps/ipd.toml")
    sweep.add_argument("--address", help="Ray cluster to use: ray://HOST:10001 or auto (default: a local Ray "
                       "started for this sweep)")
    sweep.add_argument("--concurrency", type=int, help="cells at once (overrides [sweep] concurrency)")
    sweep.add_argument("--episodes", type=int, help="override every cell's [arena] episodes")
    sweep.add_argument("--out", help="override [sweep] out (parent of the sweep directory)")
    keys = commands.add_parser("keys", help="make CURVE key pairs for joining CURVE runs across hosts")
    keys.add_argument("directory", type=Path, help="where to write NAME.key (public) and NAME.key_secret")
    keys.add_argument("names", nargs="+", help="one key pair per name, e.g. your seat's name")
    check = commands.add_parser("check", help="check a run config and every seat in it, starting nothing")
    check.add_argument("config", type=Path)
    build_agent_parser(commands.add_parser("agent", help="run one agent and join an arena"))
    plot = commands.add_parser("plot", help="write a run directory's figures as PNG files")
    plot.add_argument("run_dir", type=Path, help="a run directory, as printed by `arena launch`")
    plot.add_argument("--out", type=Path, help="where to write the PNGs (default RUN_DIR/plots)")
    plot.add_argument("--smooth", type=int, help="moving-average window in episodes (default: episodes / 50)")
    watch = commands.add_parser("watch", help="follow runs live (MQTT telemetry, or an arena's own event stream)")
    watch.add_argument("url", metavar="SOURCE",
                       help="mqtt://HOST[:PORT][/PREFIX], or a run directory or tcp:// address of an arena's stream")
    watch.add_argument("--run", help="only this run id (MQTT)")
    watch.add_argument("--frames", action="store_true", help="show the arena's rendering of copy 0 (event stream)")
    watch.add_argument("--until-done", action="store_true", help="return once every run seen has ended")
    args = parser.parse_args(argv)

    if args.command == "agent":
        return run_agent(args)
    if args.command == "watch":
        from launch.watch import main as watch_main

        return watch_main(args.url, args.run, args.until_done, args.frames)
    if args.command == "sweep":
        return _sweep(args)
    if args.command == "keys":
        return _keys(args)
    if args.command == "plot":
        from launch.plot import main as plot_main  # imported here so other commands don't load matplotlib

        return plot_main(args)
    if args.command == "launch" and (args.config is None) == (args.resume is None):
        parser.error("arena launch takes a run config or --resume RUN_DIR (one of them)")
    if getattr(args, "resume", None) is not None:
        return resume(args)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
        return 2
    problems = preflight(config, args.config.read_text(encoding="utf-8"), args.config)
    if problems:
        console.print(f"[red]error:[/] run config {escape(str(args.config))} has {len(problems)} problem(s); "
                      "nothing was started:\n  " + "\n  ".join(escape(p) for p in problems), highlight=False)
        return 2
    if args.command == "check":
        console.print(f"{escape(str(args.config))}: ok ({len(config.agents)} seats, game '{config.arena.game}')",
                      highlight=False)
        return 0
    updates = {"episodes": getattr(args, "episodes", None), "address": getattr(args, "address", None)}
    arena = config.arena.model_copy(update={k: v for k, v in updates.items() if v is not None})
    run_updates = {"out": args.out, "mqtt": getattr(args, "mqtt", None)}
    try:
        run = type(config.run).model_validate({**config.run.model_dump(),
                                                **{k: v for k, v in run_updates.items() if v is not None}})
    except ValueError as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", markup=True, highlight=False)
        return 2
    config = config.model_copy(update={"arena": arena, "run": run})
    text = args.config.read_text(encoding="utf-8")
    if args.command == "launch":
        return launch_run(config, text)
    return serve_run(config, text)


def resume(args: argparse.Namespace) -> int:
    """`arena launch --resume RUN_DIR`: the run's own resolved config, from where it can go on exactly."""
    if args.episodes is not None or args.out is not None:
        console.print("[red]error:[/] --resume goes on with the run as it was configured: drop --episodes and --out",
                      highlight=False)
        return 2
    run_dir: Path = args.resume
    try:  # before anything is read or moved: a running arena still appends to the run's files
        ensure_stopped(run_dir)
    except RunDirBusy as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 2
    source = run_dir / "config.toml"
    try:
        config = RunConfig.model_validate_json((run_dir / "config.resolved.json").read_text(encoding="utf-8"))
        if args.mqtt is not None:
            config = config.model_copy(update={"run": config.run.model_copy(update={"mqtt": args.mqtt})})
        point = plan_resume(config, run_dir)
    except (OSError, ValueError) as exc:  # ValueError: pydantic's and ResumeError
        console.print(f"[red]error:[/] cannot resume {escape(str(run_dir))}: {escape(str(exc))}", highlight=False)
        return 2
    config = with_checkpoints(config, point)
    problems = preflight(config, source.read_text(encoding="utf-8") if source.exists() else "", source)
    if problems:
        console.print(f"[red]error:[/] run {escape(str(run_dir))} cannot go on ({len(problems)} problem(s)); "
                      "nothing was started:\n  " + "\n  ".join(escape(p) for p in problems), highlight=False)
        return 2
    return resume_run(config, run_dir, point)


def _keys(args: argparse.Namespace) -> int:
    """Write one key pair per name and say what to do with each half."""
    for name in args.names:
        public, secret = make_key_pair(args.directory, name)
        where = escape(str(secret))
        console.print(f"{escape(name)}: public key [bold]{public}[/] (in {escape(str(secret.with_suffix('.key')))}: "
                      "give it to the arena's operator for the seat's client_key); secret key in "
                      f"{where} (keep it on this host: arena agent ... --client-key {where})", highlight=False)
    return 0


def _sweep(args: argparse.Namespace) -> int:
    from launch.sweep import SweepError, run_sweep  # imported here so other commands don't load Ray's helpers

    try:
        return run_sweep(args.config, args.address, args.concurrency, args.episodes, args.out,
                         echo=lambda line: console.print(escape(line), highlight=False))
    except (ConfigError, SweepError) as exc:
        console.print(f"[red]error:[/] {escape(str(exc))}", highlight=False)
        return 2


if __name__ == "__main__":
    sys.exit(main())
