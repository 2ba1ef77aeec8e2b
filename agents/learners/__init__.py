"""Shared learners (REINFORCE, actor-critic, PPO) and networks used by the algorithms in `agents.algorithms`."""
