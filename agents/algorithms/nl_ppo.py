"""NL-PPO: the naive learner of the Reciprocator paper (Zhou, Hong & Kao 2024; algorithms.md §1.3, §4.5, §4.6).

The recurrent PPO agent of `agents.algorithms.ppo` with the options the Reciprocator reference
(`src/agents/ppo.py`) trains its naive learners with: no GAE — V regresses on the batch-z-scored
Monte-Carlo return z(G_t) and Â_t = z(G_t) − V(o_t) — K full-batch epochs (no minibatches, whole-episode
BPTT), clip 0.15 / 0.1, value coefficient 0.5, no gradient clipping, Adam lr 0.005, one update per
episode batch. IPD takes the reference's `configs/ipd.yaml` (γ 0.96, 10 epochs, entropy 0.02) with a
memoryless policy on the observation (the previous joint action), as the reference's feed-forward MLP;
every other game its `configs/coins.yaml` (γ 0.99, 40 epochs, entropy 0.01) with a GRU core of width 32.

Why memoryless in IPD: the IPD Reciprocator models each opponent by its action frequencies given the
previous joint action. Against a recurrent policy that model is wrong by construction, and two
Reciprocators with GRU cores drifted from mutual cooperation (0.97 at episode 30) into deterministic
cycles that farm the mis-modelled influence (P(cooperate) 0.72 / 0.41 in 4 of 5 seeds; memoryless:
mutual cooperation; bench/results/reciprocator.md).

Deviations: the reference's IPD MLP has width 2 (here 32, then a tanh layer of 32) and its Coins critic
has an encoder of its own; here the policy is the shared-trunk actor-critic of `ppo`.
Explicit options override these defaults.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from agents.algorithms.ppo import RecurrentPPO
from agents.learners.common import GameFamily

#: Shared by both games: the reference PPO without GAE, gradient or value clipping, full batches.
NL_COMMON: dict[str, Any] = {"advantage": "mc-zscore", "lr": 0.005, "minibatches": 1, "chunk": 1000,
                             "value_coeff": 0.5, "max_grad_norm": None, "value_clip": None, "kl_coeff": 0.0,
                             "core": "gru", "core_size": 32}
NL_DEFAULTS: Mapping[GameFamily, Mapping[str, Any]] = {
    "ipd": {**NL_COMMON, "gamma": 0.96, "epochs": 10, "clip": 0.1, "entropy_coeff": 0.02, "hidden": [32],
            "core": "none"},
    "other": {**NL_COMMON, "gamma": 0.99, "epochs": 40, "clip": 0.15, "entropy_coeff": 0.01, "hidden": [32],
              "conv_channels": 8, "conv_padding": "same"},
}


class NaiveLearnerPPO(RecurrentPPO):
    """Recurrent PPO on its own extrinsic reward with the Reciprocator reference's training settings."""

    defaults: ClassVar[Mapping[GameFamily, Mapping[str, Any]]] = NL_DEFAULTS
