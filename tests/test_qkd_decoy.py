"""Decoy-state theory and bounds reproduce the reference numbers."""

from __future__ import annotations

import math

import pytest

from security.qkd.channel import LinkParams
from security.qkd.decoy import (
    Observed,
    binary_entropy,
    decoy_bounds,
    key_rate_series,
    max_distance,
    plob_bound,
    seed_formula_rate,
    theoretical_observed,
    theory_rate,
    vacuum_weak_rate,
)

GYS = LinkParams()


def _bounds_from_theory(params: LinkParams, distance_km: float):
    signal, decoy, vacuum = theoretical_observed(params, distance_km)
    return decoy_bounds(
        params.mu,
        params.decoy_mu,
        signal.gain,
        decoy.gain,
        decoy.error_gain,
        vacuum.gain,
    )


def test_signal_gain_and_error_at_50_km_match_the_reference():
    signal = theoretical_observed(GYS, 50.0)[0]
    assert signal.gain == pytest.approx(1.925e-3, rel=1e-3)
    assert signal.qber == pytest.approx(0.03341, rel=1e-3)


def test_infinite_decoy_rate_matches_the_reference_at_50_and_100_km():
    assert theory_rate(GYS, 50.0) == pytest.approx(2.23e-4, rel=5e-3)
    assert theory_rate(GYS, 100.0) == pytest.approx(1.72e-5, rel=5e-3)


def test_the_key_vanishes_at_about_142_km():
    assert max_distance(lambda d: theory_rate(GYS, d)) == pytest.approx(142, abs=1)
    assert theory_rate(GYS, 145.0) == 0.0


def test_vacuum_weak_bounds_from_theoretical_gains_bracket_the_true_values():
    eta = GYS.transmittance()
    y0 = GYS.dark_count_prob
    true_y1 = y0 + eta
    true_e1 = (0.5 * y0 + GYS.misalignment * eta) / true_y1
    bounds = _bounds_from_theory(GYS, 50.0)
    assert true_y1 * 0.9 < bounds.y1_lower <= true_y1
    assert true_e1 <= bounds.e1_upper < true_e1 * 1.2


def test_a_weaker_decoy_tightens_the_bounds_towards_the_true_values():
    weak = LinkParams(decoy_mu=0.01)
    eta = weak.transmittance()
    bounds = _bounds_from_theory(weak, 50.0)
    assert bounds.y1_lower == pytest.approx(weak.dark_count_prob + eta, rel=0.01)
    assert vacuum_weak_rate(weak, 50.0) == pytest.approx(2.23e-4, rel=0.02)


def test_vacuum_weak_rate_is_below_but_near_the_infinite_decoy_rate():
    for distance in (0.0, 50.0, 100.0):
        weak, ideal = vacuum_weak_rate(GYS, distance), theory_rate(GYS, distance)
        assert 0.8 * ideal < weak <= ideal


def test_seed_formula_still_claims_key_at_25_percent_qber():
    signal = Observed(gain=1e-3, qber=0.25)
    assert seed_formula_rate(signal) == pytest.approx(0.19e-3, rel=0.02)


def test_binary_entropy_gives_the_11_percent_threshold():
    assert 1 - 2 * binary_entropy(0.110) == pytest.approx(0.0, abs=0.002)


def test_plob_is_about_1_44_eta_at_high_loss():
    eta = 1e-5
    assert plob_bound(eta) == pytest.approx(eta / math.log(2), rel=1e-4)


def test_plot_series_has_theory_below_plob_everywhere():
    series = key_rate_series(GYS, max_km=200.0, points=41)
    assert len(series.distance_km) == len(series.theory) == len(series.plob) == 41
    assert (series.theory <= series.plob).all()
    assert series.theory_max_distance_km == pytest.approx(142, abs=1)
    assert set(series.as_lists()) >= {"distance_km", "theory", "plob"}
