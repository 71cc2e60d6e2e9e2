"""Stored readings as FHIR R4 JSON: vital-signs Observations, blood pressure panels,
ECG segments as sampled data, and the searchset Bundle that carries them.

Plain functions over the rows' attributes: no queries, no requests.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np

from .contract import (
    BODY_TEMPERATURE,
    CONSCIOUSNESS,
    DIASTOLIC,
    ECG_LEADS,
    HEART_RATE,
    INHALED_OXYGEN,
    RESPIRATORY_RATE,
    SPO2,
    SPO2_PULSE_OX,
    SYSTOLIC,
)

Resource = dict[str, Any]

LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
MDC = "urn:oid:2.16.840.1.113883.6.24"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"

BLOOD_PRESSURE_PANEL = "85354-9"
INHALED_OXYGEN_FLOW = "3151-8"
ECG_ANY_LEAD = "131328"

LOINC_DISPLAY = {
    HEART_RATE: "Heart rate",
    RESPIRATORY_RATE: "Respiratory rate",
    SPO2: "Oxygen saturation in Arterial blood",
    SPO2_PULSE_OX: "Oxygen saturation in Arterial blood by Pulse oximetry",
    BODY_TEMPERATURE: "Body temperature",
    SYSTOLIC: "Systolic blood pressure",
    DIASTOLIC: "Diastolic blood pressure",
    BLOOD_PRESSURE_PANEL: "Blood pressure panel with all children optional",
    CONSCIOUSNESS: "Level of consciousness",
    INHALED_OXYGEN: "Inhaled oxygen concentration",
    INHALED_OXYGEN_FLOW: "Inhaled oxygen flow rate",
}

UNIT_DISPLAY = {"/min": "/min", "%": "%", "Cel": "°C", "mm[Hg]": "mmHg"}

# IEEE 11073-10101 MDC_ECG_ELEC_POTL_<lead>: partition 2 (2 << 16 = 131072) plus the
# term code 256 + the lead's number (I 1, II 2, V1–V6 3–8, III 61, aVR 62, aVL 63,
# aVF 64).
MDC_LEAD_CODES = {
    "I": "131329",
    "II": "131330",
    "III": "131389",
    "aVR": "131390",
    "aVL": "131391",
    "aVF": "131392",
    "V1": "131331",
    "V2": "131332",
    "V3": "131333",
    "V4": "131334",
    "V5": "131335",
    "V6": "131336",
}


@dataclass(frozen=True)
class SearchCode:
    """What a FHIR ``code`` search value selects among the stored rows."""

    observation_codes: tuple[str, ...] = ()
    ecg_leads: tuple[str, ...] = ()


_BLOOD_PRESSURE = SearchCode(observation_codes=(SYSTOLIC, DIASTOLIC))
SEARCH_CODES: dict[str, SearchCode] = {
    **{
        code: SearchCode(observation_codes=(code,))
        for code in LOINC_DISPLAY
        if code not in {SYSTOLIC, DIASTOLIC, BLOOD_PRESSURE_PANEL, INHALED_OXYGEN_FLOW}
    },
    # A systolic or diastolic reading usually lives in a panel's component.
    BLOOD_PRESSURE_PANEL: _BLOOD_PRESSURE,
    SYSTOLIC: _BLOOD_PRESSURE,
    DIASTOLIC: _BLOOD_PRESSURE,
    INHALED_OXYGEN_FLOW: SearchCode(observation_codes=(INHALED_OXYGEN,)),
    ECG_ANY_LEAD: SearchCode(ecg_leads=ECG_LEADS),
    **{code: SearchCode(ecg_leads=(lead,)) for lead, code in MDC_LEAD_CODES.items()},
}


class ObservationRow(Protocol):
    pk: Any
    patient_id: int
    device_id: int
    code: str
    value: float | None
    text: str
    unit: str
    time: datetime


class EcgRow(Protocol):
    pk: Any
    patient_id: int
    device_id: int
    lead: str
    fs_hz: int
    start: datetime


@dataclass(frozen=True)
class Entry:
    """A resource and the time it is sorted by (newest first in a search)."""

    time: datetime
    resource: Resource


def fhir_instant(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _category(code: str, display: str) -> list[dict[str, Any]]:
    coding = {"system": OBSERVATION_CATEGORY, "code": code, "display": display}
    return [{"coding": [coding], "text": display}]


def _loinc(code: str) -> dict[str, Any]:
    display = LOINC_DISPLAY[code]
    return {"coding": [{"system": LOINC, "code": code, "display": display}]}


def _quantity(row: ObservationRow) -> dict[str, Any]:
    return {
        "value": row.value,
        "unit": UNIT_DISPLAY.get(row.unit, row.unit),
        "system": UCUM,
        "code": row.unit,
    }


def _base(row_id: str, row: ObservationRow | EcgRow, moment: datetime) -> Resource:
    return {
        "resourceType": "Observation",
        "id": row_id,
        "status": "final",
        "subject": {"reference": f"Patient/{row.patient_id}"},
        "effectiveDateTime": fhir_instant(moment),
        "device": {"reference": f"Device/{row.device_id}"},
    }


def _loinc_code(row: ObservationRow) -> str:
    # The contract stores supplemental oxygen as 3150-0 in % or L/min; in LOINC a
    # flow is a different observable.
    if row.code == INHALED_OXYGEN and row.unit == "L/min":
        return INHALED_OXYGEN_FLOW
    return row.code


def vital_sign(row: ObservationRow) -> Resource:
    resource = _base(f"obs-{row.pk}", row, row.time)
    resource["category"] = _category("vital-signs", "Vital Signs")
    resource["code"] = _loinc(_loinc_code(row))
    if row.value is None:
        resource["valueCodeableConcept"] = {"text": row.text}
    else:
        resource["valueQuantity"] = _quantity(row)
    return resource


def blood_pressure(systolic: ObservationRow, diastolic: ObservationRow) -> Resource:
    resource = _base(f"bp-{systolic.pk}-{diastolic.pk}", systolic, systolic.time)
    resource["category"] = _category("vital-signs", "Vital Signs")
    resource["code"] = _loinc(BLOOD_PRESSURE_PANEL)
    resource["component"] = [
        {"code": _loinc(row.code), "valueQuantity": _quantity(row)}
        for row in (systolic, diastolic)
    ]
    return resource


def _partners(rows: Sequence[ObservationRow]) -> dict[Any, ObservationRow]:
    """Systolic pk → the diastolic taken by the same device at the same moment."""
    waiting: dict[tuple[int, datetime], deque[ObservationRow]] = defaultdict(deque)
    for row in rows:
        if row.code == DIASTOLIC:
            waiting[(row.device_id, row.time)].append(row)
    partners = {}
    for row in rows:
        queue = waiting.get((row.device_id, row.time))
        if row.code == SYSTOLIC and queue:
            partners[row.pk] = queue.popleft()
    return partners


def vital_sign_entries(rows: Sequence[ObservationRow]) -> list[Entry]:
    """One resource per row, except that a systolic and a diastolic reading from the
    same device at the same moment become one blood pressure panel; an unpaired one
    stays on its own. Keeps the rows' order."""
    partners = _partners(rows)
    paired = {diastolic.pk for diastolic in partners.values()}
    entries = []
    for row in rows:
        if row.pk in paired:
            continue
        partner = partners.get(row.pk)
        resource = vital_sign(row) if partner is None else blood_pressure(row, partner)
        entries.append(Entry(row.time, resource))
    return entries


def ecg_entry(segment: EcgRow, samples_uv: np.ndarray) -> Entry:
    code = MDC_LEAD_CODES[segment.lead]
    resource = _base(f"ecg-{segment.pk}", segment, segment.start)
    resource["category"] = _category("procedure", "Procedure")
    resource["code"] = {
        "coding": [
            {
                "system": MDC,
                "code": code,
                "display": f"MDC_ECG_ELEC_POTL_{segment.lead.upper()}",
            }
        ],
        "text": f"ECG lead {segment.lead}",
    }
    resource["valueSampledData"] = {
        "origin": {"value": 0, "unit": "µV", "system": UCUM, "code": "uV"},
        "period": 1000 / segment.fs_hz,
        "factor": 1,
        "dimensions": 1,
        "data": " ".join(map(str, samples_uv.tolist())),
    }
    return Entry(segment.start, resource)


def searchset(
    entries: Iterable[Entry], *, total: int, base_url: str, self_url: str
) -> Resource:
    """A searchset Bundle; ``base_url`` ends without a slash (…/api/v1/fhir)."""
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": [{"relation": "self", "url": self_url}],
        "entry": [
            {
                "fullUrl": f"{base_url}/Observation/{entry.resource['id']}",
                "resource": entry.resource,
                "search": {"mode": "match"},
            }
            for entry in entries
        ],
    }


def operation_outcome(messages: Iterable[str], code: str = "invalid") -> Resource:
    return {
        "resourceType": "OperationOutcome",
        "issue": [
            {"severity": "error", "code": code, "diagnostics": message}
            for message in messages
        ],
    }
