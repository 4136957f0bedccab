"""Agents: fixed strategies, naive learners and learning-aware agents."""

from dilemmas.agents import strategies

__all__ = ["strategies"]
