"""Security groups for pods (POD_ENI_EXHAUSTED): branch ENIs from the VPC resource controller's table.

aws/amazon-vpc-resource-controller-k8s pkg/aws/vpc/limits.go (vendored in
webhook/data/pod_eni_limits.json) gives m5.large 9 branch ENIs and t3.medium none
(IsTrunkingCompatible: false), so on t3.medium every pod a SecurityGroupPolicy selects stays Pending.
"""

from tests import synthetic as s
from webhook.engine.evaluate import evaluate
from webhook.engine.pod_eni import (POD_ENI_EXHAUSTED, BranchDemand, branch_caps, branch_demand, branch_limits,
                                    fix, node_phrase, policy_note)
from webhook.state.snapshot import state_from_objects

A, B = "ip-10-0-1-17.ec2.internal", "ip-10-0-2-23.ec2.internal"


def sgp(name="web-sg", namespace="default", pod_labels=None, sa_labels=None):
    spec = {"securityGroups": {"groupIds": ["sg-0123456789abcdef0"]}}
    if pod_labels is not None:
        spec["podSelector"] = {"matchLabels": pod_labels}
    if sa_labels is not None:
        spec["serviceAccountSelector"] = {"matchLabels": sa_labels}
    return {"apiVersion": "vpcresources.k8s.aws/v1beta1", "kind": "SecurityGroupPolicy",
            "metadata": {"name": name, "namespace": namespace}, "spec": spec}


def pod_eni_aws_node():
    ds = s.aws_node()
    ds["spec"]["template"]["spec"]["containers"][0]["env"].append({"name": "ENABLE_POD_ENI", "value": "true"})
    return ds


def branch_pod(name, node_name):
    spec = s.pod_spec([s.container("db", requests={"cpu": "10m", "vpc.amazonaws.com/pod-eni": "1"})])
    spec["containers"][0]["resources"]["limits"] = {"vpc.amazonaws.com/pod-eni": "1"}
    return s.pod(name, "default", node_name, spec, labels={"app": "db"})


def m5_large(name, zone, pod_eni="9"):
    alloc = {"cpu": "1930m", "memory": "7Gi", "ephemeral-storage": "76Gi", "pods": "29"}
    if pod_eni is not None:
        alloc["vpc.amazonaws.com/pod-eni"] = pod_eni
    return s.node(name, "m5.large", zone, allocatable=alloc)


def test_vendored_table_has_the_controllers_numbers():
    limits = branch_limits()
    assert limits["m5.large"] == 9 and limits["m5.xlarge"] == 18 and limits["c5.large"] == 9
    assert limits["t3.medium"] == 0 and limits["m4.xlarge"] == 0       # cannot trunk
    assert len(limits) > 1000


def test_sgp_workload_on_t3_medium_cannot_get_a_branch_eni():
    items = s.two_t3_medium_cluster()["items"]
    items = [pod_eni_aws_node() if i["kind"] == "DaemonSet" and i["metadata"]["name"] == "aws-node" else i
             for i in items]
    state = state_from_objects(items + [sgp(pod_labels={"app": "web"})])
    verdict = evaluate(state, s.small_web("web", 3))
    assert verdict.verdict == "deny" and verdict.codes == ["POD_ENI_EXHAUSTED"]
    assert (verdict.schedulable, verdict.pending) == (0, 3)
    reason = verdict.reasons[0]
    assert reason.summary == ("Deployment default/web: 3 of 3 pods would stay Pending: no branch ENIs "
                              "(security groups for pods) left")
    assert f"node {A}: t3.medium cannot trunk (0 branch ENIs)" in reason.message
    assert "SecurityGroupPolicy web-sg selects these pods" in reason.message
    # The same Deployment without a matching policy fits the secondary IPs.
    assert evaluate(state, s.small_web("api", 3)).verdict == "allow"


def test_sgp_workload_on_m5_large_gets_nine_branch_enis_per_node():
    items = [m5_large(A, "us-east-1a"), m5_large(B, "us-east-1b"), pod_eni_aws_node(), s.namespace("default"),
             sgp(pod_labels={"app": "web"}), branch_pod("db-0", A), branch_pod("db-1", A)]
    state = state_from_objects(items)
    # 9 - 2 on A, 9 on B: 16 branch ENIs; 20 replicas leave 4 Pending.
    verdict = evaluate(state, s.small_web("web", 20))
    assert verdict.codes == ["POD_ENI_EXHAUSTED"] and (verdict.schedulable, verdict.pending) == (16, 4)
    assert f"16 fit (node {A}: 7 of 9 branch ENIs free; node {B}: 9 of 9 branch ENIs free); 4 would" \
        in verdict.message
    assert evaluate(state, s.small_web("web", 16)).verdict == "allow"


def test_a_trunking_type_without_advertised_branch_enis_says_enable_pod_eni():
    items = [m5_large(A, "us-east-1a", pod_eni=None), s.aws_node(), s.namespace("default"),
             sgp(pod_labels={"app": "web"})]
    verdict = evaluate(state_from_objects(items), s.small_web("web", 1))
    assert verdict.codes == ["POD_ENI_EXHAUSTED"]
    assert "advertises no vpc.amazonaws.com/pod-eni (m5.large allows 9)" in verdict.message
    assert "Set ENABLE_POD_ENI=true on aws-node" in verdict.message


def test_trunk_eni_costs_the_node_one_eni_of_secondary_ips():
    items = [m5_large(A, "us-east-1a"), pod_eni_aws_node(), s.namespace("default")]
    state = state_from_objects(items)
    # m5.large: 3 ENIs x 9 = 27 IP slots; the trunk takes one ENI: 18.
    assert state.ip_capacity(state.nodes[A]).slots == 18
    verdict = evaluate(state, s.small_web("web", 19))
    assert verdict.codes == ["POD_IP_EXHAUSTED"] and verdict.pending == 1


def test_service_account_selector_needs_the_service_accounts_labels():
    base = [m5_large(A, "us-east-1a", pod_eni="0"), pod_eni_aws_node(), s.namespace("default"),
            sgp(sa_labels={"team": "payments"})]
    # Without ServiceAccounts in the state the match is unknown: a warning, not a deny.
    unknown = evaluate(state_from_objects(base), s.small_web("web", 1))
    assert unknown.verdict == "warn" and unknown.codes == ["POD_ENI_EXHAUSTED"]
    account = {"apiVersion": "v1", "kind": "ServiceAccount",
               "metadata": {"name": "default", "namespace": "default", "labels": {"team": "payments"}}}
    assert evaluate(state_from_objects(base + [account]), s.small_web("web", 1)).verdict == "deny"
    account["metadata"]["labels"] = {"team": "web"}
    assert evaluate(state_from_objects(base + [account]), s.small_web("web", 1)).verdict == "allow"


def test_policy_in_another_namespace_or_without_groups_selects_nothing():
    base = [m5_large(A, "us-east-1a", pod_eni="0"), pod_eni_aws_node(), s.namespace("default")]
    other = sgp(namespace="team-b", pod_labels={"app": "web"})
    empty = sgp(name="no-groups", pod_labels={"app": "web"})
    empty["spec"]["securityGroups"]["groupIds"] = []
    assert evaluate(state_from_objects(base + [other, empty]), s.small_web("web", 1)).verdict == "allow"


# ---- branch ENIs promised to admitted workloads, given back by rollouts, taken by waiting pods ----
def _one_branch_cluster(extra=()):
    """One m5.large advertising a single free branch ENI (as the e2e node does)."""
    return state_from_objects([m5_large(A, "us-east-1a", pod_eni="1"), pod_eni_aws_node(), s.namespace("default"),
                               sgp(pod_labels={"app": "web"}), *extra])


def _web(name, replicas, labels=None):
    obj = s.small_web(name, replicas)
    labels = labels or {"app": "web"}
    obj["spec"]["selector"] = {"matchLabels": labels}
    obj["spec"]["template"]["metadata"]["labels"] = labels
    return obj


def test_an_admitted_sgp_workload_holds_its_branch_eni_until_its_pod_appears():
    state = _one_branch_cluster()
    first = evaluate(state, _web("web", 1))
    assert first.verdict == "allow" and first.branch_eni
    state.reserve(("Deployment", "default", "web"), first.reservation(), first.pod_requests, first.uses_ip,
                  branch_eni=first.branch_eni)
    assert state.reserved_branch_enis() == {A: 1}
    # A second quick apply must not count the branch ENI the first one was promised.
    second = evaluate(state, _web("web2", 1))
    assert second.verdict == "deny" and second.codes == ["POD_ENI_EXHAUSTED"]
    assert f"node {A}: 0 of 1 branch ENIs free (1 reserved for admitted workloads)" in second.message
    # Re-deciding the first workload itself does not count its own promise against it.
    assert evaluate(state, _web("web", 1), old=_web("web", 0)).verdict == "allow"
    # Pods without the policy's label take secondary IPs: the branch promise does not stop them.
    assert evaluate(state, _web("api", 1, {"app": "api"})).verdict == "allow"


def test_check_spends_branch_enis_across_the_manifests_of_one_run(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    cluster = tmp_path / "cluster.json"
    cluster.write_text(json.dumps(s.as_list([m5_large(A, "us-east-1a", pod_eni="1"), pod_eni_aws_node(),
                                             s.namespace("default"), sgp(pod_labels={"app": "web"})])))
    manifests = tmp_path / "apps.json"
    manifests.write_text(json.dumps(s.as_list([s.as_manifest(_web("web", 1)), s.as_manifest(_web("web2", 1))])))
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-m", "webhook.cli", "check", "--cluster", str(cluster), "-f",
                          str(manifests), "-o", "json"], cwd=root, capture_output=True, text=True, timeout=60)
    verdicts = {v["name"]: v for v in json.loads(out.stdout)["results"]}
    assert verdicts["web"]["verdict"] == "allow", out.stdout
    assert verdicts["web2"]["verdict"] == "deny"
    assert [r["code"] for r in verdicts["web2"]["reasons"]] == ["POD_ENI_EXHAUSTED"]


def test_a_rollout_gives_back_the_branch_enis_of_the_pods_it_replaces():
    old = _web("web", 1)
    new = _web("web", 1)
    new["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
          "metadata": s.metadata("web-1", "default", {"app": "web"}, owner=("apps/v1", "Deployment", "web")),
          "spec": {"replicas": 1, "template": old["spec"]["template"]}}
    running = branch_pod("web-1-a", A)
    running["metadata"] = s.metadata("web-1-a", "default", {"app": "web"}, owner=("apps/v1", "ReplicaSet", "web-1"))
    state = _one_branch_cluster([old, rs, running])
    assert state.network.branch_by_node == {A: 1}
    # Its one pod holds the node's only branch ENI; the new template's pod takes it over once the
    # old one stops, which maxUnavailable 1 allows.
    new["spec"]["strategy"] = {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 1}}
    assert evaluate(state, new, old=old).verdict == "allow"
    # With the default strategy (1 replica: maxSurge 1, maxUnavailable 0) the surge pod finds no
    # branch ENI next to the old pod and no old pod may stop first: the rollout stalls.
    del new["spec"]["strategy"]
    stalled = evaluate(state, new, old=old)
    assert stalled.verdict == "warn" and stalled.codes == ["ROLLOUT_STALL"]
    # A second workload still finds none.
    assert evaluate(state, _web("web2", 1)).codes == ["POD_ENI_EXHAUSTED"]


def test_a_waiting_pod_with_a_branch_eni_request_takes_the_node_first():
    waiting = branch_pod("db-0", None)
    waiting["metadata"]["labels"] = {"app": "db"}
    state = _one_branch_cluster([waiting])
    verdict = evaluate(state, _web("web", 1))
    assert verdict.codes == ["POD_ENI_EXHAUSTED"] and verdict.pending == 1


def test_pods_a_selected_workloads_controller_still_has_to_create_hold_their_branch_enis():
    # Admitted earlier, its reservation gone, its ReplicaSet has not created the pod yet.
    earlier = _web("web", 1)
    earlier["status"] = {"replicas": 0}
    state = _one_branch_cluster([earlier])
    assert state.missing_pods(("Deployment", "default", "web")) == 1
    verdict = evaluate(state, _web("web2", 1))
    assert verdict.codes == ["POD_ENI_EXHAUSTED"] and verdict.pending == 1
    # Not selected by the policy, the promised pod would take a secondary IP and leave the branch ENI.
    plain = _web("api", 1, {"app": "api"})
    assert evaluate(_one_branch_cluster([plain]), _web("web2", 1)).verdict == "allow"


def test_pods_on_branch_enis_take_no_secondary_ip_of_the_node():
    # m5.large with the trunk: 2 ENIs x 9 = 18 secondary IPs, all held by 18 running pods. Pods a
    # SecurityGroupPolicy selects get their IP on a branch ENI (9 per node), so 3 still fit.
    fill = s.small_web("fill", 1)["spec"]["template"]["spec"]
    items = [m5_large(A, "us-east-1a"), pod_eni_aws_node(), s.namespace("default"), sgp(pod_labels={"app": "db"})]
    items += [s.pod(f"fill-{i}", "default", A, fill, labels={"app": "fill"}) for i in range(18)]
    state = state_from_objects(items)
    assert evaluate(state, s.small_web("other", 1)).codes == ["POD_IP_EXHAUSTED"]
    verdict = evaluate(state, s.small_web("db", 3))
    assert (verdict.verdict, verdict.schedulable, verdict.pending, verdict.codes) == ("allow", 3, 0, [])
    assert (verdict.uses_ip, verdict.branch_eni) == (False, True)


# ---- which policies select a pod: filterPodSecurityGroups, one policy at a time ----------------------
# aws/amazon-vpc-resource-controller-k8s: webhooks/core/pod_webhook.go allows host-network pods untouched
# ("SGP not supported on Pod running on HostNetwork"); pkg/utils/helper.go filterPodSecurityGroups skips a
# policy without selectors or groups and one whose set selector does not match, and goes on to the next.

def _policies_state(accounts=None):
    no_groups = sgp(name="a-no-groups", pod_labels={"app": "web"})
    no_groups["spec"]["securityGroups"]["groupIds"] = []
    items = [m5_large(A, "us-east-1a"), pod_eni_aws_node(), s.namespace("default"),
             sgp(name="a-elsewhere", namespace="apps", pod_labels={"app": "web"}), no_groups,
             sgp(name="b-db", pod_labels={"app": "db"}), sgp(name="c-payments", sa_labels={"team": "payments"}),
             sgp(name="web-sg", pod_labels={"app": "web"})]
    for name, labels in (accounts or {}).items():
        items.append({"apiVersion": "v1", "kind": "ServiceAccount",
                      "metadata": {"name": name, "namespace": "default", "labels": labels}})
    return state_from_objects(items)


WEB_SPEC = {"containers": [{"name": "web", "image": "nginx"}]}


def test_a_host_network_pod_takes_no_branch_eni_whatever_selects_it():
    state = _policies_state({"default": {"team": "web"}})
    assert branch_demand(state, "default", {**WEB_SPEC, "hostNetwork": True}, {"app": "web"}) is None
    assert branch_demand(state, "default", WEB_SPEC, {"app": "web"}) == BranchDemand(("web-sg",), True)


def test_policies_that_do_not_select_the_pod_are_skipped_one_by_one():
    # Another namespace, no groups, another pod label, a ServiceAccount selector on a missing ServiceAccount
    # (ServiceAccounts were read, "default" is not among them): each is skipped, web-sg still selects.
    state = _policies_state({"builder": {"team": "payments"}})
    assert branch_demand(state, "default", WEB_SPEC, {"app": "web"}) == BranchDemand(("web-sg",), True)
    # The pod's ServiceAccount exists with other labels: c-payments does not match it either.
    state = _policies_state({"default": {"team": "web"}})
    assert branch_demand(state, "default", WEB_SPEC, {"app": "web"}) == BranchDemand(("web-sg",), True)
    # Its labels match: both policies select the pod.
    state = _policies_state({"default": {"team": "payments"}})
    assert branch_demand(state, "default", WEB_SPEC, {"app": "web"}) == BranchDemand(("c-payments", "web-sg"), True)


def test_an_unknown_service_account_may_match_and_the_note_says_so():
    demand = branch_demand(_policies_state(), "default", WEB_SPEC, {"app": "web"})
    assert demand == BranchDemand(("c-payments", "web-sg"), False)
    note = policy_note(demand)
    assert note.startswith("SecurityGroupPolicy c-payments, web-sg selects these pods: each takes a branch ENI")
    assert "A serviceAccountSelector was not checked" in note
    assert "not checked" not in policy_note(BranchDemand(("web-sg",), True))
    # At most three policies are named.
    four = policy_note(BranchDemand(("p1", "p2", "p3", "p4"), True))
    assert four.startswith("SecurityGroupPolicy p1, p2, p3 selects")


# ---- branch ENIs per node: held, given back, taken by waiting pods, promised ------------------------

def test_branch_caps_count_given_back_placed_and_promised_pods_per_node():
    from types import SimpleNamespace

    # A: 9 advertised, db-0 and db-1 hold 2. A rollout gives db-0 back (+1); pods still to be created for a
    # selected workload are promised 2 on A. B: 9, a waiting pod with the controller's pod-eni request is placed
    # there (-1); a waiting pod without one takes no branch ENI.
    state = state_from_objects([m5_large(A, "us-east-1a"), m5_large(B, "us-east-1b"), pod_eni_aws_node(),
                                s.namespace("default"), branch_pod("db-0", A), branch_pod("db-1", A)])
    waiting = SimpleNamespace(key=("default", "db-2"), extended=(("vpc.amazonaws.com/pod-eni", 1),))
    plain = SimpleNamespace(key=("default", "web-0"), extended=())
    rooms = SimpleNamespace(given_back=[state.pods[("default", "db-0")]], placed=[(waiting, B), (plain, B)],
                            promised_branch={A: 2})
    assert branch_caps(state)[A] == (7, POD_ENI_EXHAUSTED) and branch_caps(state)[B][0] == 9
    caps = branch_caps(state, rooms)
    assert caps[A] == (9 - 2 + 1 - 2, POD_ENI_EXHAUSTED)
    assert caps[B] == (9 - 1, POD_ENI_EXHAUSTED)


def _outcome(state, name):
    from types import SimpleNamespace
    return SimpleNamespace(room=SimpleNamespace(node=state.nodes[name]), limit=POD_ENI_EXHAUSTED)


def test_node_phrase_counts_free_branch_enis_and_only_this_nodes_reservations():
    state = state_from_objects([m5_large(A, "us-east-1a"), pod_eni_aws_node(), s.namespace("default"),
                                branch_pod("db-0", A), branch_pod("db-1", A)])
    # Without caps: advertised 9 less the 2 held.
    assert node_phrase(state, A, _outcome(state, A)) == f"node {A}: 7 of 9 branch ENIs free"
    # A node with none held has all free; one whose single branch ENI is held has none.
    state2 = state_from_objects([m5_large(A, "us-east-1a", pod_eni="1"), m5_large(B, "us-east-1b"),
                                 pod_eni_aws_node(), branch_pod("db-0", A)])
    assert node_phrase(state2, B, _outcome(state2, B)) == f"node {B}: 9 of 9 branch ENIs free"
    assert node_phrase(state2, A, _outcome(state2, A)) == f"node {A}: 0 of 1 branch ENIs free"
    assert node_phrase(state, A, _outcome(state, A), caps={B: (0, POD_ENI_EXHAUSTED)}) == \
        f"node {A}: 7 of 9 branch ENIs free"
    # Reservations held on another node say nothing here.
    assert node_phrase(state, A, _outcome(state, A), caps={A: (4, POD_ENI_EXHAUSTED)}, held_by={B: 3}) == \
        f"node {A}: 4 of 9 branch ENIs free"
    assert node_phrase(state, A, _outcome(state, A), caps={A: (4, POD_ENI_EXHAUSTED)}, held_by={A: 3}) == \
        f"node {A}: 4 of 9 branch ENIs free (3 reserved for admitted workloads)"


def _stopped(state, *names):
    from types import SimpleNamespace
    return SimpleNamespace(per_node={name: _outcome(state, name) for name in names})


def test_the_fix_names_at_most_three_types_that_cannot_trunk():
    # t3.medium, t3.large, t3.small and m4.xlarge: 0 branch ENIs in limits.go.
    types_ = ["t3.medium", "t3.large", "t3.small", "m4.xlarge"]
    nodes = [s.node(f"n{i}", itype) for i, itype in enumerate(types_)]
    state = state_from_objects([*nodes, pod_eni_aws_node()])
    text = fix(state, _stopped(state, "n0", "n1", "n2", "n3"), "replicas")
    assert text.startswith("M4.xlarge, t3.large, t3.medium cannot trunk (aws/amazon-vpc-resource-controller-k8s "
                           "limits.go): use trunking types such as m5.large (9 branch ENIs) for these pods; ")
    assert text.endswith("; add trunking nodes, remove the SecurityGroupPolicy match, or lower replicas.")


def test_the_fix_for_a_trunking_node_without_branch_enis_yet():
    # ENABLE_POD_ENI=true but the node advertises no vpc.amazonaws.com/pod-eni: the trunk ENI is not attached yet.
    state = state_from_objects([m5_large(A, "us-east-1a", pod_eni=None), m5_large(B, "us-east-1b", pod_eni=None),
                                pod_eni_aws_node()])
    assert fix(state, _stopped(state, A, B), "replicas") == (
        f"Node {A} advertises no vpc.amazonaws.com/pod-eni yet (trunk ENI not attached); "
        "add trunking nodes, remove the SecurityGroupPolicy match, or lower replicas.")
    # A node that does advertise its branch ENIs (all in use) needs neither remark.
    state = state_from_objects([m5_large(A, "us-east-1a", pod_eni="1"), pod_eni_aws_node(), branch_pod("db-0", A)])
    assert fix(state, _stopped(state, A), "replicas") == \
        "Add trunking nodes, remove the SecurityGroupPolicy match, or lower replicas."
