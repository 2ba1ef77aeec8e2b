"""The human seat's full-screen terminal (Textual): the view, the step's numbers, the keys, the pay form.

Everything here runs in the screen's thread; `agents.human.Human` calls in with `call_from_thread` and
takes the person's answers from its queue.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np
from rich.text import Text
from textual import events
from textual.app import App, ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Input, Static

if TYPE_CHECKING:
    from agents.algorithm import StepView
    from agents.human import Human

KEY_LABELS = {"left": "←", "right": "→", "up": "↑", "down": "↓", "space": "space"}


class HumanScreen(App):
    """One screen per human seat; see agents.human."""

    CSS = """
    #header { background: $primary; color: $text; padding: 0 1; }
    #view { padding: 1 1 0 1; }
    #status, #others, #legend, #events { padding: 0 1; }
    #legend { color: $warning; }
    #pay { height: auto; padding: 0 1; }
    """

    def __init__(self, stop: Callable[[str], None]) -> None:
        super().__init__()
        self.stop_run = stop
        self.on_ready: Callable[[], None] | None = None
        self.human: Human | None = None
        self.mode = "joining"  # joining → act / pay / waiting → over
        self.deadline_at: float | None = None
        self.step_line = ""
        self.step = 0
        self.history: list[str] = []
        self.payees: list[int] = []

    def compose(self) -> ComposeResult:
        # markup off: names, keys ("[q]") and amounts are shown as they are
        yield Static("social-arena · human seat · joining the arena…", id="header", markup=False)
        with VerticalScroll():
            yield Static(id="view", markup=False)
            yield Static(id="status", markup=False)
            yield Static(id="others", markup=False)
            yield Vertical(id="pay")
            yield Static(id="legend", markup=False)
            yield Static(id="events", markup=False)

    def on_mount(self) -> None:
        self.set_interval(0.25, self.tick)
        if self.on_ready is not None:
            self.on_ready()

    # ----- calls from the runtime's thread -------------------------------------------------------
    def seated(self, human: Human) -> None:
        self.human = human
        info = human.info
        copies = ""
        if info.batch_size > 1:
            policy = (f"the agent kind '{human.opts.other_copies}'" if human.helper is not None
                      else f"the default action '{human.names[human.default]}'")
            copies = f" · you play copy 0 of {info.batch_size}; copies 1–{info.batch_size - 1} play {policy}"
        self.query_one("#header", Static).update(
            f"social-arena · {info.names[info.seat]} (seat {info.seat} of {info.n_agents}) · {info.game}{copies}")
        by_action: dict[int, list[str]] = {}
        for key, action in human.keys.items():
            by_action.setdefault(action, []).append(KEY_LABELS.get(key, key))
        legend = "  ".join(f"[{'/'.join(keys)}] {human.names[a]}" for a, keys in sorted(by_action.items()))
        pay = " · pay phase: type an amount per agent, Enter" if info.pays else ""
        deadline = {"wait": "no time limit", "default": "time limit per step, then your default action",
                    "abort": "time limit per step, then the run ends"}.get(info.deadline_policy, "")
        self.query_one("#legend", Static).update(f"Keys: {legend}  [q] quit{pay} · {deadline}")

    def ask_action(self, human: Human, view: StepView, frame: Text) -> None:
        self.mode = "act"
        info = human.info
        self.deadline_at = (time.monotonic() + view.deadline_s
                            if view.deadline_s is not None and info.deadline_policy != "wait" else None)
        self.query_one("#view", Static).update(frame)
        last = ""
        if view.t > 0:
            last = (f"last step: reward {float(view.reward[0]):+.2f} (extrinsic {float(view.extrinsic[0]):+.2f}, "
                    f"incentives received {float(view.incentives[0]):+.2f}) · ")
        evaluation = " · evaluation episode" if view.evaluate else ""
        self.step = view.t + 1
        self.step_line = (f"episode {human.episode + 1} · step {self.step}/{info.max_steps}{evaluation} · {last}"
                          f"episode return so far {human.episode_return:+.2f}")
        self.query_one("#others", Static).update(f"Others: {human.others_line(view)}")
        self.tick()

    def played(self, action: str, timed_out: bool) -> None:
        self.mode = "waiting"
        self.deadline_at = None
        note = "time ran out: played your default action" if timed_out else "you played"
        self.query_one("#status", Static).update(f"{self.step_line}\n{note} {action} · waiting for the others…")
        if timed_out:
            self.history.append(f"step {self.step}: time ran out, your default action {action} was played")
            self.query_one("#events", Static).update("\n".join(self.history[-5:]))

    def ask_payment(self, human: Human, joint_action: np.ndarray) -> None:
        self.mode = "pay"
        info = human.info
        played = ", ".join(f"{info.names[j]} {info.action_names[j][int(a)]}" for j, a in enumerate(joint_action))
        form = self.query_one("#pay", Vertical)
        form.remove_children()
        self.payees = info.others
        form.mount(Static(f"Pay phase · this step: {played} · pay each agent 0–{info.rmax:g}, Enter for the next",
                          markup=False))
        for j in self.payees:
            form.mount(Static(f"amount for {info.names[j]}:", markup=False))
            form.mount(Input(placeholder="0", id=f"pay-{j}"))
        self.call_after_refresh(lambda: self.query_one(f"#pay-{self.payees[0]}", Input).focus())

    def episode_over(self, summary: dict[str, Any], me: str) -> None:
        returns = ", ".join(f"{name} {value:+.2f}" for name, value in summary.get("returns", {}).items())
        received = summary.get("incentives_received", {}).get(me, 0.0)
        self.history.append(f"episode {summary['episode'] + 1} over: returns {returns}; you received {received:.2f}")
        self.query_one("#events", Static).update("\n".join(self.history[-5:]))

    def finished(self, outcome: dict[str, Any]) -> None:
        self.mode = "over"
        self.deadline_at = None
        if "error" in outcome:
            self.exit()
            return
        ended = "the run is complete" if outcome.get("code") == 0 else f"the run ended (exit {outcome.get('code')})"
        self.query_one("#status", Static).update(f"{ended} · press q to leave")

    # ----- the person ----------------------------------------------------------------------------
    def tick(self) -> None:
        if self.mode != "act":
            return
        line = f"{self.step_line}\nyour move"
        if self.deadline_at is not None:
            line += f" · {max(0, math.ceil(self.deadline_at - time.monotonic()))} s left"
        self.query_one("#status", Static).update(line)

    def on_key(self, event: events.Key) -> None:
        if self.mode == "pay":
            return  # the form's inputs take the keys
        if event.key == "q":
            if self.mode == "over":
                self.exit()
            else:
                self.stop_run("the person at the human seat quit (q)")
            return
        if self.mode == "act" and self.human is not None and event.key in self.human.keys:
            self.mode = "waiting"
            self.human.answers.put(self.human.keys[event.key])

    def on_input_submitted(self, event: Input.Submitted) -> None:
        if self.human is None or self.mode != "pay":
            return
        rmax = self.human.info.rmax
        try:
            amount = float(event.value or 0)
        except ValueError:
            amount = math.nan
        if not 0.0 <= amount <= rmax:
            event.input.value = ""
            self.query_one("#status", Static).update(f"{self.step_line}\n'{event.value}' is not an amount "
                                                     f"between 0 and {rmax:g}: type it again")
            return
        later = [j for j in self.payees if int(event.input.id.removeprefix("pay-")) < j]
        if later:
            self.query_one(f"#pay-{later[0]}", Input).focus()
            return
        amounts = {j: float(self.query_one(f"#pay-{j}", Input).value or 0) for j in self.payees}
        self.query_one("#pay", Vertical).remove_children()
        self.mode = "waiting"
        self.human.answers.put(amounts)
        paid = ", ".join(f"{self.human.info.names[j]} {a:g}" for j, a in amounts.items())
        self.query_one("#status", Static).update(f"{self.step_line}\nyou paid {paid} · waiting for the others…")
