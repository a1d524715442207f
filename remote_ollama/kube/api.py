"""A small asyncio Kubernetes API client: get, create, merge-patch, delete, list and watch.

The official `kubernetes` package only loads the configuration (kubeconfig or in-cluster);
requests go through one aiohttp session, so neither the operator nor the proxy blocks its loop.
"""

from __future__ import annotations

import json
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from yarl import URL

from remote_ollama import __version__

log = logging.getLogger(__name__)

JSON = dict[str, Any]


class KubeError(Exception):
    def __init__(self, status: int, reason: str, message: str):
        super().__init__(f"{status} {reason}: {message}")
        self.status = status
        self.reason = reason
        self.message = message


# A ServiceAccount token file is re-read this often, as client-go does: the kubelet rotates the
# projected token (by default hourly, valid 1 h + grace), so one read at start expires.
TOKEN_REREAD = 60.0


class NoCluster(Exception):
    """Neither a pod's service account nor a usable kubeconfig: said in one line, no traceback."""


def _load_configuration() -> tuple[Any, str | None]:
    """The client configuration, and the token file to re-read (in a pod: the projected token)."""
    from kubernetes import client, config
    from kubernetes.config import incluster_config

    cfg = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=cfg)
    except config.ConfigException:
        # explicit: the client reads $KUBECONFIG only once, at import
        where = os.environ.get("KUBECONFIG") or None
        try:
            config.load_kube_config(config_file=where, client_configuration=cfg)
        except (config.ConfigException, OSError) as exc:
            raise NoCluster(
                "no Kubernetes cluster: the cluster is found through the pod's service account when "
                f"run in a pod, else the kubeconfig ({where or '~/.kube/config'}; set KUBECONFIG to "
                f"choose another), and that is not usable: {str(exc).strip() or type(exc).__name__}"
            ) from None
        return cfg, None
    return cfg, str(incluster_config.SERVICE_TOKEN_FILENAME)


class TokenFile:
    """`Authorization: Bearer <the file's content>`, re-read when the last read is TOKEN_REREAD old;
    a failed read keeps the token read last (client-go does the same)."""

    def __init__(self, path: str, token: str = "", clock: Callable[[], float] = time.monotonic):
        self.path, self.clock = path, clock
        self.token, self.read_at = token, -float("inf") if not token else clock()

    def header(self) -> dict[str, str]:
        if self.clock() - self.read_at >= TOKEN_REREAD:
            try:
                self.token = Path(self.path).read_text().strip() or self.token
            except OSError as exc:
                log.warning(
                    "re-reading the ServiceAccount token %s: %s (keeping the last one)", self.path, exc
                )
            self.read_at = self.clock()
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def segment(value: str) -> str:
    """One URL path segment, escaped completely: a name can never become another path.

    `/` is escaped too, and the dot segments `.` and `..` (which clients and servers collapse) are
    refused outright, so `../../team-b/secrets/x` stays a (non-existent) name in this namespace.
    """
    if value in ("", ".", ".."):
        raise ValueError(f"not a name: {value!r}")
    return quote(value, safe="")


def path_for(
    api_version: str,
    plural: str,
    namespace: str | None = None,
    name: str | None = None,
    subresource: str | None = None,
) -> str:
    base = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    parts = [base]
    if namespace:
        parts.append(f"namespaces/{segment(namespace)}")
    parts.append(plural)
    if name:
        parts.append(segment(name))
    if subresource:
        parts.append(segment(subresource))
    return "/".join(parts)


class KubeAPI:
    """One session to the API server for the life of the process."""

    def __init__(
        self,
        host: str,
        headers: Mapping[str, str],
        ssl_context: ssl.SSLContext | bool,
        token: TokenFile | None = None,
    ):
        self.host = host.rstrip("/")
        self._headers = {"User-Agent": f"remote-ollama/{__version__}", **headers}
        self._ssl = ssl_context
        self._token = token  # when set, its Authorization replaces the one in `headers`
        self._session: aiohttp.ClientSession | None = None

    def _auth(self) -> dict[str, str]:
        return self._token.header() if self._token is not None else {}

    @classmethod
    def from_environment(cls, component: str = "operator") -> KubeAPI:
        """`component` names the caller in the User-Agent (audit logs tell operator from proxy)."""
        cfg, token_file = _load_configuration()
        headers: dict[str, str] = {"User-Agent": f"remote-ollama-{component}/{__version__}"}
        token = (cfg.api_key or {}).get("authorization") or (cfg.api_key or {}).get("BearerToken")
        if token:
            prefix = (cfg.api_key_prefix or {}).get("authorization", "")
            headers["Authorization"] = (
                f"{prefix} {token}".strip() if not token.startswith("Bearer") else token
            )
        refresh = (
            TokenFile(token_file, headers.pop("Authorization", "").removeprefix("Bearer "))
            if token_file
            else None
        )
        if cfg.host.startswith("https"):
            ctx = (
                ssl.create_default_context(cafile=cfg.ssl_ca_cert)
                if cfg.ssl_ca_cert
                else ssl.create_default_context()
            )
            if cfg.cert_file:
                ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
            if not cfg.verify_ssl:
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
            return cls(cfg.host, headers, ctx, refresh)
        return cls(cfg.host, headers, False, refresh)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10, sock_read=None),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        query: Mapping[str, str] | None = None,
        timeout: float = 30,
    ) -> JSON:
        # encoded=True: the path is sent exactly as built (no re-quoting, no dot-segment collapsing)
        url = URL(self.host + path + (f"?{urlencode(query)}" if query else ""), encoded=True)
        data = json.dumps(body) if body is not None else None
        headers = (
            {"Content-Type": content_type, "Accept": "application/json"}
            if data
            else {"Accept": "application/json"}
        ) | self._auth()
        async with self._http().request(
            method,
            url,
            data=data,
            headers=headers,
            ssl=self._ssl,
            timeout=aiohttp.ClientTimeout(total=timeout),
        ) as resp:
            text = await resp.text()
            try:
                payload = json.loads(text) if text else {}
            except ValueError:
                payload = {"message": text}
            if resp.status >= 400:
                raise KubeError(
                    resp.status, str(payload.get("reason", resp.reason)), str(payload.get("message", text))
                )
            return payload if isinstance(payload, dict) else {"items": payload}

    async def get(self, path: str) -> JSON | None:
        try:
            return await self.request("GET", path)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    async def create(self, path: str, body: JSON) -> JSON:
        return await self.request("POST", path, body)

    async def merge_patch(self, path: str, patch: JSON) -> JSON:
        return await self.request("PATCH", path, patch, content_type="application/merge-patch+json")

    async def delete(self, path: str) -> bool:
        try:
            await self.request("DELETE", path)
            return True
        except KubeError as exc:
            if exc.status == 404:
                return False
            raise

    async def apply(self, collection: str, body: JSON) -> JSON:
        """Create, or merge-patch an existing object to the given shape (repairs drift of the fields we own)."""
        name = body["metadata"]["name"]
        try:
            return await self.create(collection, body)
        except KubeError as exc:
            if exc.status != 409:
                raise
        return await self.merge_patch(f"{collection}/{segment(name)}", body)

    async def watch(
        self, path: str, *, query: Mapping[str, str] | None = None, timeout: float = 300
    ) -> AsyncIterator[JSON]:
        """Yield watch events ({type, object}) until the server closes the stream or `timeout` passes."""
        q = dict(query or {})
        q.update({"watch": "true", "timeoutSeconds": str(int(timeout))})
        url = URL(f"{self.host}{path}?{urlencode(q)}", encoded=True)
        async with self._http().get(
            url,
            headers=self._auth(),
            ssl=self._ssl,
            timeout=aiohttp.ClientTimeout(total=timeout + 5, sock_connect=10),
        ) as resp:
            if resp.status >= 400:
                raise KubeError(resp.status, resp.reason or "", await resp.text())
            async for line in resp.content:
                if line.strip():
                    yield json.loads(line)
