"""The test PKI (SPEC §5.1 [choice]): a test CA and UZI-style server certificates carrying the URA.

`init` makes the CA once; `issue` makes a key and certificate for one organisation/system, whose
subjectAltName otherName 2.5.5.5 carries the URA as UZI server certificates do, plus the matching JWKS
(with x5c), so a vendor can sign assertions with it and the simulator can trust it through the CA.
Private keys are written with mode 0600 and never printed.
"""
from __future__ import annotations

import base64
import ipaddress
import json
import os
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from validators.rules.certificates import uzi_other_name
from validators.rules.identifiers import is_valid_ura

CA_KEY, CA_CERT = "ca.key.pem", "ca.cert.pem"


class PkiError(Exception):
    """A PKI request that cannot be done; the message says what to fix."""


@dataclass(frozen=True)
class Issued:
    key_path: Path
    cert_path: Path
    jwks_path: Path


DEFAULT_CA_NAME = "speeltuin test CA"


def init_ca(directory: Path, *, name: str | None = None, days: int = 3650) -> Path:
    """Create the test CA in `directory` (refuses to overwrite one); returns the CA certificate's path. Without a
    `name`, the CA gets DEFAULT_CA_NAME with a generated suffix: two test CAs never share a name, so a message about
    a chain to "another CA" names two different issuers."""
    name = name or f"{DEFAULT_CA_NAME} {secrets.token_hex(3)}"
    directory.mkdir(parents=True, exist_ok=True)
    if (directory / CA_KEY).exists():
        raise PkiError(f"{directory} already holds a test CA; use another directory or issue certificates with it")
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                         x509.NameAttribute(NameOID.ORGANIZATION_NAME, "speeltuin (test only)")])
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
            .not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    _write_key(directory / CA_KEY, key)
    (directory / CA_CERT).write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return directory / CA_CERT


_HOST_NAME = re.compile(r"(\*\.)?([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)*[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def issue(directory: Path, *, name: str, ura: str, uzi_number: str = "900000001", agb: str = "00000000",
          hosts: tuple[str, ...] = ("localhost", "127.0.0.1"), days: int = 825) -> Issued:
    """Key, certificate (signed by the test CA) and JWKS for one system of the organisation `ura`."""
    if not is_valid_ura(ura):
        raise PkiError(f"URA must be 8 digits, got {ura!r}")
    if not name.replace("-", "").replace("_", "").isalnum():
        raise PkiError(f"name must be letters, digits, '-' or '_', got {name!r}")
    try:
        ca_key = serialization.load_pem_private_key((directory / CA_KEY).read_bytes(), password=None)
        ca_cert = x509.load_pem_x509_certificate((directory / CA_CERT).read_bytes())
    except FileNotFoundError:
        raise PkiError(f"no test CA in {directory}; run `speeltuin pki init` first") from None
    key = ec.generate_private_key(ec.SECP256R1())
    alt_names: list[x509.GeneralName] = [uzi_other_name(uzi_number, ura, agb)]
    for host in hosts:
        try:
            alt_names.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            if not _HOST_NAME.fullmatch(host):
                raise PkiError(f"host must be a DNS name (letters, digits, '-', dots; '*.' first for a wildcard) or "
                               f"an IP address, got {host!r}") from None
            alt_names.append(x509.DNSName(host))
    now = datetime.now(timezone.utc)
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name),
                                     x509.NameAttribute(NameOID.ORGANIZATION_NAME, f"URA {ura}")]))
            .issuer_name(ca_cert.subject).public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))  # type: ignore[arg-type]
    issued = Issued(directory / f"{name}.key.pem", directory / f"{name}.cert.pem", directory / f"{name}.jwks.json")
    _write_key(issued.key_path, key)
    issued.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM) +
                                 ca_cert.public_bytes(serialization.Encoding.PEM))
    issued.jwks_path.write_text(json.dumps(jwks_for(cert, ca_cert), indent=2))
    return issued


def jwks_for(cert: x509.Certificate, *chain: x509.Certificate) -> dict[str, Any]:
    """The public JWK of a certificate's key, with kid = its SHA-256 thumbprint and x5c = the chain."""
    jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(cert.public_key()))
    der = [c.public_bytes(serialization.Encoding.DER) for c in (cert, *chain)]
    thumbprint = base64.urlsafe_b64encode(cert.fingerprint(hashes.SHA256())).rstrip(b"=").decode()
    jwk.update({"kid": thumbprint, "use": "sig", "alg": "ES256", "x5c": [base64.b64encode(d).decode() for d in der]})
    return {"keys": [jwk]}


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
