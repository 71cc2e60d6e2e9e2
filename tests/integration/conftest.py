from __future__ import annotations

import pytest
from django.db import connection

from .stack import build_stack


@pytest.fixture(scope="session")
def stack(django_db_setup, django_db_blocker, tmp_path_factory):
    """Daphne and a Celery worker, up for the whole integration session."""
    with django_db_blocker.unblock():
        db_name = connection.settings_dict["NAME"]
    running = build_stack(tmp_path_factory.mktemp("stack"), db_name)
    try:
        running.start_daphne()
        running.start_worker()
        yield running
    finally:
        running.stop()
