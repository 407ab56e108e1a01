"""Experiment files (TOML) and the jobs they expand into."""
