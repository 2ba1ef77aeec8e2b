"""Agents that misbehave or report on purpose, loaded by tests as `tests.faulty_agents:Class`."""

from __future__ import annotations

import os
import signal
import time

import numpy as np

from agents.algorithm import Algorithm, StepView

#: step t → a function spoiling the valid [B, N] payment (self entry stays 0 except for 'to self')
BAD_PAYMENTS = {
    0: lambda amounts, seat, rmax: amounts * (rmax + 2.0),  # above rmax
    1: lambda amounts, seat, rmax: -amounts,  # negative
    2: lambda amounts, seat, rmax: np.full_like(amounts, np.nan),  # not finite
    3: lambda amounts, seat, rmax: _pay_self(amounts, seat),  # to self
}


def _pay_self(amounts: np.ndarray, seat: int) -> np.ndarray:
    amounts = amounts.copy()
    amounts[:, seat] = 0.5
    return amounts


class BadPayer(Algorithm):
    """Cooperates and pays 1.0 to each other agent, except steps 0-3 where the payment is invalid."""

    pays = True

    def act(self, view: StepView) -> np.ndarray:
        return np.zeros(len(view.obs), dtype=np.int64)

    def pay(self, view: StepView, joint_action: np.ndarray) -> np.ndarray:
        amounts = np.ones(joint_action.shape, dtype=np.float32)
        amounts[:, self.info.seat] = 0.0
        spoil = BAD_PAYMENTS.get(view.t)
        return amounts if spoil is None else spoil(amounts, self.info.seat, self.info.rmax)


class SlowDefector(Algorithm):
    """Always defects, slowly (so that a test can act on a run in progress)."""

    def act(self, view: StepView) -> np.ndarray:
        time.sleep(0.01)
        return np.ones(len(view.obs), dtype=np.int64)


class TrajectoryRecorder(Algorithm):
    """Always plays action 2 and reports the shape of what the runtime hands it at episode end."""

    def act(self, view: StepView) -> np.ndarray:
        return np.full(len(view.obs), 2, dtype=np.int64)

    def end_episode(self, trajectory, summary) -> dict:
        return {"length": trajectory.length, "terminated": trajectory.terminated.tolist(),
                "valid": trajectory.valid.astype(int).tolist()}


class Dawdler(Algorithm):
    """Always defects, but takes 0.6 s to answer step 1 of every episode (to trip step deadlines)."""

    def act(self, view: StepView) -> np.ndarray:
        if view.t == 1:
            time.sleep(0.6)
        return np.ones(len(view.obs), dtype=np.int64)


class SlowCloser(Algorithm):
    """Always defects and takes 5 s to close, as a teardown on a loaded machine can."""

    def act(self, view: StepView) -> np.ndarray:
        return np.ones(len(view.obs), dtype=np.int64)

    def close(self) -> None:
        time.sleep(5.0)


class SlowLearner(Algorithm):
    """Always defects and takes 30 s to learn after each episode, so the other seats wait at the barrier."""

    def act(self, view: StepView) -> np.ndarray:
        return np.ones(len(view.obs), dtype=np.int64)

    def end_episode(self, trajectory, summary) -> dict:
        time.sleep(30.0)
        return {}


class DawdlingRecorder(Dawdler):
    """A Dawdler that reports the actions its trajectory holds (what the arena played for it)."""

    def end_episode(self, trajectory, summary) -> dict:
        return {"actions": trajectory.actions.tolist()}


class FirstViewRecorder(Algorithm):
    """Plays the no-op (or 0) and reports what it saw of the previous actions at t = 0."""

    def act(self, view: StepView) -> np.ndarray:
        if view.t == 0:
            self.first = {"others_actions": view.others_actions.tolist(), "played": view.played.tolist()}
        return np.full(len(view.obs), self.info.noop_action or 0, dtype=np.int64)

    def end_episode(self, trajectory, summary) -> dict:
        return {**self.first, "noop_action": self.info.noop_action}


class Crasher(Algorithm):
    """Cooperates, then fails with an exception at step 1 of the first episode (a bug in an agent)."""

    def act(self, view: StepView) -> np.ndarray:
        if view.t == 1:
            raise RuntimeError("simulated bug in act()")
        return np.zeros(len(view.obs), dtype=np.int64)


class DiesInTheBarrier(Algorithm):
    """Plays, then its process dies (SIGKILL, no bye) while learning from the second episode: the
    arena is waiting for its `ready`."""

    def act(self, view: StepView) -> np.ndarray:
        return np.zeros(len(view.obs), dtype=np.int64)

    def end_episode(self, trajectory, summary) -> dict:
        if summary["episode"] == 1:
            os.kill(os.getpid(), signal.SIGKILL)
        return {}


class FailsBeforeHello(Algorithm):
    """Fails as it is made, before it connects (an agent that cannot start at all)."""

    def __init__(self) -> None:
        raise RuntimeError("simulated failure before hello")

    def act(self, view: StepView) -> np.ndarray:
        raise AssertionError("unreachable: the agent fails in __init__")
