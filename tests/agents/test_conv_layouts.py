"""Convs follow the observation layout the arena declares, for every game with image observations.

The space travels as its wire description (`describe_space` with the game's layout), is rebuilt the
way an agent rebuilds it (`space_from_description` + `layout_of`), and every net that can read an
image is built on it: its first conv must read the game's real channels, and a forward pass on the
game's real observations must give finite outputs of the right shape.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch
from torch import nn

from agents.learners.networks import Encoder, IncentiveNet, PolicyNet, RecurrentActorCritic, ValueNet
from arena.games import GAMES, make_game
from protocols.spaces import describe_space, layout_of, space_from_description

#: The real channel count of each game with image observations (default parameters, 2 copies),
#: stated independently of the games' layout declarations.
CHANNELS = {
    "coin_game": 4,  # 2N one-hot planes for the default N = 2 players, channels first
    "box_trapped": 5,  # walls, box, apples, self, other; channels last
    "cleanup": 3,  # RGB, channels last
    "harvest": 3,
}
BATCH, T = 2, 3
HIDDEN = [16, 16]


def _is_image(space: gym.Space) -> bool:
    return isinstance(space, gym.spaces.Box) and len(space.shape) == 3


def _image_games() -> list[str]:
    return sorted(n for n in GAMES if _is_image(make_game(n, {}, BATCH).observation_spaces[0]))


def _first_conv(net: nn.Module) -> nn.Conv2d:
    return next(m for m in net.modules() if isinstance(m, nn.Conv2d))


def test_every_image_game_states_its_channels() -> None:
    assert _image_games() == sorted(CHANNELS), "state the real channel count of each image game in CHANNELS"


@pytest.mark.parametrize("name", sorted(CHANNELS))
def test_convs_read_the_declared_channels(name: str) -> None:
    game = make_game(name, {}, BATCH)
    wire = describe_space(game.observation_spaces[0], game.observation_layout)
    space, layout = space_from_description(wire), layout_of(wire)
    assert layout in ("HWC", "CHW") and wire["layout"] == layout
    obs = torch.as_tensor(game.reset(np.arange(BATCH, dtype=np.uint64))[0])
    assert obs.shape == (BATCH, *space.shape)
    seq = obs.unsqueeze(0).expand(T, *obs.shape)  # [T, B, ...], as when learning
    n_act, n_agents = game.action_spaces[0].n, game.n_agents
    torch.manual_seed(0)

    policy = PolicyNet(space, n_act, HIDDEN, layout=layout)
    value = ValueNet(space, HIDDEN, layout=layout)
    incentive = IncentiveNet(space, 2, n_agents, HIDDEN, rmax=2.0, layout=layout)
    recurrent = RecurrentActorCritic(space, n_act, HIDDEN, core="gru", core_size=8, layout=layout)
    for net in (policy, value, incentive, recurrent):
        assert _first_conv(net).in_channels == CHANNELS[name], type(net).__name__

    outputs = {
        "policy": (policy(obs), (BATCH, n_act)),
        "policy [T, B]": (policy(seq), (T, BATCH, n_act)),
        "value": (value(seq), (T, BATCH)),
        "incentive": (incentive(seq, torch.zeros(T, BATCH, 2)), (T, BATCH, n_agents)),
    }
    logits, values, _ = recurrent(seq, recurrent.initial_state(BATCH))
    outputs["recurrent logits"] = (logits, (T, BATCH, n_act))
    outputs["recurrent values"] = (values, (T, BATCH))
    for what, (out, shape) in outputs.items():
        assert out.shape == shape, what
        assert torch.isfinite(out).all(), what


def test_the_layout_decides_channels_and_spatial_dims() -> None:
    """The same (4, 3, 3) shape is 4 channels of 3×3 as CHW and 3 channels of 4×3 as HWC."""
    space = gym.spaces.Box(0.0, 1.0, (4, 3, 3), np.float32)
    chw = PolicyNet(space, 2, HIDDEN, layout="CHW")
    hwc = PolicyNet(space, 2, HIDDEN, layout="HWC")
    assert _first_conv(chw).in_channels == 4 and _first_conv(hwc).in_channels == 3
    assert chw.encoder.dense.in_features == 3 * 3 * 6 and hwc.encoder.dense.in_features == 4 * 3 * 6


@pytest.mark.parametrize("net", ["policy", "value", "incentive", "recurrent"])
def test_an_image_without_a_layout_is_refused(net: str) -> None:
    space = gym.spaces.Box(0.0, 1.0, (4, 3, 3), np.float32)
    build = {
        "policy": lambda: PolicyNet(space, 5, HIDDEN),
        "value": lambda: ValueNet(space, HIDDEN),
        "incentive": lambda: IncentiveNet(space, 2, 2, HIDDEN, rmax=2.0),
        "recurrent": lambda: RecurrentActorCritic(space, 5, HIDDEN, core_size=8),
    }[net]
    with pytest.raises(ValueError, match="layout"):
        build()


def test_flat_spaces_need_no_layout() -> None:
    space = gym.spaces.Box(0.0, 1.0, (5,), np.float32)
    assert PolicyNet(space, 2, HIDDEN)(torch.zeros(BATCH, 5)).shape == (BATCH, 2)


def test_layout_descriptions_are_validated() -> None:
    image = gym.spaces.Box(0.0, 1.0, (4, 3, 3), np.float32)
    assert "layout" not in describe_space(image) and layout_of(describe_space(image)) is None
    with pytest.raises(ValueError):
        describe_space(image, "NHWC")
    with pytest.raises(ValueError):
        describe_space(gym.spaces.Box(0.0, 1.0, (5,), np.float32), "HWC")
    with pytest.raises(ValueError):
        layout_of({**describe_space(image), "layout": "WHC"})
    wire = describe_space(image, "CHW")
    assert space_from_description(wire) == image and layout_of(wire) == "CHW"


def test_circular_padding_sees_the_torus() -> None:
    """`conv_padding = "circular"` (Coin Game): rolling the board rolls the conv features the same way,
    which zero padding does not do at the edges."""
    space = gym.spaces.Box(0.0, 1.0, (4, 3, 3), np.float32)
    torch.manual_seed(0)
    board = torch.rand(2, 4, 3, 3)
    rolled = torch.roll(board, shifts=(1, 2), dims=(2, 3))
    for padding, equivariant in (("circular", True), ("same", False)):
        encoder = Encoder(space, 8, conv_channels=5, conv_padding=padding, layout="CHW")
        features = encoder.trunk(board).reshape(2, 5, 3, 3)
        shifted = encoder.trunk(rolled).reshape(2, 5, 3, 3)
        assert torch.allclose(torch.roll(features, shifts=(1, 2), dims=(2, 3)), shifted, atol=1e-6) is equivariant
        assert encoder.trunk_dim == 5 * 3 * 3
