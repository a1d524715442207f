"""nginx's own error pages, as the VM's front answers them, turned into Ollama-shaped errors.

Ollama never answers text/html, so an HTML error page on the VM's port is nginx speaking: a TLS or
client-certificate refusal (nginx sends 495/496 as 400 on the wire, "No required SSL certificate was
sent", "The SSL certificate error"), or 502/504 while the Ollama behind it is down. Clients expect
`{"error": "..."}`; they get one naming the cause, and the log says which it was.
"""

from __future__ import annotations

import html
import json
import re
from dataclasses import dataclass

PAGE_CAP = 16 * 1024  # nginx's pages are a few hundred bytes
_TITLE = re.compile(rb"<title>\s*(.*?)\s*</title>", re.IGNORECASE | re.DOTALL)
_CERTIFICATE = ("ssl certificate", "certificate")


@dataclass(frozen=True)
class NginxRefusal:
    status: int  # what the proxy's client gets
    message: str  # the `error` of the JSON body
    cause: str  # for the log line

    def body(self) -> bytes:
        return json.dumps({"error": self.message}).encode()


def is_nginx_page(status: int, content_type: str) -> bool:
    return status >= 400 and content_type.split(";")[0].strip().lower() == "text/html"


def translate(status: int, body: bytes) -> NginxRefusal:
    """The Ollama-shaped error for nginx's page `body` answered with `status`."""
    found = _TITLE.search(body[:PAGE_CAP])
    title = html.unescape(found[1].decode(errors="replace")) if found else f"{status}"
    title = " ".join(title.split())[:200]
    said = f"the VM's nginx answered {title!r}"
    lowered = title.lower()
    if any(word in lowered for word in _CERTIFICATE):
        return NginxRefusal(
            502,
            f"remote instance refused the proxy's client certificate ({said}): the VM trusts another "
            "CA than the one that issued this proxy's certificate",
            "client certificate refused",
        )
    if "plain http" in lowered:
        return NginxRefusal(
            502, f"remote instance expects TLS ({said})", "plain HTTP sent to the VM's TLS port"
        )
    if status in (502, 503, 504):
        return NginxRefusal(
            502, f"remote instance's Ollama is not answering ({said})", "Ollama behind nginx is down"
        )
    return NginxRefusal(status, f"remote instance refused the request ({said})", f"nginx {title}")
