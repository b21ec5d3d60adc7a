"""The AdmissionReview body as the apiserver sends it, read in-process: scale, defaults, responses.

Oracles: k8s.io/api admission/v1 (``AdmissionRequest``: uid, kind, resource, subResource,
namespace, name, operation CREATE/UPDATE/DELETE/CONNECT, userInfo, object, oldObject,
dryRun; ``AdmissionResponse``: uid, allowed, status, warnings, auditAnnotations) and
autoscaling/v1 ``Scale`` (``spec.replicas`` is ``omitempty``: absent means 0). The
apiserver truncates nothing for us: warnings over its limits are dropped, so the webhook
keeps each one short and the list small itself.
"""

import json

import pytest

from webhook.server.review import (
    BadReview,
    ScaleError,
    annotations_of,
    error_body,
    parse_review,
    review_response,
    sanitize_warnings,
    scale_objects,
    scale_replicas,
    scale_target_key,
)


def body(request=None, **top):
    document = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", **top}
    if request is not None:
        document["request"] = request
    return json.dumps(document).encode()


def scale_request(replicas=5, old=2, resource="deployments", **extra):
    request = {"uid": "u-1", "operation": "UPDATE", "subResource": "scale", "namespace": "shop", "name": "web",
               "kind": {"group": "autoscaling", "version": "v1", "kind": "Scale"},
               "resource": {"group": "apps", "version": "v1", "resource": resource},
               "userInfo": {"username": "alice"},
               "object": {"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": replicas}},
               "oldObject": {"apiVersion": "autoscaling/v1", "kind": "Scale", "spec": {"replicas": old}}}
    request.update(extra)
    return request


def test_a_scale_review_names_its_target_and_carries_both_replica_counts():
    review = parse_review(body(scale_request()))
    assert review.is_scale and (review.kind, review.resource, review.user) == ("Scale", "deployments", "alice")
    assert scale_target_key(review) == ("Deployment", "shop", "web")
    stored = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "shop"},
              "spec": {"replicas": 2, "template": {"spec": {"containers": []}}}}
    new, old = scale_objects(review, stored)
    assert (new["spec"]["replicas"], old["spec"]["replicas"]) == (5, 2)
    assert new["spec"]["template"] == stored["spec"]["template"] and stored["spec"]["replicas"] == 2


@pytest.mark.parametrize("resource,kind", [("replicasets", "ReplicaSet"), ("statefulsets", "StatefulSet"),
                                           ("deployments", "Deployment"), ("jobs", None)])
def test_scale_targets_are_the_three_scalable_workload_kinds(resource, kind):
    review = parse_review(body(scale_request(resource=resource)))
    assert scale_target_key(review) == ((kind, "shop", "web") if kind else None)


def test_scale_replicas_omitted_means_zero_and_a_missing_old_scale_reads_the_stored_count():
    assert scale_replicas(None, "request.object") is None
    assert scale_replicas({"kind": "Scale"}, "request.object") == 0
    assert scale_replicas({"spec": {}}, "request.object") == 0
    assert scale_replicas({"spec": {"replicas": 0}}, "request.object") == 0
    review = parse_review(body(scale_request(oldObject=None)))
    new, old = scale_objects(review, {"kind": "StatefulSet", "spec": {"replicas": 3}})
    assert (new["spec"]["replicas"], old["spec"]["replicas"]) == (5, 3)
    new, old = scale_objects(review, {"kind": "StatefulSet", "spec": {}})     # replicas defaults to 1
    assert old["spec"]["replicas"] == 1


@pytest.mark.parametrize("scale,field", [
    ({"spec": []}, "request.object.spec"),
    ({"spec": {"replicas": -1}}, "request.object.spec.replicas"),
    ({"spec": {"replicas": "3"}}, "request.object.spec.replicas"),
    ({"spec": {"replicas": True}}, "request.object.spec.replicas"),
    ({"spec": {"replicas": 1.5}}, "request.object.spec.replicas"),
])
def test_a_scale_that_is_not_a_non_negative_count_is_named_by_its_field(scale, field):
    with pytest.raises(ScaleError) as error:
        scale_replicas(scale, "request.object")
    assert error.value.field == field


def test_a_hand_made_review_gets_the_kind_namespace_and_name_the_apiserver_would_fill():
    request = {"uid": "u-2", "operation": "CREATE", "namespace": "team", "kind": {"kind": "Deployment"},
               "resource": {"resource": "deployments"}, "dryRun": True,
               "object": {"spec": {}}, "oldObject": {"metadata": {"name": "kept", "namespace": "there"}}}
    review = parse_review(body(request))
    assert review.obj == {"spec": {}, "kind": "Deployment", "metadata": {"namespace": "team"}}
    assert review.old["metadata"] == {"name": "kept", "namespace": "there"} and review.old["kind"] == "Deployment"
    assert (review.namespace, review.name, review.dry_run, review.is_scale) == ("team", "", True, False)


def test_the_name_falls_back_to_the_object_name_then_generate_name_and_the_namespace_to_default():
    review = parse_review(body({"uid": "u", "operation": "CREATE", "object": {"metadata": {"generateName": "job-"}}}))
    assert (review.name, review.namespace, review.dry_run, review.user) == ("job-", "default", False, "")
    review = parse_review(body({"uid": "u", "operation": "CREATE", "name": "given", "dryRun": "yes",
                                "object": {"metadata": {"name": "other"}}}))
    assert review.name == "given" and review.dry_run is False            # only a JSON true is a dry run
    assert review.obj["metadata"]["name"] == "other"


@pytest.mark.parametrize("request_,message", [
    ({"uid": "u", "operation": "UPDATE"}, "request.object is missing: a UPDATE review carries the object"),
    ({"uid": "u", "operation": "CREATE", "object": []}, "request.object must be a JSON object, got an array"),
    ({"uid": "u", "operation": "CREATE", "object": {}, "oldObject": "x"},
     "request.oldObject must be a JSON object, got a string"),
    ({"uid": "u", "operation": "CREATE", "object": 7}, "request.object must be a JSON object, got a number"),
    ({"uid": "u", "operation": "CREATE", "object": True}, "request.object must be a JSON object, got a boolean"),
    ({"uid": "u", "operation": "PATCH", "object": {}},
     "request.operation must be one of CREATE, UPDATE, DELETE, CONNECT, got 'PATCH'"),
    ({"uid": "", "operation": "CREATE"}, "request.uid is missing: the response must echo it"),
])
def test_a_review_the_webhook_cannot_answer_is_a_400_that_says_why(request_, message):
    with pytest.raises(BadReview) as error:
        parse_review(body(request_))
    assert (error.value.status, error.value.message) == (400, message)


def test_delete_and_connect_need_no_object():
    for operation in ("DELETE", "CONNECT"):
        review = parse_review(body({"uid": "u", "operation": operation, "oldObject": {"kind": "Pod"}}))
        assert review.obj is None and review.old == {"kind": "Pod", "metadata": {}}


def test_annotations_are_read_only_from_an_object_shape():
    assert annotations_of({"metadata": {"annotations": {"a": "1"}}}) == {"a": "1"}
    assert annotations_of({"metadata": {"annotations": ["a"]}}) == {}
    assert annotations_of({"metadata": "x"}) == {} and annotations_of(None) == {}


def test_a_deny_carries_a_forbidden_status_and_an_allow_none():
    denied = review_response("u-9", False, ["warning: low room"], "no room", audit_annotations={"k": "v" * 2000})
    assert denied["apiVersion"] == "admission.k8s.io/v1" and denied["kind"] == "AdmissionReview"
    response = denied["response"]
    assert response["uid"] == "u-9" and response["allowed"] is False
    assert response["status"] == {"code": 403, "reason": "Forbidden", "message": "no room"}
    assert response["warnings"] == ["low room"] and response["auditAnnotations"] == {"k": "v" * 1024}
    assert review_response("u", False, code=400)["response"]["status"] == {
        "code": 400, "reason": "BadRequest", "message": "denied by capacity-webhook"}
    allowed = review_response("u", True)["response"]
    assert allowed == {"uid": "u", "allowed": True}


def test_warnings_are_deduplicated_and_capped_with_a_count_of_the_rest():
    assert sanitize_warnings(["same", "same", "", "other"]) == ["same", "other"]
    many = [f"warning number {i:03d} " + "x" * 80 for i in range(100)]
    kept = sanitize_warnings(many, total=1000)
    shown = kept[:-1]
    assert kept[-1] == f"{100 - len(shown)} more warnings not shown"
    assert sum(map(len, shown)) + 40 <= 1000 < sum(map(len, shown)) + len(shown[0]) + 40
    assert sanitize_warnings(["a" * 50, "b" * 50], total=100) == ["a" * 50, "b" * 50]   # the last needs no reserve


def test_an_error_body_is_a_kubernetes_status():
    assert error_body(413, "too big") == {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 413,
                                          "message": "too big"}


# ---- decoding edge cases, in-process (the server tests run them in a subprocess) ------------------

def test_a_blank_body_is_called_empty_not_invalid_json():
    for blank in (b"", b"   ", b"\r\n\t "):
        with pytest.raises(BadReview) as error:
            parse_review(blank)
        assert (error.value.status, error.value.message) == (
            400, "request body is empty: POST an admission.k8s.io/v1 AdmissionReview")


@pytest.mark.parametrize("raw,message", [
    (b'{"kind": ', "request body is not JSON: Expecting value at line 1 column 10"),
    (b'{"a": 1} x', "request body is not JSON: Extra data at line 1 column 10"),
    (b'{"a": "\xff"}', "request body is not UTF-8 text (invalid byte at offset 7)"),
    (b'{"a": NaN}', "request body is not JSON (numbers beyond a double such as 1e400, numbers over 4,300 digits, "
                    "NaN and Infinity are not JSON values; nesting is limited)"),
    # 1e400 > 1.7976931348623157e308: orjson and Go's encoding/json refuse it; json.loads would give inf
    (b'{"a": 1e400}', "request body is not JSON (numbers beyond a double such as 1e400, numbers over 4,300 "
                      "digits, NaN and Infinity are not JSON values; nesting is limited)"),
    (b'{"a": [-2.5E+999]}', "request body is not JSON (numbers beyond a double such as 1e400, numbers over 4,300 "
                            "digits, NaN and Infinity are not JSON values; nesting is limited)"),
    (b'{"a": "\\ud800"}', "request body is not valid Unicode: it has a lone UTF-16 surrogate escape (\\ud800-\\udfff)"),
    (b'{"a": "\\udc00\\ud800"}',
     "request body is not valid Unicode: it has a lone UTF-16 surrogate escape (\\ud800-\\udfff)"),
])
def test_a_body_that_is_not_strict_json_is_a_400_naming_the_first_problem(raw, message):
    # RFC 8259 / Go's encoding/json: UTF-8 only, no NaN, no unpaired surrogate. The position is
    # json's own (1-based line and column), the offset is the first byte that is not UTF-8.
    with pytest.raises(BadReview) as error:
        parse_review(raw)
    assert (error.value.status, error.value.message) == (400, message)


def test_a_body_only_the_strict_fallback_reads_keeps_its_exact_numbers_and_surrogate_pairs():
    # A 400-digit integer is valid JSON (RFC 8259 sets no range) but not a double: orjson refuses it,
    # the standard library reads it exactly. An escaped surrogate PAIR is one valid character (U+1F600).
    big = 10 ** 399
    raw = ('{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u", '
           '"operation": "CREATE", "name": "\\ud83d\\ude00", "object": {"kind": "ConfigMap", "data": {"n": %d}}}}'
           % big).encode()
    review = parse_review(raw)
    assert review.name == "\U0001F600" and review.obj["data"]["n"] == big
    assert review.obj["metadata"]["name"] == "\U0001F600"


def test_without_orjson_the_standard_library_decodes_the_same_review(monkeypatch):
    from webhook.server import review as review_module

    raw = body(scale_request())
    fast = parse_review(raw)
    monkeypatch.setattr(review_module, "orjson", None)
    slow = parse_review(raw)
    assert slow == fast and slow.uid == "u-1" and slow.obj["spec"] == {"replicas": 5}
    with pytest.raises(BadReview) as error:
        parse_review(b"[1, 2]")
    assert (error.value.status, error.value.message) == (
        400, "request body must be an AdmissionReview object, got an array")


def test_without_orjson_a_number_beyond_a_double_is_a_400_not_infinity(monkeypatch):
    # scale to 1e400 replicas: json.loads alone would read float("1e400") == inf; orjson and Go's
    # encoding/json refuse the number, and so must the standard-library path.
    from webhook.server import review as review_module

    monkeypatch.setattr(review_module, "orjson", None)
    raw = body(scale_request()).replace(b'"replicas": 5', b'"replicas": 1e400')
    assert b"1e400" in raw
    with pytest.raises(BadReview) as error:
        parse_review(raw)
    assert error.value.status == 400 and "1e400" in error.value.message


def test_a_warning_of_exactly_120_characters_is_kept_whole_and_121_are_clipped():
    from webhook.server.review import sanitize_warning

    assert sanitize_warning("w" * 120) == "w" * 120
    assert sanitize_warning("w" * 121) == "w" * 117 + "..."


def test_the_warning_list_fits_the_apiservers_4096_character_budget_exactly():
    # k8s.io/apiserver pkg/endpoints/filters/warning.go: truncateAtTotalRunes = 4 * 1024; a warning
    # fits while written + len(text) <= 4096. 34 warnings of 118 characters are 4012; an 84-character
    # last one makes exactly 4096 (all shown), an 85-character one makes 4097 (counted, not shown).
    lines = [f"{i:02d}" + "z" * 116 for i in range(34)]
    assert sanitize_warnings(lines + ["q" * 84]) == lines + ["q" * 84]
    assert sanitize_warnings(lines + ["q" * 85]) == lines + ["1 more warnings not shown"]


@pytest.mark.parametrize("raw,message", [
    (body({"uid": "u"}, kind="AdmissionReviewList"), "kind must be AdmissionReview, got 'AdmissionReviewList'"),
    (body({"uid": "u"}, apiVersion="admission.k8s.io/v1beta1"),
     "apiVersion must be admission.k8s.io/v1, got 'admission.k8s.io/v1beta1' "
     "(set admissionReviewVersions: [\"v1\"] in the webhook configuration)"),
    (body(), "AdmissionReview has no request: the apiserver sends one in every review"),
    (body(request=["uid"]), "request must be a JSON object, got an array"),
    (body(request="u"), "request must be a JSON object, got a string"),
])
def test_an_envelope_that_is_not_an_admission_review_v1_request_is_a_400(raw, message):
    with pytest.raises(BadReview) as error:
        parse_review(raw)
    assert (error.value.status, error.value.message) == (400, message)


def test_the_objects_own_kind_wins_and_no_kind_is_invented_when_the_review_names_none():
    review = parse_review(body({"uid": "u", "operation": "UPDATE", "kind": {"kind": "Deployment"},
                                "object": {"kind": "ReplicaSet"}, "oldObject": {}}))
    assert review.obj == {"kind": "ReplicaSet", "metadata": {}} and review.old == {"kind": "Deployment", "metadata": {}}
    review = parse_review(body({"uid": "u", "operation": "CREATE", "object": {"metadata": {"name": "a"}}}))
    assert review.obj == {"metadata": {"name": "a"}} and review.kind == ""
