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
from .manifests import InputError

CLUSTER_HELP = "Snapshot file (kind: List as 'kubectl get ... -o json' prints); without it, the live cluster."
KUBECONFIG_HELP = "Kubeconfig for the live cluster (default: $KUBECONFIG, ~/.kube/config, then in-cluster)."
CONTEXT_HELP = "Kubeconfig context for the live cluster (default: the current context)."


def _source_options(command):
    """--cluster / --kubeconfig / --context, spelled the same on every command that reads a cluster."""
    command = click.option("--context", metavar="NAME", help=CONTEXT_HELP)(command)
    command = click.option("--kubeconfig", metavar="FILE", help=KUBECONFIG_HELP)(command)
    return click.option("--cluster", "cluster", metavar="SNAPSHOT", envvar="CAPACITY_WEBHOOK_CLUSTER",
                        show_envvar=True, help=CLUSTER_HELP)(command)


def _state(cluster: str | None, kubeconfig: str | None, context: str | None):
    return _state_and_origin(cluster, kubeconfig, context)[0]


def _state_and_origin(cluster: str | None, kubeconfig: str | None, context: str | None):
    """The cluster state, and where and when it was read (for the report's header)."""
    import datetime

    try:
        if cluster:
            from .state.snapshot import load_snapshot

            state = load_snapshot(cluster)
            try:
                taken = datetime.datetime.fromtimestamp(Path(cluster).stat().st_mtime, datetime.timezone.utc)
            except OSError:
                taken = None
            return state, {"source": f"snapshot {cluster}", "time": taken, "time_label": "file written"}
        from .state.live import live_holder  # the live source: list once, then read

        holder = live_holder(kubeconfig=kubeconfig, context=context, wait=True)
        holder.stop()
        where = f"live cluster, context {context}" if context else "live cluster, current context"
        return holder.state, {"source": where, "time": datetime.datetime.now(datetime.timezone.utc),
                              "time_label": "listed"}
    except InputError as exc:
        raise click.ClickException(str(exc)) from None


def _internal_error(exc: BaseException) -> str:
    """One line for a bug in capacity-webhook itself (the input may be fine: please report it)."""
    import traceback

    frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    where = f" at {Path(frame.filename).name}:{frame.lineno}" if frame else ""
    detail = " ".join(str(exc).split())[:200]
    return f"internal error in capacity-webhook ({type(exc).__name__}{where}: {detail}); please report it"


class _Exit2(click.ClickException):
    exit_code = 2

    def show(self, file=None):
        click.echo(f"error: {self.message}", err=True)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="capacity-webhook")
def main() -> None:
    """Capacity-aware admission control for Kubernetes on AWS."""


def _codes(ctx, param, values) -> frozenset[str]:
    from .policy import parse_codes

    return frozenset(code for value in values for code in parse_codes(value))


def _selector(ctx, param, value) -> dict | None:
    from .policy import parse_selector

    if value is None:
        return None
    try:
        return parse_selector(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@main.command()
@_source_options
@click.argument("files", nargs=-1, type=click.Path(dir_okay=True), metavar="[FILE]...")
@click.option("-f", "--filename", "paths", multiple=True, metavar="PATH",
              help="Manifest file, folder (recursive *.yaml/*.yml/*.json) or - for stdin. Repeatable.")
@click.option("--exclude", "exclude", multiple=True, metavar="PATTERN",
              help="Skip files in folders whose path, name or folder matches this glob (e.g. 'charts', "
                   "'*-test.yaml'). Repeatable. Kind-less files in folders (Chart.yaml, kustomization.yaml) are "
                   "always skipped.")
@click.option("--mode", type=click.Choice(MODES), default="enforce", show_default=True,
              help="The webhook's mode (chart value 'mode'): enforce denies, warn allows with warnings, audit only "
                   "records. A namespace label capacity-webhook/mode overrides it, as in the cluster.")
@click.option("--headroom-nodes", type=click.IntRange(min=0), default=None, metavar="N",
              help="Nodes the cluster may still add (chart value 'headroomNodes'): a shortfall they absorb is a "
                   "warning.")
@click.option("--exclude-namespace", "excluded_namespaces", multiple=True, metavar="NAMESPACE",
              help="Namespace the webhook never sees (chart value 'webhook.excludedNamespaces' plus the release "
                   "namespace). Repeatable; replaces the default kube-system. Namespaces labelled "
                   "capacity-webhook/ignore are always excluded.")
@click.option("--namespace-selector", "namespace_selector", callback=_selector, metavar="SELECTOR",
              help="The chart value 'webhook.namespaceSelector' in kubectl's -l syntax (e.g. 'team in (a,b),"
                   "!capacity-webhook/ignore'): objects in namespaces it does not match are not checked. Replaces "
                   "the selector made of the excluded namespaces, as the chart value does.")
@click.option("--object-selector", "object_selector", callback=_selector, metavar="SELECTOR",
              help="The chart value 'webhook.objectSelector' in kubectl's -l syntax: objects whose labels do not "
                   "match it are not checked.")
@click.option("--chart-values", "chart_values", multiple=True, metavar="FILE",
              help="The chart's values file(s) your release uses (later files win, as helm -f): mode, headroomNodes, "
                   "webhook.excludedNamespaces, webhook.namespaceSelector and webhook.objectSelector from there. "
                   "Flags given on the command line win.")
@click.option("--release-namespace", metavar="NAMESPACE",
              help="The namespace the chart is installed in; the chart excludes it from the webhook too.")
@click.option("--ignore", "ignore", multiple=True, callback=_codes, metavar="CODE",
              help="Drop this reason code from every verdict (comma-separated or repeatable). One object: "
                   "annotate it capacity-webhook/ignore: CODE1,CODE2.")
@click.option("-o", "--output", type=click.Choice(["text", "json", "junit", "sarif", "policyreport"]),
              default="text", show_default=True,
              help="Output format: a table, JSON, JUnit XML, SARIF 2.1.0, or wg-policy PolicyReport YAML.")
@click.option("--fail-on", type=click.Choice(["deny", "warn", "never"]), default="deny", show_default=True,
              help="Exit 1 when an object is denied (or also warned); 'never' always exits 0.")
def check(files, cluster, kubeconfig, context, paths, exclude, mode, headroom_nodes, excluded_namespaces,
          namespace_selector, object_selector, chart_values, release_namespace, ignore, output, fail_on):
    """Dry-run manifests against a cluster snapshot (or the live cluster), as CI does.

    FILE arguments (as pre-commit passes changed files) are read like folder contents:
    YAML that is not a Kubernetes object, and the --cluster snapshot itself, are skipped.
    """
    if not paths and not files:
        raise click.UsageError("give manifests with -f PATH (file, folder or -) or as FILE arguments")
    from .check import check_manifests, options_for, would_fail
    from .manifests import load_manifests
    from .output import FORMATS

    ctx = click.get_current_context()
    explicit_mode = ctx.get_parameter_source("mode") not in (click.core.ParameterSource.DEFAULT, None)
    try:
        chart = _chart_settings(chart_values)
        loaded = load_manifests(paths, exclude, lenient=files,
                                not_manifests=[*([cluster] if cluster else []), *chart_values])
        state = _state(cluster, kubeconfig, context)
    except (InputError, click.ClickException) as exc:
        raise _Exit2(str(exc.message if isinstance(exc, click.ClickException) else exc)) from None
    if namespace_selector and excluded_namespaces:
        raise _Exit2("give --namespace-selector or --exclude-namespace, not both: the selector replaces the "
                     "excluded namespaces, as webhook.namespaceSelector does in the chart")
    if not explicit_mode and chart.mode:
        mode = chart.mode
    headroom = headroom_nodes if headroom_nodes is not None else chart.headroom_nodes
    if headroom is not None:
        state.headroom_nodes = headroom
    options = options_for(chart, mode=mode, ignore=ignore, excluded_namespaces=excluded_namespaces,
                          namespace_selector=namespace_selector, object_selector=object_selector,
                          release_namespace=release_namespace)
    try:
        results = list(check_manifests(state, loaded.objects, options))
        text = FORMATS[output](results, fail_on)
    except InputError as exc:
        raise _Exit2(str(exc)) from None
    except Exception as exc:  # noqa: BLE001 - a bug: one line and exit 2, never a traceback
        raise _Exit2(_internal_error(exc)) from None
    click.echo(text, nl=False)
    for skipped in loaded.skipped:
        click.echo(f"note: skipped {skipped}", err=True)
    for skipped in state.skipped:
        click.echo(f"warning: snapshot object skipped: {skipped}", err=True)
    if would_fail(results, fail_on):
        sys.exit(1)


def _chart_settings(paths):
    """Chart values files merged as helm merges -f files (later wins; maps merge, lists replace)."""
    import yaml

    from .manifests import read_text
    from .policy import ChartSettings, chart_settings

    def merge(base: dict, top: dict) -> dict:
        out = dict(base)
        for key, value in top.items():
            out[key] = merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
        return out

    merged: dict = {}
    for path in paths:
        try:
            values = yaml.safe_load(read_text(path))
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise InputError(f"{path}{f':{mark.line + 1}' if mark else ''}: invalid YAML") from None
        if values is not None and not isinstance(values, dict):
            raise InputError(f"{path}: chart values must be a mapping")
        merged = merge(merged, values or {})
    if not paths:
        return ChartSettings()
    try:
        return chart_settings(merged, ", ".join(paths))
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _write(path: str, text: str) -> None:
    try:
        Path(path).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise _Exit2(f"cannot write {path}: {exc.strerror or 'write failed'}") from None


@main.command()
@_source_options
@click.option("-o", "--output", type=click.Choice(["text", "html", "json"]), default="text", show_default=True,
              help="Output format: a table, an HTML page (a grid of nodes, tightest first), or JSON.")
@click.option("--out", "out_file", metavar="FILE", help="Write the output to FILE instead of stdout.")
@click.option("--html", "html_file", metavar="FILE",
              help="Also write the HTML page to FILE (with the table on stdout).")
def report(cluster, kubeconfig, context, output, out_file, html_file):
    """Per-node pod IP slots, kubelet pod slots, CPU and memory left, with totals."""
    from . import report as reporting

    try:
        state, origin = _state_and_origin(cluster, kubeconfig, context)
    except click.ClickException as exc:
        raise _Exit2(exc.message) from None
    render = {"text": lambda: reporting.to_text(state), "json": lambda: reporting.to_json(state, origin),
              "html": lambda: reporting.to_html(state, origin=origin)}[output]
    if out_file:
        _write(out_file, render())
        click.echo(f"wrote {out_file}", err=True)
    else:
        click.echo(render(), nl=False)
    if html_file:
        _write(html_file, reporting.to_html(state, origin=origin))
        click.echo(f"wrote {html_file}", err=True)


def _snapshot_format(ctx, param, value: str) -> str:
    if value != "json":
        hint = " (the file is --out FILE)" if "." in value or "/" in value else ""
        raise click.BadParameter(f"{value!r}: the only output format is json{hint}", ctx=ctx, param=param)
    return value


@main.command()
@click.option("--kubeconfig", metavar="FILE", help=KUBECONFIG_HELP)
@click.option("--context", metavar="NAME", help=CONTEXT_HELP)
@click.option("--out", "out", required=True, metavar="FILE",
              help="Where to write the snapshot (the 'check --cluster' format).")
@click.option("-o", "--output", default="json", show_default=True, callback=_snapshot_format, metavar="json",
              help="Output format: JSON kind: List, as 'kubectl get ... -o json' prints.")
@click.option("--aws", "aws", is_flag=True,
              help="Also record the nodes' subnets and ENIs from EC2 (DescribeInstances, DescribeSubnets; "
                   "boto3 credentials) so 'check' judges subnet room.")
def snapshot(kubeconfig, context, out, output, aws):
    """Record the live cluster's state in the format 'check --cluster' reads."""
    from .state.record import record_snapshot

    try:
        count = record_snapshot(out, kubeconfig=kubeconfig, context=context, aws=aws)
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
