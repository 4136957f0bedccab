"""Agents: fixed strategies, naive learners and learning-aware agents."""

from dilemmas.agents import networks, strategies

__all__ = ["networks", "strategies"]
