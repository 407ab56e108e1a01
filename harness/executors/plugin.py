"""Registers the built-in executors."""

from harness.hookspecs import hookimpl


@hookimpl
def register_executors(register):
    register("in-process", "harness.executors.in_process:InProcess")
    register("local", "harness.executors.local:LocalWorkers")
    register("ray", "harness.executors.ray_tasks:RayTasks")
