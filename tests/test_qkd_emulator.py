"""The emulated link reproduces the channel model pulse by pulse."""

from __future__ import annotations

import math

import numpy as np
import pytest

from security.qkd.channel import DECOY, SIGNAL, VACUUM, LinkParams
from security.qkd.decoy import theoretical_observed
from security.qkd.emulator import CHUNK_PULSES, emulate

PULSES = 20_000_000


def _within_sigmas(measured: float, expected: float, trials: int, k: float) -> bool:
    sigma = math.sqrt(expected * (1.0 - expected) / trials)
    return abs(measured - expected) <= k * sigma


@pytest.fixture(scope="module")
def link_at_50_km():
    params = LinkParams(distance_km=50.0)
    return params, emulate(params, PULSES, np.random.default_rng(11))


def test_gain_of_every_intensity_matches_the_formula_at_50_km(link_at_50_km):
    params, record = link_at_50_km
    theory = theoretical_observed(params, 50.0)
    for k in (SIGNAL, DECOY, VACUUM):
        counts = record.counts[k]
        assert _within_sigmas(counts.gain, theory[k].gain, counts.pulses, 4.0)


def test_qber_of_signal_and_decoy_matches_the_formula_at_50_km(link_at_50_km):
    params, record = link_at_50_km
    theory = theoretical_observed(params, 50.0)
    for k in (SIGNAL, DECOY):
        counts = record.counts[k]
        assert _within_sigmas(counts.qber, theory[k].qber, counts.sifted, 4.0)


def test_reference_gain_and_error_at_50_km_are_what_the_emulation_sees(
    link_at_50_km,
):
    _, record = link_at_50_km
    signal = record.counts[SIGNAL]
    assert signal.gain == pytest.approx(1.925e-3, rel=0.03)
    assert signal.qber == pytest.approx(0.03341, abs=0.006)


def test_every_pulse_is_counted_once_across_chunks(link_at_50_km):
    _, record = link_at_50_km
    assert PULSES > CHUNK_PULSES
    assert sum(c.pulses for c in record.counts) == PULSES


def test_about_half_the_clicks_survive_basis_sifting(link_at_50_km):
    _, record = link_at_50_km
    signal = record.counts[SIGNAL]
    assert signal.sifted / signal.detections == pytest.approx(0.5, abs=0.02)
    assert record.alice_key.size == record.bob_key.size == signal.sifted


def test_single_photon_clicks_have_yield_y0_plus_eta(link_at_50_km):
    params, record = link_at_50_km
    signal = record.counts[SIGNAL]
    single_pulses = signal.pulses * params.mu * math.exp(-params.mu)
    yield_1 = signal.single_photon_detections / single_pulses
    expected = params.dark_count_prob + params.transmittance()
    assert yield_1 == pytest.approx(expected, rel=0.05)


def test_intercept_resend_on_every_pulse_gives_about_25_percent_qber():
    params = LinkParams(distance_km=50.0, eve_fraction=1.0)
    record = emulate(params, 5_000_000, np.random.default_rng(3))
    assert record.counts[SIGNAL].qber == pytest.approx(0.25, abs=0.03)


def test_intercept_resend_on_a_fraction_p_adds_about_p_over_4():
    p = 0.4
    honest = emulate(LinkParams(), 10_000_000, np.random.default_rng(4))
    attacked = emulate(LinkParams(eve_fraction=p), 10_000_000, np.random.default_rng(4))
    added = attacked.counts[SIGNAL].qber - honest.counts[SIGNAL].qber
    assert added == pytest.approx(p / 4, abs=0.02)


def test_a_seeded_run_is_reproducible():
    params = LinkParams(distance_km=20.0)
    first = emulate(params, 2_000_000, np.random.default_rng(42))
    second = emulate(params, 2_000_000, np.random.default_rng(42))
    assert first.counts == second.counts
    assert np.array_equal(first.alice_key, second.alice_key)
    assert np.array_equal(first.bob_key, second.bob_key)


def test_different_seeds_give_different_keys():
    params = LinkParams(distance_km=20.0)
    first = emulate(params, 2_000_000, np.random.default_rng(1))
    second = emulate(params, 2_000_000, np.random.default_rng(2))
    assert not np.array_equal(first.alice_key[:1000], second.alice_key[:1000])


def test_it_rejects_probabilities_that_do_not_sum_to_one():
    with pytest.raises(ValueError, match="sum to 1"):
        LinkParams(p_signal=0.9, p_decoy=0.2, p_vacuum=0.1)
