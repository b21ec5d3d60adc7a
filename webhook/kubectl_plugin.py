"""``kubectl capacity``: the kubectl plugin (an executable named ``kubectl-capacity``).

kubectl finds any ``kubectl-<name>`` on PATH and runs it with the rest of the command
line, so ``kubectl capacity report`` runs ``kubectl-capacity report``. The package
installs that executable (``[project.scripts]``); its commands are the CLI's own
``report``, ``check`` and ``snapshot``, reading the current kubeconfig context unless
``--context``/``--kubeconfig``/``--cluster`` say otherwise.
"""

from __future__ import annotations

import click

from . import cli


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="capacity-webhook")
def plugin() -> None:
    """Capacity of the current cluster (pod IP slots, kubelet pods, CPU, memory) and manifest checks."""


for _name in ("report", "check", "snapshot"):
    plugin.add_command(cli.main.commands[_name])


def main() -> None:
    plugin(prog_name="kubectl capacity")


if __name__ == "__main__":
    main()
