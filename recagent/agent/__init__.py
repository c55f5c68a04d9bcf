"""The agent: LLM factory, tool-calling graph, rule-based planner, output schema, guard."""
