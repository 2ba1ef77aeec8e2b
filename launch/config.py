"""Run configs: TOML validated by pydantic, with errors that point at the line to fix."""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Any, TypeVar

import tomllib
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from arena.games import GAMES, game_class
from arena.settings import ArenaSettings, SeatSpec
from protocols.telemetry import MqttTarget

Model = TypeVar("Model", bound=BaseModel)


class RunSection(BaseModel):
    """The `[run]` table: how the run is named and where it writes."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field("run", pattern=r"^[A-Za-z0-9_.-]+$")
    out: str = Field("runs", description="parent directory of run directories")
    checkpoint_every: int = Field(0, ge=0, description="episodes between agent checkpoints; 0 = only at the end")
    mqtt: str | None = Field(None, description="publish live telemetry to mqtt://HOST[:PORT][/PREFIX] (SPEC §19)")

    @field_validator("mqtt")
    @classmethod
    def _mqtt_address(cls, url: str | None) -> str | None:
        if url is not None:
            MqttTarget.parse(url)
        return url


class RunConfig(BaseModel):
    """A whole run: `[run]`, `[arena]`, and one `[[agents]]` table per seat."""

    model_config = ConfigDict(extra="forbid")
    run: RunSection = Field(default_factory=RunSection)
    arena: ArenaSettings = Field(default_factory=ArenaSettings)
    agents: list[SeatSpec] = Field(min_length=1)


class ConfigError(ValueError):
    """A run config that cannot be used; the message names the file, line and fix."""


def _model_at(loc: tuple, root: type[BaseModel]) -> type[BaseModel] | None:
    """The pydantic model that owns the last key of `loc` (for listing allowed keys)."""
    model: type[BaseModel] | None = root
    for part in loc[:-1]:
        if isinstance(part, int) or model is None:
            continue
        annotation = model.model_fields.get(part)
        inner = getattr(annotation, "annotation", None) if annotation else None
        args = getattr(inner, "__args__", ())
        candidates = [inner, *args]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
    return model


def line_of(text: str, loc: tuple) -> int | None:
    """1-based line of the key at `loc` (table path, array index, key) in the TOML text, if found."""
    keys = [p for p in loc if isinstance(p, str)]
    if not keys:
        return None
    table: list[str] = []
    index_seen: dict[str, int] = {}
    wanted_index = next((p for p in loc if isinstance(p, int)), None)
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        header = re.match(r"^\[\[?\s*([^\]]+?)\s*\]\]?", stripped)
        if header:
            table = header.group(1).split(".")
            if stripped.startswith("[["):
                index_seen[header.group(1)] = index_seen.get(header.group(1), -1) + 1
            continue
        key = re.match(r"^([A-Za-z0-9_-]+)\s*=", stripped)
        if not key:
            continue
        path = [*table, key.group(1)]
        if path == keys[: len(path)] and len(path) >= min(len(keys), 2):
            array = table[0] if table else ""
            if wanted_index is None or index_seen.get(array) == wanted_index:
                return number
    if len(keys) >= 1:
        for number, line in enumerate(text.splitlines(), start=1):
            if re.match(rf"^\[\[?\s*{re.escape(keys[0])}\s*\]\]?", line.strip()):
                return number
    return None


def _describe(error: dict[str, Any], text: str, path: Path, root: type[BaseModel]) -> str:
    loc = tuple(error["loc"])
    dotted = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in loc).replace(".[", "[")
    line = line_of(text, loc)
    where = f"{path}:{line}" if line else str(path)
    if error["type"] == "extra_forbidden":
        model = _model_at(loc, root)
        allowed = sorted(model.model_fields) if model else []
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        guess = f" — did you mean '{close[0]}'?" if close else ""
        return f"{where}: unknown key '{dotted}'{guess} Allowed keys here: {', '.join(allowed)}"
    return f"{where}: {dotted}: {error['msg']} (got {error.get('input')!r})"


def load_toml(path: str | Path, model: type[Model], what: str = "run config") -> tuple[Model, str]:
    """Read a TOML file and validate it as `model`; returns it with the file's text. Raises ConfigError
    naming every problem with its file and line (`what` names the kind of file in the message)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    try:
        return model.model_validate(data), text
    except ValidationError as exc:
        problems = "\n  ".join(_describe(e, text, path, model) for e in exc.errors())
        raise ConfigError(f"{what} {path} has {exc.error_count()} problem(s):\n  {problems}") from exc


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a run config; raises ConfigError naming every problem and its line."""
    config, text = load_toml(path, RunConfig)
    check_game(config, text, Path(path))
    check_client_keys(config, text, Path(path))
    return config


def check_client_keys(config: RunConfig, text: str, path: Path) -> None:
    """A seat's own CURVE key needs a CURVE run, and a seat joined from its owner's host (who holds the secret)."""
    for index, seat in enumerate(config.agents):
        if seat.client_key is None:
            continue
        where = f"{path}:{line_of(text, ('agents', index, 'client_key'))}: seat {index} '{seat.name}' has a client_key"
        if not config.arena.curve:
            raise ConfigError(f"{where} but the run does not use CURVE: set [arena] curve = true, or remove client_key")
        if not seat.external:
            raise ConfigError(f"{where}, so its secret key is on its owner's host: set external = true and join it "
                              "from there with `arena agent ... --client-key NAME.key_secret`, or remove client_key "
                              "to have the arena issue a key pair")


def check_game(config: RunConfig, text: str, path: Path) -> None:
    """The game exists, its params are valid, and there is one [[agents]] table per player."""
    arena = config.arena
    if arena.game not in GAMES:
        line = line_of(text, ("arena", "game"))
        raise ConfigError(f"{path}:{line}: unknown game '{arena.game}'; known games: {', '.join(sorted(GAMES))}")
    cls = game_class(arena.game)
    try:
        params = cls.Params.model_validate(arena.params)
    except ValidationError as exc:
        problems = "\n  ".join(
            f"{path}:{line_of(text, ('arena', 'params', *e['loc']))}: [arena.params] "
            + (f"unknown parameter '{e['loc'][-1]}' of game '{arena.game}'; allowed: "
               f"{', '.join(sorted(cls.Params.model_fields))}" if e["type"] == "extra_forbidden"
               else f"{'.'.join(map(str, e['loc']))}: {e['msg']}")
            for e in exc.errors())
        raise ConfigError(f"run config {path}: invalid parameters for game '{arena.game}':\n  {problems}") from exc
    players = cls(params, 1).n_agents
    if players != len(config.agents):
        raise ConfigError(f"{path}: game '{arena.game}' with these params has {players} players but the config "
                          f"has {len(config.agents)} [[agents]] tables; add or remove [[agents]] tables")
    names = [a.name for a in config.agents]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{path}: agent names must be unique; repeated: {', '.join(duplicates)}")
