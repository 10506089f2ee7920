"""The store-managing commands over a real subprocess: sessions, notify/cancel to a live vendor, patients, pki."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from speeltuin.defaults import sqlite_url
from speeltuin.keys import Signer
from speeltuin.store import Store
from tests.conftest import NOWHERE, complete_session_options

ROOT = Path(__file__).resolve().parents[1]


def speeltuin(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speeltuin.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_session_commands(tmp_path) -> None:
    db = sqlite_url(tmp_path / "s.sqlite")
    jwks = tmp_path / "vendor.jwks.json"
    jwks.write_text(json.dumps({"keys": []}))
    empty = speeltuin("session", "create", "--db", db, "--name", "Vendor X", *complete_session_options(
        "sender", keys=False), "--vendor-ura", "12345678", "--vendor-jwks", str(jwks))
    assert empty.returncode == 2 and "vendor_jwks holds no keys" in empty.stderr and "Traceback" not in empty.stderr
    jwks.write_text(json.dumps({"keys": [{"kty": "EC", "crv": "P-256", "kid": "k1",
                                          "x": "f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
                                          "y": "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}))
    created = speeltuin("session", "create", "--db", db, "--name", "Vendor X", *complete_session_options(
        "sender", keys=False), "--vendor-ura", "12345678", "--vendor-jwks", str(jwks), "--id", "vx-1",
                        "--public-url", "http://sim.test:8081", "--format", "json")
    assert created.returncode == 0, created.stderr
    view = json.loads(created.stdout)
    assert view["endpoints"]["notification_url"] == "http://sim.test:8081/s/vx-1/notify/Task"
    assert view["endpoints"]["client_id"] == "vendor-vx-1"
    listed = speeltuin("session", "list", "--db", db)
    assert listed.returncode == 0 and listed.stdout.startswith("vx-1\tsender\tVendor X")
    shown = speeltuin("session", "show", "vx-1", "--db", db)
    assert "token_url: http://127.0.0.1:8080/s/vx-1/token" in shown.stdout
    assert speeltuin("session", "delete", "vx-1", "--db", db).returncode == 0
    gone = speeltuin("session", "show", "vx-1", "--db", db)
    assert (gone.returncode, gone.stderr.strip()) == (2, "speeltuin: no session 'vx-1'")


def test_session_mistakes_are_one_line(tmp_path) -> None:
    db = sqlite_url(tmp_path / "s.sqlite")
    cases = [
        (["--vendor-ura", "123"], "vendor_ura must be a URA of 8 digits"),
        (["--vendor-ura", "12345678", "--vendor-jwks", str(tmp_path / "missing.json")], "cannot read JWKS file"),
        (["--vendor-ura", "12345678", "--vendor-fhir-base", "not a url"], "vendor_fhir_base must be an absolute"),
    ]
    for extra, complaint in cases:
        result = speeltuin("session", "create", "--db", db, "--name", "n", "--vendor-role", "sender", *extra)
        assert result.returncode == 2 and complaint in result.stderr and "Traceback" not in result.stderr, extra
        assert len(result.stderr.strip().splitlines()) == 1


def test_a_session_without_what_its_role_needs_is_one_line(tmp_path) -> None:
    """Issue 13: refused at creation (exit 2, one line naming what is missing), nothing stored."""
    db = sqlite_url(tmp_path / "s.sqlite")
    for role, endpoint in (("receiver", ["--vendor-notification-url", f"{NOWHERE}/notify"]),
                           ("sender", ["--vendor-fhir-base", f"{NOWHERE}/fhir"])):
        result = speeltuin("session", "create", "--db", db, "--name", "n", "--vendor-role", role, "--vendor-ura",
                           "12345678", "--vendor-jwks-url", f"{NOWHERE}/jwks", *endpoint)  # no --vendor-token-url
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("speeltuin: vendor_token_url is needed: ") and "vendor_jwks" not in line, line
        assert line.endswith(f"(the vendor is the {role})"), line
    bare = speeltuin("session", "create", "--db", db, "--name", "n", "--vendor-role", "sender", "--vendor-ura",
                     "12345678")
    assert bare.returncode == 2 and len(bare.stderr.strip().splitlines()) == 1, bare.stderr
    assert bare.stderr.startswith("speeltuin: vendor_jwks (or vendor_jwks_url) is needed: ")
    assert "vendor_token_url is needed" in bare.stderr and "vendor_fhir_base is needed" in bare.stderr
    assert "vendor_notification_base" not in bare.stderr
    assert speeltuin("session", "list", "--db", db).stdout.strip() == "no sessions"


def test_notify_and_cancel_reach_a_live_vendor(node_pair, tmp_path) -> None:
    _sim, ven = node_pair
    ven.runtime.config.auto_pull = False
    db = sqlite_url(tmp_path / "cli-sim.sqlite")
    (tmp_path / "ven.jwks").write_text(json.dumps(ven.jwks()))
    assert speeltuin("session", "create", "--db", db, "--id", "cli-1", "--name", "n", "--vendor-role", "receiver",
                     "--vendor-ura", ven.ura, "--vendor-jwks", str(tmp_path / "ven.jwks"),
                     "--vendor-client-id", ven.client_id, "--vendor-token-url", f"{ven.url}/s/ven-1/token",
                     "--vendor-notification-url", f"{ven.url}/s/ven-1/notify").returncode == 0
    store = Store(db)
    simulator_jwks = Signer.load_or_create(store).jwks()  # what `serve` publishes at /jwks
    store.close()
    assert ven.api("POST", "/sessions", json={
        "id": "ven-1", "vendor_role": "sender", "vendor_ura": "90000101", "vendor_jwks": simulator_jwks,
        "vendor_client_id": "speeltuin-simulator", "own_client_id": ven.client_id,
        "vendor_token_url": "http://127.0.0.1:9/unused", "vendor_fhir_base": "http://127.0.0.1:9/unused"}
    ).status_code == 201

    notified = speeltuin("notify", "--db", db, "--session", "cli-1", "--patient", "999993653", "--format", "json")
    assert notified.returncode == 0, notified.stdout + notified.stderr
    result = json.loads(notified.stdout)
    assert result["delivery"]["status"] == 201
    cancelled = speeltuin("cancel", "--db", db, "--session", "cli-1", "--notification", result["notification_id"])
    assert cancelled.returncode == 0 and "vendor answered: 200" in cancelled.stdout, cancelled.stdout + cancelled.stderr
    assert [n.status for n in ven.runtime.store.list_notifications("ven-1")] == ["cancelled"]
    unknown = speeltuin("notify", "--db", db, "--session", "cli-1", "--patient", "999999245")
    assert unknown.returncode == 2 and "no test patient with BSN 999999245" in unknown.stderr


def test_patients_and_pki(tmp_path) -> None:
    db = sqlite_url(tmp_path / "s.sqlite")
    csv = tmp_path / "p.csv"
    csv.write_text("bsn,given,family,birth_date,sex\n999990020,Zoë,Ünal,1990-02-03,F\n", encoding="utf-8")
    assert speeltuin("patients", "import", str(csv), "--db", db).returncode == 0
    listed = json.loads(speeltuin("patients", "list", "--db", db, "--format", "json").stdout)
    assert {"999993653", "999990020"} <= {p["bsn"] for p in listed} and len(listed) == 10
    bad = tmp_path / "bad.csv"
    bad.write_text("bsn,given,family,birth_date,sex\n999999245,A,B,2000-01-01,F\n")
    refused = speeltuin("patients", "import", str(bad), "--db", db)
    assert refused.returncode == 2 and "line 2: BSN '999999245'" in refused.stderr

    pki = tmp_path / "pki"
    assert speeltuin("pki", "init", "--dir", str(pki)).returncode == 0
    issued = speeltuin("pki", "issue", "--dir", str(pki), "--name", "vendor", "--ura", "12345678")
    assert issued.returncode == 0 and (pki / "vendor.jwks.json").exists()
    served = speeltuin("pki", "issue", "--dir", str(pki), "--name", "gtk", "--ura", "12345678",
                       "--host", "gtk.acme.test", "--host", "10.0.0.7")
    assert served.returncode == 0, served.stderr
    from cryptography import x509

    names = x509.load_pem_x509_certificate((pki / "gtk.cert.pem").read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.DNSName) == ["gtk.acme.test"]
    assert [str(ip) for ip in names.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]
    bad_host = speeltuin("pki", "issue", "--dir", str(pki), "--name", "x", "--ura", "12345678", "--host", "a b")
    assert bad_host.returncode == 2 and "host must be a DNS name" in bad_host.stderr and "Traceback" not in bad_host.stderr
    again = speeltuin("pki", "init", "--dir", str(pki))
    assert again.returncode == 2 and "already holds a test CA" in again.stderr
    # a session whose keys come from the issued certificate
    created = speeltuin("session", "create", "--db", db, "--name", "n", *complete_session_options("sender", keys=False),
                        "--vendor-ura", "12345678", "--vendor-cert", str(pki / "vendor.cert.pem"), "--format", "json")
    assert json.loads(created.stdout)["config"]["vendor_jwks"]["keys"][0]["x5c"]
