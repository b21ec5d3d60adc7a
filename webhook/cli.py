"""The ``capacity-webhook`` command line: check, report, snapshot, serve, certs, selftest.

Every command is a thin adapter: it reads input, builds a ClusterState through a state
source, calls the engine and formats the answer. Bad input is one clear line on stderr
and exit code 2; ``check`` exits 1 when something is denied.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .engine.verdict import MODES
from .manifests import InputError, load_objects

CLUSTER_HELP = "Snapshot file (kind: List as 'kubectl get ... -o json' prints); without it, the live cluster."


def _state(cluster: str | None, kubeconfig: str | None, context: str | None):
    try:
        if cluster:
            from .state.snapshot import load_snapshot

            return load_snapshot(cluster)
        from .state.live import live_holder  # the live source: list once, then read

        holder = live_holder(kubeconfig=kubeconfig, context=context, wait=True)
        holder.stop()
        return holder.state
    except InputError as exc:
        raise click.ClickException(str(exc)) from None


class _Exit2(click.ClickException):
    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="capacity-webhook")
def main() -> None:
    """Capacity-aware admission control for Kubernetes on AWS."""


@main.command()
@click.option("--cluster", "cluster", metavar="SNAPSHOT", help=CLUSTER_HELP)
@click.option("--kubeconfig", help="Kubeconfig for the live cluster.")
@click.option("--context", help="Kubeconfig context for the live cluster.")
@click.option("-f", "--filename", "paths", multiple=True, required=True,
              help="Manifest file, folder (recursive *.yaml/*.yml/*.json) or - for stdin. Repeatable.")
@click.option("--mode", type=click.Choice(MODES), default="enforce", show_default=True)
@click.option("-o", "--output", type=click.Choice(["text", "json", "junit", "sarif"]), default="text", show_default=True)
@click.option("--fail-on", type=click.Choice(["deny", "warn", "never"]), default="deny", show_default=True,
              help="Exit 1 when an object is denied (or also warned); 'never' always exits 0.")
def check(cluster, kubeconfig, context, paths, mode, output, fail_on):
    """Dry-run manifests against a cluster snapshot (or the live cluster), as CI does."""
    from .check import check_objects
    from .output import FORMATS

    try:
        objects = load_objects(paths)
        state = _state(cluster, kubeconfig, context)
    except (InputError, click.ClickException) as exc:
        raise _Exit2(str(exc.message if isinstance(exc, click.ClickException) else exc)) from None
    pairs = list(check_objects(state, objects, mode))
    results = [v for _, v in pairs]
    click.echo(FORMATS[output](results, [s for s, _ in pairs]), nl=False)
    for skipped in state.skipped:
        click.echo(f"warning: snapshot object skipped: {skipped}", err=True)
    verdicts = {r.verdict for r in results}
    if fail_on != "never" and ("deny" in verdicts or (fail_on == "warn" and "warn" in verdicts)):
        sys.exit(1)


@main.command()
@click.option("--cluster", "cluster", metavar="SNAPSHOT", help=CLUSTER_HELP)
@click.option("--kubeconfig", help="Kubeconfig for the live cluster.")
@click.option("--context", help="Kubeconfig context for the live cluster.")
@click.option("--html", "html_file", type=click.Path(dir_okay=False, writable=True),
              help="Also write an HTML page with a bar chart per node.")
def report(cluster, kubeconfig, context, html_file):
    """Per-node pod IP slots, kubelet pod slots, CPU and memory left, with totals."""
    from . import report as reporting

    try:
        state = _state(cluster, kubeconfig, context)
    except click.ClickException as exc:
        raise _Exit2(exc.message) from None
    click.echo(reporting.to_text(state), nl=False)
    if html_file:
        Path(html_file).write_text(reporting.to_html(state), encoding="utf-8")
        click.echo(f"wrote {html_file}", err=True)


@main.command()
@click.option("--kubeconfig", help="Kubeconfig (default: in-cluster config, then ~/.kube/config).")
@click.option("--context", help="Kubeconfig context.")
@click.option("-o", "--output", "out", required=True, type=click.Path(dir_okay=False),
              help="Where to write the snapshot (JSON kind: List, the 'check --cluster' format).")
def snapshot(kubeconfig, context, out):
    """Record the live cluster's state in the format 'check --cluster' reads."""
    from .state.record import record_snapshot

    try:
        count = record_snapshot(out, kubeconfig=kubeconfig, context=context)
    except Exception as exc:  # noqa: BLE001 - any client failure is one clear line for the user
        raise _Exit2(f"cannot record snapshot: {exc}") from None
    click.echo(f"wrote {count} objects to {out}", err=True)


def _register_optional_commands() -> None:
    """Commands whose modules live beside the CLI (server, certificates, self-test)."""
    for module, attr in (("webhook.server.cli", "serve_command"), ("certs.cli", "certs_command"),
                         ("webhook.selftest", "selftest_command")):
        try:
            command = getattr(__import__(module, fromlist=[attr]), attr)
        except (ImportError, AttributeError):
            continue
        main.add_command(command)


_register_optional_commands()

if __name__ == "__main__":
    main()
