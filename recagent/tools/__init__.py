"""LLM-facing tools: thin, typed wrappers over data, models and index.

Importing this package registers every tool in `TOOLS` (the planner and the LLM agent
both read that registry)."""

from recagent.tools import catalog, profile, recall, score
from recagent.tools.base import TOOLS

__all__ = ["TOOLS", "catalog", "profile", "recall", "score"]
