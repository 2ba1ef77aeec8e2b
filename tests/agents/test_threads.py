"""CPU learners use one torch thread unless ARENA_TORCH_THREADS says otherwise; a bad value is refused."""

from __future__ import annotations

import pytest
import torch

from agents.algorithms.pg import PolicyGradient
from tests.agents.helpers import seat_info


def test_one_thread_by_default_and_the_environment_overrides_it(monkeypatch: pytest.MonkeyPatch) -> None:
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("ARENA_TORCH_THREADS", raising=False)
        PolicyGradient().setup(seat_info())
        assert torch.get_num_threads() == 1
        monkeypatch.setenv("ARENA_TORCH_THREADS", "2")
        PolicyGradient().setup(seat_info())
        assert torch.get_num_threads() == 2
        monkeypatch.setenv("ARENA_TORCH_THREADS", "many")
        with pytest.raises(ValueError, match="ARENA_TORCH_THREADS = 'many'"):
            PolicyGradient().setup(seat_info())
    finally:
        torch.set_num_threads(before)
