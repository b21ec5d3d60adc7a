"""The IP-slot model against AWS's own numbers.

Oracles: the VPC CNI's eni-max-pods.txt (vendored in tests/data) and the worked examples in the AWS
docs (EKS "Choosing an instance type", prefix delegation and custom networking pages).
"""

from pathlib import Path

import pytest

from tests import synthetic as s
from webhook.engine.instance_types import InstanceLimits, load_default_table
from webhook.engine.ipslots import CniConfig, ip_slots, node_ip_capacity, recommended_max_pods

ORACLE_DATA = Path(__file__).resolve().parent / "data"
TABLE = load_default_table()


def official_max_pods() -> dict[str, int]:
    rows = {}
    for line in (ORACLE_DATA / "eni-max-pods.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, value = line.split()
            rows[name] = int(value)
    return rows


def test_every_official_type_gets_the_official_max_pods():
    official = official_max_pods()
    assert len(official) > 1300
    missing = sorted(name for name in official if TABLE.get(name) is None)
    assert not missing, missing[:20]
    wrong = {name: (ip_slots(TABLE.get(name)) + 2, want) for name, want in official.items()
             if ip_slots(TABLE.get(name)) + 2 != want}
    assert not wrong, dict(list(wrong.items())[:20])


# AWS: max pods = ENIs x (IPv4 per ENI - 1) + 2; custom networking: (ENIs - 1) x (IPv4 per ENI - 1) + 2.
# t3.medium 3 ENIs x 6 IPs: 3*5+2 = 17, 2*5+2 = 12; m5.large 3 x 10: 3*9+2 = 29, 2*9+2 = 20;
# m5.xlarge and m4.xlarge 4 x 15: 4*14+2 = 58, 3*14+2 = 44.
@pytest.mark.parametrize("itype, secondary, custom", [
    ("t3.medium", 17, 12), ("m5.large", 29, 20), ("m5.xlarge", 58, 44), ("m4.xlarge", 58, 44)])
def test_custom_networking_loses_one_eni(itype, secondary, custom):
    limits = TABLE.get(itype)
    assert ip_slots(limits) + 2 == secondary
    assert ip_slots(limits, custom_networking=True) + 2 == custom


def test_prefix_delegation_multiplies_slots_by_16_on_nitro_only():
    assert ip_slots(TABLE.get("t3.medium"), prefix_delegation=True) == 3 * 5 * 16 == 240
    assert ip_slots(TABLE.get("t3.nano"), prefix_delegation=True) + 2 == 34     # 2 ENIs x (2 - 1) x 16 + 2
    # m4.xlarge is Xen: prefix delegation does not apply, it keeps 58.
    assert ip_slots(TABLE.get("m4.xlarge"), prefix_delegation=True) + 2 == 58


def test_recommended_kubelet_max_pods_with_prefix_delegation():
    # AWS max-pods-calculator.sh: ENIs x (IPs - 1) x 16 + 2, then min(250) above 30 vCPUs, else min(110).
    assert recommended_max_pods(TABLE.get("t3.nano")) == 34      # uncapped: 32 IPs + 2
    assert recommended_max_pods(TABLE.get("t3.medium")) == 110   # < 30 vCPUs: capped at 110
    assert recommended_max_pods(TABLE.get("m5.24xlarge")) == 250  # 96 vCPUs: capped at 250
    # Either side of the 30-vCPU line (both 8 ENIs x 30 IPs: 8 x 29 x 16 + 2 = 3714 uncapped).
    assert TABLE.get("i3en.6xlarge").vcpus == 24 and recommended_max_pods(TABLE.get("i3en.6xlarge")) == 110
    assert TABLE.get("m5.8xlarge").vcpus == 32 and recommended_max_pods(TABLE.get("m5.8xlarge")) == 250


def test_multi_card_and_large_types():
    # eni-max-pods.txt: p5.48xlarge 100 (card 0 only: 2 ENIs x 49 + 2), c5.18xlarge 737 (15 x 49 + 2).
    assert ip_slots(TABLE.get("p5.48xlarge")) + 2 == 100
    assert ip_slots(TABLE.get("c5.18xlarge")) + 2 == 737


def test_cni_config_read_from_the_aws_node_daemonset_env():
    assert CniConfig.from_daemonset(s.aws_node()) == CniConfig(True, False, False, False)
    assert CniConfig.from_daemonset(s.aws_node(prefix_delegation=True)).prefix_delegation
    assert CniConfig.from_daemonset(s.aws_node(custom_networking=True)).custom_networking
    assert CniConfig.from_daemonset(s.aws_node(ipv6=True)).ipv6
    assert CniConfig.from_daemonset(None) == CniConfig()


def test_no_ip_rule_for_ipv6_other_cnis_non_aws_and_unknown_types():
    t3 = TABLE.get("t3.medium")
    assert node_ip_capacity("t3.medium", t3, CniConfig(True)).slots == 15
    assert node_ip_capacity("t3.medium", t3, CniConfig(True, ipv6=True)).slots is None
    assert node_ip_capacity("t3.medium", t3, CniConfig()).slots is None
    assert node_ip_capacity(None, None, CniConfig(True)).mode == "not-aws"
    assert node_ip_capacity("z9.mega", None, CniConfig(True)).mode == "unknown-type"


def test_the_cap_applies_to_xen_types_too():
    # AWS max-pods-calculator.sh caps every type (Xen included): min(ceiling, max_pods).
    # i3.16xlarge: Xen, 64 vCPUs, 15 ENIs x 49 + 2 = 737 without prefixes -> 250.
    i3 = TABLE.get("i3.16xlarge")
    assert (i3.hypervisor, i3.vcpus) == ("xen", 64)
    assert recommended_max_pods(i3) == 250
    # m4.xlarge: Xen, 4 vCPUs, 58 (eni-max-pods.txt) stays under the 110 ceiling.
    assert recommended_max_pods(TABLE.get("m4.xlarge")) == 58


def test_the_recommended_cap_rises_above_thirty_vcpus_not_at_thirty():
    # max-pods-calculator.sh: `if [ "$CPU_COUNT" -gt 30 ]` then 250 else 110. Same networking (m5.8xlarge: 8 ENIs
    # x 30 IPv4, 8 x 29 x 16 + 2 = 3714 uncapped), only the vCPU count differs.
    m5 = TABLE.get("m5.8xlarge")

    def with_vcpus(vcpus):
        return InstanceLimits(m5.name, m5.enis, m5.ipv4_per_eni, m5.hypervisor, m5.bare_metal, vcpus,
                              m5.ebs_attachments, m5.source)

    assert [recommended_max_pods(with_vcpus(n)) for n in (30, 31, 32)] == [110, 250, 250]
    assert recommended_max_pods(with_vcpus(None)) == 110          # vCPUs unknown: the lower cap


def test_custom_networking_with_max_eni_1_leaves_no_eni_for_pods():
    # MAX_ENI=1 keeps only the primary ENI, which custom networking keeps for the node: 0 pod IP slots
    # (m5.large: min(3, 1) - 1 = 0 ENIs x 9), so only host-network pods run.
    m5 = TABLE.get("m5.large")
    assert ip_slots(m5, custom_networking=True, max_eni=1) == 0
    assert ip_slots(m5, custom_networking=False, max_eni=1) == 9
