"""Preflight of a whole run config: every seat checked before anything starts, each problem with the
config file and line to fix (`arena launch`, `arena serve` and `arena check` run it)."""

from __future__ import annotations

import re
from pathlib import Path

from agents.algorithm import RunFacts
from agents.preflight import Problem, check_seat
from arena.games import make_game
from launch.config import RunConfig, line_of


def seat_line(text: str, index: int, key: str) -> int | None:
    """Line of `key` in the index-th [[agents]] table (`options.NAME`: that option's line in an
    [agents.options] sub-table, else the `options` line), else of that table's header."""
    seen, table, header, found = -1, "", None, {}
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header_match = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$", stripped)
        if header_match:
            table = header_match.group(1)
            if stripped.startswith("[[") and table == "agents":
                seen += 1
                header = number if seen == index else header
            elif seen == index and table.startswith("agents."):
                found.setdefault(table.removeprefix("agents."), number)
            continue
        name = re.match(r"^([A-Za-z0-9_-]+)\s*=", stripped)
        if name and seen == index and (table == "agents" or table.startswith("agents.")):
            sub = table.removeprefix("agents").removeprefix(".")
            found.setdefault(f"{sub}.{name.group(1)}" if sub else name.group(1), number)
    return found.get(key) or found.get(key.split(".")[0]) or header


def preflight(config: RunConfig, text: str, path: Path) -> list[str]:
    """One line per problem, `FILE:LINE: seat I 'NAME' (KIND): what is wrong and what to do`; [] if none.
    Seats marked `external` are joined from elsewhere with their own code, so they are not checked here
    (`arena agent` checks itself)."""
    arena = config.arena
    run = RunFacts(game=arena.game, n_agents=len(config.agents), disclose=frozenset(arena.disclose),
                   rmax=arena.rmax, action_names=make_game(arena.game, arena.params, 1).action_names,
                   message_vocab=arena.message_vocab)
    lines = []
    for index, seat in enumerate(config.agents):
        if seat.external:
            continue
        problems = check_seat(seat.kind, seat.options, seat.device, seat.resume, run, index)
        if seat.kind == "human":  # a person needs a terminal of their own, which a launched child has not
            problems.append(Problem("kind", "a human seat is played from a terminal: set external = true in "
                                            "this [[agents]] table and join with the command `arena launch` prints"))
        for problem in problems:
            if problem.key.startswith("arena."):
                line = line_of(text, ("arena", problem.key.removeprefix("arena."))) or seat_line(text, index, "kind")
            else:
                line = seat_line(text, index, problem.key) or seat_line(text, index, "kind")
            where = f"{path}:{line}" if line else str(path)
            lines.append(f"{where}: seat {index} '{seat.name}' ({seat.kind}): {problem.message}")
    return lines
