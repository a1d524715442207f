"""One function per Exoscale API v2 operation the simulator implements, keyed by operationId.

Each takes the path parameters, the query and the JSON body and returns the JSON answer, or raises
ApiError with the status and `message` the real API would give. Shapes follow the SDK's bundled
openapi.json: hyphenated keys, lists wrapped under their plural name, writes answering an operation.
"""

from remote_ollama.sandbox.exoscale.handlers import (
    block_storage,
    by_id,
    catalogue,
    instances,
    security_groups,
)
from remote_ollama.sandbox.exoscale.handlers.registry import HANDLERS, ApiContext

__all__ = ["HANDLERS", "ApiContext", "block_storage", "by_id", "catalogue", "instances", "security_groups"]
