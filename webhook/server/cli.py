"""``capacity-webhook serve``: the admission webhook over HTTPS (gunicorn + flask).

State source: ``--cluster SNAPSHOT`` serves a snapshot file (demos, tests, air-gapped
evaluation); otherwise the live source (``webhook.state.live``) lists and watches the
cluster through ``--kubeconfig``/``--context``, or the in-cluster service account.
"""

from __future__ import annotations

import logging
import ssl

import click

from ..engine.verdict import MODES
from . import logs

log = logging.getLogger("capacity_webhook.server")


def _check_tls(cert_file: str, key_file: str) -> None:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert_file, key_file)
    except (ssl.SSLError, OSError, ValueError) as exc:
        raise click.ClickException(f"cannot use --tls-cert-file {cert_file} with --tls-private-key-file {key_file}: "
                                   f"{exc}") from None


def _snapshot_factory(path: str):
    from ..manifests import InputError
    from ..state.holder import snapshot_holder

    try:
        holder = snapshot_holder(path)
    except InputError as exc:
        raise click.ClickException(str(exc)) from None
    except OSError as exc:
        raise click.ClickException(f"cannot read --cluster {path}: {exc.strerror or exc}") from None
    for skipped in holder.state.skipped:
        log.warning("snapshot object skipped: %s", skipped)
    return lambda: holder


def _live_factory(kubeconfig: str | None, context: str | None):
    try:
        from ..state.live import live_holder
    except ImportError as exc:
        raise click.ClickException(
            f"the live cluster source is not available ({exc}); serve a snapshot with --cluster SNAPSHOT "
            "(kubectl get nodes,pods,... -A -o json) instead") from None

    def factory():
        # Called in the gunicorn worker: the list/watch threads must live in the serving process.
        return live_holder(kubeconfig=kubeconfig, context=context)
    return factory


@click.command("serve")
@click.option("--cluster", "snapshot", metavar="SNAPSHOT", type=click.Path(dir_okay=False),
              help="Serve from a snapshot file (kubectl get ... -A -o json) instead of watching a live cluster.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False),
              help="Watch the cluster of this kubeconfig (default: in-cluster service account, then ~/.kube/config).")
@click.option("--context", "kube_context", metavar="NAME", help="kubeconfig context to use.")
@click.option("--tls-cert-file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="PEM serving certificate (reloaded when it changes on disk).")
@click.option("--tls-private-key-file", required=True, type=click.Path(exists=True, dir_okay=False),
              help="PEM private key of the serving certificate (reloaded when it changes on disk).")
@click.option("--bind", default="0.0.0.0", show_default=True, help="Address to listen on.")
@click.option("--port", default=8443, show_default=True, type=click.IntRange(0, 65535),
              help="HTTPS port (0: any free port, printed in the log).")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=None,
              help="Also serve GET /metrics over plain HTTP on this port (BIND address, only /metrics; "
                   "0: any free port, printed in the log). /metrics stays on the HTTPS port too.")
@click.option("--mode", type=click.Choice(MODES), default="enforce", show_default=True,
              help="enforce: deny; warn: allow with warnings; audit: allow, log and metrics only. "
                   "A namespace label capacity-webhook/mode overrides it.")
@click.option("--stale-after", type=click.FloatRange(min=0), default=60.0, show_default=True,
              help="Seconds of broken watches after which denies become warnings.")
@click.option("--headroom-nodes", type=click.IntRange(min=0), default=0, show_default=True,
              help="Nodes the cluster may still add (autoscaler headroom): a shortfall they absorb is a warning.")
@click.option("--reservation-ttl", type=click.FloatRange(min=0), default=30.0, show_default=True,
              help="Seconds an admitted workload's placement stays reserved until its pods appear (0: off).")
@click.option("--ledger-namespace", metavar="NAMESPACE",
              help="Live mode: namespace of the shared CapacityLedger object (default: the pod's own namespace, "
                   "else capacity-webhook).")
@click.option("--ledger-name", default="capacity-ledger", show_default=True, metavar="NAME",
              help="Live mode: name of the CapacityLedger object every replica and worker shares.")
@click.option("--ledger-timeout", type=click.FloatRange(min=0.05), default=1.0, show_default=True,
              help="Seconds of ledger reads and writes per review; past that the review is decided on the local "
                   "view and allowed with a warning that its reservation was not recorded.")
@click.option("--ledger-refresh", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Live mode: seconds between re-reads of the ledger that also drop expired and fulfilled promises.")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="gunicorn worker processes. Live mode: reservations are shared through the cluster ledger, so "
                   "several workers are safe. Snapshot mode: each worker keeps its own reservations.")
@click.option("--threads", type=click.IntRange(min=1), default=8, show_default=True,
              help="Ignored (kept so existing deployments start): each worker serves every connection in its own "
                   "greenlet.")
@click.option("--log-level", type=click.Choice(logs.LEVELS), default="info", show_default=True,
              help="Server log level (review lines are always written).")
def serve_command(snapshot, kubeconfig, kube_context, tls_cert_file, tls_private_key_file, bind, port, metrics_port,
                  mode, stale_after, headroom_nodes, reservation_ttl, ledger_namespace, ledger_name, ledger_timeout,
                  ledger_refresh, workers, threads, log_level):
    """Serve the ValidatingAdmissionWebhook at https://BIND:PORT/validate."""
    logs.configure(log_level)
    if snapshot and (kubeconfig or kube_context):
        raise click.UsageError("--cluster serves a snapshot; it cannot be combined with --kubeconfig/--context")
    if metrics_port is not None and workers > 1:
        # The listener lives in the worker next to its state; a second worker could not bind the port.
        raise click.UsageError("--metrics-port needs --workers 1 (each worker has its own metrics)")
    if metrics_port is not None and metrics_port != 0 and metrics_port == port:
        raise click.UsageError(f"--metrics-port {metrics_port} is the HTTPS --port; choose another port")
    _check_tls(tls_cert_file, tls_private_key_file)
    if snapshot:
        holder_factory = _snapshot_factory(snapshot)
    else:
        holder_factory = _live_factory(kubeconfig, kube_context)

    from .app import create_app
    from .gunicorn import WebhookServer, server_options

    def app_factory():
        holder = holder_factory()
        ledger = None
        if not snapshot and reservation_ttl > 0:
            from ..state.ledger_api import ClusterLedger, in_cluster_namespace

            namespace = ledger_namespace or in_cluster_namespace() or "capacity-webhook"
            ledger = ClusterLedger(holder, holder.source.api_client, namespace, ledger_name,
                                   refresh_interval=ledger_refresh).start()
        app = create_app(holder, mode=mode, stale_after=stale_after, reservation_ttl=reservation_ttl,
                         headroom_nodes=headroom_nodes, ledger=ledger, ledger_timeout=ledger_timeout)
        if metrics_port is not None:
            from gunicorn.errors import AppImportError

            from .metrics_port import start_metrics_listener
            try:
                start_metrics_listener(app, bind, metrics_port)
            except OSError as exc:
                # AppImportError: gunicorn's master stops (exit 4) instead of re-spawning the worker forever.
                raise AppImportError(f"--metrics-port {metrics_port}: cannot listen on {bind}: "
                                     f"{exc.strerror or exc}") from None
        return app

    if workers > 1 and snapshot:
        log.warning("--workers %d with --cluster: each worker keeps its own reservations (the in-process ledger); "
                    "two workers can admit the same free slots", workers)
    options = server_options(bind, port, tls_cert_file, tls_private_key_file, workers=workers, threads=threads,
                             log_level=log_level)
    log.info("starting capacity-webhook", extra={"review": {"mode": mode, "source": snapshot or "live",
                                                             "bind": options["bind"][0], "workers": workers,
                                                             "threads": threads}})
    WebhookServer(app_factory, options).run()
