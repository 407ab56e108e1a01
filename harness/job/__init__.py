"""The job layer: one place that turns a resolved job into a model, its inputs, its stages and
its generated samples, trains and evaluates it.

The in-process runner, worker processes, `itr eval` and the conformance kit all build jobs
here, so a check runs exactly what a job runs.
"""
