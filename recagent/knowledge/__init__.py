"""Item knowledge written by an LLM (KAR-lite, after Xi et al. 2023): per item, what the model
knows, factorised over the aspects its prompt names; stored per dataset in the workspace and
attached to the catalog's items (`Item.knowledge`) when the dataset is loaded."""

PROMPT = "item_knowledge"
"""The prompt (`recagent prompts`) that asks for an item's knowledge."""
