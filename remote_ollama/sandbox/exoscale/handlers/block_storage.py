"""The block-storage operations (sandbox/exoscale/volumes.py holds the volumes and snapshots)."""

from __future__ import annotations

from typing import Any

from remote_ollama.sandbox.exoscale.handlers.registry import ApiContext, Query, handles, json_object, ref_id
from remote_ollama.sandbox.exoscale.objects import ApiError
from remote_ollama.sandbox.exoscale.volumes import of


def _labels(data: dict[str, Any]) -> dict[str, str]:
    labels = data.get("labels") or {}
    if not isinstance(labels, dict) or not all(isinstance(v, str) for v in labels.values()):
        raise ApiError(400, "labels: a map of strings")
    return {str(k): v for k, v in labels.items()}


def _name(data: dict[str, Any], required: bool) -> str:
    name = data.get("name", "" if not required else None)
    if not isinstance(name, str) or len(name) > 255 or (required and not name):
        raise ApiError(400, "name: 1 to 255 characters")
    return name


@handles("create-block-storage-volume")
def create_volume(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    data = json_object(body)
    size = data.get("size")
    if "block-storage-snapshot" in data:
        raise ApiError(400, "block-storage-snapshot: seeding from a snapshot is not simulated")
    if isinstance(size, bool) or not isinstance(size, int):
        raise ApiError(400, "size: required, an integer (GiB)")
    return of(ctx.state).create(_name(data, True), size, _labels(data))


@handles("list-block-storage-volumes")
def list_volumes(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    wanted = query.get("instance-id", [None])[0]
    return {"block-storage-volumes": [v.to_api() for v in of(ctx.state).listing(wanted)]}


@handles("get-block-storage-volume")
def get_volume(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return of(ctx.state).get(path["id"]).to_api()


@handles("update-block-storage-volume")
def update_volume(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    store, data = of(ctx.state), json_object(body)
    volume = store.get(path["id"])
    if data.get("name") is not None:
        volume.name = _name(data, True)
    if data.get("labels") is not None:
        volume.labels = _labels(data)
    return store.later(volume.id, "block-storage", 0.0, lambda: None)


@handles("attach-block-storage-volume-to-instance")
def attach_volume(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return of(ctx.state).attach(path["id"], ref_id(json_object(body), "instance"))


@handles("detach-block-storage-volume")
def detach_volume(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return of(ctx.state).detach(path["id"])


@handles("resize-block-storage-volume")
def resize_volume(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    size = json_object(body).get("size")
    if isinstance(size, bool) or not isinstance(size, int):
        raise ApiError(400, "size: required, an integer (GiB)")
    return of(ctx.state).resize(path["id"], size)


@handles("delete-block-storage-volume")
def delete_volume(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return of(ctx.state).delete(path["id"])


@handles("create-block-storage-snapshot")
def create_snapshot(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    data = json_object(body)
    return of(ctx.state).snapshot(path["id"], _name(data, False) or path["id"], _labels(data))


@handles("list-block-storage-snapshots")
def list_snapshots(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return {"block-storage-snapshots": [s.to_api() for s in of(ctx.state).snapshots.values()]}


@handles("get-block-storage-snapshot")
def get_snapshot(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return of(ctx.state).get_snapshot(path["id"]).to_api()


@handles("delete-block-storage-snapshot")
def delete_snapshot(ctx: ApiContext, path: dict[str, str], query: Query, body: Any) -> dict[str, Any]:
    return of(ctx.state).delete_snapshot(path["id"])
