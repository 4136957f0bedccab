"""Social-dilemma environments: pure JAX cores, PettingZoo and Gymnasium faces.

Importing this package registers every game in our registry
(:func:`make`, :func:`registered`) and with ``pettingzoo.register`` and
``gymnasium.register`` under the ``dilemmas/`` namespace.
"""

from dilemmas.envs import (  # noqa: F401  (each game module registers its ids)
    cleanup,
    cleanup_lite,
    coin_game,
    harvest,
    matrix_games,
)
from dilemmas.envs import gymnasium as _gymnasium_face  # noqa: E402
from dilemmas.envs import pettingzoo as _pettingzoo_face  # noqa: E402
from dilemmas.envs.core import LegendEntry, MultiAgentEnv, Timestep
from dilemmas.envs.payoffs import PRESETS, payoff_table, pd_payoffs
from dilemmas.envs.registry import EnvSpec, make, register, registered, spec
from dilemmas.envs.testing import check_env
from dilemmas.envs.wrappers import AutoReset, Checked, MetaEpisodes, Wrapper

_pettingzoo_face.register_all()
_gymnasium_face.register_all()

__all__ = [
    "PRESETS",
    "AutoReset",
    "Checked",
    "EnvSpec",
    "LegendEntry",
    "MetaEpisodes",
    "MultiAgentEnv",
    "Timestep",
    "Wrapper",
    "check_env",
    "make",
    "payoff_table",
    "pd_payoffs",
    "register",
    "registered",
    "spec",
]
