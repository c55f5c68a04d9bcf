"""LLM-facing tools: thin, typed wrappers over data, models and index. The registry
(`recagent.tools.registry`) lists them explicitly; importing this package registers nothing."""
