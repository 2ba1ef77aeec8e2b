"""`arena agent KIND --connect ADDR`: run one agent process (needs only `agents` and `protocols`)."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
from pathlib import Path

from agents.preflight import check_seat
from agents.registry import available_kinds, load_algorithm
from agents.runtime import AgentError, AgentRuntime
from protocols.curve import ClientKeys, check_public_key, read_secret_file
from protocols.memory import keep_freed_memory
from protocols.telemetry import MqttTarget


def build_parser(parser: argparse.ArgumentParser | None = None) -> argparse.ArgumentParser:
    parser = parser or argparse.ArgumentParser(prog="arena agent", description=__doc__)
    parser.add_argument("kind", help=f"agent implementation: {', '.join(available_kinds())}, or module:Class")
    parser.add_argument("--connect", help="arena address, e.g. tcp://127.0.0.1:5555")
    parser.add_argument("--connection-file", type=Path,
                        help="the run's connection.json (address, and the signing key when signing is on)")
    parser.add_argument("--seat", type=int, help="seat index to take (default: the seat named --name, else any free)")
    parser.add_argument("--name", help="this agent's name; takes the seat of that name if there is one")
    parser.add_argument("--device", default="cpu", help="torch device: cpu or cuda[:k]")
    parser.add_argument("--seed", type=int, help="override the seed the arena suggests")
    parser.add_argument("--options", default="{}", help="JSON object of algorithm options")
    parser.add_argument("--out", type=Path, help="directory for this agent's metrics and checkpoints")
    parser.add_argument("--checkpoint-every", type=int, default=0, help="episodes between checkpoints")
    parser.add_argument("--resume", type=Path, help="checkpoint to restore after setup (e.g. .../final.pt)")
    parser.add_argument("--seat-token-file", type=Path, help="rejoin the seat --seat that this agent held, with the "
                        "token its welcome carried (written to OUT/seat.token); runs with reconnect_grace_s > 0")
    parser.add_argument("--mqtt", help="publish presence and learner metrics to mqtt://HOST[:PORT][/PREFIX]")
    parser.add_argument("--client-key", type=Path, help="CURVE runs: this seat's secret key file (NAME.key_secret, "
                        "from `arena keys` or issued in the run's keys/ directory)")
    parser.add_argument("--server-key", help="CURVE runs joined with --connect: the arena's public key (Z85; the "
                        "connection file's curve_server_key)")
    parser.add_argument("--log-level", default="INFO")
    return parser


def run_agent(args: argparse.Namespace) -> int:
    logging.basicConfig(level=args.log_level.upper(), format=f"%(asctime)s {args.name or args.kind}: %(message)s")
    address, key, server_key = args.connect, None, args.server_key
    if args.connection_file is not None:
        info = json.loads(args.connection_file.read_text(encoding="utf-8"))
        address = address or info["address"]
        key = info["key"].encode() if info.get("key") else None
        server_key = server_key or info.get("curve_server_key")
    if not address:
        print("arena agent: give --connect ADDR or --connection-file FILE", file=sys.stderr)
        return 2
    try:
        curve = curve_keys(server_key, args.client_key)
    except ValueError as exc:
        print(f"arena agent: {exc}", file=sys.stderr)
        return 2
    try:
        options = json.loads(args.options)
    except ValueError as exc:
        print(f"arena agent: --options is not JSON: {exc}", file=sys.stderr)
        return 2
    if not isinstance(options, dict):
        print("arena agent: --options must be a JSON object, e.g. '{\"lr\": 0.01}'", file=sys.stderr)
        return 2
    if args.mqtt:
        try:
            MqttTarget.parse(args.mqtt)
        except ValueError as exc:
            print(f"arena agent: --mqtt: {exc}", file=sys.stderr)
            return 2
    seat_token = None
    if args.seat_token_file is not None:
        try:
            seat_token = args.seat_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            print(f"arena agent: cannot read --seat-token-file {args.seat_token_file}: {exc.strerror}",
                  file=sys.stderr)
            return 2
        if args.seat is None:
            print("arena agent: --seat-token-file rejoins a seat: give its index with --seat", file=sys.stderr)
            return 2
    resume = str(args.resume) if args.resume is not None else None
    keep_freed_memory()
    problems = check_seat(args.kind, options, args.device, resume)
    if problems:  # the game's own checks come after welcome, in the runtime
        print(f"arena agent: {len(problems)} problem(s), not connecting:\n  "
              + "\n  ".join(f"{p.key}: {p.message}" for p in problems), file=sys.stderr)
        return 2
    algorithm = load_algorithm(args.kind)()
    runtime = AgentRuntime(algorithm, address, name=args.name or args.kind, implementation=args.kind,
                           seat=args.seat, key=key, device=args.device, seed=args.seed, options=options,
                           out_dir=args.out, checkpoint_every=args.checkpoint_every, resume=args.resume,
                           mqtt=args.mqtt, seat_token=seat_token, curve=curve)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        return algorithm.host(runtime.run, runtime.request_stop)
    except AgentError as exc:
        print(f"arena agent {args.name or args.kind}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


def curve_keys(server_key: str | None, client_key: Path | None) -> ClientKeys | None:
    """The CURVE keys to join with, or None for a run without CURVE; raises ValueError saying what is missing."""
    if server_key is None and client_key is None:
        return None
    if client_key is None:
        raise ValueError("this run uses CURVE: give --client-key NAME.key_secret, the secret key file of your "
                         "seat (launched seats: RUN_DIR/keys/NAME.key_secret; your own: made by `arena keys`)")
    if server_key is None:
        raise ValueError("--client-key needs the arena's public key: give --connection-file (curve_server_key) "
                         "or --server-key")
    public, secret = read_secret_file(client_key)
    return ClientKeys(check_public_key(server_key).encode(), public, secret)


def _interrupt(signum: int, frame: object) -> None:
    """SIGTERM ends the agent like Ctrl-C does: sockets are closed on the way out."""
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    return run_agent(build_parser().parse_args(argv))
