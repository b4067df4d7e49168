"""What every shell adds around a stateless game: episodes, observations and reward noise.

The games are one-shot and stateless. A shell plays the game ``episode_length`` times per episode
(each play independent), observes the elapsed fraction of the episode ``[t / episode_length]`` so
MLP policies have an input and the steps of a multi-step episode are distinguishable, and can add
Gaussian noise to the team reward.
"""

from __future__ import annotations

import inspect
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from marl_tr_envs._validation import check_int, check_non_negative, reject_unknown_keywords
from marl_tr_envs.game import CooperativeGame

__all__ = ["EPISODE_KEYWORDS", "EpisodeSettings", "build_game", "game_keywords"]

#: Keywords of :class:`EpisodeSettings`, accepted by every shell.
EPISODE_KEYWORDS: tuple[str, ...] = ("episode_length", "reward_noise")


@dataclass(frozen=True)
class EpisodeSettings:
    """Episode length, observation and reward noise shared by the shells.

    Args:
        episode_length: Plays of the game per episode, >= 1 (default 1: one-step episodes).
            The episode *terminates* after the last play.
        reward_noise: Standard deviation (>= 0, default 0) of Gaussian noise added to the team
            reward of every play; every agent receives the same noisy reward. Drawn from the
            shell's seeded generator, so ``reset(seed=...)`` makes it reproducible.
    """

    episode_length: int = 1
    reward_noise: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "episode_length", check_int("episode_length", self.episode_length, minimum=1)
        )
        object.__setattr__(
            self, "reward_noise", check_non_negative("reward_noise", self.reward_noise)
        )

    def observation_space(self) -> spaces.Box:
        """A new ``Box(0, 1, (1,), float32)``: the elapsed fraction of the episode."""
        return spaces.Box(0.0, 1.0, shape=(1,), dtype=np.float32)

    def observation(self, steps_taken: np.ndarray | int) -> np.ndarray:
        """``[t / episode_length]``, float32 ``[..., 1]``, for step counts ``t`` ``[...]``."""
        fraction = np.asarray(steps_taken, dtype=np.float32) / np.float32(self.episode_length)
        return fraction[..., None]

    def add_noise(self, rewards: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``rewards`` plus ``N(0, reward_noise^2)`` noise of the same shape (a new array)."""
        if self.reward_noise == 0.0:
            return np.array(rewards, dtype=np.float64)
        return rewards + self.reward_noise * rng.standard_normal(np.shape(rewards))


def game_keywords(game_class: type[CooperativeGame]) -> tuple[str, ...]:
    """The keyword parameters of ``game_class``'s constructor."""
    parameters = inspect.signature(game_class).parameters.values()
    return tuple(
        parameter.name
        for parameter in parameters
        if parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)
    )


def build_game(
    owner: str,
    game_class: type[CooperativeGame] | None,
    game: CooperativeGame | None,
    game_kwargs: Mapping[str, Any],
    shell_keywords: Collection[str],
) -> CooperativeGame:
    """The game a shell serves: ``game`` itself, or ``game_class(**game_kwargs)``.

    Args:
        owner: The shell's name, for messages.
        game_class: The game the shell is made for (``None``: a generic shell, ``game`` required).
        game: A game built by the caller, or ``None``.
        game_kwargs: The keyword arguments the shell did not recognise as its own.
        shell_keywords: The shell's own keywords (listed in the message on an unknown keyword).

    Raises:
        ValueError: An unknown keyword (all accepted ones are listed), both ``game`` and game
            keywords, a ``game`` of the wrong type, or neither.
    """
    accepted = set(shell_keywords) | {"game"}
    if game_class is not None:
        accepted |= set(game_keywords(game_class))
    reject_unknown_keywords(owner, game_kwargs, accepted)
    if game is None:
        if game_class is None:
            raise ValueError(f"{owner} needs a game: pass game=<a CooperativeGame>")
        return game_class(**game_kwargs)
    if game_kwargs:
        raise ValueError(
            f"{owner} got both game={game!r} and game keywords {sorted(game_kwargs)}; "
            "pass one or the other"
        )
    expected = game_class or CooperativeGame
    if not isinstance(game, expected):
        raise ValueError(f"{owner} needs game to be a {expected.__name__}, got {game!r}")
    return game
