"""The plugin conformance kit: contract checks for components and methods, before any GPU day.

`itr check TARGET` and the pytest plugin (`harness.conformance.pytest_plugin`, fixture
``itr_check``) both call `run_checks`. What is checked, per kind:

| kind | checks |
| --- | --- |
| image / text encoder | interface, leakage/batch-order, leakage/batch-composition, determinism, gradients, checkpoint |
| similarity head | interface, leakage/pairing-labels, leakage/batch-order, leakage/batch-composition, pairs (when it scores explicit pairs), determinism, gradients, checkpoint; once per input kind it declares (`accepts`) |
| loss | interface, ranking-direction, determinism, gradients (into the scores; no parameters of its own) |
| sample generator | interface, determinism (own rng only), gradients (feature level) |
| image / text backbone | interface, leakage/batch-order, leakage/batch-composition, determinism |
| text source | interface, determinism |
| method | all of the above for every component it resolves to (with the recipe's options), then pipeline, determinism and checkpoint of the assembled model |

Modules, one job each: `report` (rows and the table), `synthetic` (tiny inputs), `compare`
(tolerant comparisons with located messages), `evaluated` (the scores evaluation ranks),
`subject` (seeded builds and the checks every kind shares), `sources` (what a head is fed), one
module per kind (`encoders`, `heads`, `losses`, `generators`, `backbones`, `texts`, `methods`:
a method is assembled by the job layer, `harness.job.assemble`, exactly as a job is),
`targets` (name and options to report), `demo_run` (a one-epoch experiment on the demo set, for
plugin test suites), `pytest_plugin` (the fixtures).

Importing this package does not import torch.
"""

from harness.conformance.report import CheckResult, Report
from harness.conformance.targets import run_checks

__all__ = ["CheckResult", "Report", "run_checks"]
