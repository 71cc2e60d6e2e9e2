"""Shared personas: a clinician and their patient, a clinician of another team,
an admin, and the patient's device."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from patients.models import CareTeam, Device, Organisation, Patient, Role, User
from patients.services import provision_device

PASSWORD = "correct horse battery"


@dataclass
class DeviceWithToken:
    device: Device
    token: str


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def organisation(db) -> Organisation:
    return Organisation.objects.create(name="St Elsewhere")


def make_staff(
    organisation: Organisation, username: str, role: str = Role.CLINICIAN
) -> User:
    user = User.objects.create_user(
        username=username, password=PASSWORD, organisation=organisation, role=role
    )
    return user


def make_patient(organisation: Organisation, mrn: str) -> Patient:
    return Patient.objects.create(
        organisation=organisation,
        mrn=mrn,
        given_name="Ada",
        family_name="Lovelace",
        birth_date=date(1950, 12, 10),
    )


@pytest.fixture
def patient(organisation) -> Patient:
    return make_patient(organisation, "MRN-1")


@pytest.fixture
def other_patient(organisation) -> Patient:
    return make_patient(organisation, "MRN-2")


@pytest.fixture
def clinician(organisation, patient) -> User:
    user = make_staff(organisation, "clinician")
    team = CareTeam.objects.create(organisation=organisation, name="Team A")
    team.members.add(user)
    team.patients.add(patient)
    return user


@pytest.fixture
def other_clinician(organisation, other_patient) -> User:
    user = make_staff(organisation, "other")
    team = CareTeam.objects.create(organisation=organisation, name="Team B")
    team.members.add(user)
    team.patients.add(other_patient)
    return user


@pytest.fixture
def admin(organisation) -> User:
    user = make_staff(organisation, "admin", role=Role.ADMIN)
    user.is_staff = user.is_superuser = True
    user.save()
    return user


@pytest.fixture
def device(patient) -> DeviceWithToken:
    provisioned = provision_device(
        serial="HUB-1", kind=Device.Kind.HUB, patient=patient
    )
    return DeviceWithToken(provisioned.device, provisioned.token)


@pytest.fixture
def other_device(other_patient) -> DeviceWithToken:
    provisioned = provision_device(
        serial="HUB-2", kind=Device.Kind.HUB, patient=other_patient
    )
    return DeviceWithToken(provisioned.device, provisioned.token)


@pytest.fixture
def api() -> APIClient:
    return APIClient()


INTEGRATION_HINT = (
    "integration suite skipped: set DATABASE_URL (PostgreSQL) and REDIS_URL (Redis), "
    "e.g. through `make test`, to run it against real servers"
)


def integration_configured() -> bool:
    return ON_POSTGRES and bool(os.environ.get("TEST_REDIS_URL"))


ON_POSTGRES = os.environ.get("DATABASE_URL", "").startswith("postgres")
POSTGRES_HINT = "needs PostgreSQL: make test runs it in its PostgreSQL phase"


def pytest_collection_modifyitems(config, items):
    if not ON_POSTGRES:
        for item in items:
            if item.get_closest_marker("postgres"):
                item.add_marker(pytest.mark.skip(reason=POSTGRES_HINT))
    integration = [item for item in items if "tests/integration/" in item.nodeid]
    for item in integration:
        item.add_marker(pytest.mark.integration)
    deselected = "not integration" in (config.option.markexpr or "")
    if not integration or deselected or integration_configured():
        return
    if os.environ.get("CI") == "true":
        raise pytest.UsageError(
            "CI=true: the integration suite may not be skipped; " + INTEGRATION_HINT
        )
    for item in integration:
        item.add_marker(pytest.mark.skip(reason=INTEGRATION_HINT))


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not integration_configured() and "integration" not in (
        config.option.markexpr or ""
    ):
        terminalreporter.write_line(INTEGRATION_HINT, yellow=True)
