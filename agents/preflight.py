"""Preflight: what can be known wrong about one seat before any process starts.

`arena launch`, `arena serve` and `arena check` run it for every seat of a run config (with the run's
game, disclosure and rmax), and `arena agent` for itself before it connects (without them: those come
in `welcome`). Each problem names the seat's key at fault and says what to do; nothing raises.
"""

from __future__ import annotations

import difflib
import importlib.util
import json
import os
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from agents.algorithm import Algorithm, RunFacts
from agents.registry import available_kinds, load_algorithm
from protocols.messages import DISCLOSURES


@dataclass(frozen=True)
class Problem:
    """`key` is the seat's setting at fault (kind, options.NAME, device, resume), or an [arena] one
    (`arena.disclose`, `arena.rmax`) when that is where the fix goes."""

    key: str
    message: str


def check_seat(kind: str, options: dict[str, Any], device: str = "cpu", resume: str | None = None,
               run: RunFacts | None = None, seat: int = 0) -> list[Problem]:
    """Every problem of one seat: kind, options, device, resume file, and (with `run`) game, needs, rmax."""
    try:
        cls = load_algorithm(kind)
    except Exception as exc:  # a user's module:Class may fail to import in any way
        return [Problem("kind", f"kind '{kind}' cannot be loaded: {exc}. Installed kinds: "
                                f"{', '.join(available_kinds())}; or give an importable module:Class")]
    problems = option_problems(cls, kind, options, run.game if run else None)
    problems += device_problems(cls, kind, device)
    if resume is not None:
        problems += resume_problems(cls, kind, resume)
    if run is not None:
        valid = not any(p.key.startswith("options") for p in problems)
        problems += run_problems(cls, kind, run, options if valid else None, seat)
    return problems


def option_problems(cls: type[Algorithm], kind: str, options: dict[str, Any], game: str | None) -> list[Problem]:
    """The options against the algorithm's own option model (with the game's defaults under them)."""
    try:
        cls.validate_options(options, game)
    except ValidationError as exc:
        return [Problem(".".join(["options", *(str(part) for part in error["loc"][:1])]),
                        describe_option_error(kind, cls, error)) for error in exc.errors()]
    except (TypeError, ValueError) as exc:
        return [Problem("options", f"options of kind '{kind}' are invalid: {exc}")]
    return []


def describe_option_error(kind: str, cls: type[Algorithm], error: Any) -> str:
    """One pydantic error as a sentence: the option, what is wrong, the allowed keys or a close match."""
    name = ".".join(str(part) for part in error["loc"]) or "options"
    if error["type"] == "extra_forbidden":
        allowed = sorted(cls.options_model.model_fields) if cls.options_model else []
        if not allowed:
            return f"unknown option '{name}': kind '{kind}' takes no options; remove `options`"
        close = difflib.get_close_matches(str(error["loc"][-1]), allowed, n=1)
        guess = f" — did you mean '{close[0]}'?" if close else ""
        return f"unknown option '{name}' for kind '{kind}'{guess} Allowed options: {', '.join(allowed)}"
    return f"option '{name}' of kind '{kind}': {error['msg']} (got {error.get('input')!r})"


def device_problems(cls: type[Algorithm], kind: str, device: str) -> list[Problem]:
    """The device parses, exists on this machine, and means something to this kind."""
    if device == "cpu":
        return []
    if not cls.uses_device:
        return [Problem("device", f"kind '{kind}' runs no torch model, so device = '{device}' would silently "
                                  "run on the CPU; remove the `device` line")]
    if importlib.util.find_spec("torch") is None:
        return [Problem("device", f"device = '{device}' needs torch, which is not installed; install torch "
                                  "or use device = \"cpu\"")]
    import torch

    try:
        parsed = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        return [Problem("device", f"device = '{device}' is not a torch device; use \"cpu\", \"cuda\" or "
                                  "\"cuda:K\" (K = GPU index)")]
    if parsed.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            return [Problem("device", f"device = '{device}' but this machine has no usable CUDA GPU (torch "
                                      f"{torch.__version__}, {build}); use device = \"cpu\", or run on a "
                                      "machine with an NVIDIA GPU and a CUDA build of torch")]
        count = torch.cuda.device_count()
        if parsed.index is not None and parsed.index >= count:
            return [Problem("device", f"device = '{device}' but this machine has {count} GPU(s): use cuda:0"
                                      f"..cuda:{count - 1}")]
        return []
    return [Problem("device", f"device = '{device}': agents run on \"cpu\" or \"cuda[:K]\"")]


def resume_problems(cls: type[Algorithm], kind: str, resume: str) -> list[Problem]:
    """The resume file exists and is a checkpoint written by this kind."""
    if not os.path.isfile(resume):
        what = "is a directory" if os.path.isdir(resume) else "does not exist"
        return [Problem("resume", f"resume = '{resume}' {what}; point it at a checkpoints/*.pt file of a "
                                  f"finished run of kind '{kind}'")]
    from agents.learners.common import CheckpointError, LearningAlgorithm, read_checkpoint

    if not issubclass(cls, LearningAlgorithm):
        return [Problem("resume", f"kind '{kind}' keeps no learned state, so it cannot resume; remove `resume`")]
    try:
        read_checkpoint(resume, cls.__name__)
    except CheckpointError as exc:
        return [Problem("resume", str(exc))]
    return []


def run_problems(cls: type[Algorithm], kind: str, run: RunFacts, options: dict[str, Any] | None,
                 seat: int) -> list[Problem]:
    """What the run must offer this kind: its game, the disclosures it needs, a pay phase if it pays, a talk
    channel if it talks, and (given valid `options`) whatever else the algorithm checks itself
    (`Algorithm.check_run`)."""
    problems = [Problem("kind", f"kind '{kind}' cannot play this run: {why}")
                for why in (cls.check_run(options, run, seat) if options is not None else [])]
    if cls.games is not None and run.game not in cls.games:
        problems.append(Problem("kind", f"kind '{kind}' plays only {', '.join(sorted(cls.games))}, not "
                                        f"'{run.game}'; choose a kind that plays it (e.g. random, pg, ac)"))
    missing = [c for c in DISCLOSURES if c in cls.needs_for(run.n_agents) - run.disclose]
    if missing:
        wanted = [c for c in DISCLOSURES if c in run.disclose or c in missing]
        shown = ", ".join(c for c in DISCLOSURES if c in run.disclose) or "nothing"
        problems.append(Problem("arena.disclose", f"kind '{kind}' needs others' {', '.join(missing)} with "
                                                  f"{run.n_agents} agents; this run discloses {shown}: set "
                                                  f"disclose = {json.dumps(wanted)} in [arena]"))
    if cls.pays_with(options or {}) and run.rmax <= 0:
        problems.append(Problem("arena.rmax", f"kind '{kind}' pays incentives but the run has rmax = "
                                              f"{run.rmax:g}: set rmax = 2.0 (or another positive cap) in [arena]"))
    if cls.talks_with(options or {}) and run.message_vocab <= 0:
        problems.append(Problem("arena.message_vocab", f"kind '{kind}' sends cheap-talk symbols but the run has "
                                                       "no talk channel: set message_vocab = 8 (or another size) "
                                                       "in [arena]"))
    return problems
