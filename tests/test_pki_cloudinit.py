"""The VM's credentials and its cloud-config: what the proxy trusts, and what the VM is told to become."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import ssl
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from remote_ollama.spec.names import VM_TLS_SERVER_NAME
from remote_ollama.vm import paths
from remote_ollama.vm.cloudinit import (
    MAX_USER_DATA_B64,
    OLLAMA_IMAGE,
    UserDataError,
    encode_user_data,
    render_user_data,
)
from remote_ollama.vm.pki import (
    VMCredentials,
    client_ssl_context,
    generate_vm_credentials,
    make_vm_identity,
    server_ssl_context,
    vm_certificate_problem,
)

SCHEMA_JSON = Path("/usr/lib/python3/dist-packages/cloudinit/config/schemas/schema-cloud-config-v1.json")


@pytest.fixture(scope="module")
def creds() -> VMCredentials:
    return generate_vm_credentials()


def _files(user_data: str) -> dict[str, dict[str, Any]]:
    doc = yaml.safe_load(user_data)
    return {f["path"]: f for f in doc["write_files"]}


# --- PKI ----------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def vm_identity() -> tuple[str, str]:
    """(certificate, key) as the simulated VM makes them at first boot."""
    return make_vm_identity()


def _pinned(creds: VMCredentials, vm_identity: tuple[str, str]) -> VMCredentials:
    return creds.pinned_to(vm_identity[0])


def test_the_vms_own_certificate_names_the_fixed_vm_name_and_is_no_ca(vm_identity: tuple[str, str]) -> None:
    cert = x509.load_pem_x509_certificate(vm_identity[0].encode())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [VM_TLS_SERVER_NAME]
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    assert vm_certificate_problem(cert.public_bytes(serialization.Encoding.DER)) is None


@pytest.mark.skipif(shutil.which("openssl") is None, reason="no openssl")
def test_the_key_script_makes_a_certificate_the_operator_pins(creds: VMCredentials, tmp_path: Path) -> None:
    """The user-data's key script, run as on the VM (paths moved under tmp), makes a key and a
    certificate that pass the first-contact check; run again it keeps them (first boot only)."""
    script = _files(render_user_data(creds, ["m:1"]))[paths.TLS_KEY_SCRIPT_PATH]["content"]
    conf = tmp_path / "conf"
    conf.mkdir()
    path = tmp_path / "tls-key"
    path.write_text(script.replace(paths.CONF_DIR, str(conf)))
    made = []
    for _ in range(2):
        out = subprocess.run(["sh", str(path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        made.append((conf / "tls.crt").read_bytes())
    first = made[0]
    assert made[1] == first
    assert (conf / "tls.key").stat().st_mode & 0o777 == 0o600
    cert = x509.load_pem_x509_certificate(first)
    assert vm_certificate_problem(cert.public_bytes(serialization.Encoding.DER)) is None


def test_first_contact_refuses_what_is_not_a_vm_certificate(creds: VMCredentials) -> None:
    ca = x509.load_pem_x509_certificate(creds.ca_pem.encode()).public_bytes(serialization.Encoding.DER)
    client = x509.load_pem_x509_certificate(creds.client_cert_pem.encode())
    assert vm_certificate_problem(ca) is not None  # a CA (and no VM name)
    assert "does not name" in str(vm_certificate_problem(client.public_bytes(serialization.Encoding.DER)))
    assert vm_certificate_problem(b"garbage") is not None and vm_certificate_problem(None) is not None


def test_client_certificate_is_for_client_auth_and_signed_by_the_resource_ca(creds: VMCredentials) -> None:
    ca = x509.load_pem_x509_certificate(creds.ca_pem.encode())
    cert = x509.load_pem_x509_certificate(creds.client_cert_pem.encode())
    cert.verify_directly_issued_by(ca)
    usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(usage) == [ExtendedKeyUsageOID.CLIENT_AUTH]


def test_no_api_key_unless_given() -> None:
    """Mutual TLS needs no bearer secret; EXOSCALE_OLLAMA_KEY is kept when a user sets it."""
    assert generate_vm_credentials().api_key is None
    assert generate_vm_credentials(api_key="chosen-by-the-user-0123").api_key == "chosen-by-the-user-0123"
    first, second = generate_vm_credentials(), generate_vm_credentials()
    assert first.ca_pem != second.ca_pem and first.client_key_pem != second.client_key_pem


def test_secret_data_round_trip_and_repr_hides_keys(
    creds: VMCredentials, vm_identity: tuple[str, str]
) -> None:
    data = creds.to_secret_data()
    assert set(data) == {"ca.crt", "client.crt", "client.key"}  # no server key: the VM made its own
    assert VMCredentials.from_secret_data(data) == creds and not creds.pinned
    pinned = _pinned(creds, vm_identity)
    assert set(pinned.to_secret_data()) == {"ca.crt", "tls.crt", "client.crt", "client.key"}
    assert VMCredentials.from_secret_data(pinned.to_secret_data()) == pinned and pinned.pinned
    assert pinned.proxy_data() == pinned.to_secret_data()  # the proxy trusts the pinned certificate
    assert "PRIVATE KEY" not in repr(creds)
    with pytest.raises(KeyError, match=r"client\.key"):
        VMCredentials.from_secret_data({k: v for k, v in data.items() if k != "client.key"})
    keyed = generate_vm_credentials(api_key="chosen-by-the-user-0123")
    assert VMCredentials.from_secret_data(keyed.to_secret_data()) == keyed
    # a Secret of a VM made before enrolment (its key was in user-data) still reads; the proxy's
    # share never holds that key
    cert, key = vm_identity
    before = {**data, "tls.crt": cert, "tls.key": key}
    legacy = VMCredentials.from_secret_data(before)
    assert legacy.key_pem == key and legacy.pinned and "tls.key" not in legacy.proxy_data()
    # and one of a VM made before mutual TLS (API key, no client certificate)
    old = {"ca.crt": creds.ca_pem, "tls.crt": cert, "tls.key": key, "api-key": "k" * 43}
    legacy = VMCredentials.from_secret_data(old)
    assert legacy.api_key == "k" * 43 and legacy.client_cert_pem == ""


def test_client_context_trusts_only_the_pinned_certificate(
    creds: VMCredentials, vm_identity: tuple[str, str]
) -> None:
    with pytest.raises(ValueError, match="not pinned"):
        creds.client_context()
    ctx = _pinned(creds, vm_identity).client_context()
    assert ctx.check_hostname is True
    assert ctx.verify_mode == ssl.CERT_REQUIRED
    assert ctx.minimum_version == ssl.TLSVersion.TLSv1_3
    assert ctx.cert_store_stats()["x509"] == 1  # the pinned certificate, no system roots


async def _handshake(
    server: tuple[str, str],
    client_ca: str,
    trusted: str,
    server_hostname: str,
    client: VMCredentials,
) -> bytes:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hello")
        await writer.drain()
        writer.close()

    server_ctx = server_ssl_context(server[0], server[1], client_ca)
    listening = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
    port = listening.sockets[0].getsockname()[1]
    client_ctx = client_ssl_context(trusted, client.client_cert_pem, client.client_key_pem)
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client_ctx, server_hostname=server_hostname),
            5,
        )
        data = await reader.read()
        writer.close()
        return data
    finally:
        listening.close()
        await listening.wait_closed()


async def test_proxy_reaches_vm_by_ip_verifying_the_fixed_name(
    creds: VMCredentials, vm_identity: tuple[str, str]
) -> None:
    got = await _handshake(vm_identity, creds.ca_pem, vm_identity[0], VM_TLS_SERVER_NAME, creds)
    assert got == b"hello"


async def test_the_vm_refuses_a_client_without_a_certificate_of_its_ca(
    creds: VMCredentials, vm_identity: tuple[str, str]
) -> None:
    other = generate_vm_credentials()
    for client in (other, VMCredentials(creds.ca_pem)):  # wrong CA; none
        try:  # TLS 1.3: the server's refusal may arrive as an alert after the client's handshake
            data = await _handshake(vm_identity, creds.ca_pem, vm_identity[0], VM_TLS_SERVER_NAME, client)
        except (ssl.SSLError, ConnectionError, asyncio.IncompleteReadError):
            data = b""
        assert data != b"hello", "the VM answered a client it cannot verify"


async def test_a_vm_showing_another_certificate_than_the_pinned_one_is_refused(
    creds: VMCredentials, vm_identity: tuple[str, str]
) -> None:
    """A spoof with a certificate for the same name (anyone can make one) is not the pinned VM."""
    spoof = make_vm_identity()
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(spoof, creds.ca_pem, vm_identity[0], VM_TLS_SERVER_NAME, creds)
    with pytest.raises(ssl.SSLCertVerificationError):
        await _handshake(vm_identity, creds.ca_pem, vm_identity[0], "evil.example.com", creds)


# --- cloud-config -------------------------------------------------------------------------------------


def _known_top_level_keys(schema: dict[str, Any]) -> set[str]:
    keys: set[str] = set(schema.get("properties", {}))
    for part in schema.get("allOf", []):
        ref = part.get("$ref", "")
        if ref.startswith("#/$defs/"):
            keys |= set(schema["$defs"][ref.split("/")[-1]].get("properties", {}))
        keys |= set(part.get("properties", {}))
    return keys


def test_user_data_passes_cloud_inits_own_schema(creds: VMCredentials, tmp_path: Path) -> None:
    text = render_user_data(creds, ["granite3.1-dense:8b", "llama3.2:3b"])
    assert text.startswith("#cloud-config\n")
    path = tmp_path / "user-data"
    path.write_text(text)
    cli = shutil.which("cloud-init")
    if cli is None and not SCHEMA_JSON.exists():
        pytest.skip("cloud-init is not installed (CI: apt-get install -y --no-install-recommends cloud-init)")
    if cli is not None:
        out = subprocess.run([cli, "schema", "--config-file", str(path)], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Valid cloud-config" in out.stdout
    if SCHEMA_JSON.exists():
        import jsonschema

        schema = json.loads(SCHEMA_JSON.read_text())
        doc = yaml.safe_load(text)
        jsonschema.Draft4Validator(schema).validate(doc)
        # cloud-init 22.x tolerates unknown top-level keys; a typo there would be silently ignored.
        assert set(doc) <= _known_top_level_keys(schema)


def test_schema_check_catches_a_broken_document(tmp_path: Path) -> None:
    """The schema check above is not vacuous: a wrongly typed key fails it."""
    if not SCHEMA_JSON.exists():
        pytest.skip("cloud-init is not installed (CI: apt-get install -y --no-install-recommends cloud-init)")
    import jsonschema

    schema = json.loads(SCHEMA_JSON.read_text())
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.Draft4Validator(schema).validate({"write_files": [{"path": "/x", "permissions": 600}]})


def test_write_files_carry_the_vm_contract(creds: VMCredentials) -> None:
    text = render_user_data(creds, ["granite3.1-dense:8b", "qwen2.5:0.5b"])
    files = _files(text)
    assert files["/etc/remote-ollama/ca.crt"]["content"] == creds.ca_pem
    assert files["/etc/remote-ollama/models"]["content"].splitlines() == [
        "granite3.1-dense:8b",
        "qwen2.5:0.5b",
    ]
    # only the CA certificate: no bearer secret, nothing of the client's, no private key at all
    assert "/etc/remote-ollama/api-key" not in files
    assert creds.client_key_pem not in text and creds.client_cert_pem not in text
    assert "PRIVATE KEY" not in text
    assert paths.TLS_KEY_PATH not in files and paths.TLS_CERT_PATH not in files


def test_the_vm_makes_its_own_key_before_nginx_starts(creds: VMCredentials) -> None:
    files = _files(render_user_data(creds, ["granite3.1-dense:8b"]))
    setup = files[paths.SETUP_PATH]["content"]
    assert setup.index(paths.TLS_KEY_SCRIPT_PATH) < setup.index("nginx -t")
    script = files[paths.TLS_KEY_SCRIPT_PATH]["content"]
    assert "openssl req -x509" in script and f"-keyout {paths.TLS_KEY_PATH}.new" in script


def test_a_users_ollama_key_is_an_extra_exact_check(creds: VMCredentials) -> None:
    keyed = generate_vm_credentials(api_key="Chosen-By-The-User-0123")
    files = _files(render_user_data(keyed, ["granite3.1-dense:8b"]))
    check = files[paths.API_KEY_CHECK_PATH]
    assert check["permissions"] == "0600"
    # `!=` compares case-sensitively (a map, as before, matched any case)
    assert 'if ($http_x_ollama_key != "Chosen-By-The-User-0123")' in check["content"]
    assert f"include {paths.API_KEY_CHECK_PATH};" in files[paths.NGINX_SITE_PATH]["content"]
    assert "ssl_verify_client      on;" in files[paths.NGINX_SITE_PATH]["content"]


def test_nginx_requires_the_client_certificate_and_streams_unbuffered(creds: VMCredentials) -> None:
    text = render_user_data(creds, ["granite3.1-dense:8b"])
    nginx = _files(text)[paths.NGINX_SITE_PATH]["content"]
    assert "listen 11435 ssl;" in nginx
    assert "ssl_certificate        /etc/remote-ollama/tls.crt;" in nginx
    assert "ssl_certificate_key    /etc/remote-ollama/tls.key;" in nginx
    assert "ssl_client_certificate /etc/remote-ollama/ca.crt;" in nginx
    assert "ssl_verify_client      on;" in nginx
    assert "ssl_protocols          TLSv1.3;" in nginx and "TLSv1.2" not in nginx
    assert "server_tokens off;" in nginx
    assert "proxy_buffering off;" in nginx
    assert "proxy_request_buffering off;" in nginx
    assert "client_max_body_size 0;" in nginx
    assert "proxy_read_timeout 3600s;" in nginx
    assert "x_ollama_key" not in nginx and "include" not in nginx  # no key check without a key
    assert 'proxy_set_header X-Ollama-Key "";' in nginx  # no client header reaches Ollama
    assert 'proxy_set_header Authorization "";' in nginx
    assert "proxy_pass http://127.0.0.1:11434;" in nginx


def test_setup_script_echoes_no_secret_and_containers_cannot_reach_the_metadata_server(
    creds: VMCredentials,
) -> None:
    files = _files(render_user_data(generate_vm_credentials(api_key="chosen-by-the-user-0123"), ["m:1"]))
    setup = files[paths.SETUP_PATH]["content"]
    assert "set -x" not in setup and "set -eux" not in setup and "umask 077" in setup
    assert "chosen-by-the-user-0123" not in setup and "api-key" not in setup
    unit = files[paths.OLLAMA_UNIT_PATH]["content"]
    assert "iptables -I DOCKER-USER -d 169.254.169.254/32 -j REJECT" in unit
    assert unit.index("DOCKER-USER") < unit.index("ExecStart=/usr/bin/docker run")


@pytest.mark.skipif(
    shutil.which("nginx") is None or shutil.which("openssl") is None,
    reason="nginx or openssl is not installed (apt-get install nginx-light openssl)",
)
@pytest.mark.parametrize("api_key", [None, "chosen-by-the-user-0123"])
def test_rendered_nginx_config_passes_nginx_t(tmp_path: Path, api_key: str | None) -> None:
    creds = generate_vm_credentials(api_key=api_key)
    files = _files(render_user_data(creds, ["granite3.1-dense:8b"]))
    root = tmp_path / "root"
    for path, entry in files.items():
        if path.startswith(paths.CONF_DIR):
            target = root / path.lstrip("/")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(entry["content"])
    conf = root / paths.CONF_DIR.lstrip("/")
    site = files[paths.NGINX_SITE_PATH]["content"].replace(paths.CONF_DIR, str(conf))
    (root / "etc/remote-ollama/nginx.conf").write_text(site)
    key_script = tmp_path / "tls-key"  # as the setup script does first on the VM
    key_script.write_text(files[paths.TLS_KEY_SCRIPT_PATH]["content"].replace(paths.CONF_DIR, str(conf)))
    subprocess.run(["sh", str(key_script)], check=True)
    include = root / "etc/remote-ollama/api-key.conf"
    main = tmp_path / "nginx.conf"
    main.write_text(
        f"pid {tmp_path}/nginx.pid;\nerror_log {tmp_path}/error.log;\nevents {{}}\n"
        f"http {{ access_log off; client_body_temp_path {tmp_path}; proxy_temp_path {tmp_path};"
        f" include {root}/etc/remote-ollama/nginx.conf; }}\n"
    )
    out = subprocess.run(
        ["nginx", "-t", "-c", str(main), "-p", str(tmp_path)], capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    assert include.exists() is (api_key is not None)


def test_gpu_stack_and_pinned_ollama_on_loopback(creds: VMCredentials) -> None:
    text = render_user_data(creds, ["granite3.1-dense:8b"])
    doc = yaml.safe_load(text)
    files = _files(text)
    assert "docker.io" in doc["packages"] and "nginx" in doc["packages"]
    setup = files[paths.SETUP_PATH]["content"]
    assert "ubuntu-drivers install" in setup and "nvidia-container-toolkit" in setup
    assert "nvidia-ctk runtime configure --runtime=docker" in setup
    unit = files[paths.OLLAMA_UNIT_PATH]["content"]
    assert "--gpus all" in unit and "-p 127.0.0.1:11434:11434" in unit
    tag = OLLAMA_IMAGE.split(":", 1)[1]
    assert OLLAMA_IMAGE.startswith("ollama/ollama:") and tag[0].isdigit() and tag != "latest"
    assert OLLAMA_IMAGE in unit
    assert "/etc/remote-ollama/models" in files[paths.PULL_PATH]["content"]
    assert doc["runcmd"] == [[paths.SETUP_PATH]]


@pytest.mark.skipif(shutil.which("sh") is None, reason="no POSIX shell")
def test_boot_scripts_are_valid_shell(creds: VMCredentials, tmp_path: Path) -> None:
    files = _files(render_user_data(creds, ["granite3.1-dense:8b"]))
    for path in (paths.SETUP_PATH, paths.PULL_PATH, paths.TLS_KEY_SCRIPT_PATH):
        script = tmp_path / Path(path).name
        script.write_text(files[path]["content"])
        out = subprocess.run(["sh", "-n", str(script)], capture_output=True, text=True)
        assert out.returncode == 0, out.stderr


def test_five_long_model_names_fit_exoscales_limit(creds: VMCredentials) -> None:
    models = [f"registry.ollama.ai/library/{'m' * 150}-{i}:{'t' * 20}" for i in range(5)]
    encoded = encode_user_data(render_user_data(creds, models))
    assert len(encoded) < MAX_USER_DATA_B64
    assert base64.b64decode(encoded).decode().startswith("#cloud-config")


def test_oversized_user_data_is_refused_with_a_clear_error(creds: VMCredentials) -> None:
    models = [f"{'m' * 190}-{i}" for i in range(200)]
    with pytest.raises(UserDataError, match="at most 32768"):
        encode_user_data(render_user_data(creds, models))


def test_exoscale_credentials_never_reach_the_user_data(
    creds: VMCredentials, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EXOSCALE_API_KEY", "EXO0123456789abcdef01234567")
    monkeypatch.setenv("EXOSCALE_API_SECRET", "s3cr3t-exoscale-secret-value-xyz")
    text = render_user_data(creds, ["granite3.1-dense:8b"])
    assert "EXO0123456789abcdef01234567" not in text
    assert "s3cr3t-exoscale-secret-value-xyz" not in text
    assert "EXOSCALE" not in text.upper().replace("REMOTE-OLLAMA", "")


@pytest.mark.parametrize("model", ["bad model", "x\nruncmd: [rm]", "", "-rf"])
def test_model_names_that_could_inject_are_refused(creds: VMCredentials, model: str) -> None:
    with pytest.raises(UserDataError):
        render_user_data(creds, [model])


@pytest.mark.parametrize(
    "key", ['quote"key-0123456789', "short", "space key 0123456789", "$var-0123456789abc"]
)
def test_api_keys_nginx_cannot_match_literally_are_refused(creds: VMCredentials, key: str) -> None:
    bad = VMCredentials(creds.ca_pem, api_key=key)
    with pytest.raises(UserDataError, match="API key"):
        render_user_data(bad, ["granite3.1-dense:8b"])
