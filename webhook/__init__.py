"""capacity-webhook: capacity-aware admission control for Kubernetes on AWS.

The package is split by concern: ``engine`` is pure (no I/O) and decides; ``state``
turns Kubernetes objects (a snapshot file or a live watch) into the engine's
ClusterState; the CLI, the flask server and the output formatters are thin adapters.
"""

__version__ = "0.1.0"
