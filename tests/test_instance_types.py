"""The instance-limits records and table: what a record may hold, and the table's provenance.

EC2 ``DescribeInstanceTypes`` reports ``VCpuInfo.DefaultVCpus`` and the EBS attachment
limit for every type, but the VPC CNI's own list (the other source of the table) has
neither: those two fields may be absent (``None``) but never negative; ENIs and IPv4
addresses per ENI are at least 1 on every EC2 type.
"""

import dataclasses

import pytest

from webhook.engine.instance_types import InstanceLimits, InstanceTable, load_default_table, table_from_document


def limits(name="x.large", enis=3, ipv4=10, hypervisor="nitro", bare=False, vcpus=2, ebs=25, source="ec2"):
    return InstanceLimits(name, enis, ipv4, hypervisor, bare, vcpus, ebs, source)


@pytest.mark.parametrize("vcpus,ebs", [(None, None), (0, 0), (2, 25)])
def test_vcpus_and_ebs_slots_may_be_unknown_or_zero(vcpus, ebs):
    assert limits(vcpus=vcpus, ebs=ebs).vcpus == vcpus


@pytest.mark.parametrize("field,value", [("vcpus", -1), ("vcpus", True), ("ebs", -1), ("ebs", "25"), ("enis", True),
                                         ("ipv4", 0), ("ipv4", 1.5)])
def test_values_no_instance_type_has_are_refused(field, value):
    with pytest.raises(ValueError):
        limits(**{field: value})
    with pytest.raises(ValueError, match="must not be empty"):
        limits(name="")


def test_a_record_round_trips_and_a_missing_field_is_named():
    record = limits(vcpus=None).to_dict()
    assert record == {"enis": 3, "ipv4_per_eni": 10, "hypervisor": "nitro", "bare_metal": False, "vcpus": None,
                      "ebs_attachments": 25, "source": "ec2"}
    assert InstanceLimits.from_dict("x.large", record) == limits(vcpus=None)
    del record["enis"]
    with pytest.raises(ValueError, match="x.large: instance-limits record lacks 'enis'"):
        InstanceLimits.from_dict("x.large", record)


def test_a_document_must_describe_every_source_it_uses():
    record = limits(source="ec2+vpc-cni").to_dict()
    table = table_from_document({"sources": {"ec2": "DescribeInstanceTypes", "vpc-cni": "eni-max-pods.txt"},
                                 "types": {"x.large": record}})
    assert table.get("x.large") == limits(source="ec2+vpc-cni") and table.sources["ec2"] == "DescribeInstanceTypes"
    with pytest.raises(ValueError, match="not described in 'sources'"):
        table_from_document({"sources": {"ec2": "DescribeInstanceTypes"}, "types": {"x.large": record}})
    with pytest.raises(ValueError, match="no 'types' mapping"):
        table_from_document({"sources": {}})


def test_a_table_keeps_its_sources_and_says_its_size():
    table = InstanceTable([limits("a.large"), limits("b.large")], sources={"ec2": "DescribeInstanceTypes"})
    assert table.sources == {"ec2": "DescribeInstanceTypes"} and repr(table) == "InstanceTable(2 types)"
    assert [t.name for t in table] == ["a.large", "b.large"] and len(table) == 2
    with pytest.raises(TypeError):
        table.add({"name": "c.large"})
    shipped = load_default_table()
    assert set(shipped.sources) >= {"ec2", "vpc-cni"}


def test_the_shipped_records_are_shared_by_every_table_and_cannot_be_changed():
    # load_default_table() reads the file once: every table holds the same record objects, so a record that
    # could be changed in place would change every other caller's numbers (m5.large: 3 ENIs x 10 IPv4).
    first, second = load_default_table(), load_default_table()
    assert first.get("m5.large") is second.get("m5.large")
    with pytest.raises(dataclasses.FrozenInstanceError):
        first.get("m5.large").enis = 4
    assert (second.get("m5.large").enis, second.get("m5.large").ipv4_per_eni) == (3, 10)
