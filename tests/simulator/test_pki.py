"""The test PKI: a CA, UZI-style certificates carrying the URA, and JWKS whose x5c chains to the CA."""
from __future__ import annotations

import json
import stat
import time

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from testdata.pki import PkiError, init_ca, issue
from validators.rules.certificates import check_certificate_ura, ura_from_certificate
from validators.rules.jwt_assertion import check_assertion


def test_issued_certificate_carries_the_ura_and_chains_to_the_ca(tmp_path) -> None:
    ca_path = init_ca(tmp_path)
    issued = issue(tmp_path, name="vendor-gtk", ura="12345678", uzi_number="900012345")
    leaf = x509.load_pem_x509_certificates(issued.cert_path.read_bytes())[0]
    assert ura_from_certificate(leaf) == "12345678"
    assert check_certificate_ura(leaf, "12345678") == []
    assert [f.rule for f in check_certificate_ura(leaf, "87654321")] == ["CERT-001"]
    assert stat.S_IMODE(issued.key_path.stat().st_mode) == 0o600

    # an assertion signed with the issued key, carrying the x5c of the JWKS, verifies through the CA
    key = serialization.load_pem_private_key(issued.key_path.read_bytes(), password=None)
    x5c = json.loads(issued.jwks_path.read_text())["keys"][0]["x5c"]
    now = int(time.time())
    token = jwt.encode({"iss": "c", "sub": "c", "aud": "http://t/token", "iat": now, "exp": now + 60, "jti": "1"},
                       key, algorithm="ES256", headers={"typ": "JWT", "x5c": x5c})
    checked = check_assertion(token, kind="client", audience="http://t/token", jwks=None, now=now,
                              trusted_ca_pem=ca_path.read_bytes())
    assert checked.verified and [f for f in checked.findings if f.severity == "error"] == []

    # the same assertion does not verify against another CA
    other = init_ca(tmp_path / "other")
    refused = check_assertion(token, kind="client", audience="http://t/token", jwks=None, now=now,
                              trusted_ca_pem=other.read_bytes())
    assert not refused.verified and "JWT-026" in {f.rule for f in refused.findings}
    # ... and says which CAs: two test CAs have different names, so the message names two different issuers
    names = [x509.load_pem_x509_certificate(p.read_bytes()).subject.rfc4514_string() for p in (ca_path, other)]
    assert names[0] != names[1] and all("speeltuin test CA" in n for n in names)
    said = next(f.message for f in refused.findings if f.rule == "JWT-026")
    assert names[0] in said and names[1] in said, said


def test_a_ca_takes_the_name_it_is_given(tmp_path) -> None:
    named = init_ca(tmp_path, name="Acme test CA")
    assert "CN=Acme test CA" in x509.load_pem_x509_certificate(named.read_bytes()).subject.rfc4514_string().split(",")


def test_pki_mistakes(tmp_path) -> None:
    with pytest.raises(PkiError, match="run `speeltuin pki init` first"):
        issue(tmp_path, name="x", ura="12345678")
    init_ca(tmp_path)
    with pytest.raises(PkiError, match="already holds a test CA"):
        init_ca(tmp_path)
    with pytest.raises(PkiError, match="URA must be 8 digits"):
        issue(tmp_path, name="x", ura="123")
    with pytest.raises(PkiError, match="name must be"):
        issue(tmp_path, name="../evil", ura="12345678")
