"""Analysis of cooperation: metrics, extortion, tournaments, reports."""
