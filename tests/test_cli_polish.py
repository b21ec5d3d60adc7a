"""The command line reads like one tool: help on every option, ``-o`` always the output
format, one spelling of the cluster flags, plain-English errors, singular where it is one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import click
import yaml

from tests import synthetic as s
from webhook.cli import main

ROOT = Path(__file__).resolve().parents[1]


def commands(group: click.Group, prefix=()):
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from commands(command, (*prefix, name))


def run(*args):
    return subprocess.run([sys.executable, "-m", "webhook.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=ROOT, timeout=60)


def test_every_option_has_help_and_o_is_always_a_format():
    names = set()
    for path, command in commands(main):
        names.add(path)
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert param.help, f"{' '.join(path)} {param.opts} has no help text"
                if "-o" in param.opts:
                    assert param.opts == ["-o", "--output"], (path, param.opts)
                    assert "format" in param.help.lower(), (path, param.help)
    assert {("check",), ("report",), ("snapshot",), ("serve",), ("certs",)} <= names


def test_cluster_flags_are_spelled_the_same_everywhere():
    for name in ("check", "report", "snapshot", "serve"):
        opts = {o for p in main.commands[name].params for o in getattr(p, "opts", [])}
        assert {"--kubeconfig", "--context"} <= opts, name
        if name != "snapshot":
            assert "--cluster" in opts, name


def test_errors_are_one_plain_line(tmp_path):
    missing = run("check", "--cluster", tmp_path / "nope.json", "-f", ROOT / "webhook/examples/workloads.yaml")
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"error: {tmp_path / 'nope.json'}: cannot read: no such file or directory"
    unwritable = run("report", "--cluster", ROOT / "webhook/examples/cluster.json", "-o", "html", "--out",
                     tmp_path / "no" / "dir" / "r.html")
    assert unwritable.returncode == 2 and "[Errno" not in unwritable.stderr and "Traceback" not in unwritable.stderr
    assert "cannot write" in unwritable.stderr
    old_habit = run("snapshot", "-o", "snap.json", "--out", tmp_path / "s.json")
    assert old_habit.returncode == 2 and "the file is --out FILE" in old_habit.stderr


def test_one_pod_is_singular(tmp_path):
    snap = tmp_path / "snap.json"
    full = s.two_t3_medium_cluster()
    for node, ip_pods in (("ip-10-0-1-17.ec2.internal", 10), ("ip-10-0-2-23.ec2.internal", 11)):
        full["items"] += [s.pod(f"filler-{node[:9]}-{i}", node_name=node,
                                spec=s.pod_spec([s.container(requests={"cpu": "10m"})])) for i in range(ip_pods)]
    snap.write_text(json.dumps(full))
    manifest = tmp_path / "one.yaml"
    manifest.write_text(yaml.safe_dump(s.small_web("solo", 1)))
    result = run("check", "--cluster", snap, "-f", manifest)
    assert result.returncode == 1
    assert "1 of 1 pod would stay Pending" in result.stdout and "wants 1 pod;" in result.stdout
    assert "1 pods" not in result.stdout and "1 object: 0 allowed" in result.stdout
