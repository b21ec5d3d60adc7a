"""Greedy placement of identical pods onto the free capacity of eligible nodes.

For pods that all ask the same, filling each node up to its tightest limit places as
many pods as any scheduler order could, so the count that fits is the sum of per-node
fits. Each node's fit names the limit that stopped it (IP slots, kubelet pods, CPU,
memory, ephemeral storage), which is what the verdict explains to the user.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Iterable

from .daemonsets import owed_by_node
from .ipslots import IpCapacity
from .model import ClusterState, NodeRecord, PodRecord
from .requests import Resources
from .scheduling import PodPlacementRules, ineligibility

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
        volumes = None if limit is None else limit - state.ebs_volume_count(node)
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

    unknown_types: list | None = None   # set by the fast placement (else computed from per_node)

    @property
    def pending(self) -> int:
        return max(0, self.wanted - self.placed)

    def placed_per_node(self) -> dict[str, int]:
        """Pods placed per node, for the nodes that took any."""
        fast = getattr(self.per_node, "placed_items", None)
        if fast is not None:
            return dict(fast())
        return {name: o.placed for name, o in self.per_node.items() if o.placed > 0}

    def instance_types_unknown(self) -> list[str]:
        """Instance types (sorted) of eligible nodes the instance-limits table does not know."""
        if self.unknown_types is not None:
            return self.unknown_types
        return sorted({o.room.node.instance_type for o in self.per_node.values()
                       if o.room.capacity.mode == "unknown-type"})

    def limits(self) -> dict:
        """How many eligible nodes each limit stopped, for nodes that filled up."""
        counts: dict[str, int] = {}
        for outcome in self.per_node.values():
            counts[outcome.limit] = counts.get(outcome.limit, 0) + 1
        return counts


class RoomMap:
    """Free room of the nodes, computed lazily, with waiting pods already subtracted.

    ``rooms`` (every node's NodeRoom) is built on first use. The plain placement reads the
    state's ``RoomIndex`` instead and builds rooms only for the nodes it touches: those
    reservations, a rollout's own pods or owed DaemonSet pods change (``touched``), and
    those that take pods.
    """

    def __init__(self, state: ClusterState, ignore_owner: tuple | None = None,
                 give_back: Iterable[PodRecord] = ()):
        self.state = state
        self._reserved = state.reserved_by_node(ignore_owner) if state.reservations else None
        self._rooms: dict[str, NodeRoom] | None = None
        self.touched: dict[str, NodeRoom] = {}
        self._lazy: list = []            # per_node mappings of fast placements not yet materialized
        for name in self._reserved or ():
            if name in state.nodes:
                self.room(name)
        for pod in give_back:            # pods a rollout will replace free their room
            room = self.room(pod.node) if pod.node in state.nodes else None
            if room:
                room.take(-1, pod.requests, pod.uses_ip)
        for name, (owed, pods, ips) in owed_by_node(state, ignore_owner).items():   # DaemonSet pods still to come
            room = self.room(name)
            room.free, room.pods = room.free - owed, room.pods - pods
            room.ips = None if room.ips is None else room.ips - ips
        if any(not (ignore_owner and pod.owner and self.state.top_owner(
                (pod.owner[0], pod.namespace, pod.owner[1])) == ignore_owner) for pod in state.pending.values()):
            self._subtract_waiting(ignore_owner)

    def room(self, name: str) -> NodeRoom:
        """One node's room (built on first use; the same object every time)."""
        if self._rooms is not None:
            return self._rooms[name]
        room = self.touched.get(name)
        if room is None:
            room = self.touched[name] = NodeRoom.of(self.state, self.state.nodes[name], self._reserved)
        return room

    @property
    def rooms(self) -> dict[str, NodeRoom]:
        if self._rooms is None:
            self.flush()
            touched, reserved = self.touched, self._reserved
            self._rooms = {name: touched.get(name) or NodeRoom.of(self.state, node, reserved)
                           for name, node in self.state.nodes.items()}
        return self._rooms

    def index(self):
        """The state's RoomIndex, current, when no room has been built for every node yet."""
        if self._rooms is not None or not FAST_PLACEMENT:
            return None
        from .room_index import RoomIndex

        if self.state.room_index is None:
            self.state.room_index = RoomIndex(self.state)
        return self.state.room_index.current()

    def flush(self) -> None:
        """Materialize the outcomes of earlier fast placements before rooms change again."""
        lazy, self._lazy = self._lazy, []
        for outcomes in lazy:
            outcomes.materialize()

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
    if not (node_filter or new_volumes or caps or wanted is None or rules.one_per_node):
        fast = _place_indexed(rooms, rules, requests, uses_ip, wanted)
        if fast is not None:
            return fast
    rooms.flush()
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


# ---- the plain case, from the state's RoomIndex ---------------------------------------------
FAST_PLACEMENT = True       # tests turn it off to compare with the reference loop above
_CODE_INDEX = {code: i for i, code in enumerate((POD_IP_EXHAUSTED, POD_LIMIT_REACHED, INSUFFICIENT_CPU,
                                                  INSUFFICIENT_MEMORY, INSUFFICIENT_EPHEMERAL_STORAGE))}


def _names_matter(rules: PodPlacementRules) -> bool:
    """Rules that look at the node's name (spec.nodeName, matchFields): not the same for a whole group."""
    return bool(rules.node_name) or any(dict(term).get("matchFields") for term in rules.required_terms)


def _place_indexed(rooms: RoomMap, rules: PodPlacementRules, requests: Resources, uses_ip: bool,
                   wanted: int) -> Placement | None:
    """``place`` for the plain case, equal to the loop above, in time that hardly grows with nodes.

    Eligibility runs once per group of alike nodes, fits come from the index's arrays
    (the touched rooms fit themselves), only the ``wanted`` best nodes are sorted, and
    only the nodes that take pods get a NodeRoom and a NodeOutcome; the other eligible
    nodes' outcomes are built when somebody reads ``per_node`` past them (messages do,
    allowed decisions do not). ``None``: not the plain case, the caller runs the loop.
    """
    import numpy as np

    from .room_index import CODES

    if _names_matter(rules) or any(abs(v) >= 2**62 for v in (requests.cpu, requests.memory, requests.ephemeral)):
        return None
    index = rooms.index()
    if index is None:
        return None
    rooms.flush()
    n = len(index.names)
    sizes = np.bincount(index.group, minlength=len(index.group_nodes))
    causes = [ineligibility(node, rules) if sizes[g] else None for g, node in enumerate(index.group_nodes)]
    excluded: dict[str, int] = {}
    if any(causes):
        firsts = np.full(len(causes), n, np.int64)
        np.minimum.at(firsts, index.group, index.rank)
        for g in sorted((g for g, cause in enumerate(causes) if cause), key=lambda g: firsts[g]):
            excluded[causes[g]] = excluded.get(causes[g], 0) + int(sizes[g])
    allowed = np.array([cause is None for cause in causes], bool)
    positions = np.flatnonzero(allowed[index.group]) if n else np.zeros(0, np.int64)
    fit, code = index.fits(positions, requests, uses_ip)
    for name, room in rooms.touched.items():
        i = index.pos.get(name)
        if i is None:
            continue
        j = int(np.searchsorted(positions, i))
        if j < len(positions) and positions[j] == i:
            f, limit = room.fit(requests, uses_ip)
            if abs(f) >= 2**62:
                return None
            fit[j], code[j] = f, _CODE_INDEX[limit]
    if len(positions) and int(fit.max()) >= 2**31:
        return None
    order_key = -fit * (n + 1) + positions         # (-fit, name): positions are in name order
    k = min(len(positions), wanted)
    top = np.argpartition(order_key, k - 1)[:k] if 0 < k < len(positions) else np.arange(k)
    top = top[np.argsort(order_key[top])]
    remaining = wanted
    first: dict[str, NodeOutcome] = {}
    for j in top.tolist():
        take = min(int(fit[j]), remaining)
        if take <= 0:
            break
        room = rooms.room(index.names[positions[j]])
        first[room.node.name] = NodeOutcome(room, take, CODES[code[j]], room.pods, room.ips, room.free, room.volumes)
        room.take(take, requests, uses_ip)
        remaining -= take

    def rest() -> dict[str, NodeOutcome]:
        out = {}
        for j in np.argsort(order_key, kind="stable").tolist():
            name = index.names[positions[j]]
            if name not in first:
                room = rooms.room(name)
                out[name] = NodeOutcome(room, 0, CODES[code[j]], room.pods, room.ips, room.free, room.volumes)
        return out

    per_node = LazyOutcomes(first, len(positions), rest)
    rooms._lazy.append(per_node)
    placement = Placement(wanted, wanted - remaining, per_node, excluded)
    flagged = positions[index.unknown_type[positions]]
    placement.unknown_types = sorted({index.nodes_type(i) for i in flagged.tolist()})
    return placement


class LazyOutcomes(MutableMapping):
    """``Placement.per_node`` of a fast placement: the nodes that took pods at once, the
    other eligible nodes (in the same order as the loop would list them) on first read."""

    def __init__(self, first: dict, size: int, rest):
        self.first = first
        self._size = size
        self._rest = rest
        self._all: dict | None = None

    def materialize(self) -> dict:
        if self._all is None:
            self._all = dict(self.first)
            self._all.update(self._rest())
            self._rest = None
        return self._all

    def __getitem__(self, name):
        if self._all is None and name in self.first:
            return self.first[name]
        return self.materialize()[name]

    def __setitem__(self, name, outcome) -> None:
        self.materialize()[name] = outcome

    def __delitem__(self, name) -> None:
        del self.materialize()[name]

    def __iter__(self):
        return iter(self.materialize())

    def __len__(self) -> int:
        return len(self._all) if self._all is not None else self._size

    def placed_items(self) -> list:
        """(node, pods placed) for the nodes that took pods, without building the others."""
        source = self.first if self._all is None else self._all
        return [(name, o.placed) for name, o in source.items() if o.placed > 0]
