"""nginx's error pages (as Debian's nginx sends them: tests/test_real_vm.py) as Ollama errors."""

from __future__ import annotations

import json

import pytest

from remote_ollama.proxy.nginx_pages import is_nginx_page, translate


def page(title: str) -> bytes:
    return (
        f"<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<hr><center>nginx</center>\r\n".encode()
    )


@pytest.mark.parametrize(
    ("status", "title", "to", "cause"),
    [
        (400, "400 No required SSL certificate was sent", 502, "client certificate refused"),
        (400, "400 The SSL certificate error", 502, "client certificate refused"),
        (
            400,
            "400 The plain HTTP request was sent to HTTPS port",
            502,
            "plain HTTP sent to the VM's TLS port",
        ),
        (502, "502 Bad Gateway", 502, "Ollama behind nginx is down"),
        (504, "504 Gateway Time-out", 502, "Ollama behind nginx is down"),
        (413, "413 Request Entity Too Large", 413, "nginx 413 Request Entity Too Large"),
    ],
)
def test_each_page_names_its_cause(status: int, title: str, to: int, cause: str) -> None:
    refusal = translate(status, page(title))
    assert (refusal.status, refusal.cause) == (to, cause)
    assert title in refusal.message and "<" not in refusal.message
    assert json.loads(refusal.body()) == {"error": refusal.message}


def test_only_html_error_pages_are_nginx_s() -> None:
    assert is_nginx_page(400, "text/html")
    assert is_nginx_page(502, "text/html; charset=utf-8")
    assert not is_nginx_page(200, "text/html")
    assert not is_nginx_page(404, "text/plain")  # Ollama's own "404 page not found"
    assert not is_nginx_page(401, "application/octet-stream")  # the VM key check's JSON
    assert translate(400, b"\x00" * 100_000).message  # no title, any bytes: still an answer
