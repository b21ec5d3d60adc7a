"""Placement of identical pods onto the free capacity of eligible nodes.

For pods that all ask the same and whose node choice does not change where the next one may
go, filling each node up to its tightest limit places as many pods as any scheduler order
could, so the count that fits is the sum of per-node fits (the fast path). Pods with pod
affinity, self-matching anti-affinity beyond the hostname, or a self-matching hard spread
constraint are placed one at a time as the scheduler does (filter, score, bind, repeat).
Pods already waiting are placed one at a time by the default profile's scores
(``scoring.py``) before the new workload: that is where they will land first.
Each node's fit names the limit that stopped it (IP slots, kubelet pods, CPU, memory,
ephemeral storage, extended resources, or a pod-level constraint), which is what the
verdict explains to the user.
"""

from __future__ import annotations

import heapq
import weakref
from collections.abc import MutableMapping
from dataclasses import dataclass, field, replace
from typing import Iterable, Mapping

from . import budget, pod_eni
from .constraint_state import ConstraintState
from .constraints import PodConstraints, repelled
from .daemonsets import owed_by_node
from .ipslots import IpCapacity
from .model import ClusterState, NodeRecord, PodRecord
from .requests import ZERO, ContainerDefaults, ObjectError, Resources, pod_requests, uses_pod_ip
from .scheduling import PodPlacementRules, ineligibility
from .scoring import Preferences, node_score
from .workloads import demand_of

# Tie order: when two limits stop a node at the same count, the first is the root cause
# (kubelet maxPods on EKS is derived from the IP limit, so IPs explain it better).
POD_IP_EXHAUSTED = "POD_IP_EXHAUSTED"
POD_LIMIT_REACHED = "POD_LIMIT_REACHED"
INSUFFICIENT_CPU = "INSUFFICIENT_CPU"
INSUFFICIENT_MEMORY = "INSUFFICIENT_MEMORY"
INSUFFICIENT_EPHEMERAL_STORAGE = "INSUFFICIENT_EPHEMERAL_STORAGE"
EBS_ATTACH_LIMIT = "EBS_ATTACH_LIMIT"
INSUFFICIENT_EXTENDED = "INSUFFICIENT_EXTENDED_RESOURCE"
LIMIT_ORDER = (POD_IP_EXHAUSTED, POD_LIMIT_REACHED, INSUFFICIENT_CPU, INSUFFICIENT_MEMORY,
               INSUFFICIENT_EPHEMERAL_STORAGE, INSUFFICIENT_EXTENDED, EBS_ATTACH_LIMIT)
SEQUENTIAL_BUDGET = 400_000        # node checks the one-pod-at-a-time placement may spend per decision
_UNSET = object()


@dataclass(slots=True)
class NodeRoom:
    """What is still free on one node, after its pods, reservations and waiting pods."""

    node: NodeRecord
    capacity: IpCapacity
    free: Resources
    pods: int
    ips: int | None
    volumes: int | None = None       # EBS attachments left, where the CSINode says
    score_used: Resources = ZERO     # requests as LeastAllocated scores them, incl. pods placed here
    extended_taken: dict | None = None   # extended resources taken by pods placed in this decision
    ports: list | None = None        # host ports taken by pods placed in this decision
    version: int = 0                 # bumped on every take: heap entries of older versions are stale
    short_of: str | None = None      # the extended resource that stopped the last fit
    freed_ports: list | None = None  # host ports of bound pods given back (a rollout's, preemption victims)
    held_for: dict | None = None     # workload key -> pods of room promised to it here (for messages)

    @staticmethod
    def of(state: ClusterState, node: NodeRecord, reserved_by_node: dict | None = None) -> "NodeRoom":
        """``reserved_by_node`` is ``state.reserved_by_node(...)``, computed once per decision."""
        capacity = state.ip_capacity(node)
        used, alloc = node.used, node.allocatable
        free = Resources(alloc.cpu - used.cpu, alloc.memory - used.memory, alloc.ephemeral - used.ephemeral)
        ips = None if capacity.slots is None else capacity.slots - node.ip_pods
        limit = state.csinode_ebs_limit.get(node.name)
        volumes = None if limit is None else limit - state.ebs_volume_count(node)
        room = NodeRoom(node, capacity, free, node.allocatable_pods - node.pods, ips, volumes, node.score_used)
        return room.less_reserved(reserved_by_node) if reserved_by_node and node.name in reserved_by_node else room

    def less_reserved(self, reserved_by_node: dict | None) -> "NodeRoom":
        """A new room: this one (a node's room before reservations) less what reservations hold there.

        ``RoomIndex.room_of`` copies its kept rooms through here, so both give the same room.
        """
        reserved, pods, ips = (reserved_by_node or {}).get(self.node.name, (None, 0, 0))
        if reserved is None:
            return NodeRoom(self.node, self.capacity, self.free, self.pods, self.ips, self.volumes, self.score_used)
        return NodeRoom(self.node, self.capacity, self.free - reserved, self.pods - pods,
                        None if self.ips is None else self.ips - ips, self.volumes, self.score_used + reserved)

    def extended_free(self, name: str) -> int:
        taken = self.extended_taken.get(name, 0) if self.extended_taken else 0
        return self.node.extended.get(name, 0) - self.node.extended_used.get(name, 0) - taken

    def used_ports(self) -> list:
        if not self.freed_ports:
            return list(self.node.ports) + (self.ports or [])
        held = dict(self.node.ports)
        for port in self.freed_ports:
            held[port] = held.get(port, 0) - 1
        return [port for port, count in held.items() if count > 0] + (self.ports or [])

    def fit(self, requests: Resources, uses_ip: bool, new_volumes: int = 0, extended: tuple = ()) -> tuple[int, str]:
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
        for name, amount in extended:
            room = self.extended_free(name) // amount
            if room < best:
                best, code, self.short_of = room, INSUFFICIENT_EXTENDED, name
        if new_volumes and self.volumes is not None and self.volumes // new_volumes < best:
            best, code = self.volumes // new_volumes, EBS_ATTACH_LIMIT
        return max(0, best), code

    def take(self, count: int, requests: Resources, uses_ip: bool, new_volumes: int = 0,
             scored: Resources | None = None, extended: tuple = (), ports: tuple = ()) -> None:
        self.free = self.free - requests.scaled(count)
        self.score_used = self.score_used + (scored if scored is not None else requests).scaled(count)
        self.pods -= count
        self.version += 1
        if uses_ip and self.ips is not None:
            self.ips -= count
        if new_volumes and self.volumes is not None:
            self.volumes -= count * new_volumes
        if extended:
            self.extended_taken = dict(self.extended_taken or {})
            for name, amount in extended:
                self.extended_taken[name] = self.extended_taken.get(name, 0) + amount * count
        if ports and count > 0:
            self.ports = (self.ports or []) + list(ports) * count

    def score(self, requests: Resources, scored: Resources) -> int:
        """The default profile's resource score for one more such pod here."""
        return node_score(self.node.allocatable, self.node.allocatable - self.free, self.score_used,
                          requests, scored)


@dataclass(slots=True)
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
    short_of: str | None = None       # the extended resource, for INSUFFICIENT_EXTENDED_RESOURCE


@dataclass
class Placement:
    """The result of placing ``wanted`` pods: where they went and what stopped the rest."""

    wanted: int
    placed: int
    per_node: MutableMapping[str, NodeOutcome]   # eligible nodes only (LazyOutcomes from the indexed placement)
    excluded: dict[str, int]                     # cause -> number of nodes
    constraints: PodConstraints | None = None    # the pods' constraints, for messages
    unknown_types: list[str] | None = None       # set by the indexed placement (else computed from per_node)
    caps: dict | None = None                     # the per-node caps the placement obeyed (branch ENIs), for messages
    caps_held: dict | None = None                # of those, what other workloads' reservations hold per node
    daemon: bool = False                         # one pod per eligible node (a DaemonSet), each placed on its own

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
        return sorted({t for o in self.per_node.values()    # "unknown-type" nodes all have a type
                       if o.room.capacity.mode == "unknown-type" and (t := o.room.node.instance_type)})

    def short(self, outcome: NodeOutcome) -> bool:
        """Whether ``outcome``'s node left a pod Pending (so its limit explains a shortfall).

        Pods of a Deployment fill each node until its limit stops them, so every eligible
        node is short when pods are pending. A DaemonSet's pod is scheduled on each
        eligible node by itself (pkg/controller/daemon creates one pod per node, pinned
        there, and NodeResourcesFit judges that node alone): a node that took its pod
        leaves nothing Pending, whatever would stop a second one.
        """
        return not self.daemon or outcome.placed == 0

    def stopped_by(self, code: str) -> list[tuple[str, NodeOutcome]]:
        """(name, outcome) of the nodes whose limit ``code`` left pods Pending."""
        return [(name, o) for name, o in self.per_node.items() if o.limit == code and self.short(o)]

    def limits(self) -> dict:
        """How many eligible nodes each limit stopped, for nodes that left pods Pending."""
        counts: dict[str, int] = {}
        for outcome in self.per_node.values():
            if self.short(outcome):
                counts[outcome.limit] = counts.get(outcome.limit, 0) + 1
        return counts


class RoomMap:
    """Free room of the nodes, computed lazily, with waiting pods already placed on them.

    ``priority``: the new pods' priority. Waiting pods of lower priority queue behind
    them (the scheduling queue pops the highest priority first), so they take nothing here.

    ``rooms`` (every node's NodeRoom) is built on first use. The plain placement reads the
    state's ``RoomIndex`` instead and builds rooms only for the nodes it touches: those
    reservations, a rollout's own pods or owed DaemonSet pods change (``touched``), and
    those that take pods.
    """

    def __init__(self, state: ClusterState, ignore_owner: tuple | None = None,
                 give_back: Iterable[PodRecord] = (), priority: int | None = None):
        self.state = state
        self._rooms: dict[str, NodeRoom] | None = None
        self._kept: object = _UNSET          # the RoomIndex rooms are copied from (None: build each)
        self.touched: dict[str, NodeRoom] = {}
        # per_node mappings of indexed placements not yet built, held weakly: each one's ``rest``
        # holds this map, so a strong list made every decision a reference cycle that only the
        # cyclic collector frees (one not needed any more needs no building either)
        self._lazy: list = []
        self._ignore = ignore_owner
        self._sums = current_reserved_sums(state) if FAST_PLACEMENT else None
        if self._sums is not None:
            # The sums are kept across decisions (and in the RoomIndex's arrays): rooms are built
            # on first use with them, only the nodes of this workload's own promise differ.
            self._reserved = self._sums.excluding(ignore_owner) if state.reservations else None
            for name in self._sums.own_nodes(ignore_owner):
                if name in state.nodes:
                    self.room(name)
        else:
            self._reserved = state.reserved_by_node(ignore_owner) if state.reservations else None
            for name in self._reserved or ():
                if name in state.nodes:
                    self.room(name)
            if state.reservations:          # whose promises those nodes hold, for the messages
                for node, owners in state.reserved_owners(ignore_owner).items():
                    if node in state.nodes:
                        self.room(node).held_for = dict(owners)
        self.given_back = list(give_back)
        self.placed: list[tuple[PodRecord, str]] = []     # waiting pods and where they went
        self.promised_branch: dict[str, int] = {}         # node -> branch ENIs pods still to be created take
        for pod in self.given_back:       # pods a rollout will replace free their room
            room = self.room(pod.node) if pod.node in state.nodes else None
            if room:
                room.take(-1, pod.requests, pod.uses_ip, scored=pod.score_requests)
                if pod.extended:
                    room.extended_taken = dict(room.extended_taken or {})
                    for name, amount in pod.extended:
                        room.extended_taken[name] = room.extended_taken.get(name, 0) - amount
                if pod.ports:
                    room.freed_ports = (room.freed_ports or []) + list(pod.ports)
        for name, (owed, pods, ips) in owed_by_node(state, ignore_owner).items():   # DaemonSet pods still to come
            room = self.room(name)
            room.free, room.pods = room.free - owed, room.pods - pods
            room.ips = None if room.ips is None else room.ips - ips
        self._place_waiting(ignore_owner, priority)
        if state.short:
            self._subtract_promised(ignore_owner)

    def _subtract_promised(self, ignore_owner: tuple | None) -> None:
        """Pods a controller still has to create are demand too, like Pending pods.

        A workload whose desired pods (``spec.replicas``, a Job's parallelism; DaemonSets
        are owed per node above) exceed the pods that exist for it holds room for the
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
                branch = pod_eni.branch_demand(state, demand.namespace, demand.pod_spec, demand.pod_labels)
                uses_ip = uses_ip and branch is None       # a branch ENI instead of a secondary IP
            except (ObjectError, AttributeError, TypeError, ValueError, KeyError):
                # a stored object of a shape we cannot read holds nothing (it was logged when stored)
                continue
            for _, room in sorted(self.rooms.items()):     # first fit in node-name order, like waiting pods
                if missing <= 0:
                    break
                if ineligibility(room.node, rules) is not None:
                    continue
                take = min(room.fit(requests, uses_ip)[0], missing)
                if take > 0:
                    room.take(take, requests, uses_ip)
                    if branch is not None:   # each will take a branch ENI (security groups for pods)
                        self.promised_branch[room.node.name] = self.promised_branch.get(room.node.name, 0) + take
                    room.held_for = dict(room.held_for or {})
                    room.held_for[workload] = room.held_for.get(workload, 0) + take
                    missing -= take

    def room(self, name: str) -> NodeRoom:
        """One node's room (built on first use; the same object every time)."""
        if self._rooms is not None:
            return self._rooms[name]
        room = self.touched.get(name)
        if room is None:
            room = self.touched[name] = self._new_room(name, self.state.nodes[name])
        return room

    def _new_room(self, name: str, node: NodeRecord) -> NodeRoom:
        kept = self._kept_rooms()
        room = kept.room_of(node, self._reserved) if kept is not None else None
        if room is None:
            room = NodeRoom.of(self.state, node, self._reserved)
        if self._sums is not None and self._reserved:     # whose promises the node holds, for the messages
            room.held_for = self._sums.owners_on(name, self._ignore)
        return room

    def _kept_rooms(self):
        """The state's RoomIndex, current, for copying rooms from (None: compute them)."""
        if self._kept is _UNSET:
            kept = None
            if FAST_PLACEMENT and len(self.state.nodes) >= FAST_PLACEMENT_MIN_NODES:
                from .room_index import RoomIndex

                if self.state.room_index is None:
                    self.state.room_index = RoomIndex(self.state)
                kept = self.state.room_index.current()
            self._kept = kept
        return self._kept

    @property
    def rooms(self) -> dict[str, NodeRoom]:
        if self._rooms is None:
            self.flush()
            touched = self.touched
            self._rooms = {name: touched.get(name) or self._new_room(name, node)
                           for name, node in self.state.nodes.items()}
        return self._rooms

    def index(self):
        """The state's RoomIndex, current, while no room has been built for every node."""
        if self._rooms is not None or not FAST_PLACEMENT or len(self.state.nodes) < FAST_PLACEMENT_MIN_NODES:
            return None
        from .room_index import RoomIndex

        if self.state.room_index is None:
            self.state.room_index = RoomIndex(self.state)
        return self.state.room_index.current()

    def flush(self) -> None:
        """Build the outcomes of earlier indexed placements before rooms change again."""
        lazy, self._lazy = self._lazy, []
        for ref in lazy:
            outcomes = ref()
            if outcomes is not None:
                outcomes.materialize()

    def _waiting(self, ignore_owner: tuple | None, priority: int | None) -> list[PodRecord]:
        out = []
        for pod in self.state.pending.values():
            if priority is not None and pod.priority < priority:
                continue
            if ignore_owner and pod.owner and \
                    self.state.top_owner((pod.owner[0], pod.namespace, pod.owner[1])) == ignore_owner:
                continue
            out.append(pod)
        out.sort(key=lambda p: (-p.priority, p.key))
        return out

    def _place_waiting(self, ignore_owner: tuple | None, priority: int | None) -> None:
        """Pods already Pending are demand ahead of ours: bind them one at a time where the
        default profile's scores send them (highest priority first, then by name).

        Pods of one kind (same rules and requests) share a heap of their nodes by score;
        a bind bumps the node's version, and every heap holding that node gets a fresh
        entry, so a stale score is never used. The cost is a heap operation per waiting
        pod, not a scan of the nodes. Pods with pod-level constraints scan their nodes.
        """
        waiting = self._waiting(ignore_owner, priority)
        if not waiting:
            return
        heaps: dict[tuple, _KindHeap] = {}
        heaps_of_node: dict[str, list] = {}
        eligible_cache: dict[PodPlacementRules, list[NodeRoom]] = {}
        watchers: dict[object, ConstraintState] = {}
        preferences: dict[PodPlacementRules, Preferences] = {}
        anti_pods = list(self.state.anti_pods.values())
        for pod in waiting:
            budget.check()
            rules = pod.rules or PodPlacementRules()
            if rules.constraints is None and anti_pods and repelled(
                    anti_pods, pod.namespace, dict(pod.labels), self.state.namespace_labels(pod.namespace)):
                rules = replace(rules, constraints=PodConstraints(pod.namespace, pod.labels, None, (), ()))
            node_rules = rules.node_only
            if node_rules not in eligible_cache:
                eligible_cache[node_rules] = [r for _, r in sorted(self.rooms.items())
                                              if ineligibility(r.node, node_rules) is None]
            rooms = eligible_cache[node_rules]
            if rules.constraints is not None:
                watcher = watchers.get(rules)
                if watcher is None:
                    watcher = watchers[rules] = ConstraintState(
                        self.state, rules.constraints, rules, self.state.nodes.values(), self.placed, self.given_back)
                prefs = preferences.get(node_rules)
                if prefs is None:
                    prefs = preferences[node_rules] = Preferences(node_rules, [r.node for r in rooms])
                room = _best_room(rooms, pod.requests, pod.score_requests, pod.uses_ip, pod.extended, watcher,
                                  prefs=prefs)
            else:
                kind = (node_rules, pod.requests, pod.score_requests, pod.uses_ip, pod.extended)
                heap = heaps.get(kind)
                if heap is None:
                    heap = heaps[kind] = _KindHeap(rooms, pod, node_rules)
                    for r in rooms:
                        heaps_of_node.setdefault(r.node.name, []).append(heap)
                room = heap.pop_best()
            if room is None:
                continue
            room.take(1, pod.requests, pod.uses_ip, scored=pod.score_requests, extended=pod.extended,
                      ports=pod.ports)
            self.placed.append((pod, room.node.name))
            for heap in heaps_of_node.get(room.node.name, ()):
                heap.refresh(room)
            for watcher in watchers.values():
                watcher.observe_pod(pod, room.node.name)


def current_reserved_sums(state: ClusterState):
    """The state's ReservedSums brought up to its reservations (None: none ever made)."""
    sums = state.reserved_sums
    if sums is None:
        if not state.reservations:
            return None
        from .reserved_sums import ReservedSums

        sums = state.reserved_sums = ReservedSums(state)
    return sums.sync()


def reserved_by_node(state: ClusterState, exclude: tuple | None = None) -> dict:
    """``state.reserved_by_node(exclude)``, from the sums kept across decisions when the fast path is on."""
    sums = current_reserved_sums(state) if FAST_PLACEMENT else None
    return sums.excluding(exclude) if sums is not None else state.reserved_by_node(exclude)


class _KindHeap:
    """Nodes by descending score (then name) for one kind of waiting pod, with lazy invalidation."""

    def __init__(self, rooms: list[NodeRoom], pod: PodRecord, rules: PodPlacementRules | None = None):
        self.pod = pod
        self.rooms = {r.node.name: r for r in rooms}
        self.dead: set = set()
        self.bonus: dict = {}
        if rules is not None and (rules.preferred_terms or any(r.node.taints for r in rooms)):
            prefs = Preferences(rules, [r.node for r in rooms])
            if prefs.active:
                # Normalized once over the nodes it fits at the start (the scheduler re-normalizes over
                # each cycle's feasible nodes; this differs only once the top-scoring node fills up).
                fitting = [r.node.name for r in rooms if r.fit(pod.requests, pod.uses_ip, 0, pod.extended)[0] >= 1]
                self.bonus = prefs.bonus(fitting)
        self.heap = [entry for entry in map(self._entry, rooms) if entry is not None]
        heapq.heapify(self.heap)

    def _entry(self, room: NodeRoom) -> tuple | None:
        pod = self.pod
        if room.fit(pod.requests, pod.uses_ip, 0, pod.extended)[0] < 1:
            self.dead.add(room.node.name)      # room only shrinks while waiting pods are placed
            return None
        return (-room.score(pod.requests, pod.score_requests) - self.bonus.get(room.node.name, 0), room.node.name,
                room.version)

    def refresh(self, room: NodeRoom) -> None:
        if room.node.name in self.dead or room.node.name not in self.rooms:
            return
        entry = self._entry(room)
        if entry is not None:
            heapq.heappush(self.heap, entry)

    def pop_best(self) -> NodeRoom | None:
        while self.heap:
            _, name, version = self.heap[0]
            room = self.rooms[name]
            if version != room.version or name in self.dead:
                heapq.heappop(self.heap)      # a fresher entry was pushed when it changed
                continue
            return room
        return None


def _best_room(rooms: list[NodeRoom], requests: Resources, scored: Resources, uses_ip: bool, extended: tuple,
               watcher: ConstraintState | None, new_volumes: int = 0, prefs: Preferences | None = None
               ) -> NodeRoom | None:
    """The node the scheduler binds one pod to: feasible, highest score, then lowest name."""
    check_ports = watcher is not None and bool(watcher.constraints.ports)
    feasible = []
    for room in rooms:
        if room.fit(requests, uses_ip, new_volumes, extended)[0] < 1:
            continue
        if watcher is not None and watcher.refusal(room.node, room.used_ports() if check_ports else None):
            continue
        feasible.append(room)
    bonus = prefs.bonus([r.node.name for r in feasible]) if prefs is not None and prefs.active else {}
    best: NodeRoom | None = None
    best_score = -1
    for room in feasible:
        score = room.score(requests, scored) + bonus.get(room.node.name, 0)
        if best is None or score > best_score or (score == best_score and room.node.name < best.node.name):
            best, best_score = room, score
    return best


def _outcome(room: NodeRoom, placed: int, limit: str) -> NodeOutcome:
    return NodeOutcome(room, placed, limit, room.pods, room.ips, room.free, room.volumes, room.short_of)


def place(rooms: RoomMap, rules: PodPlacementRules, requests: Resources, uses_ip: bool, wanted: int | None,
          node_filter=None, new_volumes: int = 0, caps: dict | None = None, *, scored: Resources | None = None,
          extended: tuple = (), already: Mapping[str, int] | None = None) -> Placement:
    """Place ``wanted`` pods (``None``: one per eligible node, as a DaemonSet does).

    ``node_filter(node) -> cause | None`` adds restrictions such as a volume's zone;
    ``caps`` (node name -> (pods, code)) adds a per-node limit the rooms do not know,
    such as branch ENIs for security groups for pods (``pod_eni.branch_caps``);
    ``rules.constraints`` (pod affinity, spread, host ports) restrict nodes further as
    pods land. The rooms are spent.

    ``already`` (node -> pods): pods of this kind an earlier pass bound; they take their room
    and count for the constraints before the ``wanted`` more are placed (the pods that need
    preemption come after the ones that fit at once, as in the scheduling queue).
    """
    scored = scored if scored is not None else requests
    if not (node_filter or new_volumes or caps or extended or wanted is None or rules.constraints is not None
            or already):
        fast = _place_indexed(rooms, rules, requests, uses_ip, wanted, scored)
        if fast is not None:
            return fast
    rooms.flush()
    node_rules = rules.node_only
    excluded: dict[str, int] = {}
    eligible: list[NodeRoom] = []
    budget.check()
    for room in rooms.rooms.values():
        cause = ineligibility(room.node, node_rules) or (node_filter(room.node) if node_filter else None)
        if cause:
            excluded[cause] = excluded.get(cause, 0) + 1
        else:
            eligible.append(room)
    watcher = None
    if rules.constraints is not None:
        watcher = ConstraintState(rooms.state, rules.constraints, rules, rooms.state.nodes.values(),
                                  rooms.placed, rooms.given_back)
    for name, count in (already or {}).items():
        if name in rooms.rooms:
            room = rooms.rooms[name]
            room.take(count, requests, uses_ip, new_volumes, scored=scored, extended=extended,
                      ports=watcher.constraints.ports if watcher is not None else ())
            if watcher is not None:
                for _ in range(count):
                    watcher.observe_self(room.node)
    daemon = wanted is None
    target = len(eligible) if wanted is None else wanted
    if watcher is not None and watcher.changes_as_placed and not daemon and not caps:
        prefs = Preferences(node_rules, [r.node for r in eligible])
        placement = _place_one_by_one(eligible, watcher, requests, scored, uses_ip, extended, target, new_volumes,
                                      prefs)
        if placement is not None:
            placement.excluded = excluded
            placement.constraints = rules.constraints
            return placement
    cap_code = watcher.one_per_node if watcher is not None else None
    check_ports = watcher is not None and bool(watcher.constraints.ports)
    remaining = target
    per_node: dict[str, NodeOutcome] = {}
    if watcher is None:
        fits = [(room, *room.fit(requests, uses_ip, new_volumes, extended)) for room in eligible]
    else:
        fits = []
        for room in eligible:
            refusal = watcher.refusal(room.node, room.used_ports() if check_ports else None)
            if refusal:
                per_node[room.node.name] = _outcome(room, 0, refusal)
                continue
            fits.append((room, *room.fit(requests, uses_ip, new_volumes, extended)))
    # Fill the roomiest nodes first, like the scheduler's spreading would end up doing.
    if caps:
        fits = [(room, *caps[room.node.name]) if room.node.name in caps and caps[room.node.name][0] < fit
                else (room, fit, limit) for room, fit, limit in fits]
    fits.sort(key=lambda item: (-item[1], item[0].node.name))
    one_each = daemon or cap_code is not None
    ports = watcher.constraints.ports if watcher else ()
    for room, fit, limit in fits:
        count = fit
        if one_each and fit > 1:
            count, limit = 1, (cap_code or limit)
        take = count if count < remaining else remaining
        per_node[room.node.name] = NodeOutcome(room, take, limit, room.pods, room.ips, room.free, room.volumes,
                                               room.short_of)
        if take:
            room.take(take, requests, uses_ip, new_volumes, scored=scored, extended=extended, ports=ports)
        remaining -= take
    return Placement(target, target - remaining, per_node, excluded, rules.constraints, daemon=daemon)


def _place_one_by_one(eligible: list[NodeRoom], watcher: ConstraintState, requests: Resources, scored: Resources,
                      uses_ip: bool, extended: tuple, wanted: int, new_volumes: int,
                      prefs: Preferences | None = None) -> Placement | None:
    """The scheduler's loop for pods whose placement moves the constraints of the next one.

    ``None`` when it would cost more than SEQUENTIAL_BUDGET node checks; the caller then
    judges each node once against the pods already there (optimistic: never a false deny
    from the budget, the spread or affinity among the new pods is then not enforced).
    """
    if len(eligible) * max(wanted, 1) > SEQUENTIAL_BUDGET:
        return None
    before = {room.node.name: _outcome(room, 0, POD_LIMIT_REACHED) for room in eligible}
    candidates = [room for room in eligible if room.fit(requests, uses_ip, new_volumes, extended)[0] >= 1]
    placed = 0
    while placed < wanted:
        room = _best_room(candidates, requests, scored, uses_ip, extended, watcher, new_volumes, prefs)
        if room is None:
            break
        room.take(1, requests, uses_ip, new_volumes, scored=scored, extended=extended, ports=watcher.constraints.ports)
        watcher.observe_self(room.node)
        before[room.node.name].placed += 1
        placed += 1
        if room.fit(requests, uses_ip, new_volumes, extended)[0] < 1:
            candidates.remove(room)
    check_ports = bool(watcher.constraints.ports)
    for room in eligible:
        fit, limit = room.fit(requests, uses_ip, new_volumes, extended)
        outcome = before[room.node.name]
        outcome.limit = limit
        outcome.short_of = room.short_of
        if fit >= 1:
            outcome.limit = watcher.refusal(room.node, room.used_ports() if check_ports else None) or limit
    return Placement(wanted, placed, before, {})


# ---- the plain case, from the state's RoomIndex ---------------------------------------------
FAST_PLACEMENT = True       # tests turn it off to compare with the reference loop above
FAST_PLACEMENT_MIN_NODES = 48   # below this the loop is quicker than numpy's per-call overhead
_CODE_INDEX = {code: i for i, code in enumerate((POD_IP_EXHAUSTED, POD_LIMIT_REACHED, INSUFFICIENT_CPU,
                                                  INSUFFICIENT_MEMORY, INSUFFICIENT_EPHEMERAL_STORAGE))}


def _names_matter(rules: PodPlacementRules) -> bool:
    """Rules that look at the node's name (spec.nodeName, matchFields): not the same for a whole group."""
    return bool(rules.node_name) or any(dict(term).get("matchFields") for term in rules.required_terms)


def _label_keys(rules: PodPlacementRules) -> set:
    """The node labels the rules read (nodeSelector and required node affinity)."""
    keys = {key for key, _ in rules.node_selector}
    for term in rules.required_terms:
        for expr in dict(term).get("matchExpressions") or ():
            keys.add(dict(expr).get("key"))
    return keys


def _place_indexed(rooms: RoomMap, rules: PodPlacementRules, requests: Resources, uses_ip: bool,
                   wanted: int, scored: Resources) -> Placement | None:
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
    keys = _label_keys(rules)
    if keys:
        group, group_first = index.groups_for(keys)
        members = [index.state.nodes[index.names[i]] for i in group_first.tolist()]
    else:
        group, members = index.group, index.group_nodes
    sizes = np.bincount(group, minlength=len(members))
    causes = [ineligibility(node, rules) if sizes[g] else None for g, node in enumerate(members)]
    excluded: dict[str, int] = {}
    if any(causes):
        firsts = np.full(len(causes), n, np.int64)
        np.minimum.at(firsts, group, index.rank)
        flagged_groups = [(g, cause) for g, cause in enumerate(causes) if cause]
        for g, cause in sorted(flagged_groups, key=lambda item: firsts[item[0]]):
            excluded[cause] = excluded.get(cause, 0) + int(sizes[g])
    allowed = np.array([cause is None for cause in causes], bool)
    positions = np.flatnonzero(allowed[group]) if n else np.zeros(0, np.int64)
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
        first[room.node.name] = _outcome(room, take, CODES[code[j]])
        room.take(take, requests, uses_ip, scored=scored)
        remaining -= take

    def rest() -> dict[str, NodeOutcome]:
        out = {}
        for j in np.argsort(order_key, kind="stable").tolist():
            name = index.names[positions[j]]
            if name not in first:
                room = rooms.room(name)
                out[name] = _outcome(room, 0, CODES[code[j]])
        return out

    per_node = LazyOutcomes(first, len(positions), rest)
    rooms._lazy.append(weakref.ref(per_node))
    placement = Placement(wanted, wanted - remaining, per_node, excluded, rules.constraints)
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

    def get(self, name, default=None):
        return self.materialize().get(name, default)

    def __contains__(self, name) -> bool:
        return name in self.materialize()

    def keys(self):
        return self.materialize().keys()

    def values(self):
        return self.materialize().values()

    def items(self):
        return self.materialize().items()

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
