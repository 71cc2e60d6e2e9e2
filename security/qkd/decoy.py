"""Decoy-state theory, bounds and key rates (pure functions).

Formulas: GLLP secure rate with the vacuum + weak decoy bounds of Ma, Qi, Zhao and
Lo, PRA 72, 012326 (2005). All rates are bits per signal pulse.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .channel import LinkParams, transmittance

E0 = 0.5  # error rate of a dark count: the bit is random
SIFT_FACTOR = 0.5  # q: BB84 with equal basis probabilities keeps half the clicks
THEORY_EC_EFFICIENCY = 1.22  # f used by the decoy-state literature for theory curves


def binary_entropy(p: float) -> float:
    """h(p) in bits; h(p) = h(1 - p) and h is taken as 1 beyond 1/2 (no key)."""
    if p <= 0.0:
        return 0.0
    if p >= 0.5:
        return 1.0
    return -p * math.log2(p) - (1.0 - p) * math.log2(1.0 - p)


def gain(eta: float, intensity: float, y0: float) -> float:
    """Q = Y0 + 1 - exp(-eta * intensity): chance that a pulse gives a click."""
    return y0 + 1.0 - math.exp(-eta * intensity)


def error_gain(eta: float, intensity: float, y0: float, misalignment: float) -> float:
    """E * Q = e0 * Y0 + e_d * (1 - exp(-eta * intensity))."""
    return E0 * y0 + misalignment * (1.0 - math.exp(-eta * intensity))


@dataclass(frozen=True)
class Observed:
    """Gain and QBER of one intensity, measured or computed from theory."""

    gain: float
    qber: float

    @property
    def error_gain(self) -> float:
        return self.gain * self.qber


def theoretical_observed(
    params: LinkParams, distance_km: float
) -> tuple[Observed, ...]:
    """Gain and QBER the model predicts for (signal, decoy, vacuum)."""
    eta = transmittance(params, distance_km)
    y0, ed = params.dark_count_prob, params.misalignment
    result = []
    for intensity in params.intensities:
        q = gain(eta, intensity, y0)
        result.append(Observed(q, error_gain(eta, intensity, y0, ed) / q))
    return tuple(result)


@dataclass(frozen=True)
class DecoyBounds:
    """Lower bound on the single-photon yield and upper bound on its error rate."""

    y0: float
    y1_lower: float
    e1_upper: float
    q1_lower: float

    @property
    def usable(self) -> bool:
        return self.y1_lower > 0.0 and self.e1_upper < 0.5


def decoy_bounds(
    mu: float,
    nu: float,
    q_mu: float,
    q_nu: float,
    error_gain_nu: float,
    y0: float,
    y0_for_errors: float | None = None,
    error_gain_mu: float | None = None,
) -> DecoyBounds:
    """Vacuum + weak decoy bounds (Ma-Qi-Zhao-Lo 2005, Y1^L and e1^U).

    Each input enters with a fixed sign, so a conservative caller passes the
    upper end of its confidence interval for ``q_mu``, ``error_gain_nu``,
    ``error_gain_mu`` and ``y0``, and the lower end for ``q_nu`` and
    ``y0_for_errors`` (which defaults to ``y0``). With ``error_gain_mu`` the
    signal's errors give a second bound, e1 <= (E_mu Q_mu e^mu - e0 Y0)/(Y1 mu),
    and the smaller is kept: with finite data the signal's many more clicks
    often make it the tighter one.
    """
    y0_e = y0 if y0_for_errors is None else y0_for_errors
    y1 = (
        mu
        / (mu * nu - nu * nu)
        * (
            q_nu * math.exp(nu)
            - q_mu * math.exp(mu) * nu * nu / (mu * mu)
            - (mu * mu - nu * nu) / (mu * mu) * y0
        )
    )
    if y1 <= 0.0:
        return DecoyBounds(y0, 0.0, 0.5, 0.0)
    e1 = (error_gain_nu * math.exp(nu) - E0 * y0_e) / (y1 * nu)
    if error_gain_mu is not None:
        e1 = min(e1, (error_gain_mu * math.exp(mu) - E0 * y0_e) / (y1 * mu))
    e1 = min(max(e1, 0.0), 0.5)
    return DecoyBounds(y0, y1, e1, y1 * mu * math.exp(-mu))


def secure_rate(
    bounds: DecoyBounds, signal: Observed, ec_efficiency: float, clip: bool = True
) -> float:
    """GLLP: R = q * {Q1 [1 - h(e1)] - Q f h(E)}; negative means no key.

    ``clip=False`` keeps the sign, which lets a caller interpolate where the
    rate crosses zero.
    """
    privacy = bounds.q1_lower * (1.0 - binary_entropy(bounds.e1_upper))
    correction = signal.gain * ec_efficiency * binary_entropy(signal.qber)
    rate = SIFT_FACTOR * (privacy - correction)
    return max(0.0, rate) if clip else rate


def seed_formula_rate(signal: Observed) -> float:
    """K = Q [1 - h(e)], the seed paper's formula.

    Reported for comparison only. It ignores multi-photon pulses and the cost of
    error correction, so it still "finds" key at 25 % QBER; nothing is ever
    released on its strength.
    """
    return signal.gain * (1.0 - binary_entropy(signal.qber))


def theory_rate(
    params: LinkParams,
    distance_km: float,
    ec_efficiency: float = THEORY_EC_EFFICIENCY,
) -> float:
    """Infinite-decoy GLLP rate: exact Y1 and e1 from the channel model."""
    eta = transmittance(params, distance_km)
    y0, mu = params.dark_count_prob, params.mu
    y1 = y0 + eta
    e1 = (E0 * y0 + params.misalignment * eta) / y1
    exact = DecoyBounds(y0, y1, e1, y1 * mu * math.exp(-mu))
    signal = theoretical_observed(params, distance_km)[0]
    return secure_rate(exact, signal, ec_efficiency)


def vacuum_weak_rate(
    params: LinkParams,
    distance_km: float,
    ec_efficiency: float = THEORY_EC_EFFICIENCY,
) -> float:
    """Asymptotic rate with the vacuum + weak decoy bounds from theoretical gains."""
    signal, decoy, vacuum = theoretical_observed(params, distance_km)
    bounds = decoy_bounds(
        params.mu,
        params.decoy_mu,
        signal.gain,
        decoy.gain,
        decoy.error_gain,
        vacuum.gain,
    )
    return secure_rate(bounds, signal, ec_efficiency)


def plob_bound(eta: float) -> float:
    """Repeaterless PLOB capacity -log2(1 - eta), bits per channel use."""
    return -math.log2(1.0 - eta)


def max_distance(
    rate_at: Callable[[float], float], low_km: float = 0.0, high_km: float = 300.0
) -> float:
    """Largest distance with a positive rate, by bisection (rate falls with L)."""
    if rate_at(low_km) <= 0.0:
        return low_km
    for _ in range(60):
        mid = 0.5 * (low_km + high_km)
        low_km, high_km = (mid, high_km) if rate_at(mid) > 0.0 else (low_km, mid)
    return low_km


@dataclass(frozen=True, eq=False)
class KeyRateSeries:
    """Data for the key-rate plot: distances (km) and rates per pulse."""

    distance_km: np.ndarray
    theory: np.ndarray
    vacuum_weak: np.ndarray
    plob: np.ndarray
    theory_max_distance_km: float

    def as_lists(self) -> dict[str, list[float] | float]:
        return {
            "distance_km": self.distance_km.tolist(),
            "theory": self.theory.tolist(),
            "vacuum_weak": self.vacuum_weak.tolist(),
            "plob": self.plob.tolist(),
            "theory_max_distance_km": self.theory_max_distance_km,
        }


def key_rate_series(
    params: LinkParams | None = None, max_km: float = 200.0, points: int = 201
) -> KeyRateSeries:
    """Theory curve, vacuum + weak decoy curve and PLOB bound against distance."""
    params = params or LinkParams()
    distances = np.linspace(0.0, max_km, points)
    theory = [theory_rate(params, d) for d in distances]
    weak = [vacuum_weak_rate(params, d) for d in distances]
    plob = [plob_bound(transmittance(params, d)) for d in distances]
    limit = max_distance(lambda d: theory_rate(params, d))
    return KeyRateSeries(
        distances, np.array(theory), np.array(weak), np.array(plob), limit
    )
