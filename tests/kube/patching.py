"""The three PATCH flavours of the Kubernetes API, applied to plain dicts.

Merge patch is RFC 7386; JSON patch is RFC 6902 (a failed `test` is what kopf relies on for
optimistic concurrency); strategic merge patch is approximated: lists of named objects merge by
`name` (containers, env, ports, volumes), `$patch`/`$setElementOrder`/`$retainKeys` directives are
honoured or dropped, everything else merges like a merge patch.
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """The patch cannot be applied (malformed, or a JSON-patch `test` failed)."""


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if patch.get("$patch") == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if key.startswith("$setElementOrder/") or key in ("$retainKeys", "$patch"):
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, list) and _named(value) and isinstance(result.get(key), list):
            result[key] = _merge_named(result[key], value)
        else:
            result[key] = strategic_merge_patch(result.get(key), value)
    return result


def _named(items: list[Any]) -> bool:
    return bool(items) and all(isinstance(i, dict) and "name" in i for i in items)


def _merge_named(current: list[Any], patch: list[Any]) -> list[Any]:
    merged = [copy.deepcopy(i) for i in current]
    for item in patch:
        index = next(
            (n for n, c in enumerate(merged) if isinstance(c, dict) and c.get("name") == item["name"]), None
        )
        if item.get("$patch") == "delete":
            if index is not None:
                del merged[index]
        elif index is None:
            merged.append(strategic_merge_patch({}, item))
        else:
            merged[index] = strategic_merge_patch(merged[index], item)
    return merged


def json_patch(target: Any, ops: Any) -> Any:
    if not isinstance(ops, list):
        raise PatchError("a JSON patch must be a list of operations")
    doc = copy.deepcopy(target)
    for op in ops:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise PatchError(f"malformed JSON-patch operation: {op!r}")
        kind, path = op["op"], op["path"]
        if kind == "test":
            if _get(doc, path) != op.get("value"):
                raise PatchError(f"test failed: {path} is not {op.get('value')!r}")
        elif kind == "remove":
            doc = _remove(doc, path)
        elif kind in ("add", "replace"):
            if kind == "replace":
                _get(doc, path)  # must exist
            doc = _add(doc, path, copy.deepcopy(op.get("value")), replace=kind == "replace")
        elif kind in ("move", "copy"):
            value = copy.deepcopy(_get(doc, op["from"]))
            if kind == "move":
                doc = _remove(doc, op["from"])
            doc = _add(doc, path, value, replace=False)
        else:
            raise PatchError(f"unknown JSON-patch op {kind!r}")
    return doc


def _tokens(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise PatchError(f"bad JSON pointer {path!r}")
    return [t.replace("~1", "/").replace("~0", "~") for t in path[1:].split("/")]


def _get(doc: Any, path: str) -> Any:
    value = doc
    for token in _tokens(path):
        if isinstance(value, dict) and token in value:
            value = value[token]
        elif isinstance(value, list) and token.isdigit() and int(token) < len(value):
            value = value[int(token)]
        else:
            raise PatchError(f"path not found: {path}")
    return value


def _add(doc: Any, path: str, value: Any, *, replace: bool) -> Any:
    tokens = _tokens(path)
    if not tokens:
        return value
    parent = _get(doc, "".join(f"/{t.replace('~', '~0').replace('/', '~1')}" for t in tokens[:-1]))
    last = tokens[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            if replace:
                parent[int(last)] = value
            else:
                parent.insert(int(last), value)
        else:
            raise PatchError(f"bad array index in {path}")
    else:
        raise PatchError(f"cannot add under a scalar: {path}")
    return doc


def _remove(doc: Any, path: str) -> Any:
    tokens = _tokens(path)
    if not tokens:
        raise PatchError("cannot remove the whole document")
    _get(doc, path)
    parent = _get(doc, "".join(f"/{t.replace('~', '~0').replace('/', '~1')}" for t in tokens[:-1]))
    if isinstance(parent, dict):
        del parent[tokens[-1]]
    else:
        del parent[int(tokens[-1])]
    return doc
