"""A Kubernetes API server good enough for kopf and the real kubectl: kmock's emulator, completed.

kmock's `KubernetesEmulator` provides the request parsing, the user-reaction DSL (so a test can
still inject faults with `emulator['patch ...'] << 500`) and the resource registry; this subclass
replaces its object store with one that behaves like an API server: resourceVersion/uid/generation
stamping, optimistic concurrency, status subresource isolation, finalizers, owner garbage
collection, CRD registration with defaulting/pruning/validation, label and field selectors,
server-side Table printing, OpenAPI v3 and watches that resume from a resourceVersion.
The store is guarded by a thread lock, so tests may read it from any thread (`get`, `list`).
"""

from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import copy
import datetime
import json
import logging
import re
import secrets
import threading
import traceback
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import aiohttp.web
import attrs
import kmock
import yaml
from kmock._internal import apps, rendering

from kube import openapi, patching, schema, selectors, tables

logger = logging.getLogger(__name__)

Obj = dict[str, Any]
StoreKey = tuple[str, str, str | None, str]  # group, plural, namespace, name
_NAME_RE = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
_LOG_KEEP = 20000


class ApiError(Exception):
    """An API failure rendered as a `Status` object with a standard reason."""

    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None):
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details

    def status(self) -> Obj:
        body: Obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure"}
        body.update(message=self.message, reason=self.reason, code=self.code)
        if self.details:
            body["details"] = self.details
        return body


@dataclass
class ResourceType:
    """One served group/version/plural, with what a CRD adds to it."""

    group: str
    version: str
    plural: str
    info: kmock.ResourceInfo
    schema: Obj | None = None  # openAPIV3Schema for custom resources
    printer_columns: list[Obj] | None = None
    custom: bool = False

    @property
    def kind(self) -> str:
        return self.info.kind or self.plural.capitalize()

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def gr(self) -> str:
        return f"{self.plural}.{self.group}" if self.group else self.plural

    @property
    def has_status(self) -> bool:
        return "status" in self.info.subresources


@dataclass
class _Event:
    rv: int
    group: str
    plural: str
    type: str
    obj: Obj = field(repr=False)


def now_rfc3339() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class AuditEntry(NamedTuple):
    """One request as RBAC sees it: who (User-Agent), verb, API group, resource, name, subresource."""

    agent: str
    verb: str
    group: str
    resource: str
    namespace: str | None
    name: str | None
    subresource: str | None


def audit_entry(raw: aiohttp.web.BaseRequest) -> AuditEntry:
    parts = [p for p in raw.path.split("/") if p]
    agent = raw.headers.get("User-Agent", "")
    group, rest = ("", parts[2:]) if parts[:1] == ["api"] else ("/".join(parts[1:2]), parts[3:])
    namespace = None
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else None
    sub = rest[2] if len(rest) > 2 else None
    method = raw.method.upper()
    if method == "GET":
        verb = "get" if name else ("watch" if raw.query.get("watch") in ("true", "1") else "list")
    else:
        verb = {
            "POST": "create",
            "PATCH": "patch",
            "PUT": "update",
            "DELETE": "delete" if name else "deletecollection",
        }.get(method, method.lower())
    return AuditEntry(agent, verb, group if parts[:1] == ["apis"] else "", resource, namespace, name, sub)


@attrs.define(kw_only=True)
class KubeEmulator(kmock.KubernetesEmulator):
    """The Kubernetes API for tests. Namespaces must exist before objects go into them."""

    builtins: bool = True
    strict_namespaces: bool = True
    _store: dict[StoreKey, Obj] = attrs.field(factory=dict, init=False)
    _rv: int = attrs.field(default=1000, init=False)
    _log: list[_Event] = attrs.field(factory=list, init=False)
    _log_rvs: list[int] = attrs.field(factory=list, init=False)
    _log_floor: int = attrs.field(default=0, init=False)
    _mutex: threading.RLock = attrs.field(factory=threading.RLock, init=False)
    _watchers: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = attrs.field(factory=set, init=False)
    _custom: dict[tuple[str, str, str], ResourceType] = attrs.field(factory=dict, init=False)
    closing: bool = attrs.field(default=False, init=False)

    audit_log: list[AuditEntry] = attrs.field(factory=list, init=False)

    def __attrs_post_init__(self) -> None:
        # Deliberately not kmock's fallbacks: every request the DSL does not catch is served below.
        if self.builtins:
            self.resources.load_bundled()

    # ---- the HTTP entry point ---------------------------------------------------------------------
    async def __call__(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        await raw.read()
        try:
            request = await rendering.Request._parse(raw, id=len(self._requests))
        except ValueError:  # kmock's path parser cannot read e.g. /api/v1/namespaces
            request = rendering.Request(
                id=len(self._requests), raw_request=raw, url=raw.url, method=raw.method
            )
        self._requests.append(request)
        self.audit_log.append(audit_entry(raw))
        try:
            if self._payloads:  # reactions that tests declared through kmock's DSL come first
                try:
                    return await apps.RawHandler._handle(self, request)
                except NotImplementedError:
                    pass
            return await self._serve(raw)
        except ApiError as exc:
            return aiohttp.web.json_response(exc.status(), status=exc.code)
        except Exception as exc:
            logger.exception("emulator failure on %s %s", raw.method, raw.path_qs)
            error = ApiError(
                500, "InternalError", f"{exc!r}", {"causes": [{"message": traceback.format_exc()}]}
            )
            return aiohttp.web.json_response(error.status(), status=500)

    async def _serve(self, raw: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        parts = [p for p in raw.path.split("/") if p]
        if len(parts) >= 3 and parts[0] == "api":
            return await self._serve_resource(raw, "", parts[1], parts[2:])
        if len(parts) >= 4 and parts[0] == "apis":
            return await self._serve_resource(raw, parts[1], parts[2], parts[3:])
        if raw.method == "GET":
            static = self._static(parts)
            if static is not None:
                return aiohttp.web.json_response(static)
        raise ApiError(404, "NotFound", "the server could not find the requested resource")

    # ---- discovery, version, OpenAPI --------------------------------------------------------------
    def types(self) -> list[ResourceType]:
        found = []
        for key in list(self.resources):
            res = kmock.resource(key)
            if res.group is None or res.version is None or res.plural is None:
                continue
            custom = self._custom.get((res.group, res.version, res.plural))
            found.append(custom or ResourceType(res.group, res.version, res.plural, self.resources[res]))
        return found

    def find_type(self, group: str, version: str, plural: str) -> ResourceType | None:
        if (group, version, plural) in self._custom:
            return self._custom[group, version, plural]
        key = kmock.resource(group, version, plural)
        return ResourceType(group, version, plural, self.resources[key]) if key in self.resources else None

    def _static(self, parts: list[str]) -> Obj | None:
        path = "/".join(parts)
        types = self.types()
        if path in ("healthz", "livez", "readyz"):
            return {"status": "ok"}
        if path == "version":
            return {"major": "1", "minor": "32", "gitVersion": "v1.32.0-kmock", "platform": "linux/amd64"}
        if path == "":
            return {"paths": ["/api", "/api/v1", "/apis", "/openapi/v3", "/version"]}
        if path == "api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        groups: dict[str, list[str]] = {}
        for t in types:
            if t.group and t.version not in groups.setdefault(t.group, []):
                groups[t.group].append(t.version)

        def group_doc(name: str) -> Obj:
            versions = [{"groupVersion": f"{name}/{v}", "version": v} for v in sorted(groups[name])]
            return {"name": name, "versions": versions, "preferredVersion": versions[-1]}

        if path == "apis":
            return {
                "kind": "APIGroupList",
                "apiVersion": "v1",
                "groups": [group_doc(g) for g in sorted(groups)],
            }
        if len(parts) == 2 and parts[0] == "apis" and parts[1] in groups:
            return {"kind": "APIGroup", "apiVersion": "v1", **group_doc(parts[1])}
        if (len(parts) == 2 and parts[0] == "api") or (len(parts) == 3 and parts[0] == "apis"):
            group, version = ("", parts[1]) if parts[0] == "api" else (parts[1], parts[2])
            served = [t for t in types if (t.group, t.version) == (group, version)]
            if not served:
                raise ApiError(404, "NotFound", "the server could not find the requested resource")
            return {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": served[0].api_version,
                "resources": [entry for t in served for entry in self._discovery_entries(t)],
            }
        if path == "openapi/v3":
            return {
                "paths": {p: {"serverRelativeURL": f"/openapi/v3/{p}?hash={h}"} for p, h in self._gv_hashes()}
            }
        if parts[:2] == ["openapi", "v3"] and len(parts) > 2:
            return self._gv_doc("/".join(parts[2:]))
        return None

    def _discovery_entries(self, t: ResourceType) -> list[Obj]:
        main = {
            "name": t.plural,
            "singularName": t.info.singular or t.kind.lower(),
            "namespaced": bool(t.info.namespaced),
            "kind": t.kind,
            "verbs": sorted(t.info.verbs),
            "shortNames": sorted(t.info.shortnames),
            "categories": sorted(t.info.categories),
        }
        subs = [
            {"name": f"{t.plural}/{sub}", "singularName": "", "namespaced": bool(t.info.namespaced), "kind": t.kind,
             "verbs": ["get", "patch", "update"]}
            for sub in sorted(t.info.subresources)
        ]  # fmt: skip
        return [main, *subs]

    def _gv_docs(self) -> dict[str, Obj]:
        by_gv: dict[tuple[str, str], list[Obj]] = {}
        for t in self.types():
            entry = {
                "plural": t.plural,
                "kind": t.kind,
                "namespaced": bool(t.info.namespaced),
                "schema": t.schema,
            }
            by_gv.setdefault((t.group, t.version), []).append(entry)
        return {openapi.gv_path(g, v): openapi.build_gv_doc(g, v, e) for (g, v), e in by_gv.items()}

    def _gv_hashes(self) -> list[tuple[str, str]]:
        return [(path, openapi.doc_hash(doc)) for path, doc in sorted(self._gv_docs().items())]

    def _gv_doc(self, path: str) -> Obj:
        docs = self._gv_docs()
        if path not in docs:
            raise ApiError(404, "NotFound", f"no OpenAPI document for {path}")
        return docs[path]

    # ---- resource requests ------------------------------------------------------------------------
    async def _serve_resource(
        self, raw: aiohttp.web.BaseRequest, group: str, version: str, rest: list[str]
    ) -> aiohttp.web.StreamResponse:
        namespace: str | None = None
        if (
            len(rest) >= 3
            and rest[0] == "namespaces"
            and not (group == "" and rest[2] in ("status", "finalize"))
        ):
            namespace, rest = rest[1], rest[2:]
        plural, name, sub = [*rest, None, None][:3] if rest else (None, None, None)
        rtype = self.find_type(group, version, plural or "")
        if rtype is None or plural is None:
            raise ApiError(404, "NotFound", "the server could not find the requested resource")
        if sub is not None and sub not in rtype.info.subresources:
            raise ApiError(404, "NotFound", f"{rtype.gr} has no subresource {sub!r}")
        if rtype.info.namespaced is False:
            namespace = None
        params, method, body = raw.query, raw.method, await raw.read()
        accept = raw.headers.get("Accept", "")
        if method == "GET" and params.get("watch") in ("true", "1"):
            return await self._watch(raw, rtype, namespace, name, accept)
        data: Any = None
        if body:
            try:
                data = yaml.safe_load(body) if "yaml" in raw.content_type else json.loads(body)
            except ValueError as exc:
                raise ApiError(400, "BadRequest", f"cannot decode the request body: {exc}") from exc
        warnings: list[str] = []
        status = 200
        if method == "GET" and name is None:
            result: Obj = self._list(rtype, namespace, params, accept)
        elif method == "GET":
            result = self._get_object(rtype, namespace, name or "")
            if "as=Table" in accept:
                result = tables.render_table(rtype.plural, [result], rtype.printer_columns, str(self._rv))
        elif method == "POST" and name is None:
            result, warnings = self._create(rtype, namespace, data, params)
            status = 201
        elif method == "PUT" and name:
            result, warnings = self._update(rtype, namespace, name, data, sub, params)
        elif method == "PATCH" and name:
            result, warnings = self._patch(rtype, namespace, name, data, sub, raw.content_type, params)
        elif method == "DELETE" and name:
            result = self._delete(rtype, namespace, name, data or {}, dry=params.get("dryRun") == "All")
        elif method == "DELETE":
            result = self._delete_collection(rtype, namespace, params)
        else:
            raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on this path")
        headers = {"Warning": ", ".join(f'299 - "{w}"' for w in warnings)} if warnings else None
        return aiohttp.web.json_response(result, status=status, headers=headers)

    # ---- reading ----------------------------------------------------------------------------------
    def _not_found(self, rtype: ResourceType, name: str) -> ApiError:
        details = {"name": name, "group": rtype.group, "kind": rtype.plural}
        return ApiError(404, "NotFound", f'{rtype.gr} "{name}" not found', details)

    def _out(self, rtype: ResourceType, obj: Obj) -> Obj:
        return {"apiVersion": rtype.api_version, "kind": rtype.kind, **copy.deepcopy(obj)}

    def _get_object(self, rtype: ResourceType, namespace: str | None, name: str) -> Obj:
        with self._mutex:
            obj = self._store.get((rtype.group, rtype.plural, namespace, name))
            if obj is None:
                raise self._not_found(rtype, name)
            return self._out(rtype, obj)

    def _matching(self, rtype: ResourceType, namespace: str | None, params: Any) -> list[Obj]:
        try:
            labels = selectors.label_selector(params.get("labelSelector"))
            fields = selectors.field_selector(params.get("fieldSelector"))
        except ValueError as exc:
            raise ApiError(400, "BadRequest", str(exc)) from exc
        found = [
            self._out(rtype, obj)
            for (group, plural, ns, _), obj in sorted(self._store.items(), key=lambda kv: str(kv[0]))
            if (group, plural) == (rtype.group, rtype.plural) and namespace in (None, ns)
        ]
        return [obj for obj in found if labels(obj) and fields(obj)]

    def _list(self, rtype: ResourceType, namespace: str | None, params: Any, accept: str) -> Obj:
        with self._mutex:
            items, rv = self._matching(rtype, namespace, params), str(self._rv)
        if "as=Table" in accept:
            return tables.render_table(rtype.plural, items, rtype.printer_columns, rv)
        for item in items:
            item.pop("apiVersion"), item.pop("kind")
        return {"kind": f"{rtype.kind}List", "apiVersion": rtype.api_version, "metadata": {"resourceVersion": rv},
                "items": items}  # fmt: skip

    # ---- writing ----------------------------------------------------------------------------------
    def _record(self, rtype: ResourceType, etype: str, obj: Obj) -> None:
        """Append a change to the event log (caller holds the mutex and has bumped the version)."""
        self._log.append(_Event(self._rv, rtype.group, rtype.plural, etype, copy.deepcopy(obj)))
        self._log_rvs.append(self._rv)
        if len(self._log) > 2 * _LOG_KEEP:
            self._log_floor = self._log_rvs[-_LOG_KEEP - 1]
            del self._log[:-_LOG_KEEP], self._log_rvs[:-_LOG_KEEP]
        for loop, event in list(self._watchers):
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # that loop is closed: its watcher is gone
                self._watchers.discard((loop, event))

    def _bump(self) -> str:
        self._rv += 1
        return str(self._rv)

    def _admit(self, rtype: ResourceType, obj: Obj, params: Any) -> list[str]:
        """Prune, default and validate a custom resource like the API server; returns warnings."""
        if rtype.plural == "secrets" and isinstance(obj.get("stringData"), dict):
            # the API server folds stringData into data (base64) and never stores stringData
            data = obj.setdefault("data", {}) or {}
            for key, value in obj.pop("stringData").items():
                data[key] = base64.b64encode(str(value).encode()).decode()
            obj["data"] = data
        if rtype.schema is None:
            return []
        unknown = schema.prune(rtype.schema, obj)
        if unknown and params.get("fieldValidation") == "Strict":
            raise ApiError(
                400,
                "BadRequest",
                "strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown),
            )
        schema.default_in_place(rtype.schema, obj)
        problems = schema.validate(rtype.schema, obj)
        if problems:
            name = obj.get("metadata", {}).get("name", "")
            causes = [{"reason": "FieldValueInvalid", "message": m, "field": p} for p, m in problems]
            text = ", ".join(f"{p}: {m}" for p, m in problems)
            details = {"name": name, "group": rtype.group, "kind": rtype.kind, "causes": causes}
            raise ApiError(
                422, "Invalid", f'{rtype.kind}.{rtype.group} "{name}" is invalid: [{text}]', details
            )
        return [f'unknown field "{u}"' for u in unknown] if params.get("fieldValidation") != "Ignore" else []

    def _create(
        self, rtype: ResourceType, namespace: str | None, data: Any, params: Any
    ) -> tuple[Obj, list[str]]:
        if not isinstance(data, dict):
            raise ApiError(400, "BadRequest", "the body of a create must be an object")
        obj = copy.deepcopy(data)
        meta = obj.setdefault("metadata", {})
        if not meta.get("name") and meta.get("generateName"):
            meta["name"] = meta["generateName"] + secrets.token_hex(3)[:5]
        name = meta.get("name") or ""
        if not re.match(_NAME_RE, name) or len(name) > 253:
            raise ApiError(
                422, "Invalid", f'{rtype.kind} "{name}" is invalid: metadata.name: Invalid value: {name!r}'
            )
        if rtype.info.namespaced:
            if meta.get("namespace") not in (None, namespace):
                raise ApiError(400, "BadRequest", "the namespace of the object does not match the request")
            if namespace is None:
                raise ApiError(400, "BadRequest", "a namespaced object needs a namespace in the path")
            meta["namespace"] = namespace
        else:
            meta.pop("namespace", None)
        obj.pop("apiVersion", None), obj.pop("kind", None)
        if rtype.has_status and rtype.plural != "namespaces":
            obj.pop("status", None)
        warnings = self._admit(rtype, obj, params)
        with self._mutex:
            key = (rtype.group, rtype.plural, namespace, name)
            if key in self._store:
                raise ApiError(409, "AlreadyExists", f'{rtype.gr} "{name}" already exists',
                               {"name": name, "group": rtype.group, "kind": rtype.plural})  # fmt: skip
            if namespace and self.strict_namespaces:
                ns_obj = self._store.get(("", "namespaces", None, namespace))
                if ns_obj is None:
                    raise ApiError(404, "NotFound", f'namespaces "{namespace}" not found',
                                   {"name": namespace, "kind": "namespaces"})  # fmt: skip
                if ns_obj["metadata"].get("deletionTimestamp"):
                    raise ApiError(403, "Forbidden", f"namespace {namespace} is being terminated")
            for server_owned in ("deletionTimestamp", "deletionGracePeriodSeconds", "resourceVersion"):
                meta.pop(server_owned, None)
            meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339(), generation=1)
            if rtype.plural == "namespaces":
                obj["status"] = {"phase": "Active"}
            if params.get("dryRun") == "All":
                return self._out(rtype, obj), warnings
            meta["resourceVersion"] = self._bump()
            self._store[key] = obj
            self._record(rtype, "ADDED", obj)
            if (rtype.group, rtype.plural) == ("apiextensions.k8s.io", "customresourcedefinitions"):
                self._register_crd(obj)
            return self._out(rtype, obj), warnings

    def _update(
        self, rtype: ResourceType, namespace: str | None, name: str, data: Any, sub: str | None, params: Any
    ) -> tuple[Obj, list[str]]:
        if not isinstance(data, dict):
            raise ApiError(400, "BadRequest", "the body of an update must be an object")
        with self._mutex:
            current = self._get_object(rtype, namespace, name)
            wanted = data.get("metadata", {}).get("resourceVersion")
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise self._conflict(rtype, name)
            return self._replace(rtype, current, copy.deepcopy(data), sub, params)

    def _patch(
        self, rtype: ResourceType, namespace: str | None, name: str, data: Any, sub: str | None, ctype: str,
        params: Any,
    ) -> tuple[Obj, list[str]]:  # fmt: skip
        with self._mutex:
            try:
                current = self._get_object(rtype, namespace, name)
            except ApiError:
                if ctype == "application/apply-patch+yaml" and sub is None:  # server-side apply creates
                    return self._create(rtype, namespace, data, params)
                raise
            try:
                if ctype == "application/json-patch+json":
                    patched = patching.json_patch(current, data)
                elif ctype == "application/strategic-merge-patch+json":
                    if rtype.custom:
                        raise ApiError(
                            415,
                            "UnsupportedMediaType",
                            "strategic merge patch is not supported for custom resources",
                        )
                    patched = patching.strategic_merge_patch(current, data)
                elif ctype in ("application/merge-patch+json", "application/apply-patch+yaml"):
                    patched = patching.merge_patch(current, data)
                else:
                    raise ApiError(
                        415, "UnsupportedMediaType", f"the content type {ctype!r} is not supported"
                    )
            except patching.PatchError as exc:
                raise ApiError(422, "Invalid", f'{rtype.gr} "{name}": {exc}') from exc
            wanted = (data.get("metadata") or {}).get("resourceVersion") if isinstance(data, dict) else None
            if wanted and wanted != current["metadata"]["resourceVersion"]:
                raise self._conflict(rtype, name)
            return self._replace(rtype, current, patched, sub, params)

    def _conflict(self, rtype: ResourceType, name: str) -> ApiError:
        return ApiError(
            409, "Conflict",
            f'Operation cannot be fulfilled on {rtype.gr} "{name}": the object has been modified; '
            "please apply your changes to the latest version and try again",
            {"name": name, "group": rtype.group, "kind": rtype.plural},
        )  # fmt: skip

    def _replace(
        self, rtype: ResourceType, current: Obj, new: Obj, sub: str | None, params: Any
    ) -> tuple[Obj, list[str]]:
        """Store `new` in place of `current` with the server's rules (caller holds the mutex)."""
        old_meta = current["metadata"]
        if sub == "status":
            new = {**copy.deepcopy(current), "status": new.get("status")}
        elif rtype.has_status and rtype.plural != "namespaces":
            new["status"] = copy.deepcopy(current.get("status"))
        if new.get("status") is None:
            new.pop("status", None)
        meta = new.setdefault("metadata", {})
        if meta.get("name", old_meta["name"]) != old_meta["name"]:
            raise ApiError(400, "BadRequest", "the name of the object does not match the request")
        for owned in ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp",
                      "deletionGracePeriodSeconds", "generation", "resourceVersion"):  # fmt: skip
            if owned in old_meta:
                meta[owned] = old_meta[owned]
            else:
                meta.pop(owned, None)
        if old_meta.get("deletionTimestamp"):
            added = set(meta.get("finalizers") or []) - set(old_meta.get("finalizers") or [])
            if added:
                raise ApiError(422, "Invalid", f"metadata.finalizers: Forbidden: no new finalizers can be added "
                                               f"if the object is being deleted, found new finalizers {sorted(added)}")  # fmt: skip
        if not meta.get("finalizers"):
            meta.pop("finalizers", None)
        new["apiVersion"], new["kind"] = rtype.api_version, rtype.kind
        warnings = self._admit(rtype, new, params)
        ignored = ("metadata", "status", "apiVersion", "kind")
        if {k: v for k, v in new.items() if k not in ignored} != {
            k: v for k, v in current.items() if k not in ignored
        }:
            meta["generation"] = int(old_meta.get("generation", 1)) + 1
        if new == current or params.get("dryRun") == "All":
            return current, warnings
        meta["resourceVersion"] = self._bump()
        stored = {k: v for k, v in new.items() if k not in ("apiVersion", "kind")}
        key = (rtype.group, rtype.plural, meta.get("namespace"), meta["name"])
        self._store[key] = stored
        self._record(rtype, "MODIFIED", stored)
        if (rtype.group, rtype.plural) == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._register_crd(stored)
        if meta.get("deletionTimestamp") and not meta.get("finalizers"):
            self._remove(rtype, key)
        return self._out(rtype, stored), warnings

    def _delete(
        self, rtype: ResourceType, namespace: str | None, name: str, options: Obj, *, dry: bool
    ) -> Obj:
        with self._mutex:
            current = self._get_object(rtype, namespace, name)
            meta = current["metadata"]
            pre = options.get("preconditions") or {}
            if pre.get("uid") not in (None, meta["uid"]) or pre.get("resourceVersion") not in (
                None,
                meta["resourceVersion"],
            ):
                raise self._conflict(rtype, name)
            if dry:
                return current
            key = (rtype.group, rtype.plural, namespace, name)
            orphan = options.get("propagationPolicy") == "Orphan" or options.get("orphanDependents") is True
            if meta.get("finalizers") or rtype.plural == "namespaces":
                if not meta.get("deletionTimestamp"):
                    stored = self._store[key]
                    stored["metadata"].update(deletionTimestamp=now_rfc3339(), deletionGracePeriodSeconds=0,
                                              resourceVersion=self._bump())  # fmt: skip
                    if rtype.plural == "namespaces":
                        stored["status"] = {"phase": "Terminating"}
                    self._record(rtype, "MODIFIED", stored)
                    if rtype.plural == "namespaces":
                        self._empty_namespace(name)
                return self._get_object(rtype, namespace, name) if key in self._store else current
            return self._remove(rtype, key, orphan=orphan)

    def _delete_collection(self, rtype: ResourceType, namespace: str | None, params: Any) -> Obj:
        with self._mutex:
            victims = self._matching(rtype, namespace, params)
            for obj in victims:
                self._delete(rtype, obj["metadata"].get("namespace"), obj["metadata"]["name"], {}, dry=False)
            return {"kind": f"{rtype.kind}List", "apiVersion": rtype.api_version,
                    "metadata": {"resourceVersion": str(self._rv)}, "items": victims}  # fmt: skip

    def _remove(self, rtype: ResourceType, key: StoreKey, *, orphan: bool = False) -> Obj:
        """Really remove an object, then collect what it owned and what it kept alive (holds mutex)."""
        obj = self._store.pop(key)
        obj["metadata"]["resourceVersion"] = self._bump()
        self._record(rtype, "DELETED", obj)
        if (rtype.group, rtype.plural) == ("apiextensions.k8s.io", "customresourcedefinitions"):
            self._unregister_crd(obj)
        if not orphan:
            self._collect_garbage(obj["metadata"]["uid"])
        namespace = key[2]
        if namespace and not any(k[2] == namespace for k in self._store):
            ns_key = ("", "namespaces", None, namespace)
            ns_obj = self._store.get(ns_key)
            if ns_obj is not None and ns_obj["metadata"].get("deletionTimestamp"):
                self._remove(self._type_of("", "namespaces"), ns_key)
        return self._out(rtype, obj)

    def _collect_garbage(self, owner_uid: str) -> None:
        live = {obj["metadata"]["uid"] for obj in self._store.values()}
        for (group, plural, ns, name), obj in list(self._store.items()):
            owners = [ref.get("uid") for ref in obj["metadata"].get("ownerReferences") or []]
            if owner_uid in owners and not (set(owners) & live) and (group, plural, ns, name) in self._store:
                self._delete(self._type_of(group, plural), ns, name, {}, dry=False)

    def _empty_namespace(self, namespace: str) -> None:
        for group, plural, ns, name in list(self._store):
            if ns == namespace and (group, plural, ns, name) in self._store:
                self._delete(self._type_of(group, plural), ns, name, {}, dry=False)
        ns_key = ("", "namespaces", None, namespace)
        if ns_key in self._store and not any(k[2] == namespace for k in self._store):
            self._remove(self._type_of("", "namespaces"), ns_key)

    def _type_of(self, group: str, plural: str) -> ResourceType:
        for t in self.types():
            if (t.group, t.plural) == (group, plural):
                return t
        raise LookupError(f"{plural}.{group} is not served")

    # ---- CRDs -------------------------------------------------------------------------------------
    def _register_crd(self, crd: Obj) -> None:
        spec, names = crd.get("spec", {}), crd.get("spec", {}).get("names", {})
        for version in spec.get("versions", []):
            if not version.get("served", True):
                continue
            info = kmock.ResourceInfo(
                kind=names["kind"], singular=names.get("singular") or names["kind"].lower(),
                namespaced=spec.get("scope") == "Namespaced", shortnames=names.get("shortNames", []),
                categories=names.get("categories", []), subresources=set(version.get("subresources", {})),
                verbs=["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
            )  # fmt: skip
            columns = version.get("additionalPrinterColumns")
            if columns is None:
                columns = [{"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}]
            rtype = ResourceType(spec["group"], version["name"], names["plural"], info, custom=True,
                                 schema=(version.get("schema") or {}).get("openAPIV3Schema"), printer_columns=columns)  # fmt: skip
            self._custom[spec["group"], version["name"], names["plural"]] = rtype
            self.resources[kmock.resource(spec["group"], version["name"], names["plural"])] = info
        conditions = [
            {"type": t, "status": "True", "reason": r, "message": m, "lastTransitionTime": now_rfc3339()}
            for t, r, m in (("NamesAccepted", "NoConflicts", "no conflicts found"),
                            ("Established", "InitialNamesAccepted", "the initial names have been accepted"))
        ]  # fmt: skip
        crd["status"] = {"conditions": conditions, "acceptedNames": names,
                         "storedVersions": [v["name"] for v in spec.get("versions", []) if v.get("storage")]}  # fmt: skip

    def _unregister_crd(self, crd: Obj) -> None:
        spec = crd.get("spec", {})
        plural = spec.get("names", {}).get("plural")
        for key in [k for k in self._store if (k[0], k[1]) == (spec.get("group"), plural)]:
            self._remove(self._type_of(key[0], key[1]), key, orphan=True)
        for version in spec.get("versions", []):
            self._custom.pop((spec["group"], version["name"], plural), None)
            res = kmock.resource(spec["group"], version["name"], plural)
            if res in self.resources:
                del self.resources[res]

    # ---- watching ---------------------------------------------------------------------------------
    async def _watch(
        self,
        raw: aiohttp.web.BaseRequest,
        rtype: ResourceType,
        namespace: str | None,
        name: str | None,
        accept: str,
    ) -> aiohttp.web.StreamResponse:
        params = dict(raw.query)
        if name:  # GET .../plural/NAME?watch=1 is the old form of a name field selector
            params["fieldSelector"] = ",".join(
                filter(None, [params.get("fieldSelector"), f"metadata.name={name}"])
            )
        labels = selectors.label_selector(params.get("labelSelector"))
        fields = selectors.field_selector(params.get("fieldSelector"))
        timeout = float(params["timeoutSeconds"]) if params.get("timeoutSeconds") else None
        loop, wakeup = asyncio.get_running_loop(), asyncio.Event()
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        await response.prepare(raw)
        with self._mutex:
            self._watchers.add((loop, wakeup))
            asked = params.get("resourceVersion") or "0"
            if asked == "0":
                since = self._rv
                initial = [("ADDED", obj) for obj in self._matching(rtype, namespace, params)]
            else:
                since, initial = int(asked), []
                if since < self._log_floor:
                    gone = ApiError(410, "Expired", f"too old resource version: {since} ({self._log_floor})")
                    initial = [("ERROR", gone.status())]
        as_table = "as=Table" in accept

        def frame(etype: str, obj: Obj) -> bytes:
            if as_table and etype != "ERROR":
                obj = tables.render_table(
                    rtype.plural, [obj], rtype.printer_columns, obj["metadata"]["resourceVersion"]
                )
            return json.dumps({"type": etype, "object": obj}).encode() + b"\n"

        deadline = None if timeout is None else loop.time() + timeout
        try:
            for etype, obj in initial:
                await response.write(frame(etype, obj))
            while not self.closing and not (initial and initial[0][0] == "ERROR"):
                wakeup.clear()
                with self._mutex:
                    start = bisect.bisect_right(self._log_rvs, since)
                    events = [
                        e for e in self._log[start:] if (e.group, e.plural) == (rtype.group, rtype.plural)
                    ]
                    since = self._rv
                for event in events:
                    obj = self._out(rtype, event.obj)
                    if namespace in (None, obj["metadata"].get("namespace")) and labels(obj) and fields(obj):
                        await response.write(frame(event.type, obj))
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(wakeup.wait(), timeout=remaining)
                except TimeoutError:
                    break
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            with self._mutex:
                self._watchers.discard((loop, wakeup))
        return response

    def stop_watches(self) -> None:
        """End every watch stream (clients reconnect; used at shutdown so the server can close)."""
        self.closing = True
        with self._mutex:
            for loop, event in list(self._watchers):
                with contextlib.suppress(RuntimeError):  # that loop is closed
                    loop.call_soon_threadsafe(event.set)

    # ---- conveniences for tests (any thread) ------------------------------------------------------
    def _resolve(self, resource: str) -> ResourceType:
        """`remoteollamas`, `rol`, `deployments.apps`, `RemoteOllama` or `v1/secrets` -> its type."""
        if "/" in resource:
            ref = kmock.resource(resource)
            t = self.find_type(ref.group or "", ref.version or "", ref.plural or "")
            if t is not None:
                return t
        name, _, group = resource.partition(".")
        for t in self.types():
            names = {t.plural, t.kind.lower(), *(s.lower() for s in t.info.shortnames)}
            if name.lower() in names and (not group or group == t.group):
                return t
        raise LookupError(f"no such resource: {resource}")

    def read(self, resource: str, name: str, namespace: str | None = None) -> Obj | None:
        """A copy of the stored object, or None."""
        rtype = self._resolve(resource)
        try:
            return self._get_object(rtype, namespace if rtype.info.namespaced else None, name)
        except ApiError:
            return None

    def read_all(
        self, resource: str, namespace: str | None = None, label_selector: str | None = None
    ) -> list[Obj]:
        rtype = self._resolve(resource)
        with self._mutex:
            return self._matching(
                rtype, namespace, {"labelSelector": label_selector} if label_selector else {}
            )

    def create_object(self, resource: str, obj: Obj) -> Obj:
        """Create as a client would (all admission rules apply); raises ApiError."""
        rtype = self._resolve(resource)
        return self._create(rtype, obj.get("metadata", {}).get("namespace"), obj, {})[0]

    def patch_object(
        self, resource: str, name: str, patch: Obj, namespace: str | None = None, *, status: bool = False
    ) -> Obj:
        rtype = self._resolve(resource)
        ns = namespace if rtype.info.namespaced else None
        return self._patch(
            rtype, ns, name, patch, "status" if status else None, "application/merge-patch+json", {}
        )[0]

    def delete_object(self, resource: str, name: str, namespace: str | None = None) -> Obj:
        rtype = self._resolve(resource)
        return self._delete(rtype, namespace if rtype.info.namespaced else None, name, {}, dry=False)

    def apply_crd(self, crd: Obj) -> Obj:
        """Register a CRD (create or replace), as `kubectl apply` of it would."""
        rtype = self._resolve("customresourcedefinitions")
        name = crd["metadata"]["name"]
        with self._mutex:
            if ("apiextensions.k8s.io", "customresourcedefinitions", None, name) in self._store:
                return self._patch(rtype, None, name, crd, None, "application/merge-patch+json", {})[0]
            return self._create(rtype, None, crd, {})[0]

    def ensure_namespace(self, name: str) -> Obj:
        existing = self.read("namespaces", name)
        return existing or self.create_object("namespaces", {"metadata": {"name": name}})

    def on_change(self) -> Callable[[], int]:
        """The current resourceVersion counter, for tests that wait for 'anything happened'."""
        return lambda: self._rv
