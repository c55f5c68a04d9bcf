"""CLI command groups, one module per group; `recagent.cli` assembles them."""
