"""The VM's service configuration the user-data writes: nginx's mutual-TLS site (and the optional
key check) and the systemd units of the Ollama container and the model pulls."""

from __future__ import annotations

from remote_ollama.spec.names import (
    PROXY_PORT,
    SETUP_STATUS_PATH,
    VM_PORT,
)

from .paths import (
    API_KEY_CHECK_PATH,
    CA_PATH,
    MODELS_PATH,
    PULL_PATH,
    SETUP_DOC_PATH,
    TLS_CERT_PATH,
    TLS_KEY_PATH,
)

NGINX_SITE = f"""\
# remote-ollama: mutual TLS in front of Ollama (unbuffered, so streams flow token by token)
server {{
    listen {VM_PORT} ssl;
    server_name _;
    server_tokens off;

    ssl_certificate        {TLS_CERT_PATH};
    ssl_certificate_key    {TLS_KEY_PATH};
    ssl_protocols          TLSv1.3;
    ssl_client_certificate {CA_PATH};
    ssl_verify_client      on;
    ssl_verify_depth       1;

    client_max_body_size 0;
    proxy_buffering off;
    proxy_request_buffering off;
    proxy_cache off;
    gzip off;
    proxy_connect_timeout 30s;
    proxy_read_timeout 3600s;
    proxy_send_timeout 3600s;
    send_timeout 3600s;

    location = {SETUP_STATUS_PATH} {{
        default_type application/json;
        alias {SETUP_DOC_PATH};
    }}

    location / {{
{{key_check}}        proxy_pass http://127.0.0.1:{PROXY_PORT};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header Host 127.0.0.1:{PROXY_PORT};
        proxy_set_header X-Ollama-Key "";
        proxy_set_header Authorization "";
    }}
}}
"""
# Only with EXOSCALE_OLLAMA_KEY: nginx's `!=` compares exactly (a map would ignore case).
KEY_CHECK_INCLUDE = f"        include {API_KEY_CHECK_PATH};\n"
KEY_CHECK = """if ($http_x_ollama_key != "{key}") {{ return 401 '{{"error":"missing or wrong X-Ollama-Key"}}\\n'; }}\n"""

OLLAMA_UNIT = """\
[Unit]
Description=remote-ollama: Ollama container on 127.0.0.1:{port}
After=docker.service
Requires=docker.service

[Service]
# containers must not reach the metadata server (it serves the user-data, keys included)
ExecStartPre=/bin/sh -c 'iptables -C DOCKER-USER -d {metadata}/32 -j REJECT 2>/dev/null \
|| iptables -I DOCKER-USER -d {metadata}/32 -j REJECT'
ExecStartPre=-/usr/bin/docker rm -f ollama
ExecStart=/usr/bin/docker run --rm --name ollama --gpus all -p 127.0.0.1:{port}:{port} \
-v {model_dir}:/root/.ollama -e OLLAMA_KEEP_ALIVE=-1 {env}{image}
ExecStop=/usr/bin/docker stop ollama
Restart=always
RestartSec=5

[Install]
WantedBy=multi-user.target
"""

MODELS_UNIT = f"""\
[Unit]
Description=remote-ollama: pull the models listed in {MODELS_PATH}
After=remote-ollama-ollama.service
Wants=remote-ollama-ollama.service

[Service]
Type=oneshot
ExecStart={PULL_PATH}
Restart=on-failure
RestartSec=15

[Install]
WantedBy=multi-user.target
"""
