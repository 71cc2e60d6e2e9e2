"""The settings module: the embedded default, and production refusing unsafe setups."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAFE_PRODUCTION = {
    "DEBUG": "false",
    "SECRET_KEY": "x7Hq2-v9LmZp4RtY8wNc3KbJ6sFgD1eA0uIoP5yTrE2qW9zXcVbNm7",
    "ALLOWED_HOSTS": "rpm.example.org",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "DATABASE_URL": "postgres://rpm@127.0.0.1:5432/rpm",
}


def run_manage(
    env_overrides: dict[str, str], *args: str
) -> subprocess.CompletedProcess:
    return run_python(env_overrides, "manage.py", *args)


def run_python(
    env_overrides: dict[str, str], *args: str
) -> subprocess.CompletedProcess:
    """Python in the repository, with none of the production variables set but
    those given."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in {"DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "REDIS_URL", "DATABASE_URL"}
    }
    env.update(env_overrides)
    return subprocess.run(
        [sys.executable, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_nothing_set_gives_sqlite_in_process_defaults():
    result = run_manage({}, "diffsettings", "--all")
    assert result.returncode == 0, result.stderr
    assert "'ENGINE': 'django.db.backends.sqlite3'" in result.stdout
    assert "InMemoryChannelLayer" in result.stdout
    assert "CELERY_TASK_ALWAYS_EAGER = True" in result.stdout
    assert "DEBUG = True" in result.stdout


def test_production_settings_pass_check_deploy_with_no_warnings():
    result = run_manage(SAFE_PRODUCTION, "check", "--deploy", "--fail-level", "WARNING")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_the_default_secret_key():
    env = {**SAFE_PRODUCTION}
    del env["SECRET_KEY"]
    result = run_manage(env, "check")
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_production_refuses_empty_allowed_hosts():
    result = run_manage({**SAFE_PRODUCTION, "ALLOWED_HOSTS": ""}, "check")
    assert result.returncode != 0
    assert "ALLOWED_HOSTS" in result.stderr


def test_production_refuses_in_process_tasks():
    env = {**SAFE_PRODUCTION}
    del env["REDIS_URL"]
    result = run_manage(env, "check")
    assert result.returncode != 0
    assert "REDIS_URL" in result.stderr


def test_a_named_database_turns_debug_off_unless_asked():
    env = {**SAFE_PRODUCTION}
    del env["DEBUG"]
    result = run_manage(env, "diffsettings", "--all")
    assert result.returncode == 0, result.stderr
    assert "DEBUG = False" in result.stdout
    assert "SESSION_COOKIE_SECURE = True" in result.stdout


def test_the_web_application_starts_without_the_ecg_analysis():
    """NeuroKit2 and SciPy's signal module take about 2 s to import: web processes
    never load them, workers load them at start-up (rpm/celery.py)."""
    probe = (
        "import sys; from rpm.asgi import application; "
        "print(sorted(m for m in ('neurokit2', 'scipy.signal', 'telemetry.analysis')"
        " if m in sys.modules))"
    )
    result = run_python({}, "-c", probe)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
