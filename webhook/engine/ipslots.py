"""Pod IP slots under the AWS VPC CNI.

Every pod that is not host-network takes one VPC IP from an ENI attached to its node.
A node holds ``ENIs x (IPv4 per ENI - 1)`` such pods in secondary-IP mode (the first IP
of each ENI is the ENI's own). With prefix delegation each of those slots is a /28
prefix of 16 IPs, on Nitro and bare-metal types only (Xen types keep secondary IPs).
Custom networking keeps the primary ENI for the node, so one ENI fewer serves pods.
Only the default network card's ENIs count, at most ``MAX_ENI`` of them when aws-node
sets it. The official max-pods figure adds 2 for the host-network ``aws-node`` and
``kube-proxy`` pods, which need a kubelet slot but no IP.

``CniConfig`` also keeps the settings that decide how many addresses a node holds in
hand beyond its pods (``WARM_ENI_TARGET``, ``WARM_IP_TARGET``, ``MINIMUM_IP_TARGET``,
``WARM_PREFIX_TARGET``: see ``subnets.held_addresses``), whether security groups for
pods is on (``ENABLE_POD_ENI``: the trunk ENI takes one ENI slot, see ``pod_eni``) and
how a node names its ENIConfig under custom networking.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, overload

from .instance_types import InstanceLimits

PREFIX_IPS = 16
HOST_NETWORK_PODS = 2  # aws-node and kube-proxy
ENI_CONFIG_KEY = "k8s.amazonaws.com/eniConfig"   # ENI_CONFIG_LABEL_DEF / ENI_CONFIG_ANNOTATION_DEF default


def _truthy(value) -> bool:
    return str(value).strip().lower() == "true"


@overload
def _count(value: object, default: int, minimum: int = 0) -> int: ...
@overload
def _count(value: object, default: None, minimum: int = 0) -> int | None: ...
def _count(value, default: int | None, minimum: int = 0) -> int | None:
    """An integer setting as ipamd reads it: unparsable or below ``minimum`` means the default."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return default
    return number if number >= minimum else default


@dataclass(frozen=True)
class CniConfig:
    """What the ``aws-node`` DaemonSet in kube-system tells about pod networking."""

    aws_vpc_cni: bool = False
    prefix_delegation: bool = False
    custom_networking: bool = False
    ipv6: bool = False
    # ipamd's warm-pool settings (pkg/ipamd/ipamd.go): None = not set
    warm_eni_target: int = 1
    warm_ip_target: int | None = None
    minimum_ip_target: int | None = None
    warm_prefix_target: int | None = None
    max_eni: int | None = None                 # MAX_ENI: fewer ENIs than the type allows
    pod_eni: bool = False                      # ENABLE_POD_ENI: security groups for pods (trunk ENI)
    eni_config_label: str = ENI_CONFIG_KEY
    eni_config_annotation: str = ENI_CONFIG_KEY

    @staticmethod
    def from_daemonset(daemonset: Mapping | None) -> "CniConfig":
        if not daemonset:
            return CniConfig()
        containers = (((daemonset.get("spec") or {}).get("template") or {}).get("spec") or {}).get("containers") or []
        # ipamd reads its own container's environment ("aws-node"); a DaemonSet that names none falls back to its
        # first container. Another container's settings (aws-eks-nodeagent's) are never ipamd's.
        chosen = next((c for c in containers if c.get("name") == "aws-node"), containers[0] if containers else {})
        env: dict[str, object] = {}
        for item in chosen.get("env") or []:
            if "value" in item:
                env[item.get("name")] = item["value"]
        warm_ip = _count(env.get("WARM_IP_TARGET"), None)
        minimum_ip = _count(env.get("MINIMUM_IP_TARGET"), None)
        return CniConfig(
            aws_vpc_cni=True,
            prefix_delegation=_truthy(env.get("ENABLE_PREFIX_DELEGATION")),
            custom_networking=_truthy(env.get("AWS_VPC_K8S_CNI_CUSTOM_NETWORK_CFG")),
            ipv6=_truthy(env.get("ENABLE_IPv6")),
            warm_eni_target=_count(env.get("WARM_ENI_TARGET"), 1),
            # ipamd: 0 means "not defined" for both IP targets (noWarmIPTarget, noMinimumIPTarget)
            warm_ip_target=warm_ip or None,
            minimum_ip_target=minimum_ip or None,
            warm_prefix_target=_count(env.get("WARM_PREFIX_TARGET"), None),
            max_eni=_count(env.get("MAX_ENI"), None, minimum=1),
            pod_eni=_truthy(env.get("ENABLE_POD_ENI")),
            eni_config_label=str(env.get("ENI_CONFIG_LABEL_DEF") or ENI_CONFIG_KEY),
            eni_config_annotation=str(env.get("ENI_CONFIG_ANNOTATION_DEF") or ENI_CONFIG_KEY),
        )

    def describe(self) -> str:
        if not self.aws_vpc_cni:
            return "no AWS VPC CNI"
        if self.ipv6:
            return "IPv6"
        parts = ["prefix delegation" if self.prefix_delegation else "secondary IPs"]
        if self.custom_networking:
            parts.append("custom networking")
        return " + ".join(parts)


@dataclass(frozen=True)
class IpCapacity:
    """How many IP-consuming pods a node can hold; ``slots is None`` means no IP rule applies."""

    slots: int | None
    mode: str
    instance_type: str | None = None

    @property
    def max_pods(self) -> int | None:
        """The official max-pods figure: IP slots plus the two host-network pods."""
        return None if self.slots is None else self.slots + HOST_NETWORK_PODS


def pod_enis(limits: InstanceLimits, custom_networking: bool = False, max_eni: int | None = None,
             trunk: bool = False) -> int:
    """ENIs that carry pod IPs: the type's (or ``MAX_ENI``'s, the smaller), less the primary
    ENI under custom networking, less the trunk ENI of security groups for pods."""
    enis = min(limits.enis, max_eni) if max_eni else limits.enis
    return max(enis - (1 if custom_networking else 0) - (1 if trunk else 0), 0)


def ip_slots(limits: InstanceLimits, prefix_delegation: bool = False, custom_networking: bool = False,
             max_eni: int | None = None, trunk: bool = False) -> int:
    """IP-consuming pods for one instance type under the given CNI settings."""
    enis = pod_enis(limits, custom_networking, max_eni, trunk)
    slots = max(enis, 0) * max(limits.ipv4_per_eni - 1, 0)
    if prefix_delegation and limits.supports_prefix_delegation:
        slots *= PREFIX_IPS
    return slots


def recommended_max_pods(limits: InstanceLimits, custom_networking: bool = False) -> int:
    """kubelet maxPods AWS recommends with prefix delegation enabled (max-pods-calculator.sh).

    The IP figure (x16 where prefix delegation applies) is capped for every type, Xen
    included: 250 above 30 vCPUs, else 110 (the script's ``CPU_COUNT -gt 30``). A type
    without a known vCPU count gets the lower cap.
    """
    uncapped = ip_slots(limits, True, custom_networking) + HOST_NETWORK_PODS
    cap = 250 if (limits.vcpus or 0) > 30 else 110
    return min(uncapped, cap)


def node_ip_capacity(instance_type: str | None, limits: InstanceLimits | None, cni: CniConfig) -> IpCapacity:
    """The IP rule for one node; nodes without a known AWS type fall back to the kubelet limit."""
    if not cni.aws_vpc_cni:
        return IpCapacity(None, "no-vpc-cni", instance_type)
    if cni.ipv6:
        return IpCapacity(None, "ipv6", instance_type)
    if not instance_type:
        return IpCapacity(None, "not-aws", None)
    if limits is None:
        return IpCapacity(None, "unknown-type", instance_type)
    prefix = cni.prefix_delegation and limits.supports_prefix_delegation
    mode = "prefix-delegation" if prefix else "secondary-ip"
    if cni.custom_networking:
        mode += "+custom-networking"
    if cni.max_eni and cni.max_eni < limits.enis:
        mode += f"+max-eni-{cni.max_eni}"
    return IpCapacity(ip_slots(limits, prefix, cni.custom_networking, cni.max_eni), mode, instance_type)
