"""The AWS adapter: EC2 ``DescribeInstanceTypes`` answers turned into InstanceLimits.

Two users share this code so they cannot drift apart: the table generator
(``scripts/generate_instance_limits.py``, online against EC2 or offline against moto)
and the live server, which looks up instance types its shipped table lacks. The
caller injects the boto3 EC2 client (region from the node's zone, credentials from the
usual AWS chain): nothing here creates clients, reads the environment or caches.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

from botocore.exceptions import ClientError

from .engine.instance_types import InstanceLimits

EC2_SOURCE = "ec2"
# DescribeInstanceTypes accepts at most 100 names per call and at most 100 results per page.
MAX_NAMES_PER_CALL = 100
PAGE_SIZE = 100


class UnknownInstanceType(LookupError):
    """EC2 does not know one or more of the requested instance types.

    EC2 rejects a whole ``DescribeInstanceTypes`` call when any one name is unknown (in
    that region). ``names`` lists the unknown ones; ``found`` holds the limits of the
    names that did resolve, so a caller that asked for several is not left with nothing.
    """

    def __init__(self, names: Iterable[str], found: Iterable[InstanceLimits] = (), region: str | None = None):
        self.names: tuple[str, ...] = tuple(sorted(set(names)))
        self.found: tuple[InstanceLimits, ...] = tuple(found)
        self.region = region
        where = f" in region {region}" if region else ""
        super().__init__(f"unknown EC2 instance type(s){where}: {', '.join(self.names)}")


def _get(mapping: Mapping[str, Any], *path: str) -> Any:
    value: Any = mapping
    for key in path:
        if not isinstance(value, Mapping):
            return None
        value = value.get(key)
    return value


def default_card_enis(network_info: Mapping[str, Any]) -> int | None:
    """ENIs on the default network card, the only card the VPC CNI attaches pod ENIs to.

    ``NetworkInfo.MaximumNetworkInterfaces`` is the total over all cards (64 on
    p5.48xlarge, whose default card has 2), so it is only the fallback for answers
    without ``NetworkCards`` (single-card types in older API versions).
    """
    index = network_info.get("DefaultNetworkCardIndex", 0) or 0
    for card in network_info.get("NetworkCards") or ():
        if card.get("NetworkCardIndex", 0) == index and card.get("MaximumNetworkInterfaces") is not None:
            return int(card["MaximumNetworkInterfaces"])
    total = network_info.get("MaximumNetworkInterfaces")
    return int(total) if total is not None else None


def limits_from_ec2(info: Mapping[str, Any], source: str = EC2_SOURCE) -> InstanceLimits:
    """One item of ``describe_instance_types()["InstanceTypes"]`` as InstanceLimits.

    EC2 omits ``Hypervisor`` for bare-metal types (there is none), which maps to
    ``"unknown"``; prefix delegation still applies to them through ``bare_metal``.
    """
    name = info.get("InstanceType")
    if not name:
        raise ValueError("DescribeInstanceTypes item has no InstanceType")
    network = info.get("NetworkInfo") or {}
    enis = default_card_enis(network)
    ipv4 = network.get("Ipv4AddressesPerInterface")
    if enis is None or ipv4 is None:
        raise ValueError(f"{name}: DescribeInstanceTypes item lacks NetworkInfo ENI/IPv4 limits")
    hypervisor = str(info.get("Hypervisor") or "unknown").lower()
    if hypervisor not in ("nitro", "xen"):
        hypervisor = "unknown"
    vcpus = _get(info, "VCpuInfo", "DefaultVCpus")
    ebs = _get(info, "EbsInfo", "MaximumEbsAttachments")
    return InstanceLimits(
        name=name,
        enis=enis,
        ipv4_per_eni=int(ipv4),
        hypervisor=hypervisor,
        bare_metal=bool(info.get("BareMetal", False)),
        vcpus=int(vcpus) if vcpus is not None else None,
        ebs_attachments=int(ebs) if ebs is not None else None,
        source=source,
    )


def _is_unknown_type_error(error: ClientError) -> bool:
    code = str(error.response.get("Error", {}).get("Code", ""))
    return code.startswith("InvalidInstanceType")


def _describe(ec2_client: Any, names: list[str] | None) -> list[dict[str, Any]]:
    """All pages of one DescribeInstanceTypes query (moto answers in one page, EC2 in many)."""
    paginator = ec2_client.get_paginator("describe_instance_types")
    kwargs: dict[str, Any] = {}
    if names:
        kwargs["InstanceTypes"] = names
    else:
        kwargs["PaginationConfig"] = {"PageSize": PAGE_SIZE}
    items: list[dict[str, Any]] = []
    for page in paginator.paginate(**kwargs):
        items.extend(page.get("InstanceTypes", []))
    return items


def fetch_instance_limits(ec2_client: Any, names: list[str] | None = None) -> list[InstanceLimits]:
    """Limits of ``names`` (or of every type the client's region offers when ``None``).

    Results come back sorted by name, one per type. If EC2 rejects a batch because some
    name is unknown, the batch is retried name by name to tell the unknown ones from the
    rest, then :class:`UnknownInstanceType` is raised carrying both.
    """
    region = getattr(getattr(ec2_client, "meta", None), "region_name", None)
    by_name: dict[str, InstanceLimits] = {}
    if names is None:
        for item in _describe(ec2_client, None):
            limits = limits_from_ec2(item)
            by_name[limits.name] = limits
        return [by_name[name] for name in sorted(by_name)]

    wanted = sorted({name for name in names if name})
    unknown: list[str] = []
    for start in range(0, len(wanted), MAX_NAMES_PER_CALL):
        batch = wanted[start:start + MAX_NAMES_PER_CALL]
        try:
            items = _describe(ec2_client, batch)
        except ClientError as error:
            if not _is_unknown_type_error(error):
                raise
            items = []
            for name in batch:
                try:
                    items.extend(_describe(ec2_client, [name]))
                except ClientError as single_error:
                    if not _is_unknown_type_error(single_error):
                        raise
                    unknown.append(name)
        for item in items:
            limits = limits_from_ec2(item)
            by_name[limits.name] = limits
    # A name EC2 neither described nor rejected is as unknown as a rejected one.
    unknown.extend(name for name in wanted if name not in by_name and name not in unknown)
    found = [by_name[name] for name in sorted(by_name)]
    if unknown:
        raise UnknownInstanceType(unknown, found=found, region=region)
    return found
