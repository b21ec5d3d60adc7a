"""What the cluster and AWS say about pod networking, beside the nodes and pods.

``NetworkState`` is the part of ``ClusterState`` that the VPC CNI, the VPC resource
controller and EC2 describe:

* ``ENIConfig`` (crd.k8s.amazonaws.com/v1alpha1): the subnet pods use under custom networking;
* ``SecurityGroupPolicy`` (vpcresources.k8s.aws/v1beta1): which pods take a branch ENI;
* ``CNINode`` (vpcresources.k8s.aws/v1alpha1): per-node features (trunk ENI, ENIConfig name);
* ``ServiceAccount`` labels, for SecurityGroupPolicies that select service accounts;
* ``EC2Subnet`` and ``EC2Instance``: AWS's answers (DescribeSubnets, DescribeInstances) as
  data objects, written by ``snapshot --aws`` or by the live AWS refresher. The engine
  never calls AWS: figures enter the state like any other object.

It also notes, per node, what the Node object says about networking (its instance id,
ENIConfig annotation, OS, and the extended resources ``vpc.amazonaws.com/pod-eni`` and
``vpc.amazonaws.com/PrivateIPv4Address``), and which running pods hold a branch ENI.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field

AWS_DATA_API = "aws.capacity-webhook.io/v1"
POD_ENI_RESOURCE = "vpc.amazonaws.com/pod-eni"
WINDOWS_IP_RESOURCE = "vpc.amazonaws.com/PrivateIPv4Address"
EXTERNAL_ENI_CONFIG_LABEL = "vpc.amazonaws.com/externalEniConfig"
NETWORK_KINDS = ("ENIConfig", "SecurityGroupPolicy", "CNINode", "ServiceAccount", "EC2Subnet", "EC2Instance",
                 "EC2Lookup")
TERMINAL_PHASES = ("Succeeded", "Failed")


def _meta(obj: Mapping) -> Mapping:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _int_or_none(value) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def instance_id_of(provider_id: str | None) -> str | None:
    """``aws:///us-east-1a/i-0abc...`` -> ``i-0abc...`` (None for other clouds and kwok)."""
    if not provider_id or not str(provider_id).startswith("aws://"):
        return None
    last = str(provider_id).rstrip("/").rsplit("/", 1)[-1]
    return last if last.startswith("i-") else None


@dataclass(frozen=True)
class Subnet:
    """One DescribeSubnets answer: where it is and how many addresses are left."""

    id: str
    zone: str | None
    cidr: str | None
    available: int
    observed_at: str | None = None      # when the figure was read (ISO 8601), for messages

    @property
    def size(self) -> int | None:
        """Addresses in the CIDR block (a /24 has 256, of which AWS reserves 5)."""
        try:
            bits = int(str(self.cidr).split("/", 1)[1])
        except (IndexError, ValueError):
            return None
        return 2 ** (32 - bits) if 0 <= bits <= 32 else None


@dataclass(frozen=True)
class Interface:
    """One ENI of an instance, as DescribeInstances lists it."""

    id: str
    subnet: str | None
    device_index: int
    card: int
    kind: str                    # "interface", "trunk", "efa", ...
    secondary_ips: int           # private IPv4 addresses beyond the primary
    prefixes: int                # IPv4 /28 prefixes (prefix delegation)


@dataclass(frozen=True)
class Instance:
    """One DescribeInstances answer: the node's primary subnet and what its ENIs hold."""

    id: str
    subnet: str | None
    zone: str | None
    interfaces: tuple = ()

    @property
    def has_trunk(self) -> bool:
        return any(i.kind == "trunk" for i in self.interfaces)


@dataclass(frozen=True)
class NodeNet:
    """What a Node object says about its networking."""

    instance_id: str | None
    eni_annotations: tuple = ()           # (key, value) of annotations naming an ENIConfig
    windows: bool = False
    pod_eni: int | None = None            # allocatable vpc.amazonaws.com/pod-eni
    windows_ips: int | None = None        # allocatable vpc.amazonaws.com/PrivateIPv4Address


@dataclass(frozen=True)
class LabelSelector:
    """A metav1.LabelSelector (matchLabels + matchExpressions); an empty one matches everything."""

    match_labels: tuple = ()
    expressions: tuple = ()               # (key, operator, values)

    @staticmethod
    def parse(raw) -> LabelSelector | None:
        if raw is None:
            return None
        if not isinstance(raw, Mapping):
            raise TypeError("a label selector must be an object")
        labels = tuple(sorted((str(k), str(v)) for k, v in (raw.get("matchLabels") or {}).items()))
        expressions = tuple((str(e.get("key")), str(e.get("operator")), tuple(str(v) for v in e.get("values") or ()))
                            for e in raw.get("matchExpressions") or ())
        return LabelSelector(labels, expressions)

    def matches(self, labels: Mapping | None) -> bool:
        labels = labels or {}
        if any(labels.get(k) != v for k, v in self.match_labels):
            return False
        for key, op, values in self.expressions:
            present = key in labels
            if op == "In" and not (present and labels[key] in values):
                return False
            if op == "NotIn" and present and labels[key] in values:
                return False
            if op == "Exists" and not present:
                return False
            if op == "DoesNotExist" and present:
                return False
            if op not in ("In", "NotIn", "Exists", "DoesNotExist"):
                return False          # an invalid selector matches nothing (LabelSelectorAsSelector fails)
        return True

    @property
    def empty(self) -> bool:
        return not self.match_labels and not self.expressions


@dataclass(frozen=True)
class SecurityGroupPolicy:
    namespace: str
    name: str
    pod_selector: LabelSelector | None
    sa_selector: LabelSelector | None
    groups: tuple


def _pod_requests_pod_eni(spec: Mapping) -> bool:
    for container in spec.get("containers") or ():
        resources = container.get("resources") or {}
        if POD_ENI_RESOURCE in (resources.get("limits") or {}) or POD_ENI_RESOURCE in (resources.get("requests") or {}):
            return True
    return False


@dataclass
class NetworkState:
    """See the module docstring. Fed by ``ClusterState.apply`` / ``remove``."""

    subnets: dict = field(default_factory=dict)            # subnet id -> Subnet
    instances: dict = field(default_factory=dict)          # instance id -> Instance
    eni_configs: dict = field(default_factory=dict)        # name -> subnet id
    policies: dict = field(default_factory=dict)           # (ns, name) -> SecurityGroupPolicy
    cni_nodes: dict = field(default_factory=dict)          # node name -> {feature: value}
    service_accounts: dict = field(default_factory=dict)   # (ns, name) -> labels
    service_accounts_known: bool = False                   # ServiceAccounts were fed (snapshot) at all
    nodes: dict = field(default_factory=dict)              # node name -> NodeNet
    branch_pods: dict = field(default_factory=dict)        # pod key -> node holding its branch ENI
    branch_by_node: dict = field(default_factory=lambda: defaultdict(int))
    aws_error: str | None = None                           # the last AWS lookup failed: why
    aws_observed_at: str | None = None                     # when AWS figures were last read

    # ---- feeding -------------------------------------------------------------------
    def apply(self, obj: Mapping) -> None:
        kind = obj.get("kind")
        meta = _meta(obj)
        name, namespace = str(meta.get("name", "")), str(meta.get("namespace") or "default")
        spec = obj.get("spec") or {}
        if kind == "ENIConfig":
            self.eni_configs[name] = spec.get("subnet")
        elif kind == "SecurityGroupPolicy":
            self.policies[(namespace, name)] = SecurityGroupPolicy(
                namespace, name, LabelSelector.parse(spec.get("podSelector")),
                LabelSelector.parse(spec.get("serviceAccountSelector")),
                tuple(str(g) for g in ((spec.get("securityGroups") or {}).get("groupIds") or ())))
        elif kind == "CNINode":
            self.cni_nodes[name] = {str(f.get("name")): f.get("value") for f in spec.get("features") or ()
                                    if isinstance(f, Mapping)}
        elif kind == "ServiceAccount":
            self.service_accounts_known = True
            self.service_accounts[(namespace, name)] = dict(meta.get("labels") or {})
        elif kind == "EC2Subnet":
            available = _int_or_none(spec.get("availableIpAddressCount"))
            if available is None:
                raise ValueError("EC2Subnet spec.availableIpAddressCount is not a number")
            self.subnets[name] = Subnet(name, spec.get("availabilityZone"), spec.get("cidrBlock"), available,
                                        spec.get("observedAt"))
        elif kind == "EC2Instance":
            interfaces = tuple(Interface(str(i.get("id", "")), i.get("subnetId"), int(i.get("deviceIndex") or 0),
                                         int(i.get("networkCardIndex") or 0),
                                         str(i.get("interfaceType") or "interface"),
                                         int(i.get("secondaryIPv4") or 0), int(i.get("ipv4Prefixes") or 0))
                               for i in spec.get("networkInterfaces") or ())
            self.instances[name] = Instance(name, spec.get("subnetId"), spec.get("availabilityZone"), interfaces)
        elif kind == "EC2Lookup":
            self.aws_error = spec.get("error") or None
            self.aws_observed_at = spec.get("observedAt")

    def remove(self, kind: str, namespace: str, name: str) -> None:
        if kind == "ENIConfig":
            self.eni_configs.pop(name, None)
        elif kind == "SecurityGroupPolicy":
            self.policies.pop((namespace, name), None)
        elif kind == "CNINode":
            self.cni_nodes.pop(name, None)
        elif kind == "ServiceAccount":
            self.service_accounts.pop((namespace, name), None)
        elif kind == "EC2Subnet":
            self.subnets.pop(name, None)
        elif kind == "EC2Instance":
            self.instances.pop(name, None)

    def replace_aws(self, subnets: list, instances: list, observed_at: str | None, error: str | None) -> None:
        """Swap in a complete set of AWS answers (the live refresher, under the holder's lock)."""
        if error is None:
            self.subnets.clear()
            self.instances.clear()
            for obj in list(subnets) + list(instances):
                self.apply(obj)
            self.aws_observed_at = observed_at
        self.aws_error = error

    def note_node(self, obj: Mapping) -> None:
        meta = _meta(obj)
        status = obj.get("status") or {}
        allocatable = status.get("allocatable") or {}
        labels = meta.get("labels") or {}
        annotations = meta.get("annotations") or {}
        self.nodes[str(meta.get("name", ""))] = NodeNet(
            instance_id=instance_id_of((obj.get("spec") or {}).get("providerID")),
            eni_annotations=tuple(sorted((k, str(v)) for k, v in annotations.items() if "eniconfig" in k.lower())),
            windows=labels.get("kubernetes.io/os") == "windows",
            pod_eni=_int_or_none(allocatable.get(POD_ENI_RESOURCE)),
            windows_ips=_int_or_none(allocatable.get(WINDOWS_IP_RESOURCE)),
        )

    def forget_node(self, name: str) -> None:
        self.nodes.pop(name, None)

    def note_pod(self, key: tuple, obj: Mapping | None) -> None:
        """Track pods that hold a branch ENI (their spec asks for vpc.amazonaws.com/pod-eni)."""
        old = self.branch_pods.pop(key, None)
        if old is not None:
            self.branch_by_node[old] -= 1
            if self.branch_by_node[old] <= 0:
                del self.branch_by_node[old]
        if obj is None or (obj.get("status") or {}).get("phase") in TERMINAL_PHASES:
            return
        spec = obj.get("spec") or {}
        node = spec.get("nodeName")
        if node and _pod_requests_pod_eni(spec):
            self.branch_pods[key] = node
            self.branch_by_node[node] += 1

    # ---- questions -------------------------------------------------------------------
    def instance_of(self, node_name: str) -> Instance | None:
        net = self.nodes.get(node_name)
        return self.instances.get(net.instance_id) if net and net.instance_id else None

    def eni_config_name(self, node_name: str, labels: Mapping, cni) -> str:
        """The ENIConfig a node uses, in ipamd's order (eniconfig.GetNodeSpecificENIConfigName):
        the CNINode's CustomNetworking feature (written by ipamd), the external label, the
        annotation, the label (``ENI_CONFIG_*_DEF``), else ``default``."""
        feature = (self.cni_nodes.get(node_name) or {}).get("CustomNetworking")
        if feature:
            return str(feature)
        if labels.get(EXTERNAL_ENI_CONFIG_LABEL):
            return str(labels[EXTERNAL_ENI_CONFIG_LABEL])
        net = self.nodes.get(node_name)
        for key, value in (net.eni_annotations if net else ()):
            if key == cni.eni_config_annotation:
                return value
        if labels.get(cni.eni_config_label):
            return str(labels[cni.eni_config_label])
        return "default"

    def has_trunk(self, node_name: str) -> bool | None:
        """Whether the node has a trunk ENI (security groups for pods); None when nothing says."""
        net = self.nodes.get(node_name)
        if net and net.pod_eni is not None:
            return net.pod_eni > 0
        if "SecurityGroupsForPods" in (self.cni_nodes.get(node_name) or {}):
            return True
        instance = self.instance_of(node_name)
        if instance is not None:
            return instance.has_trunk
        return None
