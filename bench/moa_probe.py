"""Probe of the MOA alone in Box trapped: can the model of the others learn what OPEN_BOX does, and how
fast? The opener plays a fixed policy (OPEN_BOX with probability q each step, else a uniform move),
the trapped seat is the box-escapee, and the MOA is trained on its loss alone, one batch per step.
Printed every 25 steps: how likely the MOA finds the escapee's true action right after an effective
OPEN_BOX, and the influence credited to OPEN_BOX steps and to the others (ideal for OPEN_BOX: −log q).

    python bench/moa_probe.py --q 0.023 --steps 200 --lr 0.00126
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agents.algorithm import SeatInfo, StepView, Trajectory
from agents.algorithms.moa import MOA, credit_shift
from agents.scripted import BoxEscapee
from arena.games.box_trapped import (
    ACTION_NAMES,
    BOX_CH,
    HEIGHT,
    N_CHANNELS,
    OPEN_BOX,
    STAY,
    WIDTH,
    BoxTrapped,
    BoxTrappedParams,
)

B, T = 32, 30


def seat(lr: float) -> SeatInfo:
    space = gym.spaces.Box(0.0, 1.0, (HEIGHT, WIDTH, N_CHANNELS), np.float32)
    return SeatInfo(seat=0, n_agents=2, names=["opener", "trapped"], batch_size=B, max_steps=T, game="box_trapped",
                    observation_space=space, observation_spaces=[space] * 2,
                    action_spaces=[gym.spaces.Discrete(len(ACTION_NAMES))] * 2, action_names=[ACTION_NAMES] * 2,
                    rmax=0.0, pays=False, disclosed=frozenset({"actions", "visibility"}),
                    options={"lr": lr, "clip": 0, "value_clip": 0, "epochs": 1}, observation_layout="HWC",
                    observation_layouts=["HWC"] * 2, noop_action=STAY)


def episode(game: BoxTrapped, escapee: BoxEscapee, policy: np.ndarray, rng: np.random.Generator,
            seed: int) -> Trajectory:
    obs = game.reset(np.arange(B) + seed * B)
    seen, joint = [obs[0]], []
    for t in range(T):
        trapped = escapee.act(StepView(t=t, obs=obs[1], reward=None, extrinsic=None, incentives=None, active=None))
        joint.append(np.stack([rng.choice(len(policy), size=B, p=policy), trapped], -1))
        obs = game.step(joint[-1]).obs
        seen.append(obs[0])
    actions, zeros = np.stack(joint), np.zeros((T, B), np.float32)
    return Trajectory(obs=np.stack(seen), actions=actions[..., 0], rewards=zeros, extrinsic=zeros, incentives=zeros,
                      valid=np.ones((T, B), bool), joint_actions=actions, visibility=np.ones((T + 1, B, 2), bool))


def measure(agent: MOA, traj: Trajectory, logits: torch.Tensor) -> dict[str, float]:
    joint, visible = agent.tensors(traj)
    obs = torch.as_tensor(traj.obs)
    credit = credit_shift(agent.influence(obs, joint, logits, visible))  # [T, B]: the credit of action t
    opening = (joint[..., 0] == OPEN_BOX) & (obs[:T, ..., BOX_CH].amax((-1, -2)) > 0)
    with torch.no_grad():
        out, _ = agent.moa["core"](agent.moa_inputs(obs[:T], joint))
        predicted = agent.moa_logits(out[: T - 1]).softmax(-1)[..., 0, :]  # the escapee's action at t + 1
    truth = predicted.gather(-1, joint[1:, :, 1, None])[..., 0]
    return {"p_true_after_open": float(truth[opening[:-1]].mean()), "influence_open": float(credit[opening].mean()),
            "influence_other": float(credit[~opening].mean())}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--q", type=float, default=0.023, help="P(OPEN_BOX) per step (0.023: half the copies open)")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--lr", type=float, default=0.00126)
    args = parser.parse_args(argv)
    agent, escapee, game = MOA(), BoxEscapee(), BoxTrapped(BoxTrappedParams(), B)
    agent.setup(seat(args.lr))
    escapee.setup(dataclasses.replace(seat(args.lr), seat=1, options={}))
    policy = np.full(len(ACTION_NAMES), (1 - args.q) / (len(ACTION_NAMES) - 1))
    policy[OPEN_BOX] = args.q
    logits = torch.log(torch.as_tensor(policy, dtype=torch.float32)).expand(T + 1, B, -1)
    rng = np.random.default_rng(0)
    print(f"q {args.q}, lr {args.lr}: ideal influence of OPEN_BOX −log q = {-np.log(args.q):.2f}")
    for step in range(args.steps + 1):
        traj = episode(game, escapee, policy, rng, step)
        if step % 25 == 0:
            print(step, ", ".join(f"{k} {v:.4f}" for k, v in measure(agent, traj, logits).items()), flush=True)
        agent.fit_moa(traj, 1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
