"""Language-model item representations: the text vectors of every item, a contrastive loss
and a projection shared by the item encoder (NoteLLM-lite) and text alignment (CTRL-lite)."""
