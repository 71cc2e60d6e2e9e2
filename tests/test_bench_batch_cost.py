"""bench/batch_cost.py measures what it says: each kind of batch does its job."""

from __future__ import annotations

import pytest

from bench import batch_cost
from telemetry.models import EcgAnalysis


@pytest.mark.django_db
def test_each_kind_of_bench_batch_is_processed_and_only_the_fever_alarms():
    devices = batch_cost.provision(2)
    ecg = batch_cost.ecg_segments(2)

    figures = batch_cost.run_rounds(devices, 1, ecg)

    assert set(figures) == set(batch_cost.KINDS)
    assert all(f["cpu_ms"] > 0 and f["wall_ms"] > 0 for f in figures.values())
    # One fever raised and resolved per patient and round; nothing else alarmed
    # (a device clock behind the server's would have raised a clock-skew alarm).
    batch_cost.check_alerts(2)
    assert EcgAnalysis.objects.filter(rhythm="sinus").count() == 2


@pytest.mark.django_db
def test_the_bench_counts_the_queries_of_each_kind():
    devices = batch_cost.provision(1)

    queries = batch_cost.count_queries(devices, batch_cost.ecg_segments(1))

    assert queries["raise"] > queries["routine"] > 0
    assert queries["ecg"] > queries["routine"]
