"""A2C: the recurrent conv actor-critic of `ppo` with one plain policy-gradient epoch per batch (ρ ≡ 1).

The synchronous form of the social-influence paper's A3C baseline (algorithms.md §1.3): no ratio
clipping, no value clipping, one pass over each episode batch. `preset = "paper-a3c"` takes the
paper's Table 1 settings for Cleanup or Harvest.
"""

from __future__ import annotations

from typing import Any, ClassVar

from agents.algorithms.ppo import PRESETS, PPOOptions, RecurrentPPO


class A2COptions(PPOOptions):
    clip: float | None = None
    value_clip: float | None = None
    epochs: int = 1


class A2C(RecurrentPPO):
    """Recurrent actor-critic, one synchronous advantage actor-critic update per episode batch."""

    options_model: ClassVar[type[A2COptions]] = A2COptions
    presets: ClassVar[dict[str, dict[str, dict[str, Any]]]] = {"paper-a3c": PRESETS["paper-a3c"]}
