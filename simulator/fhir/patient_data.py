"""The test patients (built-in and imported) and their BgZ content, generated or parsed once and cached.

Every answer is as fresh as the store: each call first reads the store's patient-data generation (one row by key,
replaced by every import of patients and load of FHIR data, in whatever process), and what was cached under another
generation is read again. The cached lists are shared between requests and threads: callers must not change them.
"""
from __future__ import annotations

import json
import threading
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Callable, Iterable, TypeVar

from speeltuin.store import Store
from testdata.bgz_content import patient_resources, shared_resources
from testdata.patient_import import patient_from_dict, patient_to_dict
from testdata.patients import PATIENTS, TestPatient

T = TypeVar("T")

MAX_CACHED_PATIENTS = 256  # patients whose resources are kept parsed (least recently used go first)
_PATIENTS, _SHARED = ("patients",), ("shared",)  # cache keys beside the per-patient ("own", bsn)
_dumps = json.JSONEncoder(ensure_ascii=False).encode  # json.dumps(..., ensure_ascii=False), one encoder for all


class Resources(list[dict]):
    """Resources as cached: shared between requests and never changed, so each one's JSON is made once, when first
    asked for (writing a 50-entry searchset costs more than all the rest of a search)."""

    def __init__(self, resources: Iterable[dict] = ()) -> None:
        super().__init__(resources)
        self._members = {id(r) for r in self}  # the list holds each one: no other object can have its id meanwhile
        self._json: dict[int, str] = {}

    def json(self, resource: dict) -> str | None:
        """`resource` as json.dumps(resource, ensure_ascii=False) writes it, if it is one of these; else None."""
        key = id(resource)
        if key not in self._members:
            return None
        text = self._json.get(key)
        if text is None:  # two threads may both make it: the same text
            text = self._json[key] = _dumps(resource)
        return text


class PatientData:
    def __init__(self, store: Store, now: datetime | None = None, max_patients: int = MAX_CACHED_PATIENTS) -> None:
        self._store = store
        self._now = now or datetime.now(timezone.utc)
        self._max = max_patients + 2  # the patient list and the shared resources besides
        self._lock = threading.Lock()
        self._cache: OrderedDict[tuple[str, ...], tuple[str, object]] = OrderedDict()  # key: (generation, value)
        self._shared: list[dict] | None = None  # generated once: depends on nothing stored

    def all_patients(self) -> list[TestPatient]:
        """Built-in patients first; an imported or loaded patient with the same BSN replaces it."""
        return list(self._cached(_PATIENTS, self._store.patient_data_generation(), self._read_patients))

    def patient(self, bsn: str) -> TestPatient | None:
        return next((p for p in self.all_patients() if p.bsn == bsn), None)

    def import_patients(self, patients: list[TestPatient]) -> None:
        self._store.save_patients([patient_to_dict(p) for p in patients])  # a new generation: caches go stale

    def resources(self, bsn: str) -> Resources:
        """The patient's own resources; empty for an unknown BSN. Loaded FHIR data is served as loaded."""
        generation = self._store.patient_data_generation()
        return self._cached(("own", bsn), generation, lambda: self._read_resources(bsn, generation))

    def shared(self) -> Resources:
        return self._shared_in(self._store.patient_data_generation())

    def own_and_shared(self, bsn: str, generation: str | None = None) -> tuple[Resources, Resources]:
        """resources(bsn) and shared() of one generation (Store.patient_data_generation, read now unless given: the
        resource server reads it with the token)."""
        if generation is None:
            generation = self._store.patient_data_generation()
        return (self._cached(("own", bsn), generation, lambda: self._read_resources(bsn, generation)),
                self._shared_in(generation))

    def _shared_in(self, generation: str) -> Resources:
        return self._cached(_SHARED, generation,
                            lambda: Resources(self._generated_shared() + self._store.list_loaded(None)))

    def _cached(self, key: tuple[str, ...], generation: str, read: Callable[[], T]) -> T:
        """The value under `key` if it was read in this generation, else `read()` (outside the lock: reads of
        one key may then overlap, but no request waits for another's)."""
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None and hit[0] == generation:
                self._cache.move_to_end(key)
                return hit[1]  # type: ignore[return-value]
        value = read()  # read after the generation: at least as new as the generation it is kept under
        with self._lock:
            self._cache[key] = (generation, value)
            self._cache.move_to_end(key)
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
        return value

    def _read_resources(self, bsn: str, generation: str) -> Resources:
        loaded = self._store.list_loaded(bsn)
        if loaded:
            return Resources(loaded)
        patient = next((p for p in self._cached(_PATIENTS, generation, self._read_patients) if p.bsn == bsn), None)
        return Resources(patient_resources(patient, now=self._now) if patient is not None else ())

    def _generated_shared(self) -> list[dict]:
        with self._lock:
            if self._shared is None:
                self._shared = shared_resources(now=self._now)
            return self._shared

    def _read_patients(self) -> list[TestPatient]:
        own = {**self._imported(), **self._loaded()}
        return [p for p in PATIENTS if p.bsn not in own] + list(own.values())

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
