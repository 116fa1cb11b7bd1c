"""Training stage (torch): model import, corpus, data loaders, SGL, pruning, evaluation."""
