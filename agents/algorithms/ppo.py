"""PPO: recurrent conv actor-critic trained by clipped PPO with GAE (algorithms.md §1.3, §1.4).

The social-influence papers' baseline and the naive learner the other algorithms play against. The
network is the MOA reference's policy branch: conv 3×3 (6 channels, VALID) → FC 32 → FC 32 → LSTM 128 →
logits and value. One update per episode batch `[T, B]`, truncated BPTT in chunks of `chunk` steps.
Learning rate and entropy coefficient follow piecewise-linear schedules over the environment steps
this agent has trained on (`np.interp` of `*_knots`, constant outside them).

`preset = "ssd-ppo"` or `"paper-a3c"` (§3.8) fills in the Cleanup or Harvest settings of the MOA
reference's tuned PPO scripts or of the paper's A3C tables; explicit options override a preset.
`visible_actions = true` feeds the others' previous actions to the policy's LSTM (the paper's
"visible actions" baseline, §6.1), which needs the `actions` disclosure.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any, ClassVar, Literal

import numpy as np
import torch
from pydantic import field_validator, model_validator

from agents.algorithm import RunFacts, SeatInfo, StepView, Trajectory
from agents.learners.common import LearningAlgorithm, Options, TrajectoryTensors, onehot_others, options_for
from agents.learners.networks import RecurrentActorCritic, RecurrentKind, n_actions
from agents.learners.ppo import PPO, AdvantageKind

PresetName = Literal["ssd-ppo", "paper-a3c"]
#: `loss(mb)` over the copies `mb` of a minibatch → (loss, metrics); see `PPO.update`.
ExtraLoss = Callable[[torch.Tensor], tuple[torch.Tensor, dict[str, float]]]


class PPOOptions(Options):
    preset: PresetName | None = None
    lr: float = 0.00126
    lr_knots: list[tuple[float, float]] | None = None
    entropy_coeff: float = 0.00176
    entropy_knots: list[tuple[float, float]] | None = None
    gamma: float = 0.99
    lam: float = 1.0
    clip: float | None = 0.3
    value_clip: float | None = 10.0
    epochs: int = 4
    minibatches: int = 1
    chunk: int = 20
    value_coeff: float = 0.5
    max_grad_norm: float | None = 40.0
    kl_coeff: float = 0.0
    hidden: list[int] = [32, 32]
    #: "none": no memory, the policy sees the current observation only (the Reciprocator reference's IPD MLP).
    core: RecurrentKind = "lstm"
    core_size: int = 128
    conv_channels: int = 6
    #: "circular": wrap around the edges (a torus: the Coin Game, as its Reciprocator reference does)
    conv_padding: Literal["valid", "same", "circular"] = "valid"
    visible_actions: bool = False
    #: "mc-zscore": the Reciprocator reference's naive learner (z-scored MC returns, no GAE; `nl-ppo`).
    advantage: AdvantageKind = "gae"

    @field_validator("clip", "value_clip", "max_grad_norm")
    @classmethod
    def _zero_is_off(cls, value: float | None) -> float | None:
        """TOML has no null: 0 turns a clip off (`clip = 0` with `epochs = 1` is A2C)."""
        return None if value is not None and value <= 0 else value

    @model_validator(mode="after")
    def _check(self) -> PPOOptions:
        for name in ("lr_knots", "entropy_knots"):
            knots = getattr(self, name)
            if knots is not None and (not knots or any(b[0] <= a[0] for a, b in pairwise(knots))):
                raise ValueError(f"{name} must be [[env_step, value], ...] with increasing env steps")
        return self


def lr_anneal(start: float, end: float, steps: float) -> list[tuple[float, float]]:
    """Knots of a linear anneal from `start` to `end` over `steps` environment steps, then constant."""
    return [(0.0, start), (steps, end)]


#: §3.8, baselines. ssd-ppo: the reference's run_baseline_*.sh on RLlib 0.8.5 PPO (10 SGD iterations,
#: minibatch = batch/4, λ = 1, clip 0.3, value clip 10, vf coefficient 1e-4, grad clip 40, KL
#: coefficient 0.2 held fixed here, lr annealed over the first 20M steps). paper-a3c: the paper's A3C
#: Table 1 as A2C (one epoch, no clipping); the paper does not say over how long lr is annealed, so
#: over its training length, 3e8 steps.
SSD_PPO = {"clip": 0.3, "value_clip": 10.0, "epochs": 10, "minibatches": 4, "lam": 1.0, "value_coeff": 1e-4,
           "max_grad_norm": 40.0, "kl_coeff": 0.2, "chunk": 20}
PAPER_A3C = {"clip": None, "value_clip": None, "epochs": 1, "minibatches": 1, "lam": 1.0, "value_coeff": 0.5,
             "max_grad_norm": 40.0, "kl_coeff": 0.0}
PRESETS: dict[str, dict[str, dict[str, Any]]] = {
    "ssd-ppo": {
        "cleanup": {**SSD_PPO, "entropy_coeff": 0.00176, "lr": 0.00126, "lr_knots": lr_anneal(0.00126, 0.000012, 2e7)},
        "harvest": {**SSD_PPO, "entropy_coeff": 0.000687, "lr": 0.00136, "lr_knots": lr_anneal(0.00136, 0.000028, 2e7)},
    },
    "paper-a3c": {
        "cleanup": {**PAPER_A3C, "entropy_coeff": 0.00176, "lr": 0.00126,
                    "lr_knots": lr_anneal(0.00126, 0.000012, 3e8)},
        "harvest": {**PAPER_A3C, "entropy_coeff": 0.000687, "lr": 0.00136,
                    "lr_knots": lr_anneal(0.00136, 0.000028, 3e8)},
    },
}


def schedule(knots: list[tuple[float, float]] | None, constant: float, step: float) -> float:
    """Piecewise-linear value at `step` (constant outside the knots); `constant` without knots."""
    if not knots:
        return constant
    xs, ys = zip(*knots, strict=True)
    return float(np.interp(step, xs, ys))


class RecurrentPPO(LearningAlgorithm):
    """Recurrent conv policy and value, PPO (or A2C) on whole episode batches."""

    options_model: ClassVar[type[PPOOptions]] = PPOOptions
    #: preset name → game → option values; the MOA algorithm brings its own.
    presets: ClassVar[dict[str, dict[str, dict[str, Any]]]] = PRESETS

    @classmethod
    def resolve_options(cls, options: dict[str, Any], game: str | None) -> PPOOptions:
        """Options over the preset's values for this game (explicit options win). Without a game (an
        agent checking its options before it joins, `arena agent`) only the preset's name is checked: the
        runtime checks the preset's values again once `welcome` names the game."""
        name = options.get("preset")
        base: dict[str, Any] = {}
        if name is not None and name not in cls.presets:
            raise ValueError(f"preset {name!r} is not one of this kind's presets: {', '.join(cls.presets)}")
        if name is not None and game is not None:
            by_game = cls.presets[name]
            key = next((g for g in by_game if g in (game or "")), None)
            if key is None:
                raise ValueError(f"preset {name!r} has settings for {', '.join(by_game)} only, not {game!r}; "
                                 "drop `preset` and set the options directly")
            base = by_game[key]
        return options_for(cls.options_model, game, {**base, **options}, cls.defaults)

    @classmethod
    def validate_options(cls, options: dict[str, Any], game: str | None = None) -> None:
        cls.resolve_options(options, game)

    @classmethod
    def check_run(cls, options: dict[str, Any], run: RunFacts, seat: int) -> list[str]:
        opts = cls.resolve_options(options, run.game)
        if opts.visible_actions and "actions" not in run.disclose:
            return ["visible_actions = true feeds the others' previous actions to the policy: add \"actions\" "
                    "to [arena] disclose, or set visible_actions = false"]
        return []

    def setup(self, info: SeatInfo) -> None:
        self.setup_common(info)
        self.opts = o = self.resolve_options(info.options, info.game)
        self.sizes = [n_actions(space) for space in info.action_spaces]
        with self.seeded():
            self.net = self.build_net(info, o)
            self.build_extra_modules(info, o)
        self.learner = PPO(self.net, o.lr, o.gamma, o.lam, o.clip, o.epochs, o.minibatches, o.chunk,
                           o.value_coeff, o.entropy_coeff, o.max_grad_norm, o.kl_coeff, o.value_clip,
                           parameters=self.trained_parameters(), advantage=o.advantage)
        self.env_steps = 0.0
        self.state = self.net.initial_state(info.batch_size, self.device)

    def build_net(self, info: SeatInfo, o: PPOOptions) -> RecurrentActorCritic:
        return RecurrentActorCritic(info.observation_space, self.sizes[info.seat], o.hidden, o.core, o.core_size,
                                    o.conv_channels, layout=info.observation_layout,
                                    extra_dim=self.policy_extra_dim(info, o),
                                    conv_padding=o.conv_padding).to(self.device)

    def policy_extra_dim(self, info: SeatInfo, o: PPOOptions) -> int:
        """Width of the policy LSTM's extra inputs: the others' one-hot previous actions, or 0."""
        return sum(self.sizes) - self.sizes[info.seat] if o.visible_actions else 0

    def build_extra_modules(self, info: SeatInfo, o: PPOOptions) -> None:
        """Modules beyond the policy, built under the same seed (MOA's model of the others)."""

    def trained_parameters(self) -> list[torch.nn.Parameter]:
        return list(self.net.parameters())

    def policy_extra(self, previous_joint: torch.Tensor) -> torch.Tensor | None:
        """The others' previous actions, one-hot, for the policy LSTM (None unless `visible_actions`)."""
        if not self.opts.visible_actions:
            return None
        return onehot_others(previous_joint, self.info.seat, self.sizes)

    def view_extra(self, view: StepView) -> torch.Tensor | None:
        """The policy's extra inputs `[B, ...]` at this step (None without any)."""
        if not self.opts.visible_actions:
            return None
        return self.policy_extra(torch.as_tensor(view.others_actions, dtype=torch.int64, device=self.device))

    def trajectory_extra(self, traj: Trajectory) -> torch.Tensor | None:
        """The policy's extra inputs `[T+1, B, ...]` over an episode, as `view_extra` gave them (None without)."""
        return self.policy_extra(self.previous_joint(traj)) if self.opts.visible_actions else None

    def previous_joint(self, traj: Trajectory) -> torch.Tensor:
        """`[T+1, B, N]`: everyone's actions at t − 1 as seen at t (the game's no-op at t = 0)."""
        joint = torch.as_tensor(np.asarray(traj.joint_actions), dtype=torch.int64, device=self.device)
        first = torch.full_like(joint[:1], self.info.noop_action if self.info.noop_action is not None else 0)
        return torch.cat([first, joint])

    @torch.inference_mode()  # acting builds no graph; cheaper than no_grad
    def act(self, view: StepView) -> np.ndarray:
        if view.t == 0:
            self.state = self.net.initial_state(self.info.batch_size, self.device)
        actions, self.state = self.learner.act(self.obs_tensor(view.obs), self.state, self.gen, self.view_extra(view))
        return actions.cpu().numpy()

    def learning_reward(self, traj: Trajectory, tt: TrajectoryTensors, logits: torch.Tensor
                        ) -> tuple[torch.Tensor, dict[str, float]]:
        """The reward the policy learns from (extrinsic + incentives received) and metrics about it;
        `logits` `[T+1, B, A]` are the policy's on this batch, before the update."""
        return tt.rewards, {}

    def extra_loss(self, traj: Trajectory, tt: TrajectoryTensors) -> ExtraLoss | None:
        """A further loss over a minibatch of copies, trained with the policy (None: none)."""
        return None

    def end_episode(self, trajectory: Trajectory, summary: dict[str, Any]) -> dict[str, float]:
        o = self.opts
        tt = TrajectoryTensors(trajectory, self.device, self.info.max_steps)
        lr = schedule(o.lr_knots, o.lr, self.env_steps)
        self.learner.set_lr(lr)
        self.learner.entropy_coeff = schedule(o.entropy_knots, o.entropy_coeff, self.env_steps)
        extra = self.trajectory_extra(trajectory)
        rollout = self.learner.rollout_pass(tt.obs, extra)
        rewards, reward_metrics = self.learning_reward(trajectory, tt, rollout[0])
        metrics = self.learner.update(tt.obs, tt.actions, rewards, tt.valid, tt.terminal, self.gen, extra,
                                      self.extra_loss(trajectory, tt), rollout)
        self.env_steps += float(tt.valid.sum())
        return {**metrics, **reward_metrics, "lr": lr, "entropy_coeff": self.learner.entropy_coeff,
                "env_steps": self.env_steps}

    def state_objects(self) -> dict[str, Any]:
        return {"net": self.net, "opt": self.learner.opt}

    def extra_state(self) -> dict[str, Any]:
        return {"env_steps": self.env_steps}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.env_steps = float(state["env_steps"])
