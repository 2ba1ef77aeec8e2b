"""Networks chosen from the observation space: flat Box → MLP, image Box → conv, optional RNN core.

Image (rank-3 Box) observations come in the axis order the arena declares for the game, "HWC"
(channels last) or "CHW" (channels first), passed to every net as `layout`; it is never guessed.

Every net takes observations with any number of leading dims (`[B, ...]` when acting, `[T, B, ...]`
when learning), so the same module serves the hot path and the batched update (algorithms.md §1.4).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import gymnasium as gym
import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from protocols.spaces import LAYOUTS

#: "none": a core without memory (`MemorylessCore`), so the policy sees the current observation only.
RecurrentKind = Literal["lstm", "gru", "none"]
RecurrentState = torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def is_image(space: gym.Space) -> bool:
    """Image observations are Box spaces of rank 3; their axis order ("HWC" or "CHW") is not part of
    the space but declared by the arena per game (`SeatInfo.observation_layout`), see `image_dims`."""
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 3


def image_dims(space: gym.Space, layout: str | None) -> tuple[int, int, int]:
    """(C, H, W) of an image space laid out as `layout`; ValueError if the layout is missing or unknown."""
    if layout is None:
        raise ValueError(f"image observation space {space!r} has no declared layout: the arena must "
                         "declare the observation layout (HWC or CHW); it is never guessed")
    if layout not in LAYOUTS:
        raise ValueError(f"unknown observation layout {layout!r}; expected HWC or CHW")
    a, b, c = (int(d) for d in space.shape)
    return (c, a, b) if layout == "HWC" else (a, b, c)


def flat_dim(space: gym.Space) -> int:
    """Size of a flat observation; Discrete is fed one-hot by the caller."""
    if isinstance(space, gym.spaces.Discrete):
        return int(space.n)
    return int(np.prod(space.shape))


def n_actions(space: gym.Space) -> int:
    """Number of actions of a Discrete action space (the only kind our policies emit)."""
    if not isinstance(space, gym.spaces.Discrete):
        raise TypeError(f"policies here need a Discrete action space, got {space!r}")
    return int(space.n)


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Integer/uint8 observations become float32; float inputs keep their precision."""
    return x if x.is_floating_point() else x.float()


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int | None, out_bias: bool = True) -> nn.Sequential:
    """Linear+ReLU stack; `out_dim=None` ends on the last hidden layer's activation."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(in_dim, width), nn.ReLU()]
        in_dim = width
    if out_dim is not None:
        layers.append(nn.Linear(in_dim, out_dim, bias=out_bias))
    return nn.Sequential(*layers)


class Encoder(nn.Module):
    """Observation → features: conv (one 3×3 layer, LIO/MOA style) for images, identity for flat obs,
    then one dense ReLU layer of width `width`.

    Images need `layout` ("HWC" or "CHW"): HWC input is permuted to NCHW for the conv, CHW is fed as
    is. Flat observations ignore it.
    """

    def __init__(self, space: gym.Space, width: int, conv_channels: int = 6, conv_padding: str = "same",
                 obs_scale: float | None = None, *, layout: str | None = None) -> None:
        super().__init__()
        self.image = is_image(space)
        self.obs_shape = tuple(space.shape) if isinstance(space, gym.spaces.Box) else (flat_dim(space),)
        uint8 = isinstance(space, gym.spaces.Box) and space.dtype == np.uint8
        self.scale = obs_scale if obs_scale is not None else (1.0 / 255.0 if uint8 else 1.0)
        self.layout = layout if self.image else None
        if self.image:
            c, h, w = image_dims(space, layout)
            # "circular" wraps around the edges: the Coins reference's conv for its torus
            self.conv: nn.Module = (nn.Conv2d(c, conv_channels, 3, stride=1, padding=1, padding_mode="circular")
                                    if conv_padding == "circular" else
                                    nn.Conv2d(c, conv_channels, 3, stride=1, padding=conv_padding))
            ho, wo = (h - 2, w - 2) if conv_padding == "valid" else (h, w)
            in_dim = ho * wo * conv_channels
        else:
            self.conv = nn.Identity()
            in_dim = int(np.prod(self.obs_shape))
        self.dense = nn.Linear(in_dim, width)
        self.trunk_dim = in_dim
        self.out_dim = width

    def trunk(self, obs: torch.Tensor) -> torch.Tensor:
        """The conv features (flat observations as they are) before the dense layer, `[*lead, trunk_dim]`:
        what a second head sharing the conv (MOA's model of the others) builds on."""
        lead = obs.shape[: obs.dim() - len(self.obs_shape)]
        x = as_float(obs.reshape(-1, *self.obs_shape)) * self.scale
        if self.image:
            x = F.relu(self.conv(x.permute(0, 3, 1, 2) if self.layout == "HWC" else x))
        return x.flatten(1).reshape(*lead, -1)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return F.relu(self.dense(self.trunk(obs)))


class PolicyNet(nn.Module):
    """Encoder → [concat extra] → MLP → `n_out` outputs (logits, or 1 for a critic).

    `extra_dim` inputs (e.g. inequity-aversion traces) join after the first dense layer, as in the
    LIO reference's IA agents; `hidden[0]` is the encoder's width.
    """

    def __init__(self, space: gym.Space, n_out: int, hidden: Sequence[int], extra_dim: int = 0,
                 conv_channels: int = 6, obs_scale: float | None = None, *, layout: str | None = None) -> None:
        super().__init__()
        self.encoder = Encoder(space, hidden[0], conv_channels, obs_scale=obs_scale, layout=layout)
        self.head = mlp(hidden[0] + extra_dim, hidden[1:], n_out)
        self.extra_dim = extra_dim

    def forward(self, obs: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        x = self.encoder(obs)
        if self.extra_dim:
            if extra is None:
                raise ValueError("this net was built with extra inputs; pass `extra`")
            x = torch.cat([x, extra.to(x.dtype)], dim=-1)
        return self.head(x)


class ValueNet(PolicyNet):
    """A PolicyNet with one output, squeezed: V(o)."""

    def __init__(self, space: gym.Space, hidden: Sequence[int], extra_dim: int = 0, conv_channels: int = 6,
                 obs_scale: float | None = None, *, layout: str | None = None) -> None:
        super().__init__(space, 1, hidden, extra_dim, conv_channels, obs_scale, layout=layout)

    def forward(self, obs: torch.Tensor, extra: torch.Tensor | None = None) -> torch.Tensor:
        return super().forward(obs, extra).squeeze(-1)


class IncentiveNet(nn.Module):
    """LIO incentive function r_η(o, a_−i) = Rmax·σ(g_η) ∈ [0, Rmax]^N (algorithms.md §2.1, §1.4).

    Flat obs: concat(obs, action features) → MLP → N (no output bias). Images: conv → dense →
    concat action features → MLP → N. `raw=True` skips the squashing (PG-c Gaussian means).
    """

    def __init__(self, space: gym.Space, action_dim: int, n_out: int, hidden: Sequence[int], rmax: float,
                 conv_channels: int = 6, obs_scale: float | None = None, *, layout: str | None = None) -> None:
        super().__init__()
        self.rmax = rmax
        if is_image(space):
            self.encoder: nn.Module | None = Encoder(space, hidden[0], conv_channels, obs_scale=obs_scale,
                                                     layout=layout)
            self.head = mlp(hidden[0] + action_dim, hidden[1:], n_out, out_bias=False)
            self.obs_dims = len(space.shape)
        else:
            self.encoder = None
            self.head = mlp(flat_dim(space) + action_dim, hidden, n_out, out_bias=False)
            self.obs_dims = len(space.shape)

    def forward(self, obs: torch.Tensor, action_features: torch.Tensor, raw: bool = False) -> torch.Tensor:
        if self.encoder is not None:
            x = self.encoder(obs)
        else:
            x = as_float(obs.reshape(*obs.shape[: obs.dim() - self.obs_dims], -1))
        out = self.head(torch.cat([x, action_features.to(x.dtype)], dim=-1))
        return out if raw else self.rmax * torch.sigmoid(out)


class MemorylessCore(nn.Module):
    """A dense tanh layer in the place of the RNN core; the state passes through unchanged, so the
    policy is a function of the current observation alone (the Reciprocator reference's IPD MLP)."""

    def __init__(self, n_in: int, n_out: int) -> None:
        super().__init__()
        self.layer = nn.Linear(n_in, n_out)

    def forward(self, x: torch.Tensor, state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.tanh(self.layer(x)), state


class RecurrentActorCritic(nn.Module):
    """Encoder → dense layers → LSTM/GRU (or memoryless) core → policy logits and value (PPO/A2C, §1.3, §1.4).

    `forward` runs a whole sequence `[T, B, ...]` from `state`; episodes start from `initial_state`.
    `extra_dim` inputs (MOA's others' previous actions, §3.7a) join the core's input after the dense
    layers. `conv_padding="valid"` is the MOA reference's conv (15×15 → 13×13).
    """

    def __init__(self, space: gym.Space, n_actions: int, hidden: Sequence[int], core: RecurrentKind = "lstm",
                 core_size: int = 128, conv_channels: int = 6, obs_scale: float | None = None, *,
                 layout: str | None = None, extra_dim: int = 0, conv_padding: str = "same") -> None:
        super().__init__()
        self.encoder = Encoder(space, hidden[0], conv_channels, conv_padding, obs_scale, layout=layout)
        self.fc = mlp(hidden[0], hidden[1:], None)
        self.extra_dim = extra_dim
        rnn_in = hidden[-1] + extra_dim
        self.kind = core
        cores: dict[str, type[nn.Module]] = {"lstm": nn.LSTM, "gru": nn.GRU, "none": MemorylessCore}
        self.core = cores[core](rnn_in, core_size)
        self.core_size = core_size
        self.policy = nn.Linear(core_size, n_actions)
        self.value = nn.Linear(core_size, 1)
        nn.init.normal_(self.value.weight, std=0.01)
        nn.init.zeros_(self.value.bias)

    def initial_state(self, batch: int, device: torch.device | str = "cpu") -> RecurrentState:
        zeros = torch.zeros(1, batch, self.core_size, device=device)
        return (zeros, zeros.clone()) if self.kind == "lstm" else zeros

    def features(self, obs: torch.Tensor, state: RecurrentState, extra: torch.Tensor | None = None
                 ) -> tuple[torch.Tensor, RecurrentState]:
        """The core's output `[T, B, core_size]`, which the heads read (MOA's message head too), and the
        state after the sequence."""
        x = self.fc(self.encoder(obs))
        if self.extra_dim:
            if extra is None:
                raise ValueError("this net was built with extra inputs; pass `extra`")
            x = torch.cat([x, extra.to(x.dtype)], dim=-1)
        return self.core(x, state)

    def forward(self, obs: torch.Tensor, state: RecurrentState, extra: torch.Tensor | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, RecurrentState]:
        out, state = self.features(obs, state, extra)
        return self.policy(out), self.value(out).squeeze(-1), state


def detach_state(state: RecurrentState) -> RecurrentState:
    """Cut the graph at a truncated-BPTT chunk boundary."""
    if isinstance(state, tuple):
        return (state[0].detach(), state[1].detach())
    return state.detach()


def index_state(state: RecurrentState, idx: torch.Tensor) -> RecurrentState:
    """Select batch entries `idx` of a recurrent state (batch is dim 1)."""
    if isinstance(state, tuple):
        return (state[0][:, idx], state[1][:, idx])
    return state[:, idx]
