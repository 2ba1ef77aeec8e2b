"""bench/reciprocator.py scores what it says: the last 10% of training episodes, P(cooperate) and
P(own coin) per agent, the Reciprocator's learner metrics, and the Welch test between pairings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.lio import Run
from bench.reciprocator import score, targets

COINS = {"arena": {"game": "coin_game", "batch_size": 8, "params": {"max_steps": 32}},
         "agents": [{"name": "rec", "kind": "reciprocator"}, {"name": "nl", "kind": "nl-ppo"}]}


def write_run(run_dir: Path, own: float, other: float, episodes: int = 20) -> list[dict]:
    """A coins run whose last two episodes give the NL `own` and `other` coins (earlier ones 0 and 9)."""
    (run_dir / "agents" / "rec").mkdir(parents=True)
    played = []
    for e in range(episodes):
        late = e >= episodes - 2
        played.append({"episode": e, "returns": {"rec": 1.0 if late else -5.0, "nl": 2.0},
                       "events": {"own_coin": {"rec": 3.0, "nl": own if late else 0.0},
                                  "other_coin": {"rec": 1.0, "nl": other if late else 9.0}}})
    played.append({"episode": episodes, "evaluate": True, "returns": {"rec": 99.0, "nl": 99.0},
                   "events": {"own_coin": {"rec": 0.0, "nl": 0.0}, "other_coin": {"rec": 0.0, "nl": 0.0}}})
    rows = [{"episode": e, "reciprocal_reward": 0.5 if e >= episodes - 2 else 0.0, "vi_in": 0.1, "vi_out": 0.2,
             "balance_end": -1.0} for e in range(episodes)]
    (run_dir / "agents" / "rec" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return played


def test_score_takes_the_last_tenth_of_training_episodes(tmp_path: Path) -> None:
    played = write_run(tmp_path, own=6.0, other=2.0)
    m = score("coin_game_reciprocator_vs_nl", COINS, played, tmp_path)
    assert m["episodes"] == 20
    assert m["own_coin"] == {"rec": 0.75, "nl": 0.75}  # 6 / (6 + 2); the evaluation episode is left out
    assert m["coins"]["nl"] == 8.0
    assert m["returns"] == {"rec": 1.0, "nl": 2.0}
    assert m["learner"]["rec"]["reciprocal_reward"] == 0.5


def test_coins_target_is_a_one_sided_welch_test(tmp_path: Path) -> None:
    runs = []
    for seed, (own, other) in enumerate([(6, 2), (7, 1), (6, 2)]):
        played = write_run(tmp_path / f"rec{seed}", own, other)
        runs.append(Run("coins", "coin_game_reciprocator_vs_nl", seed, status="ok",
                        metrics=score("coin_game_reciprocator_vs_nl", COINS, played, tmp_path / f"rec{seed}")))
    nl_pair = {"arena": COINS["arena"], "agents": [{"name": "a", "kind": "nl-ppo"}, {"name": "b", "kind": "nl-ppo"}]}
    for seed, own in enumerate([3.0, 4.0, 4.0]):
        played = [{"episode": e, "returns": {"a": 0.0, "b": 0.0},
                   "events": {"own_coin": {"a": own, "b": own}, "other_coin": {"a": 8 - own, "b": 8 - own}}}
                  for e in range(20)]
        runs.append(Run("coins", "coin_game_nl_pair", seed, status="ok",
                        metrics=score("coin_game_nl_pair", nl_pair, played, tmp_path)))
    lines = targets(runs)
    welch = next(line for line in lines if "P(own coin)" in line)
    # beside a Reciprocator 0.75, 0.875, 0.75 against 0.375, 0.5, 0.5: Welch t = 0.333 / 0.0589 = 5.66
    assert "beside a Reciprocator 0.792 ± 0.042 (n = 3)" in welch
    assert "beside an NL 0.458 ± 0.042 (n = 3)" in welch
    assert "t = 5.66" in welch and "PASS" in welch
    returns = next(line for line in lines if "Coins return" in line)
    assert "PASS" in returns  # the Reciprocator's 1.0 is not below the NL pair's 0.0


@pytest.mark.parametrize(("nl_coop", "passes"), [(30.0, True), (20.0, False)])
def test_ipd_shaping_target(tmp_path: Path, nl_coop: float, passes: bool) -> None:
    config = {"arena": {"game": "ipd", "params": {"max_steps": 32}},
              "agents": [{"name": "rec", "kind": "reciprocator"}, {"name": "nl", "kind": "nl-ppo"}]}
    (tmp_path / "agents" / "rec").mkdir(parents=True)
    (tmp_path / "agents" / "rec" / "metrics.jsonl").write_text("")
    played = [{"episode": e, "returns": {"rec": -1.0, "nl": -1.0},
               "events": {"cooperated": {"rec": 16.0, "nl": nl_coop}}} for e in range(10)]
    runs = [Run("ipd", "ipd_reciprocator_vs_nl", s, status="ok",
                metrics=score("ipd_reciprocator_vs_nl", config, played, tmp_path)) for s in range(5)]
    line = targets(runs)[0]
    assert f"NL P(cooperate) ≥ 0.8 in {5 if passes else 0}/5 seeds" in line
    assert ("PASS" if passes else "MISS") in line
