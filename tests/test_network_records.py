"""The small readers of the AWS network records: provider IDs, subnet sizes, label selectors.

Oracles: the AWS cloud provider's providerID form ``aws:///<zone>/<instance-id>`` (k8s
cloud-provider-aws), CIDR arithmetic, and apimachinery's label selector semantics
(pkg/labels/selector.go: ``In`` needs the key present with a listed value, ``NotIn`` and
``DoesNotExist`` match an absent key, an unknown operator fails to parse and so matches
nothing); an empty selector matches everything (SecurityGroupPolicy podSelector: {}).
"""

import pytest

from webhook.engine.network import LabelSelector, Subnet, _pod_requests_pod_eni, instance_id_of


@pytest.mark.parametrize("provider_id,expected", [
    ("aws:///us-east-1a/i-0abc123", "i-0abc123"),
    ("aws:///us-east-1a/i-0abc123/", "i-0abc123"),
    ("aws://us-east-1a/i-0def", "i-0def"),
    ("aws:///us-east-1a/fargate-ip-10-0-1-1", None),
    ("kwok://node-1", None),
    ("gce://project/zone/vm", None),
    ("", None),
    (None, None),
])
def test_the_instance_id_comes_only_from_an_aws_provider_id(provider_id, expected):
    assert instance_id_of(provider_id) == expected


@pytest.mark.parametrize("cidr,size", [("10.0.1.0/24", 256), ("10.0.0.0/16", 65536), ("10.0.0.5/32", 1),
                                       ("0.0.0.0/0", 2**32), ("10.0.0.0/33", None), ("10.0.0.0", None),
                                       (None, None), ("10.0.0.0/x", None)])
def test_a_subnet_size_is_its_cidr_block(cidr, size):
    assert Subnet("subnet-1", "us-east-1a", cidr, 100).size == size


def selector(match_labels=None, *expressions):
    return LabelSelector.parse({"matchLabels": match_labels or {},
                                "matchExpressions": [{"key": k, "operator": op, "values": list(v)}
                                                     for k, op, v in expressions]})


@pytest.mark.parametrize("expression,labels,expected", [
    (("tier", "In", ["web", "api"]), {"tier": "web"}, True),
    (("tier", "In", ["web"]), {"tier": "db"}, False),
    (("tier", "In", ["web"]), {}, False),
    (("tier", "NotIn", ["web"]), {"tier": "db"}, True),
    (("tier", "NotIn", ["web"]), {}, True),
    (("tier", "NotIn", ["web"]), {"tier": "web"}, False),
    (("tier", "Exists", []), {"tier": ""}, True),
    (("tier", "Exists", []), {}, False),
    (("tier", "DoesNotExist", []), {}, True),
    (("tier", "DoesNotExist", []), {"tier": "web"}, False),
    (("tier", "Gt", ["1"]), {"tier": "2"}, False),      # not a label-selector operator: matches nothing
])
def test_label_selector_expressions_follow_apimachinery(expression, labels, expected):
    assert selector(None, expression).matches(labels) is expected


def test_match_labels_and_expressions_must_all_hold_and_empty_matches_everything():
    both = selector({"app": "web"}, ("tier", "In", ["front"]))
    assert both.matches({"app": "web", "tier": "front"}) is True
    assert both.matches({"app": "web", "tier": "back"}) is False
    assert both.matches({"app": "api", "tier": "front"}) is False
    assert both.empty is False and selector().empty is True
    assert selector().matches(None) is True and selector().matches({"any": "thing"}) is True
    assert LabelSelector.parse(None) is None
    with pytest.raises(TypeError):
        LabelSelector.parse(["app"])


def test_a_pod_asks_for_a_branch_eni_by_request_or_by_limit():
    def spec(**resources):
        return {"containers": [{"name": "app", "resources": resources}]}
    assert _pod_requests_pod_eni(spec(limits={"vpc.amazonaws.com/pod-eni": "1"})) is True
    assert _pod_requests_pod_eni(spec(requests={"vpc.amazonaws.com/pod-eni": "1"})) is True
    assert _pod_requests_pod_eni(spec(requests={"cpu": "1"})) is False
    assert _pod_requests_pod_eni({"containers": [{"name": "app"}]}) is False
