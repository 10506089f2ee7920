"""The test patients' BgZ content, generated once per app and kept in memory."""
from __future__ import annotations

import threading
from datetime import datetime, timezone

from testdata.bgz_content import patient_resources, shared_resources
from testdata.patients import PATIENTS, TestPatient, find_patient


class PatientData:
    def __init__(self, now: datetime | None = None) -> None:
        self._now = now or datetime.now(timezone.utc)
        self._lock = threading.Lock()
        self._by_bsn: dict[str, list[dict]] = {}
        self._shared: list[dict] | None = None

    def patient(self, bsn: str) -> TestPatient | None:
        return find_patient(bsn)

    def all_patients(self) -> tuple[TestPatient, ...]:
        return PATIENTS

    def resources(self, bsn: str) -> list[dict]:
        """The patient's own resources; empty for an unknown BSN."""
        patient = find_patient(bsn)
        if patient is None:
            return []
        with self._lock:
            if bsn not in self._by_bsn:
                self._by_bsn[bsn] = patient_resources(patient, now=self._now)
            return self._by_bsn[bsn]

    def shared(self) -> list[dict]:
        with self._lock:
            if self._shared is None:
                self._shared = shared_resources(now=self._now)
            return self._shared
