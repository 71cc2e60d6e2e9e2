"""A session releases a key only when the decoy bound leaves one."""

from __future__ import annotations

import base64
import json
import math

import pytest

import security.qkd.session as session_module
from security.qkd import LinkParams, SessionConfig, run_session
from security.qkd.decoy import binary_entropy
from security.qkd.privacy import EPSILON_PA, EPSILON_VERIFY
from security.qkd.session import expected_key_bits


@pytest.fixture(scope="module")
def session_at_50_km():
    return run_session(LinkParams(distance_km=50.0), 100_000_000, seed=1)


def _bound(result) -> float:
    bounds = result.estimates.bounds
    key_bits = result.signal.sifted - result.sample_bits
    n1 = key_bits * result.estimates.single_photon_fraction
    return (
        n1 * (1 - binary_entropy(bounds.e1_upper))
        - result.ec_leaked_bits
        - math.log2(2 / EPSILON_VERIFY)
        - 2 * math.log2(1 / EPSILON_PA)
    )


def test_a_50_km_session_releases_a_positive_key(session_at_50_km):
    result = session_at_50_km
    assert not result.aborted
    assert result.final_key_bits > 0
    assert len(result.final_key) * 8 == result.final_key_bits


def test_the_released_length_respects_the_bound(session_at_50_km):
    assert session_at_50_km.final_key_bits <= _bound(session_at_50_km)


def test_the_secure_rate_stays_below_theory_and_the_seed_formula(session_at_50_km):
    report = session_at_50_km.report()
    assert 0 < report["key_rate_per_pulse"] < report["theory_key_rate_per_pulse"]
    assert report["seed_formula_rate"] > report["key_rate_per_pulse"]


def test_the_report_carries_no_key_material(session_at_50_km):
    report = json.dumps(session_at_50_km.report())
    assert 'final_key"' not in report
    key = session_at_50_km.final_key
    assert key.hex()[:16] not in report
    assert base64.b64encode(key)[:16].decode() not in report
    assert "final_key=" not in repr(session_at_50_km)


def test_an_eavesdropper_on_every_pulse_makes_the_session_abort():
    result = run_session(LinkParams(eve_fraction=1.0), 20_000_000, seed=2)
    assert result.aborted
    assert "QBER" in result.abort_reason
    assert result.signal.qber == pytest.approx(0.25, abs=0.03)
    assert result.final_key == b""
    assert result.final_key_bits == 0


def test_the_seed_formula_is_reported_but_never_releases_a_key():
    result = run_session(LinkParams(eve_fraction=1.0), 20_000_000, seed=2)
    assert result.report()["seed_formula_rate"] > 0
    assert result.final_key == b""


def test_a_moderate_attack_below_the_qber_threshold_still_releases_nothing():
    config = SessionConfig(qber_abort=0.5)  # let it reach the key-length bound
    result = run_session(LinkParams(eve_fraction=0.5), 50_000_000, 3, config)
    assert result.aborted
    assert result.final_key == b""
    assert result.seed_formula_rate > 0


def test_a_seeded_session_is_reproducible():
    params = LinkParams(distance_km=10.0)
    first = run_session(params, 10_000_000, seed=7)
    second = run_session(params, 10_000_000, seed=7)
    assert first.final_key_bits > 0
    assert first.final_key == second.final_key
    assert first.report() == second.report()


def test_an_unseeded_session_draws_a_fresh_key():
    params = LinkParams(distance_km=10.0)
    first = run_session(params, 10_000_000)
    second = run_session(params, 10_000_000)
    assert first.final_key_bits > 0
    assert first.final_key[:16] != second.final_key[:16]


def test_too_few_pulses_abort_without_a_key():
    result = run_session(LinkParams(distance_km=100.0), 1_000_000, seed=1)
    assert result.aborted
    assert result.final_key == b""


def test_a_residual_error_after_correction_fails_verification_and_aborts(monkeypatch):
    real_cascade = session_module.cascade

    def leave_one_error(alice, bob, qber, rng):
        result = real_cascade(alice, bob, qber, rng)
        result.corrected[0] ^= 1
        return result

    monkeypatch.setattr(session_module, "cascade", leave_one_error)
    result = run_session(LinkParams(distance_km=10.0), 10_000_000, seed=7)
    assert result.aborted
    assert "verification" in result.abort_reason
    assert result.final_key == b""


def test_a_session_releases_about_the_key_its_expected_counts_predict():
    params = LinkParams(distance_km=10.0)
    released = [
        run_session(params, 20_000_000, seed=seed).final_key_bits for seed in range(3)
    ]
    expected = expected_key_bits(params, 20_000_000, ec_efficiency=1.07)
    assert abs(sum(released) / 3 / expected - 1.0) < 0.15


@pytest.mark.parametrize(("km", "pulses"), [(10.0, 20_000_000), (50.0, 20_000_000)])
def test_the_default_weak_decoy_is_near_the_best_at_the_links_block_size(km, pulses):
    # A smaller nu tightens the asymptotic bound but leaves fewer decoy clicks;
    # at the block size a link runs (QkdLink.pulses_per_run) 0.1 is near the best.
    by_nu = {
        nu: expected_key_bits(LinkParams(distance_km=km, decoy_mu=nu), pulses)
        for nu in (0.02, 0.03, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.3)
    }
    assert by_nu[0.1] >= 0.95 * max(by_nu.values())
    assert by_nu[0.1] > 0
