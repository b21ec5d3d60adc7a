"""Seeded mutations of real Kubernetes documents, for bench/fuzz.py and bench/soak.py.

``mutate(doc, rng)`` replaces, removes or adds 1-4 fields anywhere in a JSON document with
values a hostile or careless client sends (wrong types, ``null`` items, lone surrogates,
huge exponents and integers, deep lists, empty strings); ``mutate_bytes`` damages the
serialized form (truncation, flipped bytes, invalid UTF-8, a BOM, NaN). Everything is
driven by one ``random.Random`` so a run is reproducible from its seed.
"""

from __future__ import annotations

import copy
import json
import random

HOSTILE = [
    None, True, False, 0, -1, 1, 2**31, 2**63, -(2**63) - 1, 10**300, 1.5, -0.0, 1e308, "", "x", "\ud800",
    "\udfff", "1e9999999", "1e99999999", "-1e400", "1e-400", "25%", "101%", "abc%", "1Ki", "1.5Gi", "0.000000001",
    "9" * 400, "Always", "Block", "ReadWriteMany", "kubernetes.io/hostname", "In", "Exists", "Gt", [], [None], [[]],
    [1, "a"], {}, {"": None}, {"a": {"b": {"c": []}}}, ["x"] * 50, "a" * 5000,
]
KEYS = ["", "kind", "metadata", "spec", "replicas", "template", "containers", "resources", "requests", "cpu",
        "memory", "ownerReferences", "controller", "annotations", "labels", "capacity-webhook/skip",
        "capacity-webhook/mode", "capacity-webhook/ignore", "nodeSelector", "tolerations", "affinity", "volumes",
        "persistentVolumeClaim", "claimName", "initContainers", "restartPolicy", "overhead", "hostNetwork",
        "topologySpreadConstraints", "strategy", "rollingUpdate", "maxSurge", "\ud800", "x" * 300]


def deep_list(depth: int) -> list:
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


def random_value(rng: random.Random, depth: int = 0):
    roll = rng.random()
    if roll < 0.45 or depth > 2:
        return copy.deepcopy(rng.choice(HOSTILE))
    if roll < 0.6:
        return rng.randint(-10**6, 10**6)
    if roll < 0.7:
        return "".join(chr(rng.randint(32, 0x2FFF)) for _ in range(rng.randint(0, 12)))
    if roll < 0.8:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    if roll < 0.97:
        return {rng.choice(KEYS): random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))}
    return deep_list(rng.choice([50, 500, 5000]))


def _paths(doc, prefix=()):
    yield prefix
    if len(prefix) > 25:              # not into a deep list this module planted itself
        return
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _paths(value, prefix + (key,))
    elif isinstance(doc, list) and len(doc) < 100:
        for index, value in enumerate(doc):
            yield from _paths(value, prefix + (index,))


def mutate(doc, rng: random.Random, rounds: int | None = None):
    """A copy of ``doc`` with 1-4 fields replaced, removed or added."""
    doc = json.loads(json.dumps(doc))
    for _ in range(rounds or rng.randint(1, 4)):
        paths = [p for p in _paths(doc) if p]
        if not paths:
            return doc
        path = rng.choice(paths)
        parent = doc
        for step in path[:-1]:
            parent = parent[step]
        action = rng.random()
        if action < 0.6:
            parent[path[-1]] = random_value(rng)
        elif action < 0.8 and isinstance(parent, dict):
            del parent[path[-1]]
        elif isinstance(parent[path[-1]], dict):
            parent[path[-1]][rng.choice(KEYS)] = random_value(rng)
        elif isinstance(parent[path[-1]], list):
            parent[path[-1]].append(random_value(rng))
        else:
            parent[path[-1]] = random_value(rng)
    return doc


def dumps(doc) -> bytes:
    """JSON as a client would send it; a lone surrogate goes out as its ``\\ud800`` escape."""
    try:
        return json.dumps(doc, ensure_ascii=False, allow_nan=True).encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(doc, ensure_ascii=True, allow_nan=True).encode("ascii")
    except (ValueError, RecursionError):
        return b'{"kind": "AdmissionReview", "apiVersion": "admission.k8s.io/v1"}'


def mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    roll = rng.random()
    if roll < 0.2 and data:
        return data[: rng.randint(0, len(data) - 1)]
    if roll < 0.4 and data:
        index = rng.randrange(len(data))
        return data[:index] + bytes([rng.randrange(256)]) + data[index + 1:]
    if roll < 0.5:
        return b"\xef\xbb\xbf" + data
    if roll < 0.6:
        return data.replace(b"30", b"NaN", 1)
    if roll < 0.7:
        return data.replace(b'"web"', b'"\xed\xa0\x80"', 1)
    if roll < 0.8:
        return b"[" * rng.choice([100, 10_000, 200_000])
    if roll < 0.9:
        return data.replace(b"30", b"9" * rng.choice([20, 400, 5000]), 1)
    return bytes(rng.randrange(256) for _ in range(rng.randint(0, 200)))
