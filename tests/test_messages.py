"""Per-node figures in messages are what the node had free before this workload: what a person can check."""

from tests import synthetic as s
from webhook.engine.evaluate import evaluate
from webhook.engine.requests import Resources
from webhook.state.snapshot import state_from_objects

N1, N2 = "ip-10-0-1-17.ec2.internal", "ip-10-0-2-23.ec2.internal"


def test_attach_limit_message_names_the_attachments_each_node_had_left():
    items = [i for i in s.two_t3_medium_cluster()["items"] if i["kind"] != "CSINode"]
    items += [s.csinode(N1, ebs_count=2), s.csinode(N2, ebs_count=3)]   # no EBS volume attached yet
    template = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                "spec": s.pvc("data")["spec"]}
    db = s.statefulset("db", 7, spec=s.pod_spec([s.container(requests={"cpu": "10m"})]), claim_templates=[template])
    verdict = evaluate(state_from_objects(items), db)
    # One new volume per pod: 2 + 3 attachments -> 5 pods, 2 Pending.
    assert (verdict.schedulable, verdict.pending, verdict.codes) == (5, 2, ["EBS_ATTACH_LIMIT"])
    assert f"node {N1}: 2 EBS attachments left; node {N2}: 3 EBS attachments left" in verdict.message
    assert verdict.message.endswith("\nSpread the pods over more nodes, use fewer EBS volumes per pod, or lower "
                                    "replicas.")


def test_kubelet_limit_below_the_cni_limit_says_how_far_max_pods_can_go():
    # maxPods 12 on t3.medium: kubelet slots 12-7 + 12-6 = 11 while IPs would allow 21.
    state = state_from_objects(s.two_t3_medium_cluster(max_pods=12)["items"])
    verdict = evaluate(state, s.small_web("web", 12))
    assert (verdict.schedulable, verdict.pending, verdict.codes) == (11, 1, ["POD_LIMIT_REACHED"])
    # eni-max-pods.txt: t3.medium 17.
    assert "Raise kubelet maxPods (the VPC CNI allows 17 on t3.medium)" in verdict.message


# ---- the remedy matches the node's IP model (AWS VPC CNI docs, eni-max-pods.txt) -------------------

def _two_nodes(instance_type="t3.medium", **kw):
    items = s.two_t3_medium_cluster(**kw)["items"]
    for item in items:
        if item["kind"] == "Node":
            for key in ("node.kubernetes.io/instance-type", "beta.kubernetes.io/instance-type"):
                item["metadata"]["labels"][key] = instance_type
    return state_from_objects(items)


def test_ip_exhaustion_on_xen_nodes_says_prefix_delegation_needs_nitro():
    # t2.medium (Xen): 3 ENIs x (6 - 1) = 15 pod IPs like t3.medium, but no prefix delegation (Nitro only).
    verdict = evaluate(_two_nodes("t2.medium"), s.small_web("web", 30))
    assert (verdict.schedulable, verdict.pending, verdict.codes) == (21, 9, ["POD_IP_EXHAUSTED"])
    assert f"(node {N1}: 10 IP slots left of 15 on t2.medium; node {N2}: 11 of 15)" in verdict.message
    assert verdict.message.endswith(
        "Prefix delegation needs Nitro instance types: use Nitro nodes, add nodes, or lower replicas.")


def test_ip_exhaustion_with_prefix_delegation_on_asks_for_nodes_not_for_prefix_delegation():
    # Prefixes on t3.medium: 3 ENIs x (6 - 1) = 15 /28 prefixes = 240 IPs; kubelet maxPods 300 is higher,
    # so the IPs run out first: 240 - 5 + 240 - 4 = 471 of 600 tiny pods fit.
    state = _two_nodes(prefix_delegation=True, max_pods=300)
    tiny = s.deployment("web", 600, spec=s.pod_spec([s.container("web", requests={"cpu": "1m", "memory": "1Mi"})]))
    verdict = evaluate(state, tiny)
    assert (verdict.schedulable, verdict.pending, verdict.codes) == (471, 129, ["POD_IP_EXHAUSTED"])
    assert f"node {N1}: 235 IP slots left of 240 on t3.medium; node {N2}: 236 of 240" in verdict.message
    assert verdict.message.endswith("\nAdd nodes or larger instance types, or lower replicas.")


def test_nodes_that_kept_the_eni_limited_max_pods_after_prefix_delegation_are_named_for_replacement():
    # Prefix delegation on, but both nodes still run maxPods 17 (booted before it was enabled): they
    # keep secondary IPs, 10 + 11 free, and the remedy is to replace them.
    state = _two_nodes(prefix_delegation=True, max_pods=17)
    verdict = evaluate(state, s.small_web("web", 30))
    assert (verdict.schedulable, verdict.pending, verdict.codes) == (21, 9, ["POD_IP_EXHAUSTED"])
    fix = verdict.message.splitlines()[-1]
    assert N1 in fix and N2 in fix and "started before prefix delegation was enabled" in fix
    assert fix.endswith(" Or add nodes, or lower replicas.")


def test_a_kubelet_limit_equal_to_the_cni_limit_does_not_advise_raising_max_pods():
    # hostNetwork pods take no pod IP, only pod slots: maxPods 17 (= eni-max-pods for t3.medium) less
    # the 7 and 6 pods already there leaves 10 + 11; nothing to gain from maxPods, so: add nodes.
    web = s.small_web("web", 40)
    web["spec"]["template"]["spec"]["hostNetwork"] = True
    verdict = evaluate(_two_nodes(), web)
    assert (verdict.schedulable, verdict.pending, verdict.codes) == (21, 19, ["POD_LIMIT_REACHED"])
    assert f"(node {N1}: 10 of 17 pod slots left; node {N2}: 11 of 17 pod slots left)" in verdict.message
    assert verdict.message.endswith("\nAdd nodes or lower replicas.")


def test_room_promised_to_other_workloads_names_the_biggest_holder_and_counts_the_rest():
    # N1: 10 free IP slots, promised 6 + 4; N2: 11, promised 5 + 3 + 3. Nothing is left for a new pod.
    state = state_from_objects(s.two_t3_medium_cluster()["items"])
    each = Resources(cpu=10, memory=32 * 2**20)
    state.reserve(("Deployment", "default", "a"), {N1: 6, N2: 5}, each, True)
    state.reserve(("Deployment", "default", "b"), {N1: 4}, each, True)
    state.reserve(("StatefulSet", "default", "c"), {N2: 3}, each, True)
    state.reserve(("Job", "batch", "d"), {N2: 3}, each, True)
    verdict = evaluate(state, s.small_web("web", 2))
    assert (verdict.schedulable, verdict.pending) == (0, 2)
    assert (f"(node {N1}: 0 IP slots left of 15 on t3.medium (10 reserved for Deployment default/a and 1 other "
            f"workload); node {N2}: 0 of 15 (11 reserved for Deployment default/a and 2 other workloads))") \
        in verdict.message


def _three_volume_pods(ebs_left_n1: int, ebs_left_n2: int):
    """A 3-replica StatefulSet with one EBS claim per pod, on nodes with these attachments left."""
    items = [i for i in s.two_t3_medium_cluster()["items"] if i["kind"] != "CSINode"]
    items += [s.csinode(N1, ebs_count=ebs_left_n1), s.csinode(N2, ebs_count=ebs_left_n2)]
    template = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
                "spec": s.pvc("data")["spec"]}
    db = s.statefulset("db", 3, spec=s.pod_spec([s.container(requests={"cpu": "10m"})]), claim_templates=[template])
    return evaluate(state_from_objects(items), db)


def test_a_node_with_no_ebs_attachment_left_shows_zero():
    verdict = _three_volume_pods(0, 1)
    assert (verdict.schedulable, verdict.pending, verdict.codes) == (1, 2, ["EBS_ATTACH_LIMIT"])
    assert f"1 fit (node {N1}: 0 EBS attachments left; node {N2}: 1 EBS attachment left)" in verdict.message


def test_counts_of_one_take_the_singular_noun():
    # N1 has 1 EBS attachment left, N2 none: 1 of 3 volume-bearing pods fits.
    verdict = _three_volume_pods(1, 0)
    assert (verdict.schedulable, verdict.pending) == (1, 2)
    assert f"1 fit (node {N1}: 1 EBS attachment left; node {N2}: 0 EBS attachments left)" in verdict.message
    # IP slots: t3.medium 3 x (6 - 1) = 15; N1 runs 5 pods needing an IP (15 - 10 free), so with
    # 9 of them promised to another workload 1 is left; N2 11 free, 11 promised: 0 left.
    state = state_from_objects(s.two_t3_medium_cluster()["items"])
    each = Resources(cpu=10, memory=32 * 2**20)
    state.reserve(("Deployment", "default", "a"), {N1: 9, N2: 11}, each, True)
    verdict = evaluate(state, s.small_web("web", 3))
    assert (verdict.schedulable, verdict.pending) == (1, 2)
    assert f"node {N1}: 1 IP slot left of 15 on t3.medium" in verdict.message


def test_one_node_beyond_the_listed_four_is_one_more_node():
    # Five t3.medium nodes with every IP slot taken: four are listed by name, then "and 1 more node".
    items = s.two_t3_medium_cluster()["items"]
    names = [f"ip-10-0-9-{i}.ec2.internal" for i in range(1, 4)]
    items += [s.node(n) for n in names]
    state = state_from_objects(items)
    each = Resources(cpu=10, memory=32 * 2**20)
    state.reserve(("Deployment", "default", "a"), {n: 15 for n in names} | {N1: 10, N2: 11}, each, True)
    verdict = evaluate(state, s.small_web("web", 1))
    assert verdict.pending == 1
    assert "; and 1 more node)" in verdict.message


# ---- a DaemonSet's pods are placed node by node: only the nodes whose pod stays Pending are named ----------
# pkg/controller/daemon creates one pod per eligible node, pinned to it; NodeResourcesFit then judges each
# pod against its own node alone. A node that takes its pod leaves nothing Pending, whatever its room.

def _daemon_cluster():
    # t3.medium allocatable 1930m CPU, 3388360Ki memory. Node a runs a 1800m pod: 130m CPU free.
    # Node b has 4 CPU: room for the 500m daemon pod.
    a = s.node("a")
    b = s.node("b", allocatable=dict(s.T3_MEDIUM_ALLOCATABLE, cpu="4"))
    hog = s.pod("hog", node_name="a", spec=s.pod_spec([s.container(requests={"cpu": "1800m"})]))
    return state_from_objects([a, b, hog])


def test_daemonset_cpu_shortfall_names_only_the_node_whose_pod_stays_pending():
    agent = s.daemonset("agent", spec=s.pod_spec([s.container("agent", requests={"cpu": "500m"})]))
    verdict = evaluate(_daemon_cluster(), agent)
    # a: 130m < 500m, Pending; b: 4000m >= 500m, runs.
    assert (verdict.requested, verdict.schedulable, verdict.pending, verdict.codes) == (2, 1, 1, ["INSUFFICIENT_CPU"])
    assert "DaemonSet kube-system/agent wants 2 pods; 1 fit (node a: 130m CPU free); 1 would stay Pending." \
        in verdict.message
    assert "node b" not in verdict.message


def test_daemonset_advice_names_the_node_and_never_says_add_nodes():
    # The DaemonSet controller pins each pod to its node (pkg/controller/daemon), so a new node gets a
    # pod of its own and never takes a stuck one; and a DaemonSet has no replicas to lower.
    agent = s.daemonset("agent", spec=s.pod_spec([s.container("agent", requests={"cpu": "500m"})]))
    fix = evaluate(_daemon_cluster(), agent).message.splitlines()[-1]
    assert fix == ("A DaemonSet pod can only run on its own node, so added nodes do not seat it: free room on a, "
                   "lower the pod's requests (500m CPU), give the DaemonSet a higher priorityClassName so the "
                   "scheduler preempts for it, or keep it off those nodes with a nodeSelector or node affinity.")
    # The same shortfall for a Deployment keeps the replica advice.
    web = s.deployment("web", replicas=2, spec=s.pod_spec([s.container("web", requests={"cpu": "3500m"})]))
    assert evaluate(_daemon_cluster(), web).message.splitlines()[-1] == \
        "Each pod requests 3500m CPU: lower the requests, add nodes, or lower replicas."


def test_daemonset_node_that_took_its_pod_adds_no_reason_of_its_own():
    # Node a lacks memory for the daemon pod (a 3Gi pod runs there: 3388360Ki - 3145728Ki = 242632Ki = 236.9Mi free,
    # under 512Mi); node b has CPU for exactly one 1500m pod (1930m), so CPU would stop a second one there.
    # Only a's pod is Pending, for memory: CPU stopped nothing.
    a = s.node("a")
    b = s.node("b")
    hog = s.pod("hog", node_name="a", spec=s.pod_spec([s.container(requests={"cpu": "10m", "memory": "3Gi"})]))
    agent = s.daemonset("agent", spec=s.pod_spec([s.container("agent", requests={"cpu": "1500m",
                                                                                  "memory": "512Mi"})]))
    verdict = evaluate(state_from_objects([a, b, hog]), agent)
    assert (verdict.requested, verdict.schedulable, verdict.pending) == (2, 1, 1)
    assert verdict.codes == ["INSUFFICIENT_MEMORY"]
    assert "1 fit (node a: 236.9Mi memory free); 1 would stay Pending." in verdict.message


def test_ipv6_nodes_below_the_recommended_max_pods_are_told_to_raise_it():
    # IPv6 on the VPC CNI: each node gets a /80 prefix, so IPs never run out and kubelet maxPods is the
    # bound. EKS sizes IPv6 nodes with max-pods-calculator.sh --cni-prefix-delegation-enabled: t3.medium,
    # 2 vCPUs: min(3 ENIs x (6 - 1) x 16 + 2 = 242, 110) = 110. Nodes still at maxPods 17 (7 and 6 pods
    # there, aws-node and kube-proxy included: 10 + 11 = 21 free slots) can go to 110, so the advice is to
    # raise maxPods, not merely to add nodes.
    items = [i if not (i["kind"] == "DaemonSet" and i["metadata"]["name"] == "aws-node") else s.aws_node(ipv6=True)
             for i in s.two_t3_medium_cluster()["items"]]
    verdict = evaluate(state_from_objects(items), s.small_web("web", 30))
    assert (verdict.schedulable, verdict.pending, verdict.codes) == (21, 9, ["POD_LIMIT_REACHED"])
    assert verdict.message.endswith("\nRaise kubelet maxPods (the VPC CNI allows 110 on t3.medium), add nodes, "
                                    "or lower replicas.")
