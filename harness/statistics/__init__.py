"""Statistics over the per-query results of evaluated jobs: bootstrap confidence intervals,
paired comparisons of two runs on the same queries, and metrics by query slice.

Everything starts from `QueryRanks`, the rank of the first positive of every image query and
every caption query, which each job stores as an MLflow artifact (``ranks/<protocol>.npz``).
"""
