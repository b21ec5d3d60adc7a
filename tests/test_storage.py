"""Issue 3: EBS and EFS storage rules, each against the wrong answer it must not give.

Oracles (never the code under test): the AWS EBS volume-type limits (gp2 1-16,384 GiB,
gp3 1-65,536, io1 4-16,384, io2 4-65,536, st1/sc1 125-16,384, standard 1-1,024); the EBS
CSI driver (RWO/RWOP only, RWX just for io2 Block multi-attach, sizes rounded up to whole
GiB, CSINode allocatable.count caps attachments); Kubernetes' default-class choice
(annotation exactly "true", newest first, then name ascending), its scheduler
(ReadWriteOncePod: one pod in the cluster) and PV node affinity (a zonal volume attaches
in its zone only). The cluster is synthetic.two_t3_medium_cluster(): node 1 in us-east-1a
with 10 free pod IP slots (15 - 5 add-ons), node 2 in us-east-1b with 11 (15 - 4).
"""

import copy
import pytest

from tests import synthetic as s
from webhook.engine import storage
from webhook.engine.evaluate import evaluate
from webhook.state.snapshot import state_from_objects

N1, N2 = "ip-10-0-1-17.ec2.internal", "ip-10-0-2-23.ec2.internal"
EBS_ATTACH_LIMIT = "EBS_ATTACH_LIMIT"
DEFAULT_ANNOTATION = "storageclass.kubernetes.io/is-default-class"


def base_items(default_class: bool = True) -> list:
    items = s.two_t3_medium_cluster()["items"]
    if not default_class:
        items = [i for i in items if i["kind"] != "StorageClass"]
    return items


def cluster(*extra, default_class: bool = True):
    return state_from_objects(base_items(default_class) + list(extra))


def codes(verdict) -> list:
    return [r.code for r in verdict.reasons]


def claim_codes(state, claim) -> list:
    return codes(evaluate(state, claim))


def claim_volume(claim: str) -> dict:
    return {"name": "data", "persistentVolumeClaim": {"claimName": claim}}


def spec_with_claim(claim: str, cpu: str = "100m", **extra) -> dict:
    return s.pod_spec([s.container(requests={"cpu": cpu, "memory": "128Mi"})], volumes=[claim_volume(claim)], **extra)


def deploy(name: str, replicas: int, claim: str, **extra) -> dict:
    return s.deployment(name, replicas, spec=spec_with_claim(claim, **extra))


def template(name: str, size: str = "10Gi", cls: str | None = "gp3", modes=("ReadWriteOnce",)) -> dict:
    claim = s.pvc(name, size=size, modes=modes, storage_class_name=cls)
    return {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name}, "spec": claim["spec"]}


def sts(name: str, replicas: int, *templates) -> dict:
    return s.statefulset(name, replicas, claim_templates=templates or (template("data"),))


def efs_class(name: str = "efs-sc") -> dict:
    return s.storage_class(
        name,
        "efs.csi.aws.com",
        {"provisioningMode": "efs-ap", "fileSystemId": "fs-0123456789abcdef0", "directoryPerms": "700"},
        binding="Immediate",
    )


def zone_class(name: str, zone: str, binding: str = "Immediate", key: str = "topology.ebs.csi.aws.com/zone") -> dict:
    return s.storage_class(name, parameters={"type": "gp3"}, binding=binding,
                           allowed_topologies=[{"matchLabelExpressions": [{"key": key, "values": [zone]}]}])


def fill_ips(node_name: str, count: int, prefix: str = "filler") -> list:
    """IP-consuming pods of a bare ReplicaSet that use up ``count`` pod IP slots on the node."""
    return [s.pod(f"{prefix}-{i}", node_name=node_name, owner=("apps/v1", "ReplicaSet", f"{prefix}-rs"))
            for i in range(count)]


def bound_claim(name: str, zone: str, pv: str | None = None, modes=("ReadWriteOnce",)) -> list:
    pv = pv or f"pvc-{name}"
    return [s.pvc(name, modes=modes, volume_name=pv), s.ebs_pv(pv, zone, claim=("default", name))]


def attachment(name: str, node_name: str, pv: str) -> dict:
    return {"apiVersion": "storage.k8s.io/v1", "kind": "VolumeAttachment", "metadata": s.metadata(name),
            "spec": {"attacher": "ebs.csi.aws.com", "nodeName": node_name,
                     "source": {"persistentVolumeName": pv}},
            "status": {"attached": True}}


# ---- StorageClass resolution -------------------------------------------------------------

def test_the_cluster_numbers_these_tests_rely_on():
    state = cluster()
    web = evaluate(state, s.deployment("web", 22))
    assert (web.schedulable, web.pending) == (21, 1)           # 10 + 11 IP slots
    one_node = evaluate(state, s.deployment("web", 11, spec=s.pod_spec(nodeSelector={"kubernetes.io/hostname": N1})))
    assert (one_node.schedulable, one_node.pending) == (10, 1)


def test_explicit_class_is_used_not_the_default():
    state = cluster(s.storage_class("fast", parameters={"type": "io1", "iopsPerGB": "50"}))
    assert claim_codes(state, s.pvc("db", size="3Gi", storage_class_name="fast")) == [storage.EBS_SIZE]
    assert claim_codes(state, s.pvc("db", size="3Gi", storage_class_name="gp3")) == []


def test_default_class_is_resolved_from_the_annotation():
    archive = s.storage_class("archive", parameters={"type": "st1"}, default=True)
    items = [i for i in base_items() if i["kind"] != "StorageClass"]
    items += [s.storage_class("gp3", parameters={"type": "gp3"}), archive]
    state = state_from_objects(items)
    assert claim_codes(state, s.pvc("logs", size="100Gi", storage_class_name=None)) == [storage.EBS_SIZE]
    assert claim_codes(state, s.pvc("logs", size="125Gi", storage_class_name=None)) == []
    assert claim_codes(state, s.pvc("logs", size="100Gi", storage_class_name="gp3")) == []


def test_beta_default_annotation_counts_too():
    beta = s.storage_class("archive", parameters={"type": "sc1"})
    beta["metadata"]["annotations"] = {"storageclass.beta.kubernetes.io/is-default-class": "true"}
    state = cluster(beta, default_class=False)
    assert claim_codes(state, s.pvc("logs", size="100Gi", storage_class_name=None)) == [storage.EBS_SIZE]


@pytest.mark.parametrize("value", ["false", "True", "yes", ""])
def test_only_the_exact_value_true_marks_a_default(value):
    # Kubernetes' IsDefaultAnnotation compares with "true" exactly.
    sc = s.storage_class("gp3", parameters={"type": "gp3"})
    sc["metadata"]["annotations"] = {DEFAULT_ANNOTATION: value}
    state = cluster(sc, default_class=False)
    verdict = evaluate(state, s.pvc("data", storage_class_name=None))
    assert codes(verdict) == [storage.NO_STORAGE_CLASS]


def test_several_defaults_newest_wins_then_name_ascending():
    old_st1 = s.storage_class("a-st1", parameters={"type": "st1"}, default=True)
    new_gp3 = s.storage_class("b-gp3", parameters={"type": "gp3"}, default=True)
    claim = s.pvc("logs", size="100Gi", storage_class_name=None)     # fine on gp3, too small for st1
    # Same creationTimestamp: the name that sorts first is chosen.
    assert claim_codes(cluster(old_st1, new_gp3, default_class=False), claim) == [storage.EBS_SIZE]
    # The newer default wins whatever its name.
    old_st1["metadata"]["creationTimestamp"] = "2025-01-01T00:00:00Z"
    assert claim_codes(cluster(old_st1, new_gp3, default_class=False), claim) == []
    new_gp3["metadata"]["creationTimestamp"] = "2024-01-01T00:00:00Z"
    assert claim_codes(cluster(old_st1, new_gp3, default_class=False), claim) == [storage.EBS_SIZE]


def test_no_class_and_no_default_is_its_own_finding():
    verdict = evaluate(cluster(default_class=False), s.pvc("data", storage_class_name=None))
    assert codes(verdict) == [storage.NO_STORAGE_CLASS]
    assert "storageclass.kubernetes.io/is-default-class" in verdict.reasons[0].message
    # With a default class the same claim is fine.
    assert codes(evaluate(cluster(), s.pvc("data", storage_class_name=None))) == []
    # A claim bound to a pre-created volume needs no class.
    assert (
        codes(evaluate(cluster(default_class=False), s.pvc("data", storage_class_name=None, volume_name="pv-1"))) == []
    )


def test_a_named_class_that_does_not_exist_never_binds():
    verdict = evaluate(cluster(), s.pvc("data", storage_class_name="gp4"))
    assert codes(verdict) == [storage.STORAGE_CLASS_NOT_FOUND] and verdict.verdict == "deny"
    assert "'gp4'" in verdict.reasons[0].summary and "gp3" in verdict.reasons[0].message   # names the known class
    # Without a class of that name but the cluster default present, the default is NOT substituted.
    assert codes(evaluate(cluster(), s.pvc("data", storage_class_name="gp3"))) == []


def test_in_tree_aws_ebs_provisioner_is_ebs():
    legacy = s.storage_class("gp2", "kubernetes.io/aws-ebs", {"type": "gp2", "fsType": "ext4"})
    state = cluster(legacy)
    assert claim_codes(state, s.pvc("a", storage_class_name="gp2", modes=["ReadWriteMany"])) == [
        storage.EBS_ACCESS_MODE
    ]
    assert claim_codes(state, s.pvc("a", storage_class_name="gp2", size="16385Gi")) == [storage.EBS_SIZE]
    assert claim_codes(state, s.pvc("a", storage_class_name="gp2", size="16384Gi")) == []


def test_efs_provisioner_is_efs_and_unknown_provisioners_are_left_alone():
    nfs = s.storage_class("nfs", "nfs.csi.k8s.io", {"server": "nfs.example.internal"})
    state = cluster(efs_class(), nfs)
    for cls in ("efs-sc", "nfs"):
        assert claim_codes(state, s.pvc("a", storage_class_name=cls, modes=["ReadWriteMany"], size="100Ti")) == []


# ---- EBS access modes ----------------------------------------------------------------------

@pytest.mark.parametrize("modes", [["ReadWriteOnce"], ["ReadWriteOncePod"], ["ReadWriteOnce", "ReadWriteOncePod"]])
def test_single_node_modes_are_fine_on_ebs(modes):
    assert claim_codes(cluster(), s.pvc("a", modes=modes)) == []


@pytest.mark.parametrize("cls_type, modes, volume_mode, ok", [
    ("gp3", ["ReadWriteMany"], "Filesystem", False),
    ("gp3", ["ReadOnlyMany"], "Filesystem", False),
    ("gp3", ["ReadWriteOnce", "ReadOnlyMany"], "Filesystem", False),
    ("gp3", ["ReadWriteMany"], "Block", False),
    ("io1", ["ReadWriteMany"], "Block", False),
    ("io2", ["ReadWriteMany"], "Filesystem", False),
    ("io2", ["ReadOnlyMany"], "Block", False),
    ("io2", ["ReadWriteMany"], "Block", True),
    ("io2", ["ReadWriteOnce", "ReadWriteMany"], "Block", True),
])
def test_ebs_multi_node_modes(cls_type, modes, volume_mode, ok):
    state = cluster(s.storage_class("vol", parameters={"type": cls_type, "iops": "3000"}))
    verdict = evaluate(state, s.pvc("a", storage_class_name="vol", modes=modes, volume_mode=volume_mode))
    assert codes(verdict) == ([] if ok else [storage.EBS_ACCESS_MODE])
    assert verdict.verdict == ("allow" if ok else "deny")


def test_access_mode_fix_names_the_clusters_efs_class_or_the_driver():
    claim = s.pvc("shared", modes=["ReadWriteMany"])
    without = evaluate(cluster(), claim)
    assert "EFS CSI driver" in without.reasons[0].message
    with_efs = evaluate(cluster(efs_class("shared-files")), claim)
    assert "'shared-files'" in with_efs.reasons[0].message and "EFS CSI driver" not in with_efs.reasons[0].message


def test_access_mode_in_warn_mode_warns():
    assert evaluate(cluster(), s.pvc("shared", modes=["ReadOnlyMany"]), mode="warn").verdict == "warn"


# ---- EBS sizes ---------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "ebs_type, size, ok",
    [
        ("gp2", "1Gi", True),
        ("gp2", "16384Gi", True),
        ("gp2", "16385Gi", False),
        ("gp3", "1Gi", True),
        ("gp3", "65536Gi", True),
        ("gp3", "64Ti", True),
        ("gp3", "65537Gi", False),
        ("gp3", "500Mi", True),
        ("gp3", "1", True),  # round up to 1 GiB
        ("gp3", "70368744177664", True),
        ("gp3", "70368744177665", False),  # 64 TiB in bytes, and one byte more
        ("io1", "3Gi", False),
        ("io1", "3.5Gi", True),
        ("io1", "4Gi", True),
        ("io1", "16384Gi", True),
        ("io1", "16385Gi", False),
        ("io2", "3Gi", False),
        ("io2", "4Gi", True),
        ("io2", "65536Gi", True),
        ("io2", "65537Gi", False),
        ("st1", "124Gi", False),
        ("st1", "125Gi", True),
        ("st1", "16384Gi", True),
        ("st1", "16385Gi", False),
        ("sc1", "124Gi", False),
        ("sc1", "125Gi", True),
        ("sc1", "16385Gi", False),
        ("standard", "1Gi", True),
        ("standard", "1024Gi", True),
        ("standard", "1025Gi", False),
        (None, "65536Gi", True),
        (None, "65537Gi", False),  # no parameters.type: gp3
    ],
)
def test_ebs_size_ranges_per_type(ebs_type, size, ok):
    params = {"type": ebs_type} if ebs_type else {"encrypted": "true"}
    state = cluster(s.storage_class("vol", parameters=params))
    verdict = evaluate(state, s.pvc("a", storage_class_name="vol", size=size))
    assert codes(verdict) == ([] if ok else [storage.EBS_SIZE])


def test_size_message_gives_the_range_and_the_rounded_size():
    state = cluster(s.storage_class("thru", parameters={"type": "st1"}))
    reason = evaluate(state, s.pvc("a", storage_class_name="thru", size="124Gi")).reasons[0]
    assert "124 GiB" in reason.summary and "125" in reason.summary and "16,384" in reason.summary


def test_size_applies_to_an_expansion_update_and_a_no_op_update_is_quiet():
    state = cluster(s.storage_class("gp2", parameters={"type": "gp2"}))
    old = s.pvc("a", storage_class_name="gp2", size="16000Gi")
    grown = s.pvc("a", storage_class_name="gp2", size="17000Gi")
    assert codes(evaluate(state, grown, old)) == [storage.EBS_SIZE]
    # A no-op update of a claim that would be refused on create (17000Gi > gp2's 16,384 GiB):
    # the claim already exists, a re-apply changes nothing, so it must stay quiet.
    assert codes(evaluate(state, grown)) == [storage.EBS_SIZE]
    assert codes(evaluate(state, grown, copy.deepcopy(grown))) == []


# ---- EFS ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("modes", [["ReadWriteMany"], ["ReadOnlyMany"], ["ReadWriteOnce"]])
def test_efs_filesystem_claims_are_fine(modes):
    assert claim_codes(cluster(efs_class()), s.pvc("files", storage_class_name="efs-sc", modes=modes, size="5Gi")) == []


@pytest.mark.parametrize("modes", [["ReadWriteMany"], ["ReadWriteOnce"]])
def test_efs_block_mode_is_invalid(modes):
    verdict = evaluate(
        cluster(efs_class()), s.pvc("files", storage_class_name="efs-sc", modes=modes, volume_mode="Block")
    )
    assert codes(verdict) == [storage.EFS_BLOCK_MODE] and verdict.verdict == "deny"


# ---- shared claims -------------------------------------------------------------------------

def test_three_replicas_on_one_rwo_ebs_claim():
    state = cluster(s.pvc("data"))
    verdict = evaluate(state, deploy("db", 3, "data"))
    assert storage.EBS_SHARED_RWO in codes(verdict) and verdict.verdict == "deny"
    assert evaluate(state, deploy("db", 3, "data"), mode="warn").verdict == "warn"
    single = evaluate(state, deploy("db", 1, "data"))
    assert codes(single) == [] and (single.schedulable, single.pending) == (1, 0)


def test_rwo_claim_shared_by_pods_pinned_to_one_node_counts_that_node_only():
    state = cluster(s.pvc("data"))
    pinned = {"nodeSelector": {"kubernetes.io/hostname": N1}}
    fits = evaluate(state, deploy("db", 10, "data", **pinned))
    assert codes(fits) == [] and (fits.requested, fits.schedulable, fits.pending) == (10, 10, 0)
    over = evaluate(state, deploy("db", 11, "data", **pinned))
    assert storage.EBS_SHARED_RWO not in codes(over)
    assert (over.requested, over.schedulable, over.pending) == (11, 10, 1)
    assert set(over.reservation()) == {N1}
    by_name = evaluate(state, deploy("db", 11, "data", nodeName=N2))
    assert storage.EBS_SHARED_RWO not in codes(by_name) and (by_name.schedulable, by_name.pending) == (11, 0)


def test_pinned_pods_sharing_a_claim_need_one_attachment_not_one_per_pod():
    # Node 1 can attach one more EBS volume: the shared volume attaches once for all its pods.
    state = cluster(s.pvc("data"), s.csinode(N1, ebs_count=1))
    verdict = evaluate(state, deploy("db", 10, "data", nodeSelector={"kubernetes.io/hostname": N1}))
    assert (verdict.schedulable, verdict.pending) == (10, 0), verdict.message
    # With no attachment left on that node, none of them can start.
    full = cluster(s.pvc("data"), s.csinode(N1, ebs_count=1), *bound_claim("other", "us-east-1a"),
                   s.pod("other-0", node_name=N1, spec=spec_with_claim("other")))
    stuck = evaluate(full, deploy("db", 3, "data", nodeSelector={"kubernetes.io/hostname": N1}))
    assert stuck.pending == 3 and EBS_ATTACH_LIMIT in codes(stuck) and stuck.verdict == "deny"


def test_claim_already_mounted_by_another_workload_is_flagged():
    other = s.pod("other-7d9f-abcde", node_name=N1, spec=spec_with_claim("data"),
                  owner=("apps/v1", "ReplicaSet", "other-7d9f"))
    n3 = "ip-10-0-1-99.ec2.internal"                                     # a second node in us-east-1a
    state = cluster(*bound_claim("data", "us-east-1a"), other, s.node(n3, zone="us-east-1a"), s.csinode(n3))
    verdict = evaluate(state, deploy("reader", 1, "data"))
    assert storage.EBS_SHARED_RWO in codes(verdict) and verdict.verdict == "deny"
    assert N1 in verdict.message
    # Pinned to the node that already holds the volume: it works there.
    held = evaluate(state, deploy("reader", 2, "data", nodeSelector={"kubernetes.io/hostname": N1}))
    assert codes(held) == [] and held.schedulable == 2
    # Pinned to another node: Multi-Attach, and the message must not tell them to pin (they did).
    elsewhere = evaluate(state, deploy("reader", 1, "data", nodeSelector={"kubernetes.io/hostname": n3}))
    assert storage.EBS_SHARED_RWO in codes(elsewhere) and elsewhere.verdict == "deny"
    assert "pinned to " + n3 in elsewhere.reasons[0].summary and N1 in elsewhere.message


def test_own_pods_do_not_count_as_another_holder_on_scale_up():
    rs = ("apps/v1", "ReplicaSet", "db-5c8d")
    replica_set = {"apiVersion": "apps/v1", "kind": "ReplicaSet",
                   "metadata": s.metadata("db-5c8d", "default", {"app": "db"}, owner=("apps/v1", "Deployment", "db")),
                   "spec": {"replicas": 1}}
    old = deploy("db", 1, "data", nodeSelector={"kubernetes.io/hostname": N1})
    state = cluster(
        *bound_claim("data", "us-east-1a"),
        old,
        replica_set,
        s.pod(
            "db-5c8d-x1",
            node_name=N1,
            spec=spec_with_claim("data", nodeSelector={"kubernetes.io/hostname": N1}),
            owner=rs,
        ),
    )
    new = deploy("db", 3, "data", nodeSelector={"kubernetes.io/hostname": N1})
    verdict = evaluate(state, new, old)
    assert codes(verdict) == [] and (verdict.requested, verdict.schedulable) == (3, 3)
    # Unpinned, a new template: if its own running pod counted as another holder, the claim would
    # look mounted elsewhere (EBS_SHARED_RWO, as for another workload's pod). It moves with us.
    unpinned_old = deploy("db", 1, "data")
    moved = cluster(*bound_claim("data", "us-east-1a"), unpinned_old, replica_set,
                    s.pod("db-5c8d-x1", node_name=N1, spec=spec_with_claim("data"), owner=rs))
    rollout = deploy("db", 1, "data")
    rollout["spec"]["template"]["spec"]["containers"][0]["image"] = "nginx:1.28"
    verdict = evaluate(moved, rollout, unpinned_old)
    assert codes(verdict) == [] and verdict.verdict == "allow"


def test_rwop_claim_shared_by_two_pods_never_works():
    state = cluster(s.pvc("solo", modes=["ReadWriteOncePod"]))
    two = evaluate(state, deploy("db", 2, "solo"))
    assert storage.EBS_SHARED_RWO in codes(two) and two.verdict == "deny"
    assert (two.requested, two.pending) == (2, 1)            # one pod runs, the other waits forever
    # Pinning does not help: ReadWriteOncePod is one pod, not one node.
    pinned = evaluate(state, deploy("db", 2, "solo", nodeSelector={"kubernetes.io/hostname": N1}))
    assert storage.EBS_SHARED_RWO in codes(pinned) and pinned.pending == 1
    one = evaluate(state, deploy("db", 1, "solo"))
    assert codes(one) == [] and (one.requested, one.schedulable, one.pending) == (1, 1, 0)


def test_scaling_up_a_rwop_workload_leaves_every_added_pod_waiting_for_the_claim():
    # Its one running pod holds the ReadWriteOncePod claim: the 2 added pods can never mount it.
    old = deploy("db", 1, "solo")
    running = s.pod("db-1", node_name=N1, spec=old["spec"]["template"]["spec"], labels={"app": "db"},
                    owner=("apps/v1", "Deployment", "db"))
    state = cluster(*bound_claim("solo", "us-east-1a", modes=["ReadWriteOncePod"]), old, running)
    new = deploy("db", 3, "solo")
    verdict = evaluate(state, new, old)
    assert storage.EBS_SHARED_RWO in codes(verdict) and verdict.verdict == "deny"
    assert (verdict.requested, verdict.schedulable, verdict.pending) == (3, 1, 2)


def test_rwop_claim_held_by_another_pod_leaves_the_new_pod_pending():
    holder = s.pod("holder", node_name=N1, spec=spec_with_claim("solo"))
    state = cluster(*bound_claim("solo", "us-east-1a", modes=["ReadWriteOncePod"]), holder)
    verdict = evaluate(state, deploy("reader", 1, "solo"))
    assert storage.EBS_SHARED_RWO in codes(verdict) and verdict.verdict == "deny"
    assert (verdict.requested, verdict.schedulable, verdict.pending) == (1, 0, 1)


def test_rwop_on_efs_is_still_one_pod():
    state = cluster(efs_class(), s.pvc("solo", storage_class_name="efs-sc", modes=["ReadWriteOncePod"]))
    assert storage.EBS_SHARED_RWO in codes(evaluate(state, deploy("db", 2, "solo")))


def test_statefulset_claim_templates_give_each_replica_its_own_volume():
    verdict = evaluate(cluster(), sts("db", 3))
    assert codes(verdict) == [] and (verdict.schedulable, verdict.pending) == (3, 0)


def test_statefulset_template_findings_block_every_replica():
    verdict = evaluate(cluster(), sts("db", 3, template("data", modes=["ReadWriteMany"])))
    assert codes(verdict) == [storage.EBS_ACCESS_MODE] and (verdict.requested, verdict.pending) == (3, 3)
    missing = evaluate(cluster(), sts("db", 2, template("data", cls="premium")))
    assert codes(missing) == [storage.STORAGE_CLASS_NOT_FOUND] and missing.pending == 2


def test_statefulset_sharing_a_plain_rwo_claim_is_flagged():
    body = s.statefulset("db", 3, spec=spec_with_claim("data"))
    assert storage.EBS_SHARED_RWO in codes(evaluate(cluster(s.pvc("data")), body))


def test_io2_multi_attach_claim_may_be_shared():
    io2 = s.storage_class("io2-multi", parameters={"type": "io2", "iops": "10000"})
    state = cluster(io2, s.pvc("raw", storage_class_name="io2-multi", modes=["ReadWriteMany"], volume_mode="Block"))
    verdict = evaluate(state, deploy("cluster-fs", 4, "raw"))
    assert codes(verdict) == [] and verdict.schedulable == 4


def test_efs_claims_are_shared_freely():
    state = cluster(efs_class(), s.pvc("files", storage_class_name="efs-sc", modes=["ReadWriteMany"]))
    verdict = evaluate(state, deploy("web", 21, "files"))
    assert codes(verdict) == [] and (verdict.schedulable, verdict.pending) == (21, 0)


def test_workload_mounting_a_claim_that_can_never_bind_is_all_pending():
    state = cluster(s.pvc("shared", modes=["ReadWriteMany"]))
    verdict = evaluate(state, deploy("web", 1, "shared"))
    assert codes(verdict) == [storage.EBS_ACCESS_MODE] and (verdict.requested, verdict.pending) == (1, 1)


# ---- zones -----------------------------------------------------------------------------------

BIG_CPU = "1350m"   # node 1 has 1305m CPU free, node 2 1405m: fits node 2 only


def test_bound_claim_restricts_pods_to_its_zone():
    assert (
        evaluate(cluster(), s.deployment("x", 1, spec=s.pod_spec([s.container(requests={"cpu": BIG_CPU})]))).pending
        == 0
    )
    in_a = evaluate(cluster(*bound_claim("data", "us-east-1a")), deploy("db", 1, "data", cpu=BIG_CPU))
    assert (in_a.requested, in_a.schedulable, in_a.pending) == (1, 0, 1)
    assert storage.EBS_ZONE in codes(in_a) and "us-east-1a" in in_a.message
    in_b = evaluate(cluster(*bound_claim("data", "us-east-1b")), deploy("db", 1, "data", cpu=BIG_CPU))
    assert codes(in_b) == [] and in_b.reservation() == {N2: 1}


def test_zone_counts_only_that_zones_ip_slots():
    # Node 2 (us-east-1b) is full; the volume lives in us-east-1b: node 1's 10 free slots do not help.
    state = cluster(*bound_claim("data", "us-east-1b"), *fill_ips(N2, 11))
    verdict = evaluate(state, deploy("db", 1, "data"))
    assert (verdict.schedulable, verdict.pending) == (0, 1) and storage.EBS_ZONE in codes(verdict)


def test_zone_with_no_nodes_at_all():
    verdict = evaluate(cluster(*bound_claim("data", "us-east-1c")), deploy("db", 1, "data"))
    assert verdict.pending == 1 and verdict.verdict == "deny"
    assert storage.EBS_ZONE in codes(verdict), verdict.message


@pytest.mark.parametrize("key", ["topology.ebs.csi.aws.com/zone", "topology.kubernetes.io/zone"])
def test_immediate_binding_with_allowed_topologies_pins_the_zone(key):
    state = cluster(zone_class("gp3-a", "us-east-1a", key=key), s.pvc("data", storage_class_name="gp3-a"))
    verdict = evaluate(state, deploy("db", 1, "data", cpu=BIG_CPU))
    assert verdict.pending == 1 and storage.EBS_ZONE in codes(verdict)


def test_wait_for_first_consumer_does_not_pin_the_zone():
    state = cluster(zone_class("gp3-a", "us-east-1a", binding="WaitForFirstConsumer"),
                    s.pvc("data", storage_class_name="gp3-a"))
    verdict = evaluate(state, deploy("db", 1, "data", cpu=BIG_CPU))
    assert codes(verdict) == [] and verdict.pending == 0


def test_statefulset_templates_in_a_pinned_zone():
    state = cluster(zone_class("gp3-a", "us-east-1a"), zone_class("gp3-wffc", "us-east-1a", "WaitForFirstConsumer"))
    pinned = evaluate(state, sts("db", 11, template("data", cls="gp3-a")))
    assert (pinned.schedulable, pinned.pending) == (10, 1) and storage.EBS_ZONE in codes(pinned)
    free = evaluate(state, sts("db", 11, template("data", cls="gp3-wffc")))
    assert (free.schedulable, free.pending) == (11, 0) and codes(free) == []


def test_zone_is_read_from_the_pv_whatever_key_it_uses():
    items = bound_claim("data", "us-east-1a")
    expr = items[1]["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"][0]["matchExpressions"][0]
    expr["key"] = "topology.ebs.csi.aws.com/zone"
    verdict = evaluate(cluster(*items), deploy("db", 1, "data", cpu=BIG_CPU))
    assert verdict.pending == 1 and storage.EBS_ZONE in codes(verdict)


# ---- attach limits ---------------------------------------------------------------------------

def attach_cluster(n1_count: int, n2_count: int):
    """Node 1 has two EBS volumes in use: one only by VolumeAttachment, one by a pod's bound claim
    (which also has its VolumeAttachment: the same volume counts once)."""
    return cluster(s.csinode(N1, n1_count), s.csinode(N2, n2_count),
                   *bound_claim("logs", "us-east-1a", pv="pv-logs"),
                   s.pod("logger", node_name=N1, spec=spec_with_claim("logs")),
                   attachment("csi-aaa", N1, "pv-orphan"), attachment("csi-bbb", N1, "pv-logs"))


def test_attach_limit_counts_attachments_and_bound_claims_once():
    verdict = evaluate(attach_cluster(4, 3), sts("db", 10))
    # node 1: 4 - 2 in use = 2; node 2: 3 free; the other 5 replicas wait
    assert (verdict.requested, verdict.schedulable, verdict.pending) == (10, 5, 5)
    assert codes(verdict) == [EBS_ATTACH_LIMIT]
    assert verdict.reservation() == {N1: 2, N2: 3}


def test_attach_limit_of_two_with_two_in_use_takes_no_volume():
    verdict = evaluate(attach_cluster(2, 25), sts("db", 12))
    assert verdict.reservation() == {N2: 11} and verdict.pending == 1
    assert EBS_ATTACH_LIMIT in codes(verdict) and "POD_IP_EXHAUSTED" in codes(verdict)


def test_two_templates_per_pod_need_two_attachments_each():
    verdict = evaluate(attach_cluster(4, 3), sts("db", 3, template("data"), template("wal", size="20Gi")))
    assert (verdict.schedulable, verdict.pending) == (2, 1)       # 2 // 2 + 3 // 2


def test_pods_without_ebs_volumes_ignore_the_attach_limit():
    verdict = evaluate(attach_cluster(2, 0), s.deployment("web", 20))     # logger took one of node 1's IPs
    assert verdict.pending == 0 and codes(verdict) == []


# ---- gaps closed after review ---------------------------------------------------------------

def test_a_claim_that_does_not_exist_is_a_warning_that_names_it():
    verdict = evaluate(cluster(), deploy("app", 1, "missing"))
    assert codes(verdict) == [storage.CLAIM_NOT_FOUND] and verdict.verdict == "warn"
    assert "default/missing does not exist" in verdict.message


def test_zone_is_named_only_when_it_kept_pods_off_nodes_with_room():
    # Both nodes full of IP pods: the zone (us-east-1a, node 1) is not why 11 replicas do not fit.
    state = cluster(*bound_claim("data", "us-east-1a"), *fill_ips(N1, 9), *fill_ips(N2, 11, "other"))
    verdict = evaluate(state, s.statefulset("db", 1, spec=spec_with_claim("data", cpu="10m")))
    assert verdict.pending == 0
    two = evaluate(state, deploy("app", 2, "data", nodeSelector={"kubernetes.io/hostname": N1}, cpu="10m"))
    assert two.pending == 1 and storage.EBS_ZONE not in codes(two)   # pinned to N1, which is in the zone


def test_required_node_affinity_to_one_hostname_pins_like_a_node_selector():
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "kubernetes.io/hostname", "operator": "In", "values": [N1]}]}]}}}
    state = cluster(s.pvc("shared"))
    verdict = evaluate(state, deploy("app", 11, "shared", affinity=affinity, cpu="10m"))
    # Pinned to node 1 (10 free IP slots): no Multi-Attach finding, 1 pod Pending for IPs.
    assert storage.EBS_SHARED_RWO not in codes(verdict) and (verdict.schedulable, verdict.pending) == (10, 1)


def test_a_daemonset_whose_claim_never_binds_counts_every_node():
    state = cluster(s.pvc("shared", modes=("ReadWriteMany",)))
    ds = s.daemonset("agent", "default", spec=spec_with_claim("shared", cpu="10m"))
    verdict = evaluate(state, ds)
    assert verdict.verdict == "deny" and (verdict.requested, verdict.pending) == (2, 2)


# ---- pod_volume_rules piece by piece (EBS CSI: a zonal volume attaches in its zone, to one node at a time) ----
from webhook.engine.workloads import demand_of  # noqa: E402


def rules_for(state, obj):
    return storage.pod_volume_rules(state, demand_of(obj))


def pod_with_claims(*claims, **extra):
    volumes = [{"name": f"v{i}", "persistentVolumeClaim": {"claimName": c}} for i, c in enumerate(claims)]
    return s.pod_spec([s.container(requests={"cpu": "100m"})], volumes=volumes, **extra)


def test_a_second_claim_without_zones_keeps_the_first_claims_zone():
    # data is a PV in us-east-1a; scratch is a new WaitForFirstConsumer claim: no zone yet, no narrowing
    state = cluster(*bound_claim("data", "us-east-1a"), s.pvc("scratch"))
    rules = rules_for(state, s.deployment("app", 1, spec=pod_with_claims("data", "scratch")))
    assert rules.zones == {"us-east-1a"}
    assert rules.node_filter(state.nodes[N2]) == "outside the volume's zone us-east-1a"
    assert rules.node_filter(state.nodes[N1]) is None


def test_a_missing_claim_or_a_non_ebs_claim_does_not_end_the_scan():
    state = cluster(efs_class(), s.pvc("shared", modes=("ReadWriteMany",), storage_class_name="efs-sc"),
                    *bound_claim("data", "us-east-1b"))
    rules = rules_for(state, s.deployment("app", 1, spec=pod_with_claims("ghost", "shared", "data")))
    assert rules.zones == {"us-east-1b"}
    assert [f.code for f in rules.findings] == [storage.CLAIM_NOT_FOUND]


def test_a_pv_without_node_affinity_takes_its_zone_from_its_labels():
    pvc, pv = bound_claim("legacy", "us-east-1a")
    del pv["spec"]["nodeAffinity"]
    pv["metadata"]["labels"] = {"failure-domain.beta.kubernetes.io/zone": "us-east-1b"}
    rules = rules_for(cluster(pvc, pv), s.deployment("app", 1, spec=pod_with_claims("legacy")))
    assert rules.zones == {"us-east-1b"}


def test_a_pv_term_without_an_in_zone_expression_is_not_zonal():
    pvc, pv = bound_claim("wide", "us-east-1a")
    pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"] = [
        {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "NotIn", "values": ["us-east-1a"]}]}]
    rules = rules_for(cluster(pvc, pv), s.deployment("app", 1, spec=pod_with_claims("wide")))
    assert rules.zones is None and rules.node_filter is None
    # one term with a zone and one without: the term without a zone admits every node
    pv["spec"]["nodeAffinity"]["required"]["nodeSelectorTerms"] = [
        {"matchExpressions": [{"key": "topology.kubernetes.io/zone", "operator": "In", "values": ["us-east-1a"]}]},
        {"matchExpressions": [{"key": "kubernetes.io/arch", "operator": "In", "values": ["amd64"]}]}]
    assert rules_for(cluster(pvc, pv), s.deployment("app", 1, spec=pod_with_claims("wide"))).zones is None


def test_one_pod_attaches_a_new_shared_claim_per_pod_more_pods_share_one_attachment_per_node():
    state = cluster(s.pvc("data"))
    one = rules_for(state, s.deployment("app", 1, spec=pod_with_claims("data")))
    assert (one.new_volumes_per_pod, one.node_volumes) == (1, 0)
    pinned = rules_for(state, s.deployment("app", 2, spec=pod_with_claims("data", nodeName=N1)))
    assert (pinned.new_volumes_per_pod, pinned.node_volumes, pinned.pinned_node) == (0, 1, N1)
    assert pinned.node_filter(state.nodes[N2]) == "not the node holding the volume"


def test_a_daemonset_on_a_read_write_once_pod_claim_can_never_run_everywhere():
    state = cluster(s.pvc("solo", modes=("ReadWriteOncePod",)))
    ds = s.daemonset("agent", "default", spec=pod_with_claims("solo"))
    rules = rules_for(state, ds)
    assert rules.blocking is True and rules.max_pods == 1
    assert [f.code for f in rules.findings] == [storage.EBS_SHARED_RWO]


def test_no_pods_wanted_next_to_a_holder_is_no_finding():
    holder = s.pod("holder", node_name=N1, spec=pod_with_claims("solo"), owner=("apps/v1", "ReplicaSet", "other"))
    state = cluster(s.pvc("solo", modes=("ReadWriteOncePod",)), s.pvc("rwo"), holder,
                    s.pod("h2", node_name=N1, spec=pod_with_claims("rwo"), owner=("apps/v1", "ReplicaSet", "x")))
    assert rules_for(state, s.deployment("app", 0, spec=pod_with_claims("solo"))).findings == []
    assert rules_for(state, s.deployment("app", 0, spec=pod_with_claims("rwo"))).findings == []
    assert [f.code for f in rules_for(state, s.deployment("app", 1, spec=pod_with_claims("rwo"))).findings] \
        == [storage.EBS_SHARED_RWO]


def test_our_own_pods_that_do_not_mount_the_claim_do_not_hide_another_holder():
    from webhook.engine.workloads import Demand
    demand = Demand("StatefulSet", "default", "db", pod_with_claims("rwo"), {}, 2)
    other = s.pod("other-0", node_name=N1, spec=pod_with_claims("rwo"), owner=("apps/v1", "ReplicaSet", "other"))
    mine = s.pod("db-0", node_name=N1, spec=s.pod_spec(), owner=("apps/v1", "StatefulSet", "db"))
    assert storage._holders(cluster(s.pvc("rwo"), other, mine), demand, "rwo") == {N1}
    # our own pod that mounts it moves with us: no other holder
    mine_with = s.pod("db-0", node_name=N1, spec=pod_with_claims("rwo"), owner=("apps/v1", "StatefulSet", "db"))
    assert storage._holders(cluster(s.pvc("rwo"), mine_with), demand, "rwo") == set()
    assert storage._holders(cluster(s.pvc("rwo"), mine_with, other), demand, "rwo") == {N1}


def test_pods_pinned_by_required_affinity_to_one_node_share_its_attachment():
    def pinned(expressions=(), fields=()):
        term = {"matchExpressions": list(expressions), "matchFields": list(fields)}
        return pod_with_claims("data", affinity={"nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [term]}}})
    state = cluster(s.pvc("data"))
    by_field = pinned(fields=[{"key": "metadata.name", "operator": "In", "values": [N2]}])
    assert rules_for(state, s.deployment("app", 2, spec=by_field)).pinned_node == N2
    by_host = pinned([{"key": "kubernetes.io/hostname", "operator": "In", "values": [N1]}])
    assert rules_for(state, s.deployment("app", 2, spec=by_host)).pinned_node == N1
    for loose in (pinned([{"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [N1]}]),
                  pinned([{"key": "kubernetes.io/hostname", "operator": "In", "values": [N1, N2]}]),
                  pinned(fields=[{"key": "metadata.name", "operator": "NotIn", "values": [N2]}])):
        rules = rules_for(state, s.deployment("app", 2, spec=loose))
        assert rules.pinned_node is None and [f.code for f in rules.findings] == [storage.EBS_SHARED_RWO]


def test_a_node_without_zone_labels_is_in_no_zone_and_takes_no_zonal_volume():
    bare = s.node("bare", zone="us-east-1a")
    for key in storage.ZONE_KEYS:
        bare["metadata"]["labels"].pop(key, None)
    bare["metadata"]["labels"]["topology.ebs.csi.aws.com/zone"] = ""          # an empty label is no zone
    state = cluster(bare, *bound_claim("data", "us-east-1a"))
    assert storage.node_zone(state.nodes["bare"]) is None
    rules = rules_for(state, s.deployment("app", 1, spec=pod_with_claims("data")))
    assert rules.node_filter(state.nodes["bare"]) == "outside the volume's zone us-east-1a"


def test_a_claim_without_a_namespace_is_labelled_in_default():
    verdict = evaluate(cluster(), {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "x"},
                                   "spec": {"accessModes": ["ReadWriteMany"], "storageClassName": "gp3",
                                            "resources": {"requests": {"storage": "1Gi"}}}})
    assert verdict.reasons[0].message.startswith("PersistentVolumeClaim default/x: ReadWriteMany on EBS class")


def test_an_unknown_ebs_volume_type_is_held_to_1_to_65536_gib():
    state = cluster(s.storage_class("odd", parameters={"type": "gp9"}))
    assert claim_codes(state, s.pvc("a", size="1Gi", storage_class_name="odd")) == []
    assert claim_codes(state, s.pvc("a", size="65536Gi", storage_class_name="odd")) == []
    verdict = evaluate(state, s.pvc("a", size="65537Gi", storage_class_name="odd"))
    assert verdict.reasons[0].message.startswith(
        "PersistentVolumeClaim default/a: 65537 GiB is outside the gp9 range of 1-65,536 GiB")


def test_the_zone_filter_of_claims_in_two_zones_names_none():
    state = cluster(*bound_claim("east-a", "us-east-1a"), *bound_claim("east-b", "us-east-1b"))
    rules = rules_for(state, s.deployment("app", 1, spec=pod_with_claims("east-a", "east-b")))
    assert rules.zones == set() and rules.blocking
    assert rules.node_filter(state.nodes[N1]) == "outside the volume's zone (none)"
    assert [f.code for f in rules.findings] == [storage.EBS_ZONE]


def test_a_zone_without_nodes_blocks():
    state = cluster(*bound_claim("far", "us-east-1c"))
    rules = rules_for(state, s.deployment("app", 1, spec=pod_with_claims("far")))
    assert rules.blocking is True and [f.code for f in rules.findings] == [storage.EBS_ZONE]


def test_the_attach_limit_counts_the_pods_own_new_volumes_too():
    # N1 can attach 1 more volume: a shared new claim (1 per node) fits, with a template volume per pod it does not
    state = cluster(s.pvc("shared"), s.csinode(N1, ebs_count=1), s.csinode(N2, ebs_count=1))
    rules = rules_for(state, s.deployment("app", 2, spec=pod_with_claims("shared", nodeName=N1)))
    assert rules.node_volumes == 1 and rules.node_filter(state.nodes[N1]) is None and not rules.blocking
    rules.new_volumes_per_pod = 1
    assert rules.node_filter(state.nodes[N1]) == "EBS attach limit reached"


def test_the_attach_limit_finding_names_only_nodes_the_pods_may_use_and_at_most_three():
    nodes = [s.node(f"a{i}", zone="us-east-1a") for i in range(4)] + [s.node("0b", zone="us-east-1b")]
    csinodes = [s.csinode(n["metadata"]["name"], ebs_count=0) for n in nodes] + [s.csinode(N1, 0), s.csinode(N2, 0)]
    state = cluster(*bound_claim("data", "us-east-1a"), *nodes, *csinodes)
    rules = rules_for(state, s.deployment("app", 2, spec=pod_with_claims("data")))
    attach = [f for f in rules.findings if f.code == storage.EBS_ATTACH_LIMIT]
    assert rules.blocking is True and len(attach) == 1
    # the us-east-1a nodes sorted by name, the first three; 0b (us-east-1b) sorts first but cannot be used
    assert attach[0].message.split("\n")[0] == \
        "Deployment default/app: no node it can run on can attach its EBS volume (a0, a1, a2)"

def test_messages_about_one_added_pod_say_pod_not_pods():
    # One pod of `reader` against a claim another pod holds: the count is 1, so the noun is singular.
    rwop_holder = s.pod("holder", node_name=N1, spec=spec_with_claim("solo"))
    rwop = evaluate(cluster(*bound_claim("solo", "us-east-1a", modes=["ReadWriteOncePod"]), rwop_holder),
                    deploy("reader", 1, "solo"))
    assert "Deployment default/reader wants 1 more pod on it; none can start." in rwop.message
    rwo_holder = s.pod("holder", node_name=N1, spec=spec_with_claim("data"))
    rwo = evaluate(cluster(*bound_claim("data", "us-east-1a"), rwo_holder), deploy("reader", 1, "data"))
    assert f"Deployment default/reader wants 1 pod on a ReadWriteOnce volume another workload's pod holds on {N1};" \
        in rwo.message
    three = evaluate(cluster(*bound_claim("solo", "us-east-1a", modes=["ReadWriteOncePod"]), rwop_holder),
                     deploy("reader", 3, "solo"))
    assert "wants 3 more pods on it; none can start." in three.message
