"""Every node's free room, kept current as objects change, in arrays a decision reads at once.

A decision used to build a ``NodeRoom`` for every node (5,000 objects on a large cluster),
run the node-eligibility rules on every node, and compute every node's fit in Python:
tens of milliseconds that grow with the cluster. Here:

* the room of each node (``NodeRoom.of`` without reservations: the reference arithmetic
  itself, not a copy of it) is kept in numpy arrays, in node-name order, and recomputed
  only for the nodes whose pods or object changed since the last decision
  (``ClusterState.rooms_dirty``); a change that may move every node's room (a CSINode, a
  claim, the CNI settings, a new node...) bumps ``ClusterState.rooms_epoch`` and the
  arrays are rebuilt once;
* nodes are grouped by what eligibility reads (taints, cordon, readiness, and the values
  of the labels the pod's rules name, kept per label key in ``label_codes``), so a pod's
  rules run once per group, not once per node (every node has a label of its own, the
  hostname, so grouping by all labels would not group at all);
* the fits of all eligible nodes are computed at once (``fits``), with exactly the rule
  of ``NodeRoom.fit``, tie order of the limits included.

The index is an accelerator: ``placement.place`` uses it only for the plain case (no
volume filter, no per-node caps, no waiting pods to place first...) and otherwise, or
whenever a value does not fit in 64 bits, runs the reference loop. Tests compare both on
random clusters.
"""

from __future__ import annotations

import numpy as np

from .requests import Resources

# Limit codes by index (the order of the checks in NodeRoom.fit).
CODES = ("POD_IP_EXHAUSTED", "POD_LIMIT_REACHED", "INSUFFICIENT_CPU", "INSUFFICIENT_MEMORY",
         "INSUFFICIENT_EPHEMERAL_STORAGE")
_INT64 = 2**62


def eligibility_key(node) -> tuple:
    """What ``scheduling.ineligibility`` reads of a node besides its name and its labels.

    Hashable: every Node is shape-checked when applied (``shape.SCHEMAS``), so its taints are strings."""
    return (node.unschedulable, node.ready, node.taints)


def _label_code(labels, key: str, codes: dict) -> int:
    """-1 for a missing label, else the id of its value (values of the wrong shape: one id each)."""
    if key not in labels:
        return -1
    value = labels[key]
    try:
        found = codes.get(value)
    except TypeError:
        found, value = None, ("unhashable", id(value))
    if found is None:
        found = codes[value] = len(codes)
    return found


class RoomIndex:
    """Free room per node (arrays in name order) and node groups, for one ClusterState."""

    def __init__(self, state):
        self.state = state
        self.key: tuple | None = None       # what the arrays were built for (None: not yet built)

    # ---- keeping it current ----------------------------------------------------------
    def current(self) -> "RoomIndex | None":
        """The index brought up to date, or ``None`` when it cannot stand for the state."""
        state = self.state
        key = (state.rooms_epoch, state.cni, len(state.instance_table), len(state.nodes))
        if key != self.key:
            self._build()
            self.key = key
        elif state.rooms_dirty:
            for name in state.rooms_dirty:
                i = self.pos.get(name)
                node = state.nodes.get(name)
                if i is None or node is None or node.name != name:
                    self._build()
                    break
                self._set(i, node)
        state.rooms_dirty.clear()
        sums = state.reserved_sums
        if sums is not None and sums.changed:
            for name in sums.changed:
                i = self.pos.get(name)
                if i is not None:
                    self._set_reserved(i, sums.sums.get(name))
            sums.changed.clear()
        return self if self.usable and not self.reserved_too_big else None

    def _build(self) -> None:
        state = self.state
        self.names = sorted(state.nodes)
        self.pos = {name: i for i, name in enumerate(self.names)}
        order = {name: i for i, name in enumerate(state.nodes)}   # the state's own iteration order
        n = len(self.names)
        self.rank = np.array([order[name] for name in self.names], np.int64)
        self.cpu = np.zeros(n, np.int64)
        self.memory = np.zeros(n, np.int64)
        self.ephemeral = np.zeros(n, np.int64)
        self.pods = np.zeros(n, np.int64)
        self.ips = np.zeros(n, np.int64)
        self.ips_known = np.zeros(n, bool)
        self.unknown_type = np.zeros(n, bool)
        self.group = np.zeros(n, np.int64)
        self.group_ids: dict[tuple, int] = {}
        self.group_nodes: list = []            # group id -> a node of the group
        self.columns: dict[str, tuple] = {}    # label key -> (codes per node, value -> code)
        self.rooms: list = [None] * n          # NodeRoom.of(state, node, None) per node, never handed out
        self.usable = True
        for i, name in enumerate(self.names):
            self._set(i, state.nodes[name])
        # What reservations hold per node (ReservedSums), subtracted from the rooms above by fits().
        self.reserved = np.zeros((5, n), np.int64)      # cpu, memory, ephemeral, pods, IP pods
        self.reserved_too_big: set[int] = set()
        self.any_reserved = False
        sums = state.reserved_sums
        if sums is not None:
            for name, held in sums.sums.items():
                at = self.pos.get(name)
                if at is not None:
                    self._set_reserved(at, held)
            sums.changed.clear()

    def _set_reserved(self, i: int, held) -> None:
        used, pods, ips = held if held is not None else (Resources(), 0, 0)
        values = (used.cpu, used.memory, used.ephemeral, pods, ips)
        if any(not isinstance(v, int) or abs(v) >= _INT64 for v in values):
            self.reserved_too_big.add(i)          # beyond 64 bits: only the reference loop is exact
            return
        self.reserved_too_big.discard(i)
        self.reserved[:, i] = values
        self.any_reserved = self.any_reserved or held is not None

    def _set(self, i: int, node) -> None:
        from .placement import NodeRoom

        room = self.rooms[i] = NodeRoom.of(self.state, node, None)
        values = (room.free.cpu, room.free.memory, room.free.ephemeral, room.pods, room.ips or 0)
        if any(not isinstance(v, int) or abs(v) >= _INT64 for v in values):
            self.usable = False                # beyond 64 bits: only the reference loop is exact
            return
        self.cpu[i], self.memory[i], self.ephemeral[i], self.pods[i], self.ips[i] = values
        self.ips_known[i] = room.ips is not None
        self.unknown_type[i] = room.capacity.mode == "unknown-type"
        key = eligibility_key(node)
        gid = self.group_ids.get(key)
        if gid is None:
            gid = self.group_ids[key] = len(self.group_nodes)
            self.group_nodes.append(node)
        self.group[i] = gid
        for label, (codes, values) in self.columns.items():
            codes[i] = _label_code(node.labels, label, values)

    # ---- questions -------------------------------------------------------------------
    def room_of(self, node, reserved_by_node: dict | None):
        """``NodeRoom.of(state, node, reserved_by_node)`` from the room kept for ``node`` (None: not kept).

        The kept room is the reference's own result for the node as it is now (it is
        recomputed whenever the node's room may have moved, as the arrays are); what a
        reservation holds is taken off it by ``NodeRoom.less_reserved``, as ``NodeRoom.of`` does.
        Decisions that touch every node (a deny explains every node) no longer recompute
        each node's IP rule, volumes and sums.
        """
        i = self.pos.get(node.name)
        base = self.rooms[i] if i is not None else None
        if base is None or base.node is not node:
            return None
        return base.less_reserved(reserved_by_node)

    def nodes_type(self, i: int) -> str | None:
        return self.state.nodes[self.names[i]].instance_type

    def label_codes(self, key: str) -> np.ndarray:
        """Per node, an id of its value of label ``key`` (-1: no such label); kept current from then on."""
        column = self.columns.get(key)
        if column is None:
            values: dict = {}
            codes = np.array([_label_code(self.state.nodes[name].labels, key, values) for name in self.names],
                             np.int64)
            column = self.columns[key] = (codes, values)
        return column[0]

    def groups_for(self, label_keys) -> tuple[np.ndarray, np.ndarray]:
        """Nodes grouped by everything eligibility reads under rules naming ``label_keys``:
        (group id per node, the position of one node of each group)."""
        group = self.group
        for key in sorted(label_keys):
            codes = self.label_codes(key)
            group = group * (len(self.columns[key][1]) + 1) + (codes + 1)
            group = np.unique(group, return_inverse=True)[1].astype(np.int64).reshape(-1)   # keep ids small
        _, first, inverse = np.unique(group, return_index=True, return_inverse=True)
        return inverse.astype(np.int64).reshape(-1), first

    def fits(self, positions: np.ndarray, requests: Resources, uses_ip: bool) -> tuple[np.ndarray, np.ndarray]:
        """``NodeRoom.fit`` for the nodes at ``positions`` at once: (fits, indexes into CODES)."""
        reserved = self.reserved[:, positions] if self.any_reserved else None
        best = self.pods[positions]
        if reserved is not None:
            best = best - reserved[3]
        code = np.full(len(positions), 1, np.int64)
        if uses_ip:
            ips = self.ips[positions]
            if reserved is not None:
                ips = ips - reserved[4]
            stop = self.ips_known[positions] & (ips <= best)
            best = np.where(stop, ips, best)
            code[stop] = 0
        for row, (column, amount, index) in enumerate(((self.cpu, requests.cpu, 2), (self.memory, requests.memory, 3),
                                                       (self.ephemeral, requests.ephemeral, 4))):
            if amount > 0:
                free = column[positions] if reserved is None else column[positions] - reserved[row]
                room = free // amount
                stop = room < best
                best = np.where(stop, room, best)
                code[stop] = index
        return np.maximum(best, 0), code
