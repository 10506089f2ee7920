"""The test patients (built-in and imported) and their BgZ content, generated on first use and cached."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

from speeltuin.store import Store
from testdata.bgz_content import patient_resources, shared_resources
from testdata.patient_import import patient_from_dict, patient_to_dict
from testdata.patients import PATIENTS, TestPatient


class PatientData:
    def __init__(self, store: Store, now: datetime | None = None) -> None:
        self._store = store
        self._now = now or datetime.now(timezone.utc)
        self._lock = threading.Lock()
        self._by_bsn: dict[str, list[dict]] = {}
        self._shared: list[dict] | None = None

    def all_patients(self) -> list[TestPatient]:
        """Built-in patients first; an imported or loaded patient with the same BSN replaces it."""
        own = {**self._imported(), **self._loaded()}
        return [p for p in PATIENTS if p.bsn not in own] + list(own.values())

    def patient(self, bsn: str) -> TestPatient | None:
        return next((p for p in self.all_patients() if p.bsn == bsn), None)

    def import_patients(self, patients: list[TestPatient]) -> None:
        self._store.save_patients([patient_to_dict(p) for p in patients])
        with self._lock:
            for p in patients:
                self._by_bsn.pop(p.bsn, None)  # regenerate from the new details

    def resources(self, bsn: str) -> list[dict]:
        """The patient's own resources; empty for an unknown BSN. Loaded FHIR data is served as loaded."""
        loaded = self._store.list_loaded(bsn)
        if loaded:
            return loaded
        with self._lock:
            if bsn in self._by_bsn:
                return self._by_bsn[bsn]
        patient = self.patient(bsn)
        if patient is None:
            return []
        generated = patient_resources(patient, now=self._now)
        with self._lock:
            return self._by_bsn.setdefault(bsn, generated)

    def shared(self) -> list[dict]:
        with self._lock:
            if self._shared is None:
                self._shared = shared_resources(now=self._now)
            generated = self._shared
        return generated + self._store.list_loaded(None)

    def _loaded(self) -> dict[str, TestPatient]:
        patients = {}
        for bsn in self._store.loaded_patient_bsns():
            resource = next((r for r in self._store.list_loaded(bsn) if r["resourceType"] == "Patient"), None)
            if resource is not None:
                patients[bsn] = patient_from_resource(bsn, resource)
        return patients

    def _imported(self) -> dict[str, TestPatient]:
        return {row["bsn"]: patient_from_dict(row, "stored patient") for row in self._store.list_patients()}


def patient_from_resource(bsn: str, resource: dict) -> TestPatient:
    """The test-patient view of a loaded Patient resource (for notifications and listings)."""
    name = next((n for n in resource.get("name", []) if isinstance(n, dict)), {})
    given = " ".join(name.get("given", [])) or name.get("text", "") or "?"
    deceased = resource.get("deceasedDateTime")
    return TestPatient(bsn, given, name.get("family", ""), str(resource.get("birthDate", "")),
                       "F" if resource.get("gender") == "female" else "M",
                       deceased=str(deceased)[:10] if deceased else None, letters=0)
