"""The live source's connection: an ApiClient for the cluster, tuned for long-lived watches.

Apart from the watch loop (``live``) so that other one-shot readers (``record``) connect the
same way, and so that what is configuration and what is behaviour stay in separate places.
"""

from __future__ import annotations

from typing import Any

from ..manifests import InputError


class LiveSourceError(InputError):
    """The live cluster could not be read (one clear line for the CLI)."""


def make_api_client(kubeconfig: str | None = None, context: str | None = None) -> Any:
    """An ApiClient: in-cluster service account, else the kubeconfig (and context)."""
    from kubernetes import client, config

    configuration = client.Configuration()
    if kubeconfig is None and context is None:
        try:
            config.load_incluster_config(client_configuration=configuration)
            return client.ApiClient(_tune(configuration))
        except config.ConfigException:
            configuration = client.Configuration()
    try:
        config.load_kube_config(config_file=kubeconfig, context=context, client_configuration=configuration)
    except (config.ConfigException, OSError, ValueError, TypeError) as exc:
        where = kubeconfig or "~/.kube/config (or $KUBECONFIG)"
        raise LiveSourceError(f"cannot load cluster credentials: not in a cluster, and {where}"
                              f"{f' context {context}' if context else ''}: {exc}") from None
    return client.ApiClient(_tune(configuration))


def _tune(configuration: Any) -> Any:
    # One long-lived watch per collection on the same host: keep their connections pooled.
    configuration.connection_pool_maxsize = max(configuration.connection_pool_maxsize or 0, 32)
    # One transport retry (a keep-alive connection the server closed); our own backoff does the rest.
    configuration.retries = 1
    return configuration


def host_of(api_client: Any) -> str:
    """The API server's address, for messages."""
    return str(getattr(getattr(api_client, "configuration", None), "host", "") or "cluster")
