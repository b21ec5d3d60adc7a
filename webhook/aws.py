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
from .engine.network import AWS_DATA_API as _NETWORK_API

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


# ---- subnets and instances: the figures subnet room is judged on ---------------------------
# Both become plain data objects (kind EC2Subnet / EC2Instance, apiVersion AWS_DATA_API) that
# ``ClusterState.apply`` reads like any Kubernetes object: ``snapshot --aws`` writes them into
# the snapshot, the live refresher (webhook.state.live_aws) swaps them in every minute.

AWS_DATA_API = _NETWORK_API
INSTANCE_IDS_PER_CALL = 200      # DescribeInstances filter values: keep each call well under EC2's limits


def subnet_object(item: Mapping[str, Any], observed_at: str | None = None) -> dict[str, Any]:
    """One ``describe_subnets()["Subnets"]`` item as an EC2Subnet data object."""
    return {"apiVersion": AWS_DATA_API, "kind": "EC2Subnet", "metadata": {"name": item["SubnetId"]},
            "spec": {"availabilityZone": item.get("AvailabilityZone"), "cidrBlock": item.get("CidrBlock"),
                     "availableIpAddressCount": int(item.get("AvailableIpAddressCount", 0)),
                     "vpcId": item.get("VpcId"), "observedAt": observed_at}}


def instance_object(item: Mapping[str, Any]) -> dict[str, Any]:
    """One DescribeInstances instance as an EC2Instance data object: the primary subnet and,
    per ENI, how many secondary IPv4 addresses and /28 prefixes it holds."""
    interfaces = []
    for eni in item.get("NetworkInterfaces") or ():
        attachment = eni.get("Attachment") or {}
        addresses = eni.get("PrivateIpAddresses") or ()
        interfaces.append({
            "id": eni.get("NetworkInterfaceId"), "subnetId": eni.get("SubnetId"),
            "deviceIndex": int(attachment.get("DeviceIndex", 0) or 0),
            "networkCardIndex": int(attachment.get("NetworkCardIndex", 0) or 0),
            "interfaceType": eni.get("InterfaceType") or "interface",
            "secondaryIPv4": sum(1 for a in addresses if not a.get("Primary")),
            "ipv4Prefixes": len(eni.get("Ipv4Prefixes") or ()),
        })
    return {"apiVersion": AWS_DATA_API, "kind": "EC2Instance", "metadata": {"name": item["InstanceId"]},
            "spec": {"subnetId": item.get("SubnetId"),
                     "availabilityZone": (item.get("Placement") or {}).get("AvailabilityZone"),
                     "instanceType": item.get("InstanceType"), "networkInterfaces": interfaces}}


def describe_subnets(ec2_client: Any, subnet_ids: Iterable[str], observed_at: str | None = None) -> list[dict]:
    """EC2Subnet objects for ``subnet_ids`` (a subnet EC2 no longer knows is left out)."""
    wanted = sorted({s for s in subnet_ids if s})
    if not wanted:
        return []
    try:
        pages = ec2_client.get_paginator("describe_subnets").paginate(Filters=[{"Name": "subnet-id", "Values": wanted}])
        return [subnet_object(item, observed_at) for page in pages for item in page.get("Subnets", [])]
    except ClientError as error:
        if "NotFound" not in str(error.response.get("Error", {}).get("Code", "")):
            raise
        return []


def describe_instances(ec2_client: Any, instance_ids: Iterable[str]) -> list[dict]:
    """EC2Instance objects for ``instance_ids`` (terminated or unknown ones are left out)."""
    wanted = sorted({i for i in instance_ids if i})
    found: list[dict] = []
    paginator = ec2_client.get_paginator("describe_instances")
    for start in range(0, len(wanted), INSTANCE_IDS_PER_CALL):
        batch = wanted[start:start + INSTANCE_IDS_PER_CALL]
        for page in paginator.paginate(Filters=[{"Name": "instance-id", "Values": batch}]):
            for reservation in page.get("Reservations", []):
                found.extend(instance_object(item) for item in reservation.get("Instances", [])
                             if (item.get("State") or {}).get("Name") != "terminated")
    return found
