"""A state fed change by change decides exactly as a state built afresh from the same objects.

The live server applies watch events one at a time and keeps caches (rooms per node, the
DaemonSet pods nodes still owe, IP capacity per type); ``check`` builds a state in one go.
The oracle is that second state: after every event, both must give the same verdict,
the same numbers and the same message.
"""

import copy

from tests import synthetic as s
from webhook.engine.evaluate import evaluate
from webhook.state.snapshot import state_from_objects


def web(replicas=40):
    return s.deployment("web", replicas, spec=s.pod_spec([s.container(requests={"cpu": "200m", "memory": "256Mi"})]))


def decision(state):
    verdict = evaluate(state, web())
    return verdict.verdict, verdict.requested, verdict.schedulable, verdict.pending, verdict.message


def test_each_event_leaves_the_state_deciding_like_a_fresh_one():
    objects = {("Node", n["metadata"]["name"]): n for n in s.two_t3_medium_cluster()["items"] if n["kind"] == "Node"}
    others = [o for o in s.two_t3_medium_cluster()["items"] if o["kind"] != "Node"]
    live = state_from_objects(list(objects.values()) + others)
    current = {(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]): o
               for o in list(objects.values()) + others}

    def step(obj=None, remove=None):
        if obj is not None:
            live.apply(obj)
            current[(obj["kind"], obj["metadata"].get("namespace"), obj["metadata"]["name"])] = obj
        if remove is not None:
            live.remove(*remove)
            del current[remove]
        assert decision(live) == decision(state_from_objects(list(current.values())))

    big = s.node("ip-10-0-3-3.ec2.internal", instance_type="m5.large", zone="us-east-1b",
                 allocatable={"cpu": "1930m", "memory": "7Gi", "pods": "29"})
    step(big)                                                           # a node joins
    shrunk = copy.deepcopy(big)
    shrunk["status"]["allocatable"]["pods"] = "10"
    step(shrunk)                                                        # a known node changes
    cordoned = copy.deepcopy(shrunk)
    cordoned["spec"]["unschedulable"] = True
    step(cordoned)                                                      # cordoned: no new pods there
    logs = s.daemonset("logs", spec=s.pod_spec([s.container("logs", requests={"cpu": "300m"})]))
    step(logs)                                                          # a DaemonSet every node owes a pod
    busy = s.pod("batch-1", "default", "ip-10-0-1-17.ec2.internal",
                 spec=s.pod_spec([s.container(requests={"cpu": "500m"})]))
    step(busy)                                                          # a pod lands
    step(remove=("Pod", "default", "batch-1"))                          # and goes
    step(remove=("DaemonSet", "kube-system", "logs"))
    step(remove=("Node", None, "ip-10-0-3-3.ec2.internal"))             # the node leaves
    prefix = s.aws_node(prefix_delegation=True)
    step(prefix)                                                        # the CNI switches to prefixes


def test_an_unreadable_object_is_noted_once_and_counts_for_nothing():
    state = state_from_objects(s.two_t3_medium_cluster()["items"])
    before = decision(state)
    bad = s.pod("odd", "default", "ip-10-0-1-17.ec2.internal")
    bad["spec"]["containers"] = "nginx"
    note = state.apply_or_skip(bad)
    assert note is not None and note.startswith("Pod default/odd: ") and "spec.containers" in note
    assert state.apply_or_skip(bad) is None and state.skipped == [note]       # said once
    assert decision(state) == before
    assert state.apply_or_skip(web(3)) is None and state.skipped == [note]     # readable objects pass
