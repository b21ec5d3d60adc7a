"""What all reservations hold per node, kept across decisions instead of re-summed by each.

``ClusterState.reserved_by_node`` (the reference) walks every reservation and every
workload's pods on every decision. That is fine for the webhook's handful of promises and
quadratic for ``check``, where each of 1,000 admitted manifests leaves a permanent one.
Here the held amount of each reservation is remembered, and recomputed only when the
reservation was replaced or the pods of its workload changed (``ClusterState`` notes
those workloads in ``dirty`` while anything is remembered), so a decision after a new
reservation only adds that one.

The semantics are the reference's, not a copy of them: a reservation's hold is
``ClusterState.held`` itself (the promise minus the pods that appeared since, so it
shrinks as pods show up); the latest decision per workload wins because the store is read
(``state.reservations``) on every sync, whoever wrote it (the in-process ledger, the
cluster ledger replacing the whole dict, ``check``); an expired promise leaves when
``expire_reservations`` drops it from the store. Tests compare decisions against the
reference on random clusters (tests/test_fast_placement.py).
"""

from __future__ import annotations

from .requests import ZERO, Resources


class ReservedSums:
    """Per node: (requests, pods, IP pods) held by all reservations, and by whom."""

    def __init__(self, state):
        self.state = state
        self.held: dict[tuple, tuple] = {}          # workload -> (its Reservation, what it holds per node)
        self.sums: dict[str, tuple[Resources, int, int]] = {}
        self.owners: dict[str, dict[tuple, int]] = {}
        self.dirty: set[tuple] = set()               # workloads whose pods (or ReplicaSets) changed
        self.changed: set[str] = set()               # nodes whose sums moved since the RoomIndex looked

    def sync(self) -> "ReservedSums":
        """Bring the sums up to the state's reservations and pods; returns itself."""
        store = self.state.reservations
        held, dirty = self.held, self.dirty
        for workload in [w for w in held if w not in store]:
            self._drop(workload)
        for workload, reservation in store.items():
            known = held.get(workload)
            if known is not None and known[0] is reservation and workload not in dirty:
                continue
            if known is not None:
                self._drop(workload)
            self._add(workload, reservation)
        dirty.clear()
        return self

    def _add(self, workload: tuple, reservation) -> None:
        per_node = self.state.held(reservation)
        self.held[workload] = (reservation, per_node)
        requests, uses_ip = reservation.requests, reservation.uses_ip
        for node, count in per_node.items():
            used, pods, ips = self.sums.get(node, (ZERO, 0, 0))
            self.sums[node] = (used + requests.scaled(count), pods + count, ips + (count if uses_ip else 0))
            self.owners.setdefault(node, {})[workload] = count
            self.changed.add(node)

    def _drop(self, workload: tuple) -> None:
        reservation, per_node = self.held.pop(workload)
        requests, uses_ip = reservation.requests, reservation.uses_ip
        for node, count in per_node.items():
            used, pods, ips = self.sums[node]
            pods -= count
            owners = self.owners[node]
            del owners[workload]
            if pods <= 0:       # held counts are positive: no pods left means no reservation left here
                del self.sums[node]
                del self.owners[node]
            else:
                self.sums[node] = (used - requests.scaled(count), pods, ips - (count if uses_ip else 0))
            self.changed.add(node)

    def excluding(self, workload: tuple | None) -> dict[str, tuple[Resources, int, int]]:
        """``state.reserved_by_node(workload)``: the sums without ``workload``'s own promise.

        The shared dict when that workload holds nothing (callers only read it)."""
        own = self.held.get(workload) if workload is not None else None
        if not own or not own[1]:
            return self.sums
        out = dict(self.sums)
        reservation, per_node = own
        requests, uses_ip = reservation.requests, reservation.uses_ip
        for node, count in per_node.items():
            used, pods, ips = out[node]
            if pods - count <= 0:
                del out[node]
            else:
                out[node] = (used - requests.scaled(count), pods - count, ips - (count if uses_ip else 0))
        return out

    def own_nodes(self, workload: tuple | None) -> list[str]:
        """The nodes where ``workload``'s own promise is counted in ``sums`` (their rooms differ)."""
        own = self.held.get(workload) if workload is not None else None
        return list(own[1]) if own else []

    def owners_on(self, node: str, exclude: tuple | None) -> dict[tuple, int] | None:
        """``state.reserved_owners(exclude).get(node)``, as a fresh dict (None: nobody)."""
        owners = self.owners.get(node)
        if not owners:
            return None
        if exclude is not None and exclude in owners:
            out = {w: c for w, c in owners.items() if w != exclude}
            return out or None
        return dict(owners)
