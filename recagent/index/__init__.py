"""Vector recall: item-text embedders and the ChromaDB store.

- `embedders`: the `Embedder` protocol and the wordllama / openai / sentence-transformers
  backends (`make_embedder(IndexConfig)`).
- `text`: the editable template an item is embedded as (`load_template`).
- `filters`: a resolved `Constraints` (genres, years, ids) as a Chroma `where` clause and a
  catalog mask.
- `store`: `build_index`, `open_index`, `index_status` (embedded store or a Chroma server).
- `item_index`: `ItemIndex.search / similar_to_items / similar_to_history` -> `Hit`s.

Nothing here imports LangChain; the agent's tools wrap this in `recagent.tools.recall`.
"""
