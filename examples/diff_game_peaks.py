"""Roll out the differential game (eq. 30) and print its two peaks and which one is higher.

With the paper's widths (sigma_2 = 3) the bump at (5, ..., 5) that the paper calls global is
wider and *lower* than the local one at (1, ..., 1). With equal widths (``sigma=1.0``) the far
peak is the higher one. Run with ``python examples/diff_game_peaks.py``.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

import marl_tr_envs  # noqa: F401  (registers DiffGame-v0)

SETTINGS: list[tuple[str, dict[str, Any]]] = [
    ("paper, n=2", {"n": 2}),
    ("paper, n=3", {"n": 3}),
    ("paper, n=7", {"n": 7}),
    ("equal widths, gap 3, n=3", {"n": 3, "sigma": 1.0, "basin_gap": 3.0}),
]


def random_rollouts(kwargs: dict[str, Any], episodes: int = 3) -> list[float]:
    """Rewards of a few one-step episodes with uniform random actions, through ``gym.make``."""
    env = gym.make("DiffGame-v0", **kwargs)
    env.action_space.seed(0)
    rewards = []
    for episode in range(episodes):
        env.reset(seed=episode)
        rewards.append(env.step(env.action_space.sample())[1])
    return rewards


def random_vector_rollouts(kwargs: dict[str, Any], num_envs: int = 256) -> np.ndarray:
    """Team rewards of 4 batched steps with uniform random actions, through ``gym.make_vec``."""
    vec_env = gym.make_vec("DiffGame-v0", num_envs=num_envs, **kwargs)
    vec_env.reset(seed=0)
    vec_env.action_space.seed(0)
    return np.concatenate([vec_env.step(vec_env.action_space.sample())[1] for _ in range(4)])


def describe(label: str, kwargs: dict[str, Any]) -> None:
    """Print one setting's peaks, the higher one, and what random and start policies get."""
    env = gym.make("DiffGame-v0", **kwargs)
    _, info = env.reset(seed=0)
    game = env.unwrapped.game
    peaks = info["peak_rewards"]
    local, far = game.local_center, game.global_center
    start = game.expected_reward([1.5] * game.n_agents, [0.5] * game.n_agents)
    single = random_rollouts(kwargs)
    batch = random_vector_rollouts(kwargs)
    print(f"{label}: sigma={game.sigma}")
    print(
        f"  r({local:g},...,{local:g}) = {peaks['local']:.4f}   "
        f"r({far:g},...,{far:g}) = {peaks['global']:.4f}   higher: {info['higher_peak']}"
    )
    print(f"  paper's start policy N(1.5, 0.5^2) per agent: E[r] = {start:.4f}")
    print(
        f"  random actions: gym.make rewards {', '.join(f'{r:.1e}' for r in single)}; "
        f"mean over {batch.size} vector-env steps {batch.mean():.1e}"
    )


def main() -> None:
    for label, kwargs in SETTINGS:
        describe(label, kwargs)


if __name__ == "__main__":
    main()
