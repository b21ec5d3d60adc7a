"""Per-node figures in messages are what the node had free before this workload: what a person can check."""

from tests import synthetic as s
from webhook.engine.evaluate import evaluate
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


def test_kubelet_limit_below_the_cni_limit_says_how_far_max_pods_can_go():
    # maxPods 12 on t3.medium: kubelet slots 12-7 + 12-6 = 11 while IPs would allow 21.
    state = state_from_objects(s.two_t3_medium_cluster(max_pods=12)["items"])
    verdict = evaluate(state, s.small_web("web", 12))
    assert (verdict.schedulable, verdict.pending, verdict.codes) == (11, 1, ["POD_LIMIT_REACHED"])
    # eni-max-pods.txt: t3.medium 17.
    assert "Raise kubelet maxPods (the VPC CNI allows 17 on t3.medium)" in verdict.message
