"""The proxy's per-request metrics, kept as plain numbers and rendered as Prometheus samples when
scraped: the same names, labels and values prometheus_client's own metrics gave."""

from __future__ import annotations

from remote_ollama.proxy.metrics import ProxyMetrics


def samples(metrics: ProxyMetrics) -> dict[str, float]:
    text = metrics.render()[0].decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


def test_tokens_are_read_from_the_final_line() -> None:
    m = ProxyMetrics()
    m.count_tokens(b'{"response":"eval_count"}\n{"done":true,"prompt_eval_count":26, "eval_count": 290}\n')
    m.count_tokens(b'{"done":true,"eval_count":7,"prompt_eval_count":3,"eval_duration":1}')
    m.count_tokens(b'{"response":"no counts here"}\n')
    s = samples(m)
    assert s['remote_ollama_proxy_tokens_total{kind="prompt"}'] == 29
    assert s['remote_ollama_proxy_tokens_total{kind="eval"}'] == 297


def test_answers_latency_and_bytes_render_as_before() -> None:
    m = ProxyMetrics()
    for code in ("200", "200", "502"):
        m.answered("/api/chat", code)
    for seconds in (0.0004, 0.001, 400.0):
        m.upstream_took("/api/chat", seconds)
    m.bytes_in.inc(10)
    m.bytes_out.inc(2048)
    s = samples(m)
    assert s['remote_ollama_proxy_requests_total{code="200",route="/api/chat"}'] == 2
    assert s['remote_ollama_proxy_requests_total{code="502",route="/api/chat"}'] == 1
    bucket = 'remote_ollama_proxy_upstream_latency_seconds_bucket{le="%s",route="/api/chat"}'
    assert [s[bucket % le] for le in ("0.0005", "0.001", "0.0025", "300.0", "+Inf")] == [1, 2, 2, 2, 3]
    assert s['remote_ollama_proxy_upstream_latency_seconds_count{route="/api/chat"}'] == 3
    assert s['remote_ollama_proxy_upstream_latency_seconds_sum{route="/api/chat"}'] == 400.0014
    assert s['remote_ollama_proxy_bytes_total{direction="in"}'] == 10
    assert s['remote_ollama_proxy_bytes_total{direction="out"}'] == 2048
