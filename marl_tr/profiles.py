"""Profiles: defaults that fit the kind of env, one layer below the preset.

A config field left unset resolves as user > preset > profile > library default
(``marl_tr.config``). The library defaults are the paper's one-step game (a state-independent
policy, a linear critic by SGD at 0.2 for one step, one env step per copy); a profile changes
them for another kind of env without touching a single result on the differential game:

- ``one_step`` adds nothing: the library defaults. ``auto`` picks it for the suite's one-shot
  games (an env with a ``CooperativeGame`` core, whatever its ``episode_length``: each play is
  independent) and for envs whose episodes end after their first step.
- ``multi_step``: everything else (e.g. MPE). A KL radius of 0.01 (HARL's default
  ``kl_threshold``; presets state their own); MLP policy and critic ``(64, 64)``; the critic by
  Adam at ``5e-4`` with 5 passes over 4 minibatches and value normalisation (HARL's ValueNorm,
  a running mean and std of the targets); ``T = 200`` steps in each of 20 copies (4,000
  transitions, HARL's MPE layout) with GAE over them; an evaluation of 10 episodes with the
  deterministic policy every 10 iterations. Presets state their own multi-step settings (e.g.
  HATRPO's KL radius 0.01, HARL's default ``kl_threshold``) and leave the critic to the
  profile.

A profile is a plain mapping of ``TrainConfig`` field names to values; ``register_profile``
adds one, which ``profile="name"`` then selects.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

__all__ = ["AUTO", "PROFILES", "auto_profile", "profile_values", "register_profile"]

#: The ``profile`` value that picks ``one_step`` or ``multi_step`` from the env.
AUTO = "auto"

#: Registered profiles: field name -> value.
PROFILES: dict[str, dict[str, Any]] = {
    "one_step": {},
    "multi_step": {
        "batch_size": 4000,
        "num_envs": 20,
        "policy_hidden": (64, 64),
        "critic_hidden": (64, 64),
        "radius": "fixed:delta=0.01",
        "critic_optimizer": "adam",
        "critic_lr": 5e-4,
        "critic_epochs": 5,
        "critic_minibatches": 4,
        "value_norm": True,
        "eval_interval": 10,
    },
}


def register_profile(name: str, values: Mapping[str, Any]) -> None:
    """Register (or replace) a profile: ``TrainConfig`` field names to values.

    Raises:
        ValueError: a bad name or a key that is not a layered ``TrainConfig`` field.
    """
    from marl_tr.config import LAYERED_FIELDS

    if not isinstance(name, str) or not name.strip() or name == AUTO:
        raise ValueError(f"profile name must be a non-empty string other than 'auto', got "
                         f"{name!r}")
    unknown = sorted(set(values) - set(LAYERED_FIELDS))
    if unknown:
        raise ValueError(f"profile {name!r} sets {unknown}, which no profile can set; it may set "
                         f"{', '.join(LAYERED_FIELDS)}")
    PROFILES[name] = dict(values)


def profile_values(name: str) -> dict[str, Any]:
    """The values of profile ``name``.

    Raises:
        ValueError: an unknown name (the registered ones listed, a close one suggested).
    """
    if name not in PROFILES:
        close = difflib.get_close_matches(str(name), [*PROFILES, AUTO], n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"Unknown profile {name!r}.{hint} Available: "
                         f"{', '.join([AUTO, *PROFILES])}")
    return dict(PROFILES[name])


def auto_profile(one_shot_core: bool, first_step_ends: bool) -> str:
    """What ``profile="auto"`` means for an env.

    Args:
        one_shot_core: the env has an analytic one-shot core (the suite's ``CooperativeGame``).
        first_step_ends: every copy's episode ended after its first step.
    """
    return "one_step" if one_shot_core or first_step_ends else "multi_step"
