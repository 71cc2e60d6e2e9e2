"""Toeplitz hashing is exact and the verification hash catches errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from security.qkd.decoy import binary_entropy
from security.qkd.privacy import (
    EPSILON_PA,
    EPSILON_VERIFY,
    VERIFY_TAG_BITS,
    random_bits,
    secure_length,
    toeplitz_hash,
    toeplitz_hash_naive,
    toeplitz_matrix,
    verification_tag,
)


@pytest.mark.parametrize(("n", "m"), [(1, 1), (7, 3), (257, 256), (3001, 1499)])
def test_fft_hash_equals_the_naive_gf2_product(n, m):
    rng = np.random.default_rng(n)
    bits = rng.integers(0, 2, n, dtype=np.uint8)
    seed = rng.integers(0, 2, n + m - 1, dtype=np.uint8)
    assert np.array_equal(
        toeplitz_hash(bits, seed, m), toeplitz_hash_naive(bits, seed, m)
    )


def test_fft_hash_is_exact_on_a_long_all_ones_block():
    # All ones maximise every convolution count: the hardest case for rounding.
    n, m = 200_000, 512
    bits = np.ones(n, np.uint8)
    seed = np.ones(n + m - 1, np.uint8)
    assert (toeplitz_hash(bits, seed, m) == n % 2).all()


def test_the_matrix_is_toeplitz():
    seed = np.arange(6)
    matrix = toeplitz_matrix(seed, n=4, out_bits=3)
    assert (matrix[1:, 1:] == matrix[:-1, :-1]).all()


def test_verification_hash_catches_a_single_flipped_bit_anywhere():
    rng = np.random.default_rng(9)
    bits = rng.integers(0, 2, 5000, dtype=np.uint8)
    seed = random_bits(bits.size + VERIFY_TAG_BITS - 1)
    tag = verification_tag(bits, seed)
    for position in range(0, 5000, 97):
        flipped = bits.copy()
        flipped[position] ^= 1
        assert not np.array_equal(verification_tag(flipped, seed), tag)


def test_key_length_follows_the_stated_bound():
    length = secure_length(10_000, 0.05, 3000)
    expected = (
        10_000 * (1 - binary_entropy(0.05))
        - 3000
        - math.log2(2 / EPSILON_VERIFY)
        - 2 * math.log2(1 / EPSILON_PA)
    )
    assert length == math.floor(expected)


def test_key_length_is_zero_when_the_bound_is_negative():
    assert secure_length(1000, 0.2, 900) == 0


def test_cryptographic_bits_differ_between_calls_and_are_bits():
    first, second = random_bits(4096), random_bits(4096)
    assert set(np.unique(first)) <= {0, 1}
    assert not np.array_equal(first, second)


def test_it_rejects_a_seed_of_the_wrong_length():
    with pytest.raises(ValueError, match="seed"):
        toeplitz_hash(np.ones(10, np.uint8), np.ones(10, np.uint8), 2)
