"""Ways to run the jobs of an experiment: in this process, in local worker processes, or on Ray.

The driver (`harness.experiment.run`) turns each job into a `JobTicket`, a JSON-able description
that any process can run with nothing but the installed plugins (`worker.run_ticket`), and hands
the tickets to an executor. Executors are registered components (``kind = "executor"``), so a
cluster scheduler is one more plugin.
"""
