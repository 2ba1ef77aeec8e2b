"""Starts the arena and the agent processes of a run, follows it, and shuts it all down cleanly.

Children run in their own sessions so that Ctrl-C reaches only the launcher, which then stops them
in order: the arena first (it tells every agent goodbye and closes its files), then any agent left.
"""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from agents.runtime import SEAT_TOKEN_FILE, latest_checkpoint
from arena.rundir import started_run_id
from arena.settings import SeatSpec
from launch.config import RunConfig
from launch.resume import ResumePoint, record_count, set_aside

console = Console(stderr=True, soft_wrap=True)


def make_run_dir(config: RunConfig, config_text: str) -> Path:
    """A fresh directory `<out>/<name>-<timestamp>` holding the config as given and as resolved."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(config.run.out) / f"{config.run.name}-{stamp}"
    run_dir, k = base, 1
    while run_dir.exists():
        k += 1
        run_dir = base.with_name(f"{base.name}-{k}")
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text(config_text, encoding="utf-8")
    (run_dir / "config.resolved.json").write_text(config.model_dump_json(indent=2) + "\n", encoding="utf-8")
    write_arena_spec(config, run_dir)
    return run_dir


def write_arena_spec(config: RunConfig, run_dir: Path, first_episode: int = 0, resumed: bool = False) -> None:
    """RUN_DIR/arena.json, what the arena process reads (`python -m arena RUN_DIR`); `resumed` has the arena
    note the resumption in run.json and result.json, even one that goes on from episode 0."""
    arena_spec = {"arena": config.arena.model_dump(), "seats": [a.model_dump() for a in config.agents],
                  "mqtt": config.run.mqtt, "first_episode": first_episode, "resumed": resumed}
    (run_dir / "arena.json").write_text(json.dumps(arena_spec, indent=2) + "\n", encoding="utf-8")


def wait_for_connection(run_dir: Path, arena: subprocess.Popen, timeout_s: float = 60.0) -> dict[str, Any]:
    """The arena's connection file, once it is listening; fails if the arena exits first."""
    path = run_dir / "connection.json"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists():
            try:
                return json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                pass
        if arena.poll() is not None:
            raise RuntimeError(f"the arena exited with code {arena.returncode} before listening:\n"
                               f"{tail(run_dir / 'arena.out')}")
        time.sleep(0.05)
    raise RuntimeError(f"the arena did not start listening within {timeout_s:.0f} s; see {run_dir / 'arena.log'}")


def tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"


def describe_exit(code: int | None) -> str:
    if code is None:
        return "still running"
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit code {code}"


def join_command(kind: str, address: str, seat: int, name: str, connection_file: Path, signed: bool,
                 options: dict[str, Any] | None = None, mqtt: str | None = None, server_key: str | None = None
                 ) -> str:
    """The command that joins seat `seat`; the seat's options go along, since some decide the hello
    (a human seat's `pay`), and so does the run's telemetry address. In a CURVE run it names the arena's
    public key and the seat's secret key file (issued in RUN_DIR/keys, or its owner's own)."""
    target = f"--connection-file {connection_file}" if signed else f"--connect {address}"
    if server_key is not None:
        issued = connection_file.parent / "keys" / f"{name}.key_secret"
        key_file = issued if issued.exists() else f"{name}.key_secret"
        target += f" --server-key {shlex.quote(server_key)} --client-key {key_file}"
    extra = f" --options {shlex.quote(json.dumps(options))}" if options else ""
    extra += f" --mqtt {shlex.quote(mqtt)}" if mqtt else ""
    return f"arena agent {kind} {target} --seat {seat} --name {name}{extra}"


@dataclass
class Launch:
    """One run being launched and supervised."""

    config: RunConfig
    run_dir: Path
    arena: subprocess.Popen | None = None
    agents: dict[str, subprocess.Popen] = field(default_factory=dict)
    #: going on with a run that stopped early: logs are appended to, not started afresh
    resumed: bool = False
    interrupted: bool = False
    failure: str | None = None
    failure_seen_at: float = 0.0
    #: the arena's connection file, once it listens
    connection: dict[str, Any] = field(default_factory=dict)
    #: when each agent was last restarted to rejoin its seat (monotonic s) and how many episodes the run had
    #: recorded then; and the agents no longer restarted
    restarted_at: dict[str, tuple[float, int]] = field(default_factory=dict)
    given_up: set[str] = field(default_factory=set)

    @property
    def _log_mode(self) -> str:
        return "ab" if self.resumed else "wb"

    def start_arena(self) -> dict[str, Any]:
        (self.run_dir / "connection.json").unlink(missing_ok=True)  # a stopped session's, naming a dead address
        with open(self.run_dir / "arena.out", self._log_mode) as out:  # the child keeps its own copy
            self.arena = subprocess.Popen([sys.executable, "-m", "arena", str(self.run_dir)], stdout=out,
                                          stderr=subprocess.STDOUT, start_new_session=True)
        return wait_for_connection(self.run_dir, self.arena)

    def start_agents(self, connection: dict[str, Any]) -> None:
        self.connection = connection
        (self.run_dir / "agents").mkdir(exist_ok=True)
        for seat, spec in enumerate(self.config.agents):
            if spec.external:
                command = join_command(spec.kind, connection["address"], seat, spec.name,
                                       self.run_dir / "connection.json", bool(connection.get("key")), spec.options,
                                       self.config.run.mqtt, connection.get("curve_server_key"))
                console.print(f"[yellow]waiting for external seat {seat} '{spec.name}'[/]: join with\n"
                              f"  {escape(command)}")
                continue
            self._start_agent(seat, spec)

    def _start_agent(self, seat: int, spec: SeatSpec, rejoin: bool = False) -> None:
        """Start the launched agent of `seat`; with `rejoin`, to take its held seat back with its seat token,
        restoring its latest checkpoint (if it wrote one), its log going on."""
        logs = self.run_dir / "agents"
        out_dir = logs / spec.name
        command = [sys.executable, "-m", "agents", spec.kind, "--connection-file",
                   str(self.run_dir / "connection.json"), "--seat", str(seat), "--name", spec.name,
                   "--device", spec.device, "--out", str(out_dir),
                   "--checkpoint-every", str(self.config.run.checkpoint_every)]
        resume = spec.resume
        if rejoin:
            command += ["--seat-token-file", str(out_dir / SEAT_TOKEN_FILE)]
            resume = latest_checkpoint(out_dir) or resume
        else:  # a token left by an earlier session (before a --resume) would rejoin nothing
            (out_dir / SEAT_TOKEN_FILE).unlink(missing_ok=True)
        if resume:
            command += ["--resume", str(resume)]
        if spec.options:  # some decide the hello (MOA's `communication` declares "messages")
            command += ["--options", json.dumps(spec.options)]
        if self.connection.get("curve_server_key"):
            command += ["--client-key", str(self.run_dir / "keys" / f"{spec.name}.key_secret")]
        if self.config.run.mqtt:
            command += ["--mqtt", self.config.run.mqtt]
        with open(logs / f"{spec.name}.log", "ab" if rejoin else self._log_mode) as out:  # the child keeps a copy
            self.agents[spec.name] = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT,
                                                      start_new_session=True)

    def follow(self) -> None:
        """Show progress from episodes.jsonl until the arena exits (or Ctrl-C)."""
        episodes_file = self.run_dir / "episodes.jsonl"
        total = self.config.arena.total_episodes
        columns = (TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TextColumn("collective {task.fields[collective]}"), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=False) as progress:
            task = progress.add_task(self.config.run.name, total=total, collective="-")
            offset = 0
            while self.arena.poll() is None and not self.interrupted and not self._agent_failed():
                offset = self._read_progress(episodes_file, offset, progress, task)
                time.sleep(0.1)
            self._read_progress(episodes_file, offset, progress, task)

    def _agent_failed(self) -> bool:
        """An agent died: give the arena its heartbeat timeout to end the run and say why, then stop. Once a
        run that takes seats back (reconnect_grace_s > 0) has started, the arena holds the seat instead: the
        agent is restarted to rejoin it, and if it is not, the arena ends the run when the grace runs out,
        so it alone decides. Before the start there is no seat to hold (a lost agent frees its seat in the
        lobby, which waits for ever), so the first rule holds."""
        dead = {name: p.returncode for name, p in self.agents.items() if p.poll() not in (None, 0)}
        if not dead:
            return False
        held = self.config.arena.reconnect_grace_s > 0 and self._run_started()
        if held:
            dead = {name: code for name, code in dead.items() if not self._rejoin(name, code)}
            if not dead:
                return False
        if self.failure is None:
            self.failure = "; ".join(f"agent '{n}' {describe_exit(code)}" for n, code in dead.items())
            self.failure_seen_at = time.monotonic()
        return not held and time.monotonic() - self.failure_seen_at > self.config.arena.heartbeat_timeout_s + 1.0

    def _run_started(self) -> bool:
        """Whether this session's arena has started the run (it names itself in run.json at the start)."""
        return started_run_id(self.run_dir) == self.connection.get("run_id")

    def _rejoin(self, name: str, code: int) -> bool:
        """Restart the dead agent `name` to rejoin its held seat; False if it is not: the run has ended, the
        agent has no seat token, or it died again within the grace of its last restart or before the run
        recorded another episode (a failure that a restart does not cure: one restart per loss, and a crash
        right after each rejoin, as from a broken checkpoint, is not restarted for ever)."""
        grace = self.config.arena.reconnect_grace_s
        if name in self.given_up or self.arena.poll() is not None or (self.run_dir / "result.json").exists():
            return False
        token = self.run_dir / "agents" / name / SEAT_TOKEN_FILE
        episodes = record_count(self.run_dir / "episodes.jsonl")
        last, recorded = self.restarted_at.get(name, (None, -1))
        why = ("it died again within reconnect_grace_s of its restart"
               if last is not None and time.monotonic() - last <= grace else
               "it died again before the run recorded another episode" if recorded == episodes else
               None if token.exists() else f"it has no seat token ({token})")
        if why is not None:
            self.given_up.add(name)
            console.print(f"[red]agent '{escape(name)}' {describe_exit(code)}[/]; not restarted: {escape(why)}; the "
                          f"run ends unless its seat is rejoined within {grace:g} s", highlight=False)
            return False
        seat = next(i for i, spec in enumerate(self.config.agents) if spec.name == name)
        console.print(f"[yellow]agent '{escape(name)}' {describe_exit(code)}[/]: restarting it to rejoin seat {seat} "
                      f"(held {grace:g} s); its log goes on in {escape(str(self.run_dir / 'agents'))}/"
                      f"{escape(name)}.log", highlight=False)
        self._start_agent(seat, self.config.agents[seat], rejoin=True)
        self.restarted_at[name] = (time.monotonic(), episodes)
        return True

    @staticmethod
    def _read_progress(path: Path, offset: int, progress: Progress, task: Any) -> int:
        if not path.exists():
            return offset
        with open(path, encoding="utf-8") as handle:
            handle.seek(offset)
            chunk = handle.read()
        complete = chunk[: chunk.rfind("\n") + 1]
        lines = [json.loads(line) for line in complete.splitlines() if line.strip()]
        if lines:
            progress.update(task, completed=lines[-1]["episode"] + 1,
                            collective=f"{lines[-1]['collective_return']:.3f}")
        return offset + len(complete.encode("utf-8"))

    def stop(self, arena_grace_s: float = 3.0, agents_grace_s: float = 10.0) -> None:
        """Stop the arena (it says goodbye to the agents), then whatever is left. The agents share one
        grace period long enough for a last update, a final checkpoint and a teardown on a loaded machine:
        a run that completed should not end by terminating its agents."""
        if self.arena is not None and self.arena.poll() is None:
            self.arena.send_signal(signal.SIGTERM)
            _wait(self.arena, arena_grace_s)
        deadline = time.monotonic() + agents_grace_s
        for process in self.agents.values():
            _wait(process, max(0.0, deadline - time.monotonic()))
        for process in [self.arena, *self.agents.values()]:
            if process is not None and process.poll() is None:
                process.terminate()
                if not _wait(process, 2.0):
                    process.kill()
                    process.wait()


def _wait(process: subprocess.Popen, timeout: float) -> bool:
    try:
        process.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def final_means(run_dir: Path) -> dict[str, Any] | None:
    """Per agent: mean return and incentives over the last 10% of training episodes, the collective
    return over them, and that of the evaluation episodes played in that stretch (None if the run has
    none); None when no training episode finished. What `arena launch` prints and `arena sweep` tabulates.
    Only the records `record_count` counts are read: a run killed mid-write leaves a torn last line."""
    path = run_dir / "episodes.jsonl"
    if not path.exists():
        return None
    played = [json.loads(line) for line in path.read_text(encoding="utf-8").split("\n")[: record_count(path)]]
    episodes = [e for e in played if not e.get("evaluate")]
    if not episodes:
        return None
    window = episodes[-max(1, len(episodes) // 10):]

    def average(key: str, name: str) -> float:
        return sum(e[key][name] for e in window) / len(window)

    names = list(episodes[0]["returns"])
    evaluations = [e for e in played if e.get("evaluate") and e["trained"] >= window[0]["trained"]]
    return {"episodes": len(episodes), "window": len(window),
            "returns": {n: average("returns", n) for n in names},
            "incentives_given": {n: average("incentives_given", n) for n in names},
            "incentives_received": {n: average("incentives_received", n) for n in names},
            "collective": sum(e["collective_return"] for e in window) / len(window),
            "collective_per_step": sum(e["collective_per_step"] for e in window) / len(window),
            "eval_collective": (sum(e["collective_return"] for e in evaluations) / len(evaluations)
                                if evaluations else None),
            "eval_returns": ({n: sum(e["returns"][n] for e in evaluations) / len(evaluations) for n in names}
                             if evaluations else None),
            "eval_episodes": len(evaluations)}


def summary_table(run_dir: Path) -> Table | None:
    """`final_means` as the table `arena launch` prints at the end of a run."""
    means = final_means(run_dir)
    if means is None:
        return None
    table = Table(title=f"{run_dir.name}: last {means['window']} of {means['episodes']} episodes (means)")
    for column in ("agent", "return", "incentives given", "incentives received"):
        table.add_column(column, justify="right" if column != "agent" else "left")
    for name in means["returns"]:
        values = [means[key][name] for key in ("returns", "incentives_given", "incentives_received")]
        table.add_row(name, *(f"{v:.3f}" for v in values))
    table.add_row("[bold]collective", f"[bold]{means['collective']:.3f}", "",
                  f"per step {means['collective_per_step']:.3f}")
    if means["eval_collective"] is not None:
        table.add_row("[bold]collective, evaluation", f"[bold]{means['eval_collective']:.3f}", "",
                      f"{means['eval_episodes']} evaluation episode(s), ε = 0")
    return table


RUN_DIRECTORY = "run directory: "


def run_dir_of(output: str) -> Path | None:
    """The run directory `arena launch` printed (its first line of output), for programs that run it."""
    for line in output.splitlines():
        if line.startswith(RUN_DIRECTORY):
            return Path(line.removeprefix(RUN_DIRECTORY).strip())
    return None


def launch_run(config: RunConfig, config_text: str) -> int:
    """Run everything; returns the exit code for `arena launch`."""
    run_dir = make_run_dir(config, config_text)
    console.print(f"{RUN_DIRECTORY}{run_dir}")
    return supervise(Launch(config, run_dir))


def resume_run(config: RunConfig, run_dir: Path, point: ResumePoint) -> int:
    """Go on with the run in `run_dir` from `point` (launch.resume), in the same directory: `config` is
    the run's own, its learning seats resuming from `point.checkpoints`."""
    aside = set_aside(config, run_dir, point)
    write_arena_spec(config, run_dir, point.first_episode, resumed=True)
    console.print(f"{RUN_DIRECTORY}{run_dir}")
    console.print(f"resuming at episode {point.first_episode} after {point.trained} training episode(s)"
                  + (f"; what was recorded after it is kept in {aside}" if aside else ""), highlight=False)
    return supervise(Launch(config, run_dir, resumed=True))


def supervise(job: Launch) -> int:
    """Start the arena and the agents of `job`, follow the run to its end and report it."""
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def on_interrupt(signum: int, frame: object) -> None:
        job.interrupted = True

    for sig in previous:
        signal.signal(sig, on_interrupt)
    try:
        connection = job.start_arena()
        job.start_agents(connection)
        job.follow()
    except RuntimeError as exc:
        console.print(f"[red]arena launch failed:[/] {escape(str(exc))}")
        job.stop()
        return 1
    finally:
        job.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return report(job)


def report(job: Launch) -> int:
    table = summary_table(job.run_dir)
    if table is not None:
        console.print(table)
    result_path = job.run_dir / "result.json"
    result = json.loads(result_path.read_text(encoding="utf-8")) if result_path.exists() else None
    if job.interrupted:
        done = result["episodes"] if result else "?"
        console.print(f"[yellow]interrupted[/]: stopped cleanly after {done} finished episode(s); "
                      f"results in {job.run_dir}")
        return 130
    if result is not None and result["status"] == "complete" and job.arena.returncode == 0:
        failed = {n: p.returncode for n, p in job.agents.items() if p.returncode not in (0, None)}
        for name, code in failed.items():
            console.print(f"[yellow]agent '{name}' ended with {describe_exit(code)}[/]")
        console.print(f"[green]{escape(result['reason'])}[/] in {result['wall_time_s']:.1f} s; "
                      f"results in {job.run_dir}")
        return 0
    reason = result["reason"] if result else f"the arena ended with {describe_exit(job.arena.returncode)}"
    if job.failure and (result is None or "SIGTERM" in reason):
        reason = f"{job.failure} before the run ended"
    console.print(f"[red]run failed:[/] {escape(reason)}")
    failed = {name: p.returncode for name, p in job.agents.items() if p.returncode not in (0, None)}
    causes = [name for name in failed if f"agent '{name}'" in reason] or list(failed)
    for name in causes:
        log = job.run_dir / "agents" / f"{name}.log"
        console.print(f"  cause: agent '{name}': {describe_exit(failed[name])}; last lines of {escape(str(log))}:")
        console.print("    " + tail(log, 5).replace("\n", "\n    "), markup=False, highlight=False)
    consequences = [f"'{name}' ({describe_exit(code)})" for name, code in failed.items() if name not in causes]
    if consequences:
        console.print(f"  then the other agents stopped because the run ended: {', '.join(consequences)}",
                      highlight=False)
    console.print(f"finished episodes are in {job.run_dir / 'episodes.jsonl'}")
    return 1


def serve_run(config: RunConfig, config_text: str) -> int:
    """Run only the arena, in this process, and print how agents join it."""
    import asyncio
    import logging

    from arena.server import Arena, BindError
    from protocols.memory import keep_freed_memory

    keep_freed_memory()
    run_dir = make_run_dir(config, config_text)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=[logging.FileHandler(run_dir / "arena.log"), logging.StreamHandler()])

    def announce(arena: Arena) -> None:
        signed = arena.key is not None
        console.print(f"arena listening on [bold]{arena.address}[/] (run directory {run_dir}); join with:")
        for seat, spec in enumerate(config.agents):
            command = join_command(spec.kind, arena.address, seat, spec.name, run_dir / "connection.json", signed,
                                   spec.options, config.run.mqtt, arena.curve[0].decode() if arena.curve else None)
            console.print(f"  {escape(command)}")

    async def serve() -> int:
        arena = Arena(config.arena, config.agents, run_dir, mqtt=config.run.mqtt)
        return await arena.serve(on_bound=announce)

    try:
        code = asyncio.run(serve())
    except BindError as err:
        console.print(f"[red]error:[/] {escape(str(err))}", highlight=False)
        return 2
    table = summary_table(run_dir)
    if table is not None:
        console.print(table)
    return code
