"""`python -m arena RUN_DIR`: run the arena process of a prepared run directory.

`launch` writes RUN_DIR/arena.json ({"arena": ArenaSettings, "seats": [SeatSpec, ...]}, and "first_episode"
and "resumed": true when it resumes the run) and starts this process; the arena writes RUN_DIR/connection.json
once it listens.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sys
from pathlib import Path

from arena.rundir import RunDirBusy
from arena.server import Arena, BindError
from arena.settings import ArenaSettings, SeatSpec
from protocols.memory import keep_freed_memory


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m arena RUN_DIR   (RUN_DIR/arena.json is written by `arena launch`)",
              file=sys.stderr)
        return 2
    run_dir = Path(args[0])
    keep_freed_memory()
    spec = json.loads((run_dir / "arena.json").read_text(encoding="utf-8"))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        handlers=[logging.FileHandler(run_dir / "arena.log"), logging.StreamHandler()])
    logging.getLogger().handlers[1].setLevel(logging.WARNING)
    settings = ArenaSettings.model_validate(spec["arena"])
    seats = [SeatSpec.model_validate(s) for s in spec["seats"]]

    async def serve() -> int:
        return await Arena(settings, seats, run_dir, mqtt=spec.get("mqtt"), first_episode=spec.get("first_episode", 0),
                           resumed=spec.get("resumed", False)).serve()

    try:
        return asyncio.run(serve())
    except (BindError, RunDirBusy) as err:
        logging.getLogger("arena").error("%s", err)
        print(f"arena: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
