"""Issue 3 through ``capacity-webhook check``: PVC results beside workload results, every format.

Real processes on real files: a snapshot written from the synthetic builders and a manifest
folder applied in file order, so a claim created earlier in the run is seen by the
Deployment that mounts it later.
"""

import json
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from xml.etree import ElementTree as ET

import pytest
import yaml

from tests import synthetic as s

ROOT = Path(__file__).resolve().parents[1]
SCHEMA_KEYS = {
    "kind",
    "namespace",
    "name",
    "verdict",
    "requested",
    "schedulable",
    "pending",
    "reasons",
    "source",
    "line",
}


def claim_spec(claim: str) -> dict:
    return s.pod_spec(volumes=[{"name": "data", "persistentVolumeClaim": {"claimName": claim}}])


def run(*args):
    return subprocess.run(["capacity-webhook", *map(str, args)], capture_output=True, text=True, cwd=ROOT, timeout=60)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    base = tmp_path_factory.mktemp("storage-check")
    snapshot = base / "cluster.json"
    snapshot.write_text(json.dumps(s.two_t3_medium_cluster()))
    manifests = base / "manifests"
    manifests.mkdir()
    # Files run in name order, as in a kubectl apply of the folder.
    docs = {
        "01-efs-class.yaml": [s.storage_class("efs-sc", "efs.csi.aws.com", {"provisioningMode": "efs-ap",
                                                                             "fileSystemId": "fs-0123456789abcdef0"},
                                              binding="Immediate")],
        "02-claims.yaml": [s.pvc("data", size="20Gi"),                                     # fine: gp3 default
                           s.pvc("shared", modes=["ReadWriteMany"])],                     # RWX on EBS: deny
        "03-db.yaml": [s.deployment("db", 3, spec=claim_spec("data"))],                    # 3 pods on one RWO claim
        "04-web.yaml": [s.small_web("web", 5)],
    }
    for name, objects in docs.items():
        (manifests / name).write_text(yaml.safe_dump_all(objects, sort_keys=False))
    return snapshot, manifests


@pytest.fixture(scope="module")
def outputs(folder):
    snapshot, manifests = folder
    formats = ("text", "json", "junit", "sarif")
    with ThreadPoolExecutor(len(formats)) as pool:
        results = pool.map(lambda fmt: run("check", "--cluster", snapshot, "-f", manifests, "-o", fmt), formats)
    return dict(zip(formats, results, strict=True))


EXPECTED = {  # object -> (verdict, codes)
    "PersistentVolumeClaim default/data": ("allow", []),
    "PersistentVolumeClaim default/shared": ("deny", ["EBS_ACCESS_MODE"]),
    "Deployment default/db": ("deny", ["EBS_SHARED_RWO"]),
    "Deployment default/web": ("allow", []),
}


def test_exit_code_is_1_for_the_denied_claim_and_workload(outputs):
    for fmt, result in outputs.items():
        assert result.returncode == 1, (fmt, result.stderr)
        assert result.stderr == ""


def test_json_lists_claims_and_workloads_in_order_with_the_schema(outputs):
    items = json.loads(outputs["json"].stdout)["results"]
    assert [f"{i['kind']} {i['namespace']}/{i['name']}" for i in items] == list(EXPECTED)
    for item in items:
        assert set(item) == SCHEMA_KEYS
        assert all({"code", "message"} <= set(r) for r in item["reasons"])
        verdict, codes = EXPECTED[f"{item['kind']} {item['namespace']}/{item['name']}"]
        assert (item["verdict"], [r["code"] for r in item["reasons"]]) == (verdict, codes)
    shared = items[1]
    assert shared["source"].endswith("02-claims.yaml")
    assert "Use the EFS StorageClass 'efs-sc'" in shared["reasons"][0]["message"]   # the class from 01-efs-class.yaml
    db = items[2]
    assert (db["requested"], db["schedulable"], db["pending"]) == (3, 3, 0)
    assert "PersistentVolumeClaim default/data" in db["reasons"][0]["message"]


def test_text_table_has_a_row_per_claim(outputs):
    out = outputs["text"].stdout
    table = out.splitlines()[:1 + len(EXPECTED)]
    assert table[0].split() == ["VERDICT", "OBJECT", "PODS", "FIT", "PENDING", "REASONS"]
    rows = {" ".join(line.split()[1:3]): line.split() for line in table[1:]}
    assert set(rows) == set(EXPECTED)
    assert rows["PersistentVolumeClaim default/shared"] == ["DENY", "PersistentVolumeClaim", "default/shared",
                                                            "-", "-", "0", "EBS_ACCESS_MODE"]
    assert rows["PersistentVolumeClaim default/data"][0] == "ALLOW"
    assert rows["Deployment default/db"][0] == "DENY" and rows["Deployment default/db"][-1] == "EBS_SHARED_RWO"
    assert "4 objects: 2 allowed, 0 warned, 2 denied" in out
    assert "ReadWriteMany on EBS class 'gp3' never binds" in out


def test_junit_has_a_failure_for_the_denied_claim(outputs):
    root = ET.fromstring(outputs["junit"].stdout)
    suite = root.find("testsuite")
    assert suite.get("tests") == "4" and suite.get("failures") == "2"
    cases = {c.get("name"): c for c in suite.iter("testcase")}
    assert set(cases) == set(EXPECTED)
    failure = cases["PersistentVolumeClaim default/shared"].find("failure")
    assert failure is not None and failure.get("type") == "EBS_ACCESS_MODE"
    assert cases["PersistentVolumeClaim default/shared"].get("classname").endswith("02-claims.yaml")
    assert cases["PersistentVolumeClaim default/data"].find("failure") is None
    assert cases["Deployment default/db"].find("failure").get("type") == "EBS_SHARED_RWO"


def test_sarif_reports_the_claim_under_its_rule(outputs):
    doc = json.loads(outputs["sarif"].stdout)
    assert doc["version"] == "2.1.0"
    run_ = doc["runs"][0]
    rule_ids = {r["id"] for r in run_["tool"]["driver"]["rules"]}
    assert {"EBS_ACCESS_MODE", "EBS_SHARED_RWO"} <= rule_ids
    access = [r for r in run_["results"] if r["ruleId"] == "EBS_ACCESS_MODE"]
    assert len(access) == 1 and access[0]["level"] == "error"
    location = access[0]["locations"][0]
    assert location["physicalLocation"]["artifactLocation"]["uri"].endswith("02-claims.yaml")
    assert location["logicalLocations"][0]["name"] == "PersistentVolumeClaim default/shared"


def test_a_claim_created_earlier_in_the_run_is_seen_later(tmp_path, folder):
    snapshot, _ = folder
    (tmp_path / "a-claim.yaml").write_text(yaml.safe_dump(s.pvc("cache", size="5Gi")))
    (tmp_path / "b-db.yaml").write_text(yaml.safe_dump(s.deployment("db", 2, spec=claim_spec("cache"))))
    result = run("check", "--cluster", snapshot, "-f", tmp_path, "-o", "json", "--mode", "warn")
    assert result.returncode == 0, result.stderr
    items = {i["name"]: i for i in json.loads(result.stdout)["results"]}
    assert items["cache"]["verdict"] == "allow"
    assert items["db"]["verdict"] == "warn" and [r["code"] for r in items["db"]["reasons"]] == ["EBS_SHARED_RWO"]
    # Without the claim in the run nothing is shared, but the pods would wait for a claim that does not exist.
    alone = run("check", "--cluster", snapshot, "-f", tmp_path / "b-db.yaml", "-o", "json")
    (only,) = json.loads(alone.stdout)["results"]
    assert alone.returncode == 0 and only["verdict"] == "warn"
    assert [r["code"] for r in only["reasons"]] == ["CLAIM_NOT_FOUND"]
