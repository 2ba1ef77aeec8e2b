"""Smoke test of MOA's communication variant through the real arena: two talking moa agents in the
IPD (real processes, a few seconds). Each runtime must send its symbols with `act`, the arena must
accept them and deliver them in the other's `observe.messages` (`messages_heard` = 1: every symbol of
the other arrived, in range), and the message influence and the §6 metrics must be logged every
training episode."""

from __future__ import annotations

import json
import math
from pathlib import Path

from tests.conftest import launch, write_config

EPISODES = 3


def test_moa_agents_talk_through_the_arena(tmp_path: Path) -> None:
    arena = {"game": "ipd", "episodes": EPISODES, "batch_size": 8, "message_vocab": 4,
             "disclose": ["actions", "visibility", "messages"], "params": {"max_steps": 8}}
    options = {"epochs": 1, "communication": True}
    agents = [{"name": name, "kind": "moa", "options": options} for name in ("a", "b")]
    done = launch(write_config(tmp_path / "run.toml", arena, agents, name="moa_comm_smoke"), 180)
    assert done.code == 0, done.output[-2000:]
    for name in ("a", "b"):
        lines = (done.run_dir / "agents" / name / "metrics.jsonl").read_text().splitlines()
        rows = [json.loads(line) for line in lines]
        assert len(rows) == EPISODES
        for row in rows:
            assert row["messages_heard"] == 1.0, row
            for key in ("influence", "speaker_consistency", "ic_message_action", "ic_message_action_influential",
                        "ic_action_action", "message_entropy", "message_policy_loss", "moa_loss"):
                assert math.isfinite(row[key]), (key, row)
            assert row["influence"] > 0.0 and 0.0 <= row["speaker_consistency"] <= 1.0, row
