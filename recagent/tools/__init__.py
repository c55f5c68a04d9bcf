"""LLM-facing tools: thin, typed wrappers over data, models and index."""
