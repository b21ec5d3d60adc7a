#!/usr/bin/env python3
"""Generate webhook/data/instance_limits.json, the engine's EC2 instance-limits table.

    python scripts/generate_instance_limits.py --offline          # reproducible, no AWS account
    python scripts/generate_instance_limits.py --region us-east-1 # live EC2, your credentials

Sources, merged per type:
  ec2      EC2 DescribeInstanceTypes through webhook.aws.fetch_instance_limits: live with
           the usual AWS credential chain, or with --offline the very same code path run
           against moto's bundled copy of the EC2 data (moto's mock_aws, no network).
  vpc-cni  The AWS VPC CNI's own per-type table (pkg/vpc/vpc_ip_resource_limit.go as JSON,
           --vpc-cni-json). It fills the types EC2/moto lacks.

Precedence (see PRECEDENCE): for the networking fields (enis, ipv4_per_eni, hypervisor,
bare_metal) the VPC CNI's table wins, because it is the table the CNI itself enforces
on the node and the one AWS's official max-pods list (eni-max-pods.txt) is computed
from; EC2 is the only source of vcpus and ebs_attachments. Every disagreement is kept
in the output's "conflicts" list, and the merged table is checked against
eni-max-pods.txt (``ENIs x (IPv4 per ENI - 1) + 2``) before anything is written.

The output is deterministic for a given input (offline mode has no timestamps), one
type per line, so regenerating shows a reviewable diff. Never edit it by hand.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import sys
from pathlib import Path
from typing import Any, Mapping

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from webhook.aws import EC2_SOURCE, fetch_instance_limits  # noqa: E402
from webhook.engine.instance_types import InstanceLimits  # noqa: E402

GENERATED_BY = "scripts/generate_instance_limits.py"
ORACLE_DATA = REPO_ROOT / "tests" / "data"          # vendored AWS files (tests/data/README.md)
DEFAULT_OUTPUT = REPO_ROOT / "webhook" / "data" / "instance_limits.json"
DEFAULT_VPC_CNI_JSON = ORACLE_DATA / "vpc-cni-instance-limits.json"
DEFAULT_ENI_MAX_PODS = ORACLE_DATA / "eni-max-pods.txt"
VPC_CNI_SOURCE = "vpc-cni"

NETWORK_FIELDS = ("enis", "ipv4_per_eni", "hypervisor", "bare_metal")
PRECEDENCE: dict[str, list[str]] = {
    "enis": [VPC_CNI_SOURCE, EC2_SOURCE],
    "ipv4_per_eni": [VPC_CNI_SOURCE, EC2_SOURCE],
    "hypervisor": [VPC_CNI_SOURCE, EC2_SOURCE],
    "bare_metal": [VPC_CNI_SOURCE, EC2_SOURCE],
    "vcpus": [EC2_SOURCE],
    "ebs_attachments": [EC2_SOURCE],
}
PRECEDENCE_NOTE = (
    "First listed source wins per field. The VPC CNI's table wins for networking fields "
    "because the CNI enforces it on the node and AWS's eni-max-pods.txt is computed from it; "
    "EC2 alone supplies vcpus and ebs_attachments (null where only the VPC CNI knows the type). "
    "A type's source is 'ec2+vpc-cni' when EC2 described it but a VPC CNI value overrode EC2's."
)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def max_pods(enis: int, ipv4_per_eni: int) -> int:
    """AWS's max-pods formula: the first IP of each ENI is the ENI's, +2 host-network pods."""
    return enis * (ipv4_per_eni - 1) + 2


# ---------------------------------------------------------------- sources

def fetch_ec2(region: str, offline: bool) -> tuple[list[InstanceLimits], str]:
    """Every type EC2 describes, plus the provenance description of that answer."""
    import boto3

    if not offline:
        client = boto3.client("ec2", region_name=region)
        limits = fetch_instance_limits(client)
        today = datetime.date.today().isoformat()
        return limits, (
            f"EC2 DescribeInstanceTypes, region {region}, boto3 {boto3.__version__}, fetched {today}"
        )

    import moto
    from moto import mock_aws

    with mock_aws():
        # Dummy credentials: offline mode must never pick up (or need) real ones.
        client = boto3.client(
            "ec2",
            region_name=region,
            aws_access_key_id="offline",
            aws_secret_access_key="offline",
            aws_session_token="offline",
        )
        limits = fetch_instance_limits(client)
    return limits, (
        f"EC2 DescribeInstanceTypes as served offline by moto {moto.__version__} "
        f"(its bundled copy of the EC2 data, moto/ec2/resources/instance_types.json.gz), "
        f"region {region}, through webhook.aws.fetch_instance_limits"
    )


def vpc_cni_limits(document: Mapping[str, Any]) -> dict[str, InstanceLimits]:
    """The VPC CNI's per-type limits. ENILimit is already the default card's count."""
    result: dict[str, InstanceLimits] = {}
    for name, entry in document["instanceTypes"].items():
        result[name] = InstanceLimits(
            name=name,
            enis=int(entry["ENILimit"]),
            ipv4_per_eni=int(entry["IPv4Limit"]),
            hypervisor=entry.get("HypervisorType") or "unknown",
            bare_metal=bool(entry.get("IsBareMetal", False)),
            vcpus=None,
            ebs_attachments=None,
            source=VPC_CNI_SOURCE,
        )
    return result


def read_eni_max_pods(path: Path) -> dict[str, int]:
    table: dict[str, int] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, value = line.split()
        table[name] = int(value)
    return table


# ---------------------------------------------------------------- merge

def merge(
    ec2: Mapping[str, InstanceLimits], cni: Mapping[str, InstanceLimits]
) -> tuple[dict[str, InstanceLimits], list[dict[str, Any]]]:
    """Merge per PRECEDENCE; return the table and one conflict record per differing field."""
    merged: dict[str, InstanceLimits] = {}
    conflicts: list[dict[str, Any]] = []
    for name in sorted(set(ec2) | set(cni)):
        from_ec2, from_cni = ec2.get(name), cni.get(name)
        if from_ec2 is None:
            merged[name] = from_cni
            continue
        if from_cni is None:
            merged[name] = from_ec2
            continue
        fields = from_ec2.to_dict()
        overridden = False
        for field in NETWORK_FIELDS:
            ec2_value, cni_value = getattr(from_ec2, field), getattr(from_cni, field)
            if ec2_value == cni_value:
                continue
            winner = PRECEDENCE[field][0]
            fields[field] = cni_value if winner == VPC_CNI_SOURCE else ec2_value
            overridden = overridden or winner == VPC_CNI_SOURCE
            record: dict[str, Any] = {
                "type": name,
                "field": field,
                EC2_SOURCE: ec2_value,
                VPC_CNI_SOURCE: cni_value,
                "chosen": winner,
            }
            if field in ("enis", "ipv4_per_eni"):
                record["max_pods"] = {
                    EC2_SOURCE: max_pods(from_ec2.enis, from_ec2.ipv4_per_eni),
                    VPC_CNI_SOURCE: max_pods(from_cni.enis, from_cni.ipv4_per_eni),
                }
            conflicts.append(record)
        fields["source"] = f"{EC2_SOURCE}+{VPC_CNI_SOURCE}" if overridden else EC2_SOURCE
        merged[name] = InstanceLimits.from_dict(name, fields)
    return merged, conflicts


def check_against_official(merged: Mapping[str, InstanceLimits], official: Mapping[str, int]) -> list[str]:
    """Problems with the merged table against AWS's eni-max-pods.txt (empty when clean)."""
    problems = []
    for name, expected in sorted(official.items()):
        limits = merged.get(name)
        if limits is None:
            problems.append(f"{name}: missing (official max pods {expected})")
        elif max_pods(limits.enis, limits.ipv4_per_eni) != expected:
            got = max_pods(limits.enis, limits.ipv4_per_eni)
            problems.append(f"{name}: max pods {got} from {limits.source}, official {expected}")
    return problems


def build_document(
    ec2_limits: list[InstanceLimits],
    ec2_description: str,
    vpc_cni_document: Mapping[str, Any],
    vpc_cni_path: Path,
    official: Mapping[str, int],
    official_path: Path,
) -> dict[str, Any]:
    ec2 = {limits.name: limits for limits in ec2_limits}
    cni = vpc_cni_limits(vpc_cni_document)
    merged, conflicts = merge(ec2, cni)
    problems = check_against_official(merged, official)
    if problems:
        raise SystemExit(
            f"merged table disagrees with {official_path.name} for {len(problems)} type(s):\n  "
            + "\n  ".join(problems[:50])
        )
    counts: dict[str, int] = {}
    for limits in merged.values():
        counts[limits.source] = counts.get(limits.source, 0) + 1
    return {
        "generated_by": GENERATED_BY,
        "sources": {
            EC2_SOURCE: ec2_description,
            VPC_CNI_SOURCE: (
                f"{vpc_cni_document.get('source', 'aws/amazon-vpc-cni-k8s instance limits')}; "
                f"read from {vpc_cni_path.name} (sha256 {_sha256(vpc_cni_path)[:16]})"
            ),
        },
        "checked_against": (
            f"{official_path.name} (sha256 {_sha256(official_path)[:16]}): for all {len(official)} types "
            "ENIs x (IPv4 per ENI - 1) + 2 equals the official max pods"
        ),
        "precedence": PRECEDENCE,
        "precedence_note": PRECEDENCE_NOTE,
        "counts": dict(sorted(counts.items())),
        "conflicts": conflicts,
        "types": {name: merged[name].to_dict() for name in sorted(merged)},
    }


# ---------------------------------------------------------------- output

def render(document: Mapping[str, Any]) -> str:
    """JSON with one entry per line for every top-level mapping or list (one type a line)."""
    lines = ["{"]
    keys = list(document)
    for position, key in enumerate(keys):
        value = document[key]
        comma = "," if position < len(keys) - 1 else ""
        head = f"  {json.dumps(key)}: "
        if isinstance(value, Mapping) and value:
            lines.append(head + "{")
            items = list(value.items())
            for index, (sub_key, sub_value) in enumerate(items):
                sep = "," if index < len(items) - 1 else ""
                lines.append(f"    {json.dumps(sub_key)}: {json.dumps(sub_value)}{sep}")
            lines.append("  }" + comma)
        elif isinstance(value, list) and value:
            lines.append(head + "[")
            for index, item in enumerate(value):
                sep = "," if index < len(value) - 1 else ""
                lines.append(f"    {json.dumps(item)}{sep}")
            lines.append("  ]" + comma)
        else:
            lines.append(head + json.dumps(value) + comma)
    lines.append("}")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--region", default="us-east-1", help="EC2 region to describe (default us-east-1)")
    parser.add_argument(
        "--offline", action="store_true",
        help="describe instance types against moto's bundled EC2 data instead of AWS (no credentials, no network)",
    )
    parser.add_argument("--vpc-cni-json", type=Path, default=DEFAULT_VPC_CNI_JSON,
                        help=f"VPC CNI per-type limits as JSON (default {DEFAULT_VPC_CNI_JSON})")
    parser.add_argument(
        "--eni-max-pods",
        type=Path,
        default=DEFAULT_ENI_MAX_PODS,
        help=f"AWS's official max-pods table to check the result against (default {DEFAULT_ENI_MAX_PODS})",
    )
    parser.add_argument("-o", "--output", type=Path, default=DEFAULT_OUTPUT,
                        help=f"where to write the table (default {DEFAULT_OUTPUT}); '-' for stdout")
    args = parser.parse_args(argv)

    for label, path in (("--vpc-cni-json", args.vpc_cni_json), ("--eni-max-pods", args.eni_max_pods)):
        if not path.is_file():
            parser.error(f"{label}: {path} not found (vendored in tests/data, see tests/data/README.md)")

    vpc_cni_document = json.loads(args.vpc_cni_json.read_text(encoding="utf-8"))
    official = read_eni_max_pods(args.eni_max_pods)
    ec2_limits, ec2_description = fetch_ec2(args.region, args.offline)
    document = build_document(
        ec2_limits, ec2_description, vpc_cni_document, args.vpc_cni_json, official, args.eni_max_pods
    )
    text = render(document)
    if str(args.output) == "-":
        sys.stdout.write(text)
    else:
        args.output.parent.mkdir(parents=True, exist_ok=True)
        args.output.write_text(text, encoding="utf-8")
    summary = ", ".join(f"{count} {source}" for source, count in document["counts"].items())
    print(
        f"{len(document['types'])} types ({summary}), {len(document['conflicts'])} conflict(s)"
        + ("" if str(args.output) == "-" else f" -> {args.output}"),
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
