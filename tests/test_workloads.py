"""How many pods each controller asks for, read from the object as the API server stores it.

Oracles, Kubernetes v1.33.13:
* apps/v1 defaults (``pkg/apis/apps/v1/defaults.go``): ``replicas`` 1, ``strategy.type``
  RollingUpdate, ``maxSurge`` and ``maxUnavailable`` 25%.
* ``pkg/controller/deployment/util.ResolveFenceposts``: maxSurge is scaled rounding UP,
  maxUnavailable rounding DOWN (``intstr.GetScaledValueFromIntOrPercent``); both 0 makes
  maxUnavailable 1. A string that is not a percentage is an error ("string is not a percentage").
* batch/v1 Job (``pkg/controller/job``): ``suspend`` creates no pods; at most
  ``parallelism`` pods run, never more than ``completions``; parallelism defaults to 1.
  CronJob ``suspend`` stops new runs; a run is the ``jobTemplate``'s Job.
* The Deployment controller names its ReplicaSet's pods with a ``pod-template-hash`` label.
"""

from __future__ import annotations

import pytest

from tests import synthetic as s
from webhook.engine.requests import ObjectError
from webhook.engine.workloads import Demand, demand_of, same_template, scaled_value


def deployment(strategy=None, replicas: int | None = 4, **extra) -> dict:
    obj = s.deployment("web", 1 if replicas is None else replicas,
                       spec=s.pod_spec([s.container("web", requests={"cpu": "10m"})]))
    if replicas is None:
        del obj["spec"]["replicas"]
    if strategy is not None:
        obj["spec"]["strategy"] = strategy
    obj["spec"].update(extra)
    return obj


def test_a_deployment_without_replicas_or_strategy_gets_the_api_defaults():
    demand = demand_of(deployment(replicas=None))
    # replicas 1; 25% of 1: surge ceil(0.25) = 1, unavailable floor(0.25) = 0
    assert (demand.replicas, demand.max_surge, demand.max_unavailable, demand.rolling) == (1, 1, 0, True)
    demand = demand_of(deployment(strategy={"type": "RollingUpdate"}, replicas=8))
    assert (demand.max_surge, demand.max_unavailable) == (2, 2)        # 25% of 8 both ways
    demand = demand_of(deployment(strategy={}, replicas=8))            # type defaults to RollingUpdate
    assert (demand.max_surge, demand.max_unavailable, demand.rolling) == (2, 2, True)


def test_a_deployment_scaled_to_zero_resolves_both_fenceposts_to_0_then_unavailable_to_1():
    demand = demand_of(deployment(replicas=0))
    assert (demand.replicas, demand.max_surge, demand.max_unavailable) == (0, 0, 1)


@pytest.mark.parametrize("value,total,up,want", [
    ("33%", 10, True, 4), ("33%", 10, False, 3),      # 3.3 -> 4 up, 3 down
    ("100%", 7, True, 7), ("1%", 1, True, 1), ("1%", 1, False, 0), ("0%", 50, True, 0),
    (3, 100, True, 3), (0, 100, False, 0),             # an integer is a count, not scaled
])
def test_scaled_values_round_as_get_scaled_value_from_int_or_percent(value, total, up, want):
    assert scaled_value(value, total, up, "f") == want


@pytest.mark.parametrize("value,problem", [
    ("5", "must be an integer or a percentage, got '5'"),
    (True, "must be an integer or a percentage, got True"),
    (2.5, "must be an integer or a percentage, got 2.5"),
    (None, "must be an integer or a percentage, got None"),
    ("x%", "invalid percentage 'x%'"),
    ("%", "invalid percentage '%'"),
])
def test_a_fencepost_that_is_neither_a_count_nor_a_percentage_is_an_object_error(value, problem):
    with pytest.raises(ObjectError) as error:
        demand_of(deployment(strategy={"type": "RollingUpdate", "rollingUpdate": {"maxSurge": value}}))
    assert (error.value.field, error.value.problem) == ("spec.strategy.rollingUpdate.maxSurge", problem)
    with pytest.raises(ObjectError) as error:
        demand_of(deployment(strategy={"rollingUpdate": {"maxSurge": 1, "maxUnavailable": value}}))
    assert (error.value.field, error.value.problem) == ("spec.strategy.rollingUpdate.maxUnavailable", problem)


def test_recreate_has_no_fenceposts_even_with_a_stale_rolling_update_block():
    demand = demand_of(deployment(strategy={"type": "Recreate", "rollingUpdate": {"maxSurge": "x"}}))
    assert (demand.rolling, demand.max_surge, demand.max_unavailable) == (False, 0, 0)


@pytest.mark.parametrize("replicas", [-1, True, "3", 2.0])
def test_replicas_must_be_a_non_negative_integer(replicas):
    obj = deployment()
    obj["spec"]["replicas"] = replicas
    with pytest.raises(ObjectError) as error:
        demand_of(obj)
    assert error.value.field == "spec.replicas"
    assert error.value.problem == f"must be a non-negative integer, got {replicas!r}"


@pytest.mark.parametrize("parallelism,completions,pods", [
    (None, None, 1), (0, None, 0), (5, None, 5), (5, 0, 0), (5, 2, 2), (2, 5, 2), (None, 3, 1),
])
def test_a_job_runs_parallelism_pods_capped_by_completions(parallelism, completions, pods):
    job = s.job("batch", parallelism=parallelism, completions=completions)
    if parallelism is None:
        job["spec"].pop("parallelism", None)
    demand = demand_of(job)
    assert (demand.kind, demand.replicas, demand.replica_word) == ("Job", pods, "parallelism")


@pytest.mark.parametrize("field,value", [("parallelism", -2), ("completions", -1), ("parallelism", "2"),
                                         ("completions", False)])
def test_job_counts_must_be_non_negative_integers(field, value):
    job = s.job("batch", parallelism=2, completions=4)
    job["spec"][field] = value
    with pytest.raises(ObjectError) as error:
        demand_of(job)
    assert error.value.field == f"spec.{field}"
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": s.metadata("nightly", "team"),
            "spec": {"schedule": "0 1 * * *", "jobTemplate": {"spec": job["spec"]}}}
    with pytest.raises(ObjectError) as error:
        demand_of(cron)
    assert error.value.field == f"spec.jobTemplate.spec.{field}"


def test_a_cronjob_asks_for_one_run_of_its_job_template_unless_suspended():
    job = s.job("x", parallelism=6, completions=4)
    cron = {"apiVersion": "batch/v1", "kind": "CronJob", "metadata": s.metadata("nightly", "team"),
            "spec": {"schedule": "0 1 * * *", "jobTemplate": {"spec": job["spec"]}}}
    demand = demand_of(cron)
    assert (demand.replicas, demand.namespace, demand.name, demand.replica_word) == (4, "team", "nightly",
                                                                                      "parallelism")
    assert demand.pod_spec == job["spec"]["template"]["spec"]
    assert demand.pod_labels == job["spec"]["template"]["metadata"].get("labels", {})
    cron["spec"]["suspend"] = True
    assert demand_of(cron).replicas == 0
    assert demand_of({"kind": "CronJob", "metadata": {"name": "empty"}}).replicas == 1   # a defaulted Job: 1 pod


def test_a_daemonset_wants_one_pod_per_eligible_node_and_names_nodes_as_its_count():
    demand = demand_of(s.daemonset("agent"))
    assert (demand.replicas, demand.replica_word, demand.rolling, demand.namespace) == (None, "nodes", False,
                                                                                        "kube-system")


def test_only_a_statefulset_brings_volume_claim_templates():
    claim = {"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}
    sts = s.statefulset("db", 3, claim_templates=[claim])
    demand = demand_of(sts)
    assert demand.claim_templates == (sts["spec"]["volumeClaimTemplates"][0],) and demand.replica_word == "replicas"
    rs = {"apiVersion": "apps/v1", "kind": "ReplicaSet", "metadata": s.metadata("db", "default"),
          "spec": {"replicas": 2, "volumeClaimTemplates": [claim], "template": sts["spec"]["template"]}}
    assert demand_of(rs).claim_templates == () and demand_of(rs).replicas == 2
    sts["spec"]["volumeClaimTemplates"] = None
    assert demand_of(sts).claim_templates == ()


def test_a_bare_pod_is_its_own_template_and_a_missing_namespace_is_default():
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "p", "labels": {"app": "p"}},
           "spec": {"containers": [{"name": "c", "image": "i"}]}}
    demand = demand_of(pod)
    assert demand.key == ("Pod", "default", "p") and demand.replicas == 1
    assert demand.pod_spec == pod["spec"] and demand.pod_labels == {"app": "p"}
    bare = demand_of({"kind": "Pod"})
    assert (bare.namespace, bare.name, bare.pod_spec, bare.pod_labels) == ("default", "", {}, {})
    job = demand_of({"kind": "Job", "metadata": {"name": "j", "namespace": "ci"}, "spec": {"parallelism": 3}})
    assert (job.key, job.replicas, job.pod_spec, job.pod_labels) == (("Job", "ci", "j"), 3, {}, {})
    empty = demand_of({"kind": "StatefulSet", "metadata": None, "spec": None})
    assert (empty.replicas, empty.pod_spec, empty.pod_labels, empty.claim_templates) == (1, {}, {}, ())


def test_kinds_that_are_not_pod_controllers_are_object_errors():
    for kind in ("Service", None, "deployment"):
        with pytest.raises(ObjectError) as error:
            demand_of({"kind": kind, "metadata": {"name": "x"}})
        assert (error.value.field, error.value.problem) == ("kind", f"{kind!r} is not a pod controller")


def test_a_deployments_pods_carry_a_new_pod_template_hash_label():
    demand = demand_of(deployment())
    assert demand.created_pod_labels == {"app": "web", "pod-template-hash": "new-web"}
    assert "pod-template-hash" not in demand.pod_labels
    pinned = Demand("Deployment", "default", "web", {}, {"app": "web", "pod-template-hash": "abc"}, 1)
    assert pinned.created_pod_labels == {"app": "web", "pod-template-hash": "abc"}
    sts = demand_of(s.statefulset("db", 2))
    assert sts.created_pod_labels == sts.pod_labels == {"app": "db"}


def test_same_template_needs_both_the_pod_spec_and_its_labels_unchanged():
    base = Demand("Deployment", "default", "web", {"containers": [{"image": "a"}]}, {"app": "web"}, 2)
    assert same_template(base, Demand("Deployment", "default", "web", {"containers": [{"image": "a"}]},
                                      {"app": "web"}, 9))
    assert not same_template(base, Demand("Deployment", "default", "web", {"containers": [{"image": "b"}]},
                                          {"app": "web"}, 2))
    assert not same_template(base, Demand("Deployment", "default", "web", {"containers": [{"image": "a"}]},
                                          {"app": "web", "tier": "1"}, 2))
