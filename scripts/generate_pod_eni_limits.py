#!/usr/bin/env python3
"""Generate webhook/data/pod_eni_limits.json: branch ENIs per instance type (security groups for pods).

    python scripts/generate_pod_eni_limits.py --limits-go PATH/TO/limits.go --commit SHA

The only published source of how many branch ENIs (``vpc.amazonaws.com/pod-eni``) a type
can carry is the VPC resource controller's generated table, aws/amazon-vpc-resource-controller-k8s
``pkg/aws/vpc/limits.go`` (EC2 does not expose it; Karpenter reads the same file). This
script keeps exactly two of its fields per type, ``IsTrunkingCompatible`` and
``BranchInterface``, and records the commit and the file's sha256 so the table can be
checked and refreshed. A type listed with 0 is known and cannot trunk; a type that is
absent is unknown. Never edit the output by hand.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUTPUT = REPO_ROOT / "webhook" / "data" / "pod_eni_limits.json"
ENTRY = re.compile(r'^\t"(?P<name>[^"]+)": \{$')
FIELD = re.compile(r"^\t\t(?P<key>IsTrunkingCompatible|BranchInterface):\s+(?P<value>\S+),$")


def parse_limits_go(text: str) -> dict[str, int]:
    """``{type: branch ENIs}`` (0 for types that cannot trunk) from limits.go's ``Limits`` map."""
    table: dict[str, int] = {}
    name = None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        match = ENTRY.match(line)
        if match:
            name, fields = match.group("name"), {}
            continue
        match = FIELD.match(line)
        if match and name:
            fields[match.group("key")] = match.group("value")
            if len(fields) == 2:
                trunk = fields["IsTrunkingCompatible"] == "true"
                table[name] = int(fields["BranchInterface"]) if trunk else 0
                name = None
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limits-go", required=True, type=Path)
    parser.add_argument("--commit", required=True, help="commit of amazon-vpc-resource-controller-k8s read")
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT)
    args = parser.parse_args(argv)
    raw = args.limits_go.read_bytes()
    text = raw.decode("utf-8")
    table = parse_limits_go(text)
    entries = text.count("IsTrunkingCompatible:")
    if len(table) != entries or not table:
        print(f"parsed {len(table)} types but the file has {entries} entries: format changed?", file=sys.stderr)
        return 1
    stamp = re.search(r"This file was generated at (\S+)", text)
    header = {
        "generated_by": "scripts/generate_pod_eni_limits.py",
        "source": (f"aws/amazon-vpc-resource-controller-k8s pkg/aws/vpc/limits.go at commit {args.commit} "
                   f"(generated upstream {stamp.group(1) if stamp else 'at an unknown time'}), Apache-2.0; "
                   f"sha256 {hashlib.sha256(raw).hexdigest()[:16]}"),
        "fields": "branch ENIs per type: BranchInterface where IsTrunkingCompatible is true, else 0 (cannot trunk)",
        "counts": {"types": len(table), "trunking": sum(1 for v in table.values() if v > 0)},
    }
    lines = ["{"] + [f'  {json.dumps(k)}: {json.dumps(v)},' for k, v in header.items()]
    lines.append('  "types": {')
    names = sorted(table)
    lines += [f'    {json.dumps(n)}: {table[n]}{"," if i < len(names) - 1 else ""}' for i, n in enumerate(names)]
    lines += ["  }", "}"]
    args.output.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {len(table)} types ({header['counts']['trunking']} can trunk) to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
