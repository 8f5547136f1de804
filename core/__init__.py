"""The pipeline stages: text, batcher, encoder, vector store, similarity. Depends on ``schemas`` only."""
