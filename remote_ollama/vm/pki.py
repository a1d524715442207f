"""Per-resource CA, the VM's server certificate, the proxy's client certificate, and the TLS
contexts of that mutual TLS link (docs/design.md section 5).

The VM's public IP is unknown before it is created, so its certificate names a fixed DNS name
(`resource.VM_TLS_SERVER_NAME`); the proxy dials the IP and verifies against that name via SNI,
and presents its client certificate, which the VM's nginx requires (`ssl_verify_client on`).
Everything is generated anew for every VM, so credentials rotate when a VM is re-created, and a CA
per resource means a key leaked from one VM is useless against any other. The CA's private key is
used once, here, and kept nowhere. The optional API key (EXOSCALE_OLLAMA_KEY) is only an
extra header check on top, weaker because it sits in user-data.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import tempfile
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from remote_ollama.spec.names import VM_TLS_SERVER_NAME
from remote_ollama.spec.schedule import utcnow

# Long enough that a VM kept for years still verifies; rotation is by re-creating the resource's Secret.
CA_VALIDITY = dt.timedelta(days=3650)
SERVER_VALIDITY = dt.timedelta(days=3650)
# Allow for clock skew between the operator and a freshly booted VM.
BACKDATE = dt.timedelta(hours=1)

KEY_API_KEY = "api-key"
KEY_CA = "ca.crt"
KEY_CERT = "tls.crt"
KEY_KEY = "tls.key"
KEY_CLIENT_CERT = "client.crt"
KEY_CLIENT_KEY = "client.key"
CLIENT_COMMON_NAME = "remote-ollama proxy"


@dataclass(frozen=True)
class VMCredentials:
    """The CA, the VM's server cert and key, the proxy's client cert and key, and the optional API key.

    `client_cert_pem` is empty only for credentials of a VM made before mutual TLS (its nginx checks
    the API key instead); such a VM keeps working until it is re-created."""

    ca_pem: str
    cert_pem: str
    key_pem: str
    client_cert_pem: str = ""
    client_key_pem: str = ""
    api_key: str | None = None

    def to_secret_data(self) -> dict[str, str]:
        """String data for the per-resource Secret (keys as docs/design.md section 2 names them)."""
        data = {KEY_CA: self.ca_pem, KEY_CERT: self.cert_pem, KEY_KEY: self.key_pem}
        if self.client_cert_pem:
            data[KEY_CLIENT_CERT], data[KEY_CLIENT_KEY] = self.client_cert_pem, self.client_key_pem
        if self.api_key:
            data[KEY_API_KEY] = self.api_key
        return data

    def proxy_data(self) -> dict[str, str]:
        """What the proxy uses (the proxy's Secret): no server certificate or key."""
        return {k: v for k, v in self.to_secret_data().items() if k not in (KEY_CERT, KEY_KEY)}

    @classmethod
    def from_secret_data(cls, data: dict[str, str], *, proxy: bool = False) -> VMCredentials:
        """Inverse of `to_secret_data` (already base64-decoded values); KeyError names a missing key.
        `proxy`: from `proxy_data` (the server certificate and key are then empty)."""
        required = [KEY_CA] if proxy else [KEY_CA, KEY_CERT, KEY_KEY]
        required += [KEY_CLIENT_CERT, KEY_CLIENT_KEY] if data.get(KEY_CLIENT_CERT) else [KEY_API_KEY]
        missing = [k for k in required if not data.get(k)]
        if missing:
            raise KeyError(f"per-resource secret lacks {', '.join(missing)}")
        return cls(
            ca_pem=data[KEY_CA],
            cert_pem=data.get(KEY_CERT, ""),
            key_pem=data.get(KEY_KEY, ""),
            client_cert_pem=data.get(KEY_CLIENT_CERT, ""),
            client_key_pem=data.get(KEY_CLIENT_KEY, ""),
            api_key=data.get(KEY_API_KEY) or None,
        )

    def client_context(self) -> ssl.SSLContext:
        """What the proxy (and the operator's probes) dial the VM with: trusts only the CA and
        presents the client certificate."""
        return client_ssl_context(self.ca_pem, self.client_cert_pem, self.client_key_pem)

    def __repr__(self) -> str:  # never print keys by accident
        return "VMCredentials(ca_pem=..., cert_pem=..., key_pem=***, client_key_pem=***, api_key=***)"


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "remote-ollama"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _pem_key(key: ec.EllipticCurvePrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


_LEAF_USAGE = x509.KeyUsage(
    digital_signature=True,
    content_commitment=False,
    key_encipherment=False,
    data_encipherment=False,
    key_agreement=True,
    key_cert_sign=False,
    crl_sign=False,
    encipher_only=False,
    decipher_only=False,
)


def _leaf(
    common_name: str,
    usage: x509.ObjectIdentifier,
    ca_key: ec.EllipticCurvePrivateKey,
    ca_name: x509.Name,
    now: dt.datetime,
    *,
    dns_name: str | None = None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh key and a certificate for it signed by the CA: the VM's server side or the proxy's
    client side (`usage`), never a CA itself."""
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + SERVER_VALIDITY)
    )
    if dns_name:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(dns_name)]), critical=False)
    cert = (
        builder.add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_LEAF_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return key, cert


def generate_vm_credentials(api_key: str | None = None, *, now: dt.datetime | None = None) -> VMCredentials:
    """A fresh CA, a server certificate for VM_TLS_SERVER_NAME and a client certificate for the
    proxy, both signed by it; `api_key` (EXOSCALE_OLLAMA_KEY) only when the user chose one."""
    now = now or utcnow()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("remote-ollama per-resource CA")
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_key, server_cert = _leaf(
        VM_TLS_SERVER_NAME, ExtendedKeyUsageOID.SERVER_AUTH, ca_key, ca_name, now, dns_name=VM_TLS_SERVER_NAME
    )
    client_key, client_cert = _leaf(CLIENT_COMMON_NAME, ExtendedKeyUsageOID.CLIENT_AUTH, ca_key, ca_name, now)
    return VMCredentials(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM).decode(),
        cert_pem=server_cert.public_bytes(serialization.Encoding.PEM).decode(),
        key_pem=_pem_key(server_key),
        client_cert_pem=client_cert.public_bytes(serialization.Encoding.PEM).decode(),
        client_key_pem=_pem_key(client_key),
        api_key=api_key or None,
    )


def _load_chain(ctx: ssl.SSLContext, cert_pem: str, key_pem: str) -> None:
    # load_cert_chain only reads files; keep the key file private and short-lived.
    fd, path = tempfile.mkstemp(suffix=".pem")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(cert_pem)
            fh.write(key_pem)
        ctx.load_cert_chain(path)
    finally:
        os.unlink(path)


def client_ssl_context(ca_pem: str, client_cert_pem: str = "", client_key_pem: str = "") -> ssl.SSLContext:
    """Client context trusting only `ca_pem` (no system roots), TLS 1.3, presenting the client
    certificate when given; connect with server_hostname=VM_TLS_SERVER_NAME."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED by default
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_verify_locations(cadata=ca_pem)
    if client_cert_pem:
        _load_chain(ctx, client_cert_pem, client_key_pem)
    return ctx


def server_ssl_context(cert_pem: str, key_pem: str, client_ca_pem: str = "") -> ssl.SSLContext:
    """Server side of the same scheme (the simulated VM uses it; nginx does this on a real one):
    TLS 1.3 only; with `client_ca_pem`, a client certificate issued by that CA is required."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    _load_chain(ctx, cert_pem, key_pem)
    if client_ca_pem:
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_verify_locations(cadata=client_ca_pem)
    return ctx
