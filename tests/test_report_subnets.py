"""``report`` shows subnet room per zone beside the node table, and a bar per subnet in HTML."""

import json

from tests.test_subnets import _custom_networking
from webhook import report
from tests import synthetic as s
from webhook.state.snapshot import state_from_objects


def test_text_report_lists_subnets_per_zone_with_ec2s_numbers():
    text = report.to_text(state_from_objects(_custom_networking(5)))
    lines = text.splitlines()
    header = lines.index("Subnet room (EC2 DescribeSubnets):")
    assert lines[header + 1].split() == ["ZONE", "SUBNET", "CIDR", "FREE", "IPS", "USED", "NODES"]
    # A /24 has 251 usable addresses: 5 free means 246 used.
    assert lines[header + 3].split() == ["us-east-1b", "subnet-pods-b", "100.64.1.0/24", "5", "246/251", "1"]
    assert "Free IPs per zone: us-east-1a 100, us-east-1b 5" in text


def test_html_report_has_a_bar_per_subnet_and_json_the_rows():
    state = state_from_objects(_custom_networking(5))
    page = report.to_html(state)
    section = page[page.index("<section id='subnets'>"):]
    assert section.count("<td class='bar") == 2
    assert "class='bar full' style='--used:98.0%'" in section and "246/251 used (5 free)" in section
    subnets = json.loads(report.to_json(state))["subnets"]
    assert {r["subnet"]: (r["free"], r["used"], r["nodes"]) for r in subnets} == {
        "subnet-pods-a": (100, 151, 1), "subnet-pods-b": (5, 246, 1)}


def test_no_subnet_figures_no_subnet_section():
    state = state_from_objects(s.two_t3_medium_cluster()["items"])
    assert "Subnet room" not in report.to_text(state) and "id='subnets'" not in report.to_html(state)


def test_nodes_launched_before_prefix_delegation_are_named_with_the_fix():
    # Prefix delegation on, but both t3.medium still have the secondary-IP maxPods (17).
    state = state_from_objects(s.two_t3_medium_cluster(prefix_delegation=True, max_pods=17)["items"])
    text = report.to_text(state)
    assert ("Nodes ip-10-0-1-17.ec2.internal, ip-10-0-2-23.ec2.internal started before prefix delegation was "
            "enabled") in text
    assert "replace them" in text and "replace them" in report.to_html(state)
    # Relaunched with maxPods 110 they are prefix nodes: nothing to say.
    fresh = state_from_objects(s.two_t3_medium_cluster(prefix_delegation=True, max_pods=110)["items"])
    assert "started before prefix delegation" not in report.to_text(fresh)
