"""The pure capacity engine: no I/O, no Kubernetes client, no flask.

Everything that decides whether a workload fits lives here so the webhook server,
the ``check`` CLI and the tests share one implementation.
"""
