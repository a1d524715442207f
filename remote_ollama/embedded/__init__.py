"""Embed remote-ollama in a Python program: a GPU VM on Exoscale that exists only while it is used.

    from remote_ollama import RemoteOllama

    with RemoteOllama.from_env() as remote:          # EXOSCALE_API_KEY, EXOSCALE_API_SECRET, ...
        url = remote.ensure_instance(timeout=900)     # creates or starts the VM, waits until Ready
        ollama.Client(host=url).generate(model="granite3.1-dense:8b", prompt="hi")
        remote.start_idle_monitor()                   # stop the VM after idle_timeout without use
    # leaving the block applies on_exit ("stop" by default): keep, stop or destroy the VM

This is standalone mode's engine (`LocalController`, `Reconciler`, the proxy) in your process, not
a second implementation. The VM only accepts mutual TLS with its own CA (plus `X-Ollama-Key` when
EXOSCALE_OLLAMA_KEY is set), so the object serves a plain-HTTP Ollama endpoint on 127.0.0.1 (an
ephemeral port) that adds them:
`url` works with any Ollama client and wakes a stopped VM on the first request. `remote_url` (with
`vm_ssl_context()`, `vm_api_key` and `VM_TLS_SERVER_NAME`) is for talking to the VM directly.

`AsyncRemoteOllama` is the asyncio API (`aio.py`); `RemoteOllama` runs one in a background event loop
thread (`sync.py`); `config.py` turns keywords and environment variables into the standalone config.
"""

from __future__ import annotations

from remote_ollama.local.settings import ConfigError, default_state_file
from remote_ollama.spec.names import VM_TLS_SERVER_NAME

from .aio import AsyncRemoteOllama, InstanceNotReady
from .config import config_from
from .sync import RemoteOllama

__all__ = [
    "VM_TLS_SERVER_NAME",
    "AsyncRemoteOllama",
    "ConfigError",
    "InstanceNotReady",
    "RemoteOllama",
    "config_from",
    "default_state_file",
]
