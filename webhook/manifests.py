"""Reading Kubernetes objects from files: manifests for ``check`` and snapshot files.

Accepts JSON or YAML, multi-document YAML, ``kind: List`` wrappers, folders (recursive
``*.yaml``, ``*.yml``, ``*.json``) and ``-`` for stdin, so ``helm template ... |
capacity-webhook check -f -`` works. Errors name the file and, for YAML, the line.

``load_manifests`` also keeps each object's line (for SARIF regions) and, inside a
folder, passes over files that are not Kubernetes objects (a Helm ``Chart.yaml``, a
kind-less ``kustomization.yaml``, a CI workflow) and files matching ``--exclude``
patterns, reporting them as skipped instead of stopping the run.
"""

from __future__ import annotations

import fnmatch
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import yaml

from .fastjson import strict_json_loads
from .unicode_text import has_lone_surrogate

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

SUFFIXES = (".yaml", ".yml", ".json")


class InputError(Exception):
    """Bad input from the user: one clear line, exit code 2."""


_ESCAPED_SURROGATE = re.compile(r"\\(?:u|U0000)[dD][89a-fA-F]")


def reject_surrogates(document: object, source: str) -> None:
    """Raise InputError if any string holds a lone UTF-16 surrogate (an escape like ``\\ud800``).

    Such a string is not Unicode text: it cannot be printed, logged or sent to the API server.
    """
    if has_lone_surrogate(document):
        raise InputError(f"{source}: a string holds a lone UTF-16 surrogate escape (\\ud800-\\udfff), "
                         "which is not valid Unicode")


def load_json(text: str, source: str) -> object:
    """``json.loads`` with every failure as one InputError line (deep nesting, huge numbers, surrogates)."""
    try:
        document = strict_json_loads(text)     # no NaN, inf, 1e400
    except json.JSONDecodeError as exc:
        raise InputError(f"{source}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    except RecursionError:
        raise InputError(f"{source}: invalid JSON: nested too deeply") from None
    except ValueError as exc:
        raise InputError(f"{source}: invalid JSON: {' '.join(str(exc).split())[:160]}") from None
    if _ESCAPED_SURROGATE.search(text):
        reject_surrogates(document, source)
    return document


MAX_FLOW_DEPTH = 200
_BRACKETS = re.compile(r"[\[\]{}]")


def _check_flow_depth(text: str, source: str) -> None:
    """Refuse YAML flow collections nested deeper than ``MAX_FLOW_DEPTH`` before libyaml reads them.

    libyaml's C parser recurses once per ``[``/``{`` and overflows the C stack (the process
    dies) around 100,000 levels. Brackets inside quoted strings are counted too: real
    manifests stay far below the limit either way.
    """
    if text.count("[") + text.count("{") <= MAX_FLOW_DEPTH:
        return
    depth = 0
    for match in _BRACKETS.finditer(text):
        depth += 1 if match.group() in "[{" else -1
        if depth > MAX_FLOW_DEPTH:
            line = text.count("\n", 0, match.start()) + 1
            raise InputError(f"{source}:{line}: invalid YAML: nested more than {MAX_FLOW_DEPTH} levels deep")
        depth = max(depth, 0)


def _documents(text: str, source: str) -> Iterator[object]:
    stripped = text.lstrip()
    if stripped.startswith("{") or stripped.startswith("["):
        try:
            yield json.loads(text)
            return
        except json.JSONDecodeError as exc:
            if source.endswith(".json"):
                raise InputError(f"{source}:{exc.lineno}: invalid JSON: {exc.msg}") from None
    try:
        yield from yaml.load_all(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise InputError(f"{source}{line}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: invalid YAML: {exc}") from None


def expand(obj: object, source: str) -> Iterator[dict]:
    """Flatten ``kind: List`` (and ``*List``) wrappers into their items."""
    if obj is None:
        return
    if not isinstance(obj, dict):
        raise InputError(f"{source}: expected a Kubernetes object, got {type(obj).__name__}")
    kind = obj.get("kind")
    if isinstance(kind, str) and kind.endswith("List") and obj.get("items") is not None \
            and not isinstance(obj.get("items"), list):
        raise InputError(f"{source}: {kind}.items must be a list of objects, got {type(obj['items']).__name__}")
    if isinstance(kind, str) and kind.endswith("List") and isinstance(obj.get("items"), list):
        for item in obj["items"]:
            yield from expand(item, source)
        return
    if not kind:
        raise InputError(f"{source}: object without kind")
    yield obj


def _files(path: str) -> list[Path]:
    p = Path(path)
    if p.is_dir():
        return sorted(f for f in p.rglob("*") if f.is_file() and f.suffix in SUFFIXES)
    if not p.exists():
        raise InputError(f"{path}: no such file or directory")
    return [p]


def read_text(path: str) -> str:
    try:
        if path == "-":
            return sys.stdin.buffer.read().decode("utf-8")
        return Path(path).read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"{path}: cannot read: not UTF-8 text") from None
    except OSError as exc:        # the OS's sentence, without Python's "[Errno 2] ...: 'path'" wrapper
        raise InputError(f"{path}: cannot read: {(exc.strerror or 'read failed').lower()}") from None


def load_objects(paths: Iterable[str]) -> list[tuple[str, dict]]:
    """All objects from the given paths, in order, each with the file it came from."""
    objects: list[tuple[str, dict]] = []
    for path in paths:
        files = [path] if path == "-" else [str(f) for f in _files(path)]
        for name in files:
            source = "<stdin>" if name == "-" else name
            for doc in _documents(read_text(name), source):
                objects.extend((source, obj) for obj in expand(doc, source))
    return objects


@dataclass(frozen=True)
class Manifest:
    """One object from the input, with the file and 1-based line it starts at."""

    source: str
    line: int
    obj: dict


@dataclass
class Loaded:
    objects: list[Manifest] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)     # "path: why", one per file or document passed over


def _yaml_documents(text: str, source: str) -> Iterator[tuple[int, object, object]]:
    """``(line, document, node)`` per YAML document, as ``yaml.safe_load_all`` reads them."""
    loader = _Loader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            yield node.start_mark.line + 1, loader.construct_document(node), node
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = f":{mark.line + 1}" if mark else ""
        raise InputError(f"{source}{line}: invalid YAML: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise InputError(f"{source}: invalid YAML: {' '.join(str(exc).split())}") from None
    except RecursionError:
        raise InputError(f"{source}: invalid YAML: nested too deeply") from None
    except (ValueError, OverflowError) as exc:     # a 5,000-digit integer, a timestamp like 2020-13-45
        raise InputError(f"{source}: invalid YAML value: {' '.join(str(exc).split())[:160]}") from None
    finally:
        loader.dispose()


def _documents_with_lines(text: str, source: str) -> Iterator[tuple[int, object, object]]:
    stripped = text.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            document = load_json(text, source)
        except InputError:
            if source.endswith(".json"):
                raise
        else:
            yield 1 + text[: len(text) - len(stripped)].count("\n"), document, None
            return
    _check_flow_depth(text, source)
    for line, document, node in _yaml_documents(text, source):
        if _ESCAPED_SURROGATE.search(text):
            reject_surrogates(document, source)
        yield line, document, node


def _expand_with_lines(obj: object, source: str, line: int, node) -> Iterator[tuple[int, dict]]:
    if isinstance(obj, dict) and isinstance(obj.get("kind"), str) and obj["kind"].endswith("List") \
            and isinstance(obj.get("items"), list):
        children = node.value if isinstance(node, yaml.MappingNode) else []
        item_nodes = next((v.value for k, v in children
                           if getattr(k, "value", None) == "items" and isinstance(v, yaml.SequenceNode)), None)
        if not item_nodes or len(item_nodes) != len(obj["items"]):
            item_nodes = [None] * len(obj["items"])       # JSON input: every item at the List's line
        for item, item_node in zip(obj["items"], item_nodes, strict=True):
            item_line = item_node.start_mark.line + 1 if item_node is not None else line
            yield from _expand_with_lines(item, source, item_line, item_node)
        return
    for expanded in expand(obj, source):
        yield line, expanded


def _excluded(path: Path, root: Path, patterns: Iterable[str]) -> bool:
    relative = path.relative_to(root).as_posix() if path.is_relative_to(root) else path.as_posix()
    parts = relative.split("/")
    for pattern in patterns:
        pattern = pattern.rstrip("/")
        if fnmatch.fnmatch(relative, pattern) or fnmatch.fnmatch(path.as_posix(), pattern) \
                or any(fnmatch.fnmatch(part, pattern) for part in parts):
            return True
    return False


def _not_an_object(doc: object) -> str | None:
    if doc is None:
        return None
    if not isinstance(doc, dict):
        return f"not a Kubernetes object ({type(doc).__name__})"
    if not doc.get("kind") or not doc.get("apiVersion"):
        return "not a Kubernetes object (no apiVersion/kind)"
    return None


def _same_file(name: str, others: list[Path]) -> bool:
    try:
        return any(Path(name).samefile(other) for other in others if other.exists())
    except OSError:
        return False


def load_manifests(paths: Iterable[str], exclude: Iterable[str] = (), lenient: Iterable[str] = (),
                   not_manifests: Iterable[str] = ()) -> Loaded:
    """All objects from ``paths`` then ``lenient`` paths, in order, with file and line.

    A file named in ``paths`` must hold Kubernetes objects (else InputError). Files found in
    a folder, and every ``lenient`` path (file names as pre-commit passes them), are read
    leniently: files matching ``exclude`` and documents that are not objects are skipped.
    ``not_manifests`` (the ``--cluster`` snapshot) are never read as manifests.
    """
    exclude, others = list(exclude), [Path(p) for p in not_manifests]
    loaded = Loaded()
    for path, strict_file in [(p, True) for p in paths] + [(p, False) for p in lenient]:
        in_folder = path != "-" and Path(path).is_dir()
        root = Path(path) if in_folder else Path(".")
        files = [path] if path == "-" else [str(f) for f in _files(path)]
        for name in files:
            source = "<stdin>" if name == "-" else name
            lenient_file = in_folder or not strict_file
            if name != "-" and _same_file(name, others):
                loaded.skipped.append(f"{source}: the --cluster snapshot")
                continue
            if lenient_file and _excluded(Path(name), root, exclude):
                loaded.skipped.append(f"{source}: matches --exclude")
                continue
            for line, doc, node in _documents_with_lines(read_text(name), source):
                why = _not_an_object(doc) if lenient_file else None
                if why:
                    loaded.skipped.append(f"{source}:{line}: {why}")
                    continue
                loaded.objects.extend(Manifest(source, obj_line, obj)
                                      for obj_line, obj in _expand_with_lines(doc, source, line, node))
    return loaded
