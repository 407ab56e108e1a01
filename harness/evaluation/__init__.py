"""Evaluation: embed a test split, score it by the job's strategy (``eval.mode``), rank it by
each protocol. Protocols are registered components (``register_protocols``)."""
