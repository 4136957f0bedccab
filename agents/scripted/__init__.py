"""Scripted reference policies for the grid games, one module per game."""
