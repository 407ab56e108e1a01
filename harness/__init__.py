"""itr-harness core: interfaces, plugin manager, experiments, training, evaluation, tracking.

The core knows interfaces, never a specific method; methods arrive through the plugin manager.
"""

__version__ = "0.1.0"
