"""Cascade corrects every error and counts every parity it disclosed."""

from __future__ import annotations

import math

import numpy as np
import pytest

from security.qkd.cascade import block_sizes, cascade
from security.qkd.decoy import binary_entropy


def _frame(rng: np.random.Generator, n: int, qber: float):
    alice = rng.integers(0, 2, n, dtype=np.uint8)
    bob = alice.copy()
    bob[rng.choice(n, round(qber * n), replace=False)] ^= 1
    return alice, bob


@pytest.mark.parametrize("qber", [0.01, 0.03, 0.05, 0.08, 0.1])
def test_it_leaves_no_error_in_many_random_frames(qber):
    rng = np.random.default_rng(int(qber * 1000))
    for _ in range(12):
        alice, bob = _frame(rng, 4000, qber)
        result = cascade(alice, bob, qber, rng)
        assert np.array_equal(result.corrected, alice)
        assert result.flipped_bits == round(qber * 4000)


def test_its_leak_count_is_the_number_of_parities_disclosed():
    rng = np.random.default_rng(5)
    alice, bob = _frame(rng, 10_000, 0.05)
    result = cascade(alice, bob, 0.05, rng)
    assert result.leaked_bits == len(result.disclosed)
    assert len(set(result.disclosed)) == len(result.disclosed)


def test_an_error_free_frame_leaks_only_the_top_level_block_parities():
    rng = np.random.default_rng(6)
    alice = rng.integers(0, 2, 10_000, dtype=np.uint8)
    result = cascade(alice, alice.copy(), 0.02, rng)
    expected = sum(math.ceil(10_000 / k) for k in result.block_sizes)
    assert result.leaked_bits == expected


@pytest.mark.parametrize("qber", [0.01, 0.05, 0.1])
def test_it_never_leaks_less_than_the_shannon_limit(qber):
    rng = np.random.default_rng(7)
    alice, bob = _frame(rng, 10_000, qber)
    result = cascade(alice, bob, qber, rng)
    assert result.leaked_bits >= 10_000 * binary_entropy(qber)
    assert result.efficiency(qber) < 1.2


def test_the_first_block_follows_yan_et_al():
    assert block_sizes(0.01, 10_000)[:3] == (80, 400, 5000)


def test_it_rejects_frames_of_different_lengths():
    with pytest.raises(ValueError, match="same length"):
        cascade(np.zeros(10, np.uint8), np.zeros(11, np.uint8), 0.05, None)
