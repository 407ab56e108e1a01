"""itr-harness core: interfaces, plugin manager, experiments, training, evaluation, tracking.

The core knows interfaces, never a specific method; methods arrive through the plugin manager.
Its layers, bottom to top (imports only go down; docs/architecture.md draws them): the leaf
modules (errors, interfaces, capabilities, metrics, ...), `config`, the plugin layer (`registry`,
`plugin_manager`), `features`, `training` and `evaluation`, `job`, tracking and statistics,
`experiment`, `executors`, `conformance`, and `cli` on top.
"""

__version__ = "0.1.0"
