"""The embedded instance-limits table, its generator, its loader and the boto3 adapter.

The oracle for max-pods numbers is AWS's own eni-max-pods.txt, vendored in tests/data
(source, version and license in tests/data/README.md), never the code under test; the adapter is checked
against the raw describe_instance_types fields moto serves.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import boto3
import pytest
from moto import mock_aws

from webhook.aws import UnknownInstanceType, fetch_instance_limits, limits_from_ec2
from webhook.engine.instance_types import InstanceLimits, InstanceTable, load_default_table
from webhook.engine.ipslots import ip_slots

REPO_ROOT = Path(__file__).resolve().parents[1]
ORACLE_DATA = REPO_ROOT / "tests" / "data"
ENI_MAX_PODS = ORACLE_DATA / "eni-max-pods.txt"
COMMITTED = REPO_ROOT / "webhook" / "data" / "instance_limits.json"
GENERATOR = REPO_ROOT / "scripts" / "generate_instance_limits.py"


def _official() -> dict[str, int]:
    assert ENI_MAX_PODS.is_file(), (
        f"{ENI_MAX_PODS} is missing: it is vendored in the repository (tests/data/README.md); "
        "this test needs AWS's official max-pods table"
    )
    table = {}
    for line in ENI_MAX_PODS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, value = line.split()
            table[name] = int(value)
    return table


def _max_pods(limits: InstanceLimits) -> int:
    return limits.enis * (limits.ipv4_per_eni - 1) + 2


@pytest.fixture(scope="module")
def official() -> dict[str, int]:
    table = _official()
    assert len(table) == 1391, "eni-max-pods.txt should list 1,391 types (VPC CNI v1.23.1)"
    return table


@pytest.fixture(scope="module")
def table() -> InstanceTable:
    return load_default_table()


@pytest.fixture(scope="module")
def ec2():
    # One moto backend for the module: these tests only read instance types, and moto
    # serialising all ~1,260 types is the slow part, so it is done as rarely as possible.
    with mock_aws():
        yield boto3.client(
            "ec2", region_name="us-east-1",
            aws_access_key_id="testing", aws_secret_access_key="testing", aws_session_token="testing",
        )


# --------------------------------------------------------------------- (a) every official type

def test_every_official_type_reproduces_official_max_pods(official, table):
    missing = sorted(set(official) - set(table.names()))
    assert not missing, f"{len(missing)} official types missing from the table: {missing[:20]}"
    wrong = {
        name: (_max_pods(table.get(name)), expected)
        for name, expected in official.items()
        if _max_pods(table.get(name)) != expected
    }
    assert not wrong, f"(table, official) max pods differ for {len(wrong)} types: {dict(list(wrong.items())[:20])}"


# --------------------------------------------------------------------- (b) AWS doc examples

@pytest.mark.parametrize(
    "name, max_pods",
    [("t3.medium", 17), ("m5.large", 29), ("m5.xlarge", 58), ("m4.xlarge", 58),
     ("p5.48xlarge", 100), ("c5.18xlarge", 737)],
)
def test_aws_doc_examples(table, name, max_pods):
    assert _max_pods(table.get(name)) == max_pods


def test_t3_medium_by_hand(table):
    limits = table.get("t3.medium")
    # 3 ENIs x (6 - 1) + 2 = 17; prefix delegation: 3 ENIs x 5 slots x 16 = 240 IPs.
    assert (limits.enis, limits.ipv4_per_eni) == (3, 6)
    assert limits.supports_prefix_delegation and limits.hypervisor == "nitro"
    assert ip_slots(limits, prefix_delegation=True) == 240


def test_m4_xlarge_is_xen_without_prefix_delegation(table):
    limits = table.get("m4.xlarge")
    assert (limits.enis, limits.ipv4_per_eni, limits.hypervisor) == (4, 15, "xen")
    assert not limits.supports_prefix_delegation


def test_p5_counts_only_the_default_network_card(table):
    limits = table.get("p5.48xlarge")
    # 32 network cards x 2 ENIs = 64 in total, but the CNI uses card 0 only: 2 x 49 + 2.
    assert (limits.enis, limits.ipv4_per_eni) == (2, 50)


def test_bare_metal_supports_prefix_delegation_without_hypervisor(table):
    limits = table.get("a1.metal")
    assert limits.bare_metal and limits.hypervisor == "unknown"
    assert limits.supports_prefix_delegation


# --------------------------------------------------------------------- (c) provenance

def test_provenance_recorded_for_every_type():
    document = json.loads(COMMITTED.read_text())
    assert document["generated_by"] == "scripts/generate_instance_limits.py"
    sources = document["sources"]
    assert {"ec2", "vpc-cni"} <= set(sources)
    assert all(description.strip() for description in sources.values())
    assert "v1.23.1" in sources["vpc-cni"] and "moto" in sources["ec2"]
    for name, record in document["types"].items():
        parts = record["source"].split("+")
        assert parts and all(part in sources for part in parts), f"{name}: untraceable source {record['source']!r}"
    assert list(document["types"]) == sorted(document["types"])


def test_conflicts_resolved_as_documented():
    document = json.loads(COMMITTED.read_text())
    types = document["types"]
    for conflict in document["conflicts"]:
        chosen = conflict["chosen"]
        assert chosen == document["precedence"][conflict["field"]][0]
        assert types[conflict["type"]][conflict["field"]] == conflict[chosen]
        assert types[conflict["type"]]["source"] == "ec2+vpc-cni"
    counted = {}
    for record in types.values():
        counted[record["source"]] = counted.get(record["source"], 0) + 1
    assert counted == document["counts"]


def test_only_vpc_cni_types_lack_vcpus(table):
    for limits in table:
        if limits.source.startswith("ec2"):
            assert limits.vcpus and limits.ebs_attachments, limits.name
        else:
            assert limits.vcpus is None and limits.ebs_attachments is None, limits.name


# --------------------------------------------------------------------- loader and table

def test_load_default_table_returns_independent_tables():
    first = load_default_table()
    extra = InstanceLimits("zz9.plural", 2, 4, "nitro", False, 2, 8, "ec2")
    first.add(extra)
    assert "zz9.plural" in first and first.get("zz9.plural") == extra
    second = load_default_table()
    assert "zz9.plural" not in second
    assert len(second) == len(first) - 1 >= 1391


def test_table_lookup_basics(table):
    assert table.get("no.such") is None and table.get(None) is None
    assert "m5.large" in table and "no.such" not in table
    assert table.names() == sorted(table.names())


def test_instance_limits_rejects_bad_values():
    with pytest.raises(ValueError, match="hypervisor"):
        InstanceLimits("x.large", 2, 4, "kvm", False, None, None, "ec2")
    with pytest.raises(ValueError, match="enis"):
        InstanceLimits("x.large", 0, 4, "nitro", False, None, None, "ec2")


# --------------------------------------------------------------------- (d) boto3 adapter vs moto

def _raw(ec2, name: str) -> dict:
    return ec2.describe_instance_types(InstanceTypes=[name])["InstanceTypes"][0]


@pytest.mark.parametrize("name", ["t3.medium", "m4.xlarge", "p5.48xlarge", "a1.metal", "c5.18xlarge"])
def test_limits_from_ec2_equals_raw_fields(ec2, name):
    raw = _raw(ec2, name)
    network = raw["NetworkInfo"]
    default_index = network.get("DefaultNetworkCardIndex", 0)
    card = next(c for c in network["NetworkCards"] if c["NetworkCardIndex"] == default_index)
    limits = limits_from_ec2(raw)
    assert limits == InstanceLimits(
        name=name,
        enis=card["MaximumNetworkInterfaces"],
        ipv4_per_eni=network["Ipv4AddressesPerInterface"],
        hypervisor=raw.get("Hypervisor", "unknown"),
        bare_metal=raw["BareMetal"],
        vcpus=raw["VCpuInfo"]["DefaultVCpus"],
        ebs_attachments=raw["EbsInfo"]["MaximumEbsAttachments"],
        source="ec2",
    )


def test_limits_from_ec2_falls_back_to_total_enis_without_cards():
    raw = {
        "InstanceType": "old.large", "Hypervisor": "xen", "BareMetal": False,
        "NetworkInfo": {"MaximumNetworkInterfaces": 3, "Ipv4AddressesPerInterface": 10},
        "VCpuInfo": {"DefaultVCpus": 2},
    }
    limits = limits_from_ec2(raw)
    assert (limits.enis, limits.ipv4_per_eni, limits.hypervisor) == (3, 10, "xen")
    assert limits.ebs_attachments is None
    with pytest.raises(ValueError, match="old.large"):
        limits_from_ec2({"InstanceType": "old.large", "NetworkInfo": {}})


def test_fetch_named_types(ec2):
    result = fetch_instance_limits(ec2, ["m5.large", "t3.medium", "m5.large"])
    assert [limits.name for limits in result] == ["m5.large", "t3.medium"]
    assert result[1] == limits_from_ec2(_raw(ec2, "t3.medium"))


@pytest.fixture(scope="module")
def all_ec2(ec2) -> list[InstanceLimits]:
    return fetch_instance_limits(ec2)


def test_fetch_all_types_equals_raw_answer(ec2, all_ec2):
    raw = {}
    for page in ec2.get_paginator("describe_instance_types").paginate():
        raw.update((item["InstanceType"], item) for item in page["InstanceTypes"])
    assert [limits.name for limits in all_ec2] == sorted(raw)
    assert len(all_ec2) > 1000
    for limits in all_ec2:
        network = raw[limits.name]["NetworkInfo"]
        assert limits.ipv4_per_eni == network["Ipv4AddressesPerInterface"]
        assert limits.enis <= network["MaximumNetworkInterfaces"]


def test_fetch_many_names_batches_over_100(ec2, all_ec2):
    names = [limits.name for limits in all_ec2][::5][:150]
    assert fetch_instance_limits(ec2, names) == [limits for limits in all_ec2 if limits.name in set(names)]


def test_unknown_name_raises_typed_error_with_partial_results(ec2):
    with pytest.raises(UnknownInstanceType) as caught:
        fetch_instance_limits(ec2, ["m5.large", "zz9.plural", "t3.medium"])
    error = caught.value
    assert error.names == ("zz9.plural",)
    assert [limits.name for limits in error.found] == ["m5.large", "t3.medium"]
    assert "zz9.plural" in str(error) and "us-east-1" in str(error)
    assert isinstance(error, LookupError)


def test_fetch_pages_are_followed_when_ec2_paginates():
    """Real EC2 returns 100 per page with NextToken (moto returns one page): follow them all."""
    pages = [
        {"InstanceTypes": [{"InstanceType": f"x{i}.large", "NetworkInfo": {"MaximumNetworkInterfaces": 2,
                                                                            "Ipv4AddressesPerInterface": 4}}
                           for i in range(start, start + 3)]}
        for start in (0, 3, 6)
    ]

    class Paginator:
        def __init__(self):
            self.kwargs = None

        def paginate(self, **kwargs):
            self.kwargs = kwargs
            return iter(pages)

    class Client:
        paginator = Paginator()

        def get_paginator(self, name):
            assert name == "describe_instance_types"
            return self.paginator

    client = Client()
    result = fetch_instance_limits(client)
    assert len(result) == 9
    assert client.paginator.kwargs == {"PaginationConfig": {"PageSize": 100}}


# --------------------------------------------------------------------- (e) generator end to end

def test_offline_generator_reproduces_committed_table(tmp_path):
    output = tmp_path / "instance_limits.json"
    # No wall-clock assertion: on a loaded 2-core CI machine it measured the machine, not the code.
    completed = subprocess.run(
        [sys.executable, str(GENERATOR), "--offline", "-o", str(output)],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stderr
    generated, committed = output.read_text(), COMMITTED.read_text()
    if generated != committed:
        import moto

        pytest.fail(
            "webhook/data/instance_limits.json is not what `python scripts/generate_instance_limits.py "
            f"--offline` produces (moto {moto.__version__} here; the committed table records: "
            f"{json.loads(committed)['sources']['ec2'][:80]}...). Regenerate and commit it."
        )


def _generator_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate_instance_limits", GENERATOR)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_merge_prefers_vpc_cni_networking_and_ec2_capacity():
    generator = _generator_module()
    from_ec2 = InstanceLimits("x.large", 4, 15, "nitro", False, 4, 27, "ec2")
    from_cni = InstanceLimits("x.large", 3, 15, "nitro", False, None, None, "vpc-cni")
    only_cni = InstanceLimits("y.large", 2, 4, "xen", False, None, None, "vpc-cni")
    merged, conflicts = generator.merge({"x.large": from_ec2}, {"x.large": from_cni, "y.large": only_cni})
    assert merged["x.large"] == InstanceLimits("x.large", 3, 15, "nitro", False, 4, 27, "ec2+vpc-cni")
    assert merged["y.large"] == only_cni
    assert conflicts == [{
        "type": "x.large", "field": "enis", "ec2": 4, "vpc-cni": 3, "chosen": "vpc-cni",
        "max_pods": {"ec2": 58, "vpc-cni": 44},
    }]
    assert generator.check_against_official(merged, {"x.large": 44, "y.large": 8}) == []
    assert generator.check_against_official(merged, {"x.large": 58, "z.large": 8}) == [
        "x.large: max pods 44 from ec2+vpc-cni, official 58",
        "z.large: missing (official max pods 8)",
    ]
