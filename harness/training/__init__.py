"""Training: the composed retrieval model, batching, and the stage-by-stage trainer."""
