"""The qkd_link management command prints a report and never a key."""

from __future__ import annotations

import json
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

REQUIRED = {
    "params",
    "pulses",
    "detections",
    "gain",
    "qber",
    "sifted_bits",
    "ec_leaked_bits",
    "ec_efficiency",
    "final_key_bits",
    "key_rate_per_pulse",
    "theory_key_rate_per_pulse",
    "seed_formula_rate",
    "aborted",
    "abort_reason",
}


def _run(*args: str) -> str:
    out = StringIO()
    call_command("qkd_link", *args, stdout=out)
    return out.getvalue()


def test_json_output_is_one_object_with_every_required_field():
    report = json.loads(
        _run("--distance-km", "10", "--pulses", "5000000", "--seed", "1", "--json")
    )
    assert set(report) >= REQUIRED
    assert report["pulses"] == 5_000_000
    assert report["final_key_bits"] > 0
    for name in (
        "attenuation_db_per_km",
        "detector_efficiency",
        "dark_count_prob",
        "misalignment",
        "mu",
        "decoy_mu",
        "vacuum_mu",
    ):
        assert name in report["params"]


def test_json_output_contains_no_key_material():
    text = _run("--distance-km", "10", "--pulses", "5000000", "--seed", "1", "--json")
    assert 'final_key"' not in text
    assert '"key"' not in text


def test_full_eavesdropping_is_reported_as_an_abort():
    report = json.loads(
        _run("--pulses", "10000000", "--eve", "1.0", "--seed", "2", "--json")
    )
    assert report["aborted"] is True
    assert report["final_key_bits"] == 0


def test_the_readable_summary_labels_the_seed_formula_as_comparison_only():
    text = _run("--distance-km", "10", "--pulses", "5000000", "--seed", "1")
    assert "comparison only" in text
    assert "final key" in text


def test_it_rejects_an_eavesdropping_fraction_above_one():
    with pytest.raises(CommandError):
        _run("--eve", "1.5", "--pulses", "1000")
