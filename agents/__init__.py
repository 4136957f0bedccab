"""Agents: fixed strategies, naive learners and learning-aware agents.

Importing this package registers the catalogues of named co-players (the matrix-game
strategies and each grid game's scripted policies) with
:func:`dilemmas.envs.registry.register_co_players`, under the names the core envs
give in ``co_players``. ``SingleAgentEnv`` is re-exported as the entry point of the
Gymnasium ids, so that ``gymnasium.make("dilemmas/IPD-v0", co_player="tft")`` loads
the catalogues before it builds the env.
"""

from dilemmas.agents import networks, strategies
from dilemmas.agents.policy import from_function, load_policy
from dilemmas.agents.scripted import cleanup as _cleanup
from dilemmas.agents.scripted import cleanup_lite as _cleanup_lite
from dilemmas.agents.scripted import coin_game as _coin_game
from dilemmas.agents.scripted import harvest as _harvest
from dilemmas.envs.gymnasium import SingleAgentEnv
from dilemmas.envs.registry import register_co_players

for _catalogue in (strategies, _cleanup, _cleanup_lite, _coin_game, _harvest):
    register_co_players(_catalogue.__name__, _catalogue.co_player)

__all__ = [
    "SingleAgentEnv",
    "from_function",
    "load_policy",
    "networks",
    "strategies",
]
