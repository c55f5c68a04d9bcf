"""Vector recall: item-text embedders and the ChromaDB store."""
