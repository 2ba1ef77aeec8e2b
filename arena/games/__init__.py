"""Game registry: name -> "module:Class". Games are imported only when asked for."""

from __future__ import annotations

import importlib
from typing import Any

from arena.games.base import Game, GameParams, StepResult

GAMES: dict[str, str] = {
    "manitokan": "arena.games.manitokan:Manitokan",
    "ipd": "arena.games.ipd:IteratedPrisonersDilemma",
    "cleanup": "arena.games.cleanup:Cleanup",
    "harvest": "arena.games.harvest:Harvest",
    "escape_room": "arena.games.escape_room:EscapeRoom",
    "escape_room_asym": "arena.games.escape_room:EscapeRoomAsym",
    "coin_game": "arena.games.coin_game:CoinGame",
    "box_trapped": "arena.games.box_trapped:BoxTrapped",
}


def game_class(name: str) -> type[Game]:
    if name not in GAMES:
        raise KeyError(f"unknown game {name!r}; known games: {', '.join(sorted(GAMES))}")
    module, cls = GAMES[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_game(name: str, params: dict[str, Any] | GameParams | None, batch_size: int) -> Game:
    """Build B copies of game `name`; `params` are validated by the game's pydantic model."""
    cls = game_class(name)
    if not isinstance(params, GameParams):
        params = cls.Params.model_validate(params or {})
    return cls(params, batch_size)


__all__ = ["GAMES", "Game", "GameParams", "StepResult", "game_class", "make_game"]
