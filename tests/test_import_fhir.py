"""`speeltuin patients import-fhir` and `patients show` over real subprocesses, and a loaded patient's pull."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from speeltuin.defaults import sqlite_url
from speeltuin.store import Store
from tests.simulator.helpers import pair_sessions, wait_for_pull

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus" / "nictiz-zib2017-examples"


def speeltuin(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speeltuin.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)


def _count(db: str) -> int:
    store = Store(db)
    try:
        return len(store.list_loaded(None)) + sum(len(store.list_loaded(b)) for b in store.loaded_patient_bsns())
    finally:
        store.close()


def test_corpus_loads_and_show_counts_per_section(tmp_path) -> None:
    db = sqlite_url(tmp_path / "s.sqlite")
    loaded = speeltuin("patients", "import-fhir", str(CORPUS), "--db", db)
    assert loaded.returncode == 0, loaded.stderr
    assert "loaded 208 resources from 208 files: patients 123456782 (77), 999911120 (71), 999911284 (10); " \
           "50 shared" in loaded.stdout
    assert "nl-core-patient-legalStatus-01.xml: ERROR PROF-002" in loaded.stdout  # reported, not refused
    shown = json.loads(speeltuin("patients", "show", "999911120", "--db", db, "--format", "json").stdout)
    by_query = {row["query"]: row for row in shown}
    assert by_query[6]["matches"] == 13  # Condition: 13 files reference one of this BSN's Patients
    assert by_query[17] == {"query": 17, "search": by_query[17]["search"], "matches": 3, "includes": 3}
    listed = speeltuin("patients", "list", "--db", db).stdout
    assert "999911120\tJohan XXX_Helleman" in listed


def test_nothing_is_half_loaded(tmp_path) -> None:
    db = sqlite_url(tmp_path / "s.sqlite")
    strict = speeltuin("patients", "import-fhir", str(CORPUS), "--strict", "--db", db)
    assert strict.returncode == 1 and "nothing loaded" in strict.stdout and _count(db) == 0
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "a.json").write_text(json.dumps({"resourceType": "Organization", "id": "o1", "name": "x"}))
    (bad / "b.json").write_text('{"resourceType": "Organization", "id": "o2", "name": "${PATIENT, NAME}"}')
    refused = speeltuin("patients", "import-fhir", str(bad), "--db", db)
    assert refused.returncode == 2 and "b.json: unsupported placeholder" in refused.stderr and _count(db) == 0
    good = bad / "b.json"
    good.write_text('{"resourceType": "Organization", "id": "o2", "name": "${DATE, T, D, -1}"}')
    assert speeltuin("patients", "import-fhir", str(bad), "--db", db).returncode == 0 and _count(db) == 2
    again = speeltuin("patients", "import-fhir", str(bad), "--db", db)
    assert again.returncode == 2 and "use --replace" in again.stderr and _count(db) == 2
    assert speeltuin("patients", "import-fhir", str(bad), "--replace", "--db", db).returncode == 0
    assert _count(db) == 2


def test_a_loaded_patient_is_notified_and_pulled_like_a_built_in_one(node_pair, tmp_path) -> None:
    sim, ven = node_pair
    db = sim.config.database_url
    assert speeltuin("patients", "import-fhir", str(CORPUS), "--db", db).returncode == 0
    pair_sessions(sim, ven, vendor_role="receiver")
    sent = sim.api("POST", "/sessions/sim-1/notify", json={"bsn": "999911120"})
    assert sent.json()["delivery"]["status"] == 201, sent.text
    received = wait_for_pull(ven, "ven-1")
    assert received.pull_status == "done", received.pull_summary
    results = received.pull_summary["results"]
    assert len(results) == 29 and all(r["status"] == 200 for r in results)
    assert sum(1 for r in results if r.get("entries")) == 27  # what `patients show` lists for this BSN


def test_the_same_id_with_different_content_in_one_load_is_refused_naming_both_files(tmp_path) -> None:
    db = sqlite_url(tmp_path / "s.sqlite")
    (tmp_path / "a.json").write_text(json.dumps({"resourceType": "Organization", "id": "o1", "name": "a"}))
    (tmp_path / "b.json").write_text(json.dumps({"resourceType": "Organization", "id": "o1", "name": "b"}))
    twice = speeltuin("patients", "import-fhir", str(tmp_path / "a.json"), str(tmp_path / "b.json"), "--db", db)
    assert twice.returncode == 2 and "Organization/o1" in twice.stderr and "Traceback" not in twice.stderr
    assert str(tmp_path / "a.json") in twice.stderr and str(tmp_path / "b.json") in twice.stderr
    assert "different content" in twice.stderr
    assert _count(db) == 0


def test_identical_duplicates_load_once_with_a_warning_naming_both_files(tmp_path) -> None:
    """As Nictiz publishes them: the same resource in two files, byte for byte, or once as XML and once as JSON."""
    db = sqlite_url(tmp_path / "s.sqlite")
    source = CORPUS / "nl-core-organization-01.xml"
    (tmp_path / "copy-1.xml").write_bytes(source.read_bytes())
    (tmp_path / "copy-2.xml").write_bytes(source.read_bytes())
    from validators.rules.structure import parse_fhir

    resource = parse_fhir(source.read_bytes()).resource
    (tmp_path / "copy-3.json").write_text(json.dumps(dict(reversed(list(resource.items())))))  # other key order
    loaded = speeltuin("patients", "import-fhir", str(tmp_path), "--db", db)
    assert loaded.returncode == 0, loaded.stderr
    warnings = [line for line in loaded.stdout.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 2, loaded.stdout
    assert all(f"Organization/{resource['id']}" in w and "copy-1.xml" in w and "loaded once" in w for w in warnings)
    assert {"copy-2.xml", "copy-3.json"} == {name for w in warnings for name in ("copy-2.xml", "copy-3.json")
                                            if name in w}
    assert _count(db) == 1


def test_loaded_patient_passes_the_happy_receiver_scenario_through_the_proxy(tmp_path) -> None:
    """The same scenario as the demo, with real mitmdump in the loop, for a patient loaded from the corpus.

    The corpus was not written for the BgZ: it has one real defect (a zib value-set OID as Coding.system,
    PROF-002) and Conditions and devices of other zibs (zib-Wound, ...) that the BgZ queries then return
    (BUNDLE-006). The case manager suppresses both for the session, with reasons, as a real session would.
    """
    from scenarios.vendor_receiver import VendorAsReceiver
    from scenarios.runner import Harness, run_scenarios, stack_harness
    from scenarios.stack import start_stack

    class WithSuppression(VendorAsReceiver):
        def create_sessions(self, h: Harness) -> str:
            created = super().create_sessions(h)
            for rule, reason in (("PROF-002", "known defect of the Nictiz legalStatus example"),
                                 ("BUNDLE-006", "the Nictiz examples include non-BgZ zib Conditions and devices")):
                h.simulator.api("PUT", f"/sessions/{self.session_id}/suppressions/{rule}", json={"reason": reason})
            return created

    with start_stack(tmp_path / "stack") as stack:
        loaded = speeltuin("patients", "import-fhir", str(CORPUS), "--db", stack.simulator.database_url)
        assert loaded.returncode == 0, loaded.stderr
        store = Store(stack.simulator.database_url)
        run = run_scenarios(stack_harness(stack, store, patient_bsn="999911120", wait_s=60), [WithSuppression()],
                            title="loaded patient")
        store.close()
    [scenario] = run.scenarios
    assert scenario.status == "passed", [(s.title, s.detail) for s in scenario.steps]
    assert run.counts()["error"] == 0 and run.counts()["suppressed"] >= 1
    assert sum(1 for ex in scenario.exchanges if ex.tag == "search" and ex.status == 200) == 29


def test_both_query_forms_give_the_same_answer_on_loaded_data(tmp_path) -> None:
    """Patient implied by the token, or named by BSN (SPEC §6): the same matches over loaded resources."""
    from simulator.fhir.patient_data import PatientData
    from simulator.fhir.search import search
    from validators.query import parse_relative_query

    db = sqlite_url(tmp_path / "s.sqlite")
    assert speeltuin("patients", "import-fhir", str(CORPUS), "--db", db).returncode == 0
    store = Store(db)
    data = PatientData(store)
    own, shared = data.resources("999911120"), data.shared()
    named = "http://fhir.nl/fhir/NamingSystem/bsn|999911120"

    def ids(query: str) -> list[str]:
        asked = parse_relative_query(query)
        return sorted(r["id"] for r in search(own, shared, asked.resource_type, asked.params,
                                              lastn=asked.lastn).matches)

    assert ids("Condition") == ids(f"Condition?patient.identifier={named}") and len(ids("Condition")) == 13
    assert ids("Coverage") == ids(f"Coverage?beneficiary.identifier={named}") and ids("Coverage")
    assert ids("Patient") == ids(f"Patient?identifier={named}") and len(ids("Patient")) == 5
    store.close()
