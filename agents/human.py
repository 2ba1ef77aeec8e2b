"""A person in a seat: `arena agent human` (or `kind = "human"`, `external = true` in a config).

The person plays copy 0 of the B copies from a full-screen terminal (Textual); copies 1…B−1 take the
policy named by `other_copies` (the game's no-op or first action, or any agent kind), and the screen
says which. The runtime's loop runs in a worker thread; `act` and `pay` hand the step to the screen
and block until the person answers. Under a `default` or `abort` deadline the screen counts down and,
at the deadline, the seat's default action is played (`default`), or the run ends (`abort`); under
`wait` the person may think as long as they like. `q` leaves the run (bye).

The view is drawn from the seat's own observation, so it needs nothing but the protocol: an RGB image
(Cleanup, Harvest) as coloured cells, other image planes (Coin Game, Box trapped) as the indices of
the planes set in each cell, a flat vector as its numbers, alongside what the run discloses of the
others (their last actions and rewards). Every rendered view is also written to `screen.log` in the
seat's output directory when it has one.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from rich.text import Text

from agents.algorithm import Algorithm, SeatInfo, StepView, Trajectory
from agents.human_screen import HumanScreen
from agents.registry import load_algorithm

#: Keys for engine action names (besides the digits 1–9, which always pick action k − 1).
NAMED_KEYS: dict[str, tuple[str, ...]] = {
    "move_left": ("left", "a"), "move_right": ("right", "d"), "move_up": ("up", "w"), "move_down": ("down", "s"),
    "left": ("left", "a"), "right": ("right", "d"), "up": ("up", "w"), "down": ("down", "s"),
    "stay": ("space",), "noop": ("space",), "turn_clockwise": ("e",), "turn_counterclockwise": ("z",),
}
QUIT_KEY = "q"


class HumanOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pay: bool = Field(False, description="take part in the pay phase (the run needs rmax > 0)")
    other_copies: str = Field("default", description="policy of copies 1…B−1: 'default' (the game's no-op, "
                              "else action 0) or an agent kind such as 'random' or 'tit-for-tat'")


def action_keys(names: list[str]) -> dict[str, int]:
    """Key → action index: digits always; arrows/WASD for moves, space for stay, e/z for turns; any
    other action by its first free letter (never `q`)."""
    keys = {str(k + 1): k for k in range(min(len(names), 9))}
    for index, name in enumerate(names):
        for key in NAMED_KEYS.get(name, ()):
            keys.setdefault(key, index)
    named = {index for key, index in keys.items() if not key.isdigit()}
    for index, name in enumerate(names):
        if index in named:
            continue
        letter = next((ch for ch in name if ch.isalpha() and ch not in keys and ch != QUIT_KEY), None)
        if letter is not None:
            keys[letter] = index
    return keys


def draw_view(obs: np.ndarray, layout: str | None) -> Text:
    """One copy's observation as text: RGB images as coloured cells, other images as the indices of the
    planes set in each cell, flat vectors as numbers."""
    if obs.ndim == 3:
        hwc = np.moveaxis(obs, 0, -1) if layout == "CHW" else obs
        text = Text()
        if hwc.shape[-1] == 3:
            rgb = hwc.astype(np.float64)
            rgb = np.clip(rgb * 256.0 if obs.dtype.kind == "f" and rgb.max() <= 1.0 else rgb, 0, 255).astype(int)
            for row in rgb:
                for r, g, b in row:
                    text.append("  ", style=f"on rgb({r},{g},{b})")
                text.append("\n")
            return text
        for row in hwc:
            cells = ["".join(str(c % 10) for c in np.flatnonzero(cell > 0)) or "·" for cell in row]
            text.append(" ".join(f"{c:>2}" for c in cells) + "\n")
        return text
    return Text(np.array2string(np.asarray(obs, dtype=np.float64).reshape(-1), precision=2, suppress_small=True))


class Human(Algorithm):
    """A person at a terminal plays copy 0; see the module docstring."""

    options_model = HumanOptions

    @classmethod
    def pays_with(cls, options: dict[str, Any]) -> bool:
        return bool(options.get("pay", False))

    def setup(self, info: SeatInfo) -> None:
        super().setup(info)
        self.opts = HumanOptions.model_validate(info.options)
        self.names = info.action_names[info.seat]
        self.keys = action_keys(self.names)
        self.default = info.noop_action if info.noop_action is not None else 0
        self.helper: Algorithm | None = None
        if self.opts.other_copies != "default" and info.batch_size > 1:
            self.helper = load_algorithm(self.opts.other_copies)()
            self.helper.setup(SeatInfo(**{**info.__dict__, "options": {}}))
        self.answers: queue.Queue[Any] = queue.Queue()
        self.episode_return = 0.0
        self.episode = 0
        self.screen_log = Path(info.run_dir) / "screen.log" if info.run_dir else None
        self.ui.call_from_thread(self.ui.seated, self)

    # ----- the runtime's thread ------------------------------------------------------------------
    def host(self, play: Callable[[], int], stop: Callable[[str], None]) -> int:
        """The screen in this (main) thread, the runtime's loop in a worker; q stops the loop."""
        for handler in logging.getLogger().handlers:  # the screen owns the terminal
            if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
                handler.setLevel(logging.CRITICAL + 1)
        outcome: dict[str, Any] = {}

        def loop() -> None:
            try:
                outcome["code"] = play()
            except BaseException as exc:  # shown on the screen and returned as the exit code
                outcome["error"] = exc
            finally:
                self.ui.call_from_thread(self.ui.finished, outcome)

        self.ui = HumanScreen(stop=lambda reason: (stop(reason), self.answers.put(None)))
        worker = threading.Thread(target=loop, name="runtime", daemon=True)
        self.ui.on_ready = worker.start
        self.ui.run()
        worker.join(timeout=5)
        if "error" in outcome:
            print(f"arena agent human: {outcome['error']}")
            return 1
        return int(outcome.get("code", 1))

    def _wait(self, view: StepView) -> Any:
        """The person's answer, or None at the deadline (`default`/`abort` policies)."""
        limit = view.deadline_s if self.info.deadline_policy != "wait" else None
        until = None if limit is None else time.monotonic() + max(0.0, limit - 0.25)
        while True:
            left = None if until is None else until - time.monotonic()
            if left is not None and left <= 0:
                return None
            try:
                answer = self.answers.get(timeout=0.2 if left is None else min(0.2, left))
            except queue.Empty:
                continue
            if answer is None:  # q
                raise KeyboardInterrupt("the person at the human seat quit")
            return answer

    def others_line(self, view: StepView) -> str:
        names, seat = self.info.names, self.info.seat
        parts = []
        for j in self.info.others:
            bits = []
            if view.others_actions is not None and view.others_actions[0, j] >= 0:
                bits.append(f"last action {self.info.action_names[j][int(view.others_actions[0, j])]}")
            if view.others_rewards is not None:
                bits.append(f"last reward {float(view.others_rewards[0, j]):+.2f}")
            if view.payments is not None:
                bits.append(f"paid you {float(view.payments[0, j, seat]):.2f}")
            parts.append(f"{names[j]}: {', '.join(bits) or 'nothing disclosed'}")
        return "; ".join(parts)

    def act(self, view: StepView) -> np.ndarray:
        if view.t == 0:
            self.episode_return = 0.0
        else:
            self.episode_return += float(view.reward[0])
        actions = (np.asarray(self.helper.act(view), dtype=np.int64) if self.helper is not None
                   else np.full(len(view.obs), self.default, dtype=np.int64))
        frame = draw_view(np.asarray(view.obs[0]), self.info.observation_layout)
        if self.screen_log is not None:
            with open(self.screen_log, "a", encoding="utf-8") as log_file:
                log_file.write(f"episode {self.episode} t={view.t}\n{frame.plain}\n")
        self.ui.call_from_thread(self.ui.ask_action, self, view, frame)
        chosen = self._wait(view)
        actions[0] = self.default if chosen is None else int(chosen)
        self.ui.call_from_thread(self.ui.played, self.names[int(actions[0])], chosen is None)
        return actions

    def pay(self, view: StepView, joint_action: np.ndarray) -> np.ndarray:
        amounts = np.zeros(joint_action.shape, dtype=np.float32)
        if self.helper is not None and self.helper.pays_with({}):
            amounts[1:] = np.asarray(self.helper.pay(view, joint_action), dtype=np.float32)[1:]
        self.ui.call_from_thread(self.ui.ask_payment, self, joint_action[0])
        chosen = self._wait(view)
        if chosen is not None:
            for j, amount in chosen.items():
                amounts[0, j] = amount
        return amounts

    def end_episode(self, trajectory: Trajectory, summary: dict[str, Any]) -> dict[str, float]:
        self.episode += 1
        self.ui.call_from_thread(self.ui.episode_over, summary, self.info.names[self.info.seat])
        return {}

    def warmup_episode(self, trajectory: Trajectory, summary: dict[str, Any]) -> dict[str, float]:
        return {**self.end_episode(trajectory, summary), "warmup": 1.0}
