"""Shared building blocks and the VSE family as plugins: frozen backbones, the demo dataset,
similarity heads, VSE++, and the training-free class bridge."""
