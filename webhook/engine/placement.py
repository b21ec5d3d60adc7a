"""Greedy placement of identical pods onto the free capacity of eligible nodes.

For pods that all ask the same, filling each node up to its tightest limit places as
many pods as any scheduler order could, so the count that fits is the sum of per-node
fits. Each node's fit names the limit that stopped it (IP slots, kubelet pods, CPU,
memory, ephemeral storage), which is what the verdict explains to the user.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable

from .daemonsets import owed_by_node
from .ipslots import IpCapacity
from .model import ClusterState, NodeRecord, PodRecord
from .requests import ContainerDefaults, ObjectError, Resources, pod_requests, uses_pod_ip
from .scheduling import PodPlacementRules, ineligibility
from .workloads import demand_of

# Tie order: when two limits stop a node at the same count, the first is the root cause
# (kubelet maxPods on EKS is derived from the IP limit, so IPs explain it better).
POD_IP_EXHAUSTED = "POD_IP_EXHAUSTED"
POD_LIMIT_REACHED = "POD_LIMIT_REACHED"
INSUFFICIENT_CPU = "INSUFFICIENT_CPU"
INSUFFICIENT_MEMORY = "INSUFFICIENT_MEMORY"
INSUFFICIENT_EPHEMERAL_STORAGE = "INSUFFICIENT_EPHEMERAL_STORAGE"
EBS_ATTACH_LIMIT = "EBS_ATTACH_LIMIT"
LIMIT_ORDER = (POD_IP_EXHAUSTED, POD_LIMIT_REACHED, INSUFFICIENT_CPU, INSUFFICIENT_MEMORY,
               INSUFFICIENT_EPHEMERAL_STORAGE, EBS_ATTACH_LIMIT)


@dataclass
class NodeRoom:
    """What is still free on one node, after its pods, reservations and waiting pods."""

    node: NodeRecord
    capacity: IpCapacity
    free: Resources
    pods: int
    ips: int | None
    volumes: int | None = None       # EBS attachments left, where the CSINode says
    held_for: dict | None = None     # workload key -> pods of room promised to it here (for messages)

    @staticmethod
    def of(state: ClusterState, node: NodeRecord, reserved_by_node: dict | None = None) -> "NodeRoom":
        """``reserved_by_node`` is ``state.reserved_by_node(...)``, computed once per decision."""
        capacity = state.ip_capacity(node)
        used, alloc = node.used, node.allocatable
        reserved, reserved_pods, reserved_ips = (reserved_by_node or {}).get(node.name, (None, 0, 0))
        if reserved is None:
            free = Resources(alloc.cpu - used.cpu, alloc.memory - used.memory, alloc.ephemeral - used.ephemeral)
        else:
            free = alloc - used - reserved
        ips = None if capacity.slots is None else capacity.slots - node.ip_pods - reserved_ips
        limit = state.csinode_ebs_limit.get(node.name)
        volumes = None if limit is None else limit - len(state.ebs_volumes_on(node))
        return NodeRoom(node, capacity, free, node.allocatable_pods - node.pods - reserved_pods, ips, volumes)

    def fit(self, requests: Resources, uses_ip: bool, new_volumes: int = 0) -> tuple[int, str]:
        """How many more such pods fit here, and the limit that stops the next one.

        On a tie the earlier limit in LIMIT_ORDER is named (written out by hand: this
        runs once per node per decision).
        """
        best, code = self.pods, POD_LIMIT_REACHED
        if uses_ip and self.ips is not None and self.ips <= best:
            best, code = self.ips, POD_IP_EXHAUSTED
        free = self.free
        if requests.cpu > 0 and free.cpu // requests.cpu < best:
            best, code = free.cpu // requests.cpu, INSUFFICIENT_CPU
        if requests.memory > 0 and free.memory // requests.memory < best:
            best, code = free.memory // requests.memory, INSUFFICIENT_MEMORY
        if requests.ephemeral > 0 and free.ephemeral // requests.ephemeral < best:
            best, code = free.ephemeral // requests.ephemeral, INSUFFICIENT_EPHEMERAL_STORAGE
        if new_volumes and self.volumes is not None and self.volumes // new_volumes < best:
            best, code = self.volumes // new_volumes, EBS_ATTACH_LIMIT
        return max(0, best), code

    def take(self, count: int, requests: Resources, uses_ip: bool, new_volumes: int = 0) -> None:
        self.free = self.free - requests.scaled(count)
        self.pods -= count
        if uses_ip and self.ips is not None:
            self.ips -= count
        if new_volumes and self.volumes is not None:
            self.volumes -= count * new_volumes


@dataclass
class NodeOutcome:
    """One eligible node after placement: what was free before, what it took, what stopped it.

    ``room`` is the node's live room (spent by the placement); messages read the
    ``*_before`` figures, which are what a person can check against the node.
    """

    room: NodeRoom
    placed: int
    limit: str
    free_pods_before: int = 0
    free_ips_before: int | None = None
    free_before: Resources = field(default_factory=Resources)
    free_volumes_before: int | None = None


@dataclass
class Placement:
    """The result of placing ``wanted`` pods: where they went and what stopped the rest."""

    wanted: int
    placed: int
    per_node: dict                    # node name -> NodeOutcome (eligible nodes only)
    excluded: dict                    # cause -> number of nodes

    @property
    def pending(self) -> int:
        return max(0, self.wanted - self.placed)

    def limits(self) -> dict:
        """How many eligible nodes each limit stopped, for nodes that filled up."""
        counts: dict[str, int] = {}
        for outcome in self.per_node.values():
            counts[outcome.limit] = counts.get(outcome.limit, 0) + 1
        return counts


class RoomMap:
    """Free room of the nodes, computed lazily, with waiting pods already subtracted."""

    def __init__(self, state: ClusterState, ignore_owner: tuple | None = None,
                 give_back: Iterable[PodRecord] = ()):
        self.state = state
        reserved = state.reserved_by_node(ignore_owner) if state.reservations else None
        self.rooms: dict[str, NodeRoom] = {name: NodeRoom.of(state, node, reserved)
                                            for name, node in state.nodes.items()}
        if state.reservations:
            for node, owners in state.reserved_owners(ignore_owner).items():
                if node in self.rooms:
                    self.rooms[node].held_for = dict(owners)
        for pod in give_back:            # pods a rollout will replace free their room
            room = self.rooms.get(pod.node)
            if room:
                room.take(-1, pod.requests, pod.uses_ip)
        for name, (owed, pods, ips) in owed_by_node(state, ignore_owner).items():   # DaemonSet pods still to come
            room = self.rooms[name]
            room.free, room.pods = room.free - owed, room.pods - pods
            room.ips = None if room.ips is None else room.ips - ips
        self._subtract_waiting(ignore_owner)
        if state.short:
            self._subtract_promised(ignore_owner)

    def _subtract_promised(self, ignore_owner: tuple | None) -> None:
        """Pods a controller still has to create are demand too, like Pending pods.

        A workload whose desired pods (``spec.replicas``, a Job's parallelism, a
        DaemonSet's nodes) exceed the pods that exist for it holds room for the
        difference, after its reservation's TTL too, until the pods appear or it shrinks
        or is deleted; not when its controller reports that it cannot create them
        (``ReplicaFailure``). What its reservation already holds is not counted twice.
        """
        state = self.state
        for key in sorted(state.short):
            workload = state.top_owner(key)
            if workload == ignore_owner:
                continue
            missing = state.missing_pods(key)
            held = state.reservations.get(workload)
            if held is not None:
                missing -= sum(state.held(held).values())
            obj = state.workloads.get(key)
            if missing <= 0 or obj is None:
                continue
            try:
                demand = demand_of(obj)
                defaults = ContainerDefaults.from_limit_ranges(state.limit_ranges_in(demand.namespace))
                requests = pod_requests(demand.pod_spec, defaults, "spec.template.spec")
                uses_ip = uses_pod_ip(demand.pod_spec)
                rules = PodPlacementRules.from_pod_spec(demand.pod_spec, demand.pod_labels,
                                                        daemon=demand.kind == "DaemonSet")
            except (ObjectError, AttributeError, TypeError, ValueError, KeyError):
                # a stored object of a shape we cannot read holds nothing (it was logged when stored)
                continue
            cap = 1 if rules.one_per_node or demand.kind == "DaemonSet" else None
            for _, room in sorted(self.rooms.items()):
                if missing <= 0:
                    break
                if ineligibility(room.node, rules) is not None:
                    continue
                fit = room.fit(requests, uses_ip)[0]
                take = min(fit, missing, cap if cap is not None else fit)
                if take > 0:
                    room.take(take, requests, uses_ip)
                    room.held_for = dict(room.held_for or {})
                    room.held_for[workload] = room.held_for.get(workload, 0) + take
                    missing -= take

    def _subtract_waiting(self, ignore_owner: tuple | None) -> None:
        """Pods already Pending are demand ahead of ours: they take the same free room first.

        First fit in node-name order. Room only shrinks here, so identical waiting pods
        share a cursor that never moves back: a cluster with thousands of stuck pods
        costs one pass over the nodes per kind of pod, not one per pod.
        """
        eligible_cache: dict[PodPlacementRules, list[NodeRoom]] = {}
        cursors: dict[tuple, int] = {}
        for pod in sorted(self.state.pending.values(), key=lambda p: p.key):
            owner = pod.owner and self.state.top_owner((pod.owner[0], pod.namespace, pod.owner[1]))
            if ignore_owner and owner == ignore_owner:
                continue
            rules = pod.rules or PodPlacementRules()
            if rules not in eligible_cache:
                eligible_cache[rules] = [r for _, r in sorted(self.rooms.items())
                                         if ineligibility(r.node, rules) is None]
            rooms = eligible_cache[rules]
            kind = (rules, pod.requests, pod.uses_ip)
            index = cursors.get(kind, 0)
            while index < len(rooms) and rooms[index].fit(pod.requests, pod.uses_ip)[0] < 1:
                index += 1
            cursors[kind] = index
            if index < len(rooms):
                rooms[index].take(1, pod.requests, pod.uses_ip)


def place(rooms: RoomMap, rules: PodPlacementRules, requests: Resources, uses_ip: bool, wanted: int | None,
          node_filter=None, new_volumes: int = 0, caps: dict | None = None) -> Placement:
    """Place ``wanted`` pods (``None``: one per eligible node, as a DaemonSet does).

    ``node_filter(node) -> cause | None`` adds restrictions such as a volume's zone;
    ``caps`` (node name -> (pods, code)) adds a per-node limit the rooms do not know,
    such as branch ENIs for security groups for pods (``pod_eni.branch_caps``);
    required anti-affinity to itself caps pods at one per node. The rooms are spent.
    """
    excluded: dict[str, int] = {}
    eligible: list[NodeRoom] = []
    for room in rooms.rooms.values():
        cause = ineligibility(room.node, rules) or (node_filter(room.node) if node_filter else None)
        if cause:
            excluded[cause] = excluded.get(cause, 0) + 1
        else:
            eligible.append(room)
    cap = 1 if (wanted is None or rules.one_per_node) else None
    if wanted is None:
        wanted = len(eligible)
    remaining = wanted
    per_node: dict[str, NodeOutcome] = {}
    # Fill the roomiest nodes first, like the scheduler's spreading would end up doing.
    fits = [(room, *room.fit(requests, uses_ip, new_volumes)) for room in eligible]
    if caps:
        fits = [(room, *caps[room.node.name]) if room.node.name in caps and caps[room.node.name][0] < fit
                else (room, fit, limit) for room, fit, limit in fits]
    fits.sort(key=lambda item: (-item[1], item[0].node.name))
    for room, fit, limit in fits:
        count = min(fit, cap) if cap is not None else fit
        take = min(count, remaining)
        per_node[room.node.name] = NodeOutcome(room, take, limit, room.pods, room.ips, room.free, room.volumes)
        if take:
            room.take(take, requests, uses_ip, new_volumes)
        remaining -= take
    return Placement(wanted, wanted - remaining, per_node, excluded)
