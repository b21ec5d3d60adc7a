"""``capacity-webhook certs``: make the CA + serving certificate for the webhook.

Registered on the main CLI by the lead (``webhook.cli``); runnable alone as
``python -c "from certs.cli import certs_command; certs_command()" ...``.

stdout: the written paths, then the base64 caBundle alone on the last line,
so ``capacity-webhook certs ... | tail -1`` gives the value for the
ValidatingWebhookConfiguration.  Errors: one line on stderr, exit code 2.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import click

from .authority import (
    DEFAULT_DAYS,
    CertError,
    write_bundle,
)

__all__ = ["certs_command"]


class _CertsFailure(click.ClickException):
    """Printed as a single ``Error: ...`` line on stderr; exit code 2."""

    exit_code = 2


class _OneLineErrorCommand(click.Command):
    """Report click's own parse errors (missing --out, --days abc) as one
    line too, instead of click's usage block."""

    def parse_args(self, ctx, args):
        try:
            return super().parse_args(ctx, args)
        except click.UsageError as e:
            raise _CertsFailure(
                f"{e.format_message()} (see 'certs --help')"
            ) from None


@click.command(
    "certs",
    cls=_OneLineErrorCommand,
    epilog=(
        "ca.key is written so that the serving certificate can be renewed from "
        "the same CA; in production keep it elsewhere or delete it."
    ),
)
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, dir_okay=True, path_type=Path),
    help="Directory for ca.crt, ca.key, tls.crt and tls.key (created if missing).",
)
@click.option(
    "--dns",
    "dns_names",
    multiple=True,
    metavar="NAME",
    help="DNS SAN, repeatable; the first is the CN "
    "(e.g. capacity-webhook.kube-system.svc).",
)
@click.option("--ip", "ip_addresses", multiple=True, metavar="IP", help="IP SAN, repeatable.")
@click.option(
    "--days",
    type=int,
    default=DEFAULT_DAYS,
    show_default=True,
    help="Validity of the serving certificate in days.",
)
@click.option(
    "--force", is_flag=True, help="Overwrite existing ca.crt/ca.key/tls.crt/tls.key."
)
def certs_command(out_dir: Path, dns_names, ip_addresses, days: int, force: bool) -> None:
    """Create a CA and a serving certificate for the webhook's HTTPS endpoint."""
    if not dns_names and not ip_addresses:
        raise _CertsFailure("give at least one --dns NAME or --ip IP")
    try:
        bundle = write_bundle(out_dir, list(dns_names), list(ip_addresses), days=days, force=force)
    except CertError as e:
        raise _CertsFailure(str(e)) from None
    except OSError as e:  # anything the library did not wrap
        raise _CertsFailure(f"cannot write certificates to {out_dir}: {e}") from None
    click.echo(f"ca.crt:   {bundle.ca_cert}")
    click.echo(f"ca.key:   {bundle.ca_key}  (keep elsewhere or delete in production)")
    click.echo(f"tls.crt:  {bundle.tls_cert}")
    click.echo(f"tls.key:  {bundle.tls_key}")
    click.echo(f"expires:  {bundle.not_valid_after:%Y-%m-%dT%H:%M:%SZ}")
    click.echo("caBundle:")
    click.echo(bundle.ca_bundle)
    warning = _unignored_key_warning(Path(bundle.ca_key))
    if warning:
        click.echo(f"warning: {warning}", err=True)


def _unignored_key_warning(key: Path) -> str | None:
    """A private key in a git work tree that .gitignore does not cover is one ``git add .`` from a leak."""
    folder = key.parent.resolve()
    try:
        top = subprocess.run(["git", "-C", str(folder), "rev-parse", "--show-toplevel"], capture_output=True,
                             text=True, timeout=10, check=False)
        if top.returncode != 0:
            return None                                   # not in a git work tree
        ignored = subprocess.run(["git", "-C", str(folder), "check-ignore", "-q", str(key.resolve())],
                                 capture_output=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None                                       # no git: nothing to check against
    if ignored.returncode == 0:
        return None
    return (f"{key} is inside the git repository {top.stdout.strip()} and not ignored: add "
            f"'{folder.name}/' to .gitignore, or write the certificates outside the repository "
            "(--out ~/capacity-webhook-tls)")
