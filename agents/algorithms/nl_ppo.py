"""NL-PPO: the naive learner of the Reciprocator paper (Zhou, Hong & Kao 2024; algorithms.md §1.3, §4.5, §4.6).

The recurrent PPO agent of `agents.algorithms.ppo` with the options the Reciprocator reference
(`src/agents/ppo.py`) trains its naive learners with: no GAE — V regresses on the batch-z-scored
Monte-Carlo return z(G_t) and Â_t = z(G_t) − V(o_t) — K full-batch epochs (no minibatches, whole-episode
BPTT), clip 0.15 / 0.1, value coefficient 0.5, no gradient clipping, Adam lr 0.005, one update per
episode batch. IPD takes the reference's `configs/ipd.yaml` (γ 0.96, 10 epochs, entropy 0.02), every other
game its `configs/coins.yaml` (γ 0.99, 40 epochs, entropy 0.01), both with a GRU core of width 32.

Deviations: the reference's IPD policy is a feed-forward Bernoulli MLP of width 2 and its Coins critic
has an encoder of its own; here the policy is the shared-trunk recurrent actor-critic of `ppo`.
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
    "ipd": {**NL_COMMON, "gamma": 0.96, "epochs": 10, "clip": 0.1, "entropy_coeff": 0.02, "hidden": [32]},
    "other": {**NL_COMMON, "gamma": 0.99, "epochs": 40, "clip": 0.15, "entropy_coeff": 0.01, "hidden": [32],
              "conv_channels": 8, "conv_padding": "same"},
}


class NaiveLearnerPPO(RecurrentPPO):
    """Recurrent PPO on its own extrinsic reward with the Reciprocator reference's training settings."""

    defaults: ClassVar[Mapping[GameFamily, Mapping[str, Any]]] = NL_DEFAULTS
