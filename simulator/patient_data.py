"""The test patients (built-in and imported) and their BgZ content, generated on first use and cached."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

from simulator.store import Store
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
        """Built-in patients first; an imported patient with a built-in BSN replaces it."""
        imported = self._imported()
        return [p for p in PATIENTS if p.bsn not in imported] + list(imported.values())

    def patient(self, bsn: str) -> TestPatient | None:
        return next((p for p in self.all_patients() if p.bsn == bsn), None)

    def import_patients(self, patients: list[TestPatient]) -> None:
        self._store.save_patients([patient_to_dict(p) for p in patients])
        with self._lock:
            for p in patients:
                self._by_bsn.pop(p.bsn, None)  # regenerate from the new details

    def resources(self, bsn: str) -> list[dict]:
        """The patient's own resources; empty for an unknown BSN."""
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
            return self._shared

    def _imported(self) -> dict[str, TestPatient]:
        return {row["bsn"]: patient_from_dict(row, "stored patient") for row in self._store.list_patients()}
