"""Ways to run the jobs of an experiment: in this process, in local worker processes, or on Ray.

Executors only dispatch: the driver (`harness.experiment.driver`) turns each job into a
`JobTicket`, which any process can run with nothing but the installed plugins
(`worker.run_ticket`, through the job layer), and hands the tickets to an executor. Executors are registered components (``kind = "executor"``), so a
cluster scheduler is one more plugin.
"""
