"""Per-VM client CA, the proxy's client certificate, the VM's pinned server certificate, and the
TLS contexts of that mutual TLS link (docs/design.md section 5).

The VM makes its own server key and self-signed certificate at first boot (the setup script runs
openssl; `make_vm_identity` is the same certificate for the simulated VM), so no private key is
ever in user-data. The operator learns that certificate at the first TLS contact with the IP the
cloud API reports for the instance id it recorded at create (`enrolment_context`,
`vm_certificate_problem`) and pins it: from then on the proxy and the operator trust that one
certificate only. Its fixed DNS name (`VM_TLS_SERVER_NAME`) is checked via SNI, as the proxy dials
a bare IP. The proxy presents its client certificate, issued by a CA made for this VM whose
private key is used once, here, and kept nowhere; nginx requires it (`ssl_verify_client on`).
Everything is made anew for every created VM. The optional API key (EXOSCALE_OLLAMA_KEY) is only
an extra header check on top, weaker because it sits in user-data.
"""

from __future__ import annotations

import datetime as dt
import os
import ssl
import tempfile
from dataclasses import dataclass, replace

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
KEY_CERT = "tls.crt"  # the VM's own server certificate, pinned at first contact
KEY_KEY = "tls.key"  # only in credentials of a VM made before enrolment (its key was in user-data)
KEY_CLIENT_CERT = "client.crt"
KEY_CLIENT_KEY = "client.key"
CLIENT_COMMON_NAME = "remote-ollama proxy"


@dataclass(frozen=True)
class VMCredentials:
    """The client CA, the VM's pinned server certificate, the proxy's client cert and key, and the
    optional API key.

    `cert_pem` is empty until the VM's certificate is pinned at first contact. `key_pem` is set only
    for a VM made before enrolment (the operator made its key; it was in user-data), and
    `client_cert_pem` is empty only for a VM made before mutual TLS (its nginx checks the API key
    instead); such VMs keep working until they are re-created."""

    ca_pem: str
    cert_pem: str = ""
    key_pem: str = ""
    client_cert_pem: str = ""
    client_key_pem: str = ""
    api_key: str | None = None

    def to_secret_data(self) -> dict[str, str]:
        """String data for the per-resource Secret (keys as docs/design.md section 2 names them)."""
        data = {KEY_CA: self.ca_pem}
        if self.cert_pem:
            data[KEY_CERT] = self.cert_pem
        if self.key_pem:
            data[KEY_KEY] = self.key_pem
        if self.client_cert_pem:
            data[KEY_CLIENT_CERT], data[KEY_CLIENT_KEY] = self.client_cert_pem, self.client_key_pem
        if self.api_key:
            data[KEY_API_KEY] = self.api_key
        return data

    def proxy_data(self) -> dict[str, str]:
        """What the proxy uses (the proxy's Secret): the pinned certificate, never a server key."""
        return {k: v for k, v in self.to_secret_data().items() if k != KEY_KEY}

    @property
    def pinned(self) -> bool:
        """The VM's certificate is known: it can be talked to."""
        return bool(self.cert_pem)

    def pinned_to(self, cert_pem: str) -> VMCredentials:
        return replace(self, cert_pem=cert_pem)

    @classmethod
    def from_secret_data(cls, data: dict[str, str], *, proxy: bool = False) -> VMCredentials:
        """Inverse of `to_secret_data` (already base64-decoded values); KeyError names a missing key.
        `proxy`: from `proxy_data` (the server key is then empty)."""
        required = [KEY_CA]
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
        """What the proxy (and the operator's probes) dial the VM with: trusts only the pinned
        certificate and presents the client certificate. ValueError before the pin."""
        if not self.pinned:
            raise ValueError("the VM's certificate is not pinned yet")
        return client_ssl_context(self.cert_pem, self.client_cert_pem, self.client_key_pem)

    def enrolment_context(self) -> ssl.SSLContext:
        """First contact only: presents the client certificate and accepts any server certificate,
        which the caller then checks (`vm_certificate_problem`) and pins. Never used to send data."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_3
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        if self.client_cert_pem:
            _load_chain(ctx, self.client_cert_pem, self.client_key_pem)
        return ctx

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
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A fresh key and a certificate for it signed by the CA (the proxy's client side), never a CA."""
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


def _self_signed(
    name: x509.Name, key: ec.EllipticCurvePrivateKey, now: dt.datetime, validity: dt.timedelta
) -> x509.CertificateBuilder:
    """A certificate of `key` issued by itself, valid from a little before `now` for `validity`."""
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + validity)
    )


def generate_vm_credentials(api_key: str | None = None, *, now: dt.datetime | None = None) -> VMCredentials:
    """A fresh CA and a client certificate for the proxy signed by it (the VM's certificate is
    pinned later); `api_key` (EXOSCALE_OLLAMA_KEY) only when the user chose one."""
    now = now or utcnow()
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("remote-ollama per-resource CA")
    ca_cert = (
        _self_signed(ca_name, ca_key, now, CA_VALIDITY)
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
    client_key, client_cert = _leaf(CLIENT_COMMON_NAME, ExtendedKeyUsageOID.CLIENT_AUTH, ca_key, ca_name, now)
    return VMCredentials(
        ca_pem=ca_cert.public_bytes(serialization.Encoding.PEM).decode(),
        client_cert_pem=client_cert.public_bytes(serialization.Encoding.PEM).decode(),
        client_key_pem=_pem_key(client_key),
        api_key=api_key or None,
    )


def make_vm_identity(*, now: dt.datetime | None = None) -> tuple[str, str]:
    """(certificate, key) PEM as a VM makes them at first boot: a fresh P-256 key and a self-signed
    certificate for VM_TLS_SERVER_NAME, the fields of the setup script's `openssl req -x509`."""
    now = now or utcnow()
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(VM_TLS_SERVER_NAME)
    cert = (
        _self_signed(name, key, now, SERVER_VALIDITY)
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(VM_TLS_SERVER_NAME)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_LEAF_USAGE, critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM).decode(), _pem_key(key)


MAX_VM_CERTIFICATE = 16 * 1024


def vm_certificate_problem(der: bytes | None, now: dt.datetime | None = None) -> str | None:
    """Why a certificate met at first contact cannot be pinned (None: it can): it must be a
    currently valid non-CA certificate for VM_TLS_SERVER_NAME, as the setup script makes it."""
    if not der or len(der) > MAX_VM_CERTIFICATE:
        return "no certificate, or one too large"
    try:
        cert = x509.load_der_x509_certificate(der)
        extensions = {type(e.value): e.value for e in cert.extensions}
    except ValueError as exc:
        return f"not a certificate: {exc}"
    names = extensions.get(x509.SubjectAlternativeName)
    constraints = extensions.get(x509.BasicConstraints)
    if not isinstance(
        names, x509.SubjectAlternativeName
    ) or VM_TLS_SERVER_NAME not in names.get_values_for_type(x509.DNSName):
        return f"the certificate does not name {VM_TLS_SERVER_NAME}"
    if not isinstance(constraints, x509.BasicConstraints) or constraints.ca:
        return "the certificate is a CA (or does not say it is not one)"
    now = now or utcnow()
    # a VM's clock a little ahead of ours: its certificate verifies once ours catches up
    if not cert.not_valid_before_utc - BACKDATE <= now <= cert.not_valid_after_utc:
        return "the certificate is not valid now"
    return None


def pem_of(der: bytes) -> str:
    return x509.load_der_x509_certificate(der).public_bytes(serialization.Encoding.PEM).decode()


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


def client_ssl_context(
    trusted_pem: str, client_cert_pem: str = "", client_key_pem: str = ""
) -> ssl.SSLContext:
    """Client context trusting only `trusted_pem` (the pinned certificate; no system roots, and a
    certificate as its own anchor, so a pre-enrolment VM's CA-signed one pins too), TLS 1.3,
    presenting the client certificate when given; connect with server_hostname=VM_TLS_SERVER_NAME."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # check_hostname and CERT_REQUIRED by default
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    ctx.load_verify_locations(cadata=trusted_pem)
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
