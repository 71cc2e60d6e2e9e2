"""Toeplitz hashing is exact and 2-universal; the verification hash catches errors."""

from __future__ import annotations

import math

import numpy as np
import pytest

from security.qkd import privacy
from security.qkd.decoy import binary_entropy
from security.qkd.privacy import (
    EPSILON_PA,
    EPSILON_VERIFY,
    VERIFY_TAG_BITS,
    modified_toeplitz_hash,
    modified_toeplitz_hash_naive,
    modified_toeplitz_matrix,
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


@pytest.mark.parametrize(
    ("n", "m"), [(2, 1), (7, 3), (100, 1), (257, 256), (3001, 1499), (10_007, 64)]
)
def test_modified_hash_equals_the_naive_identity_toeplitz_product(n, m):
    rng = np.random.default_rng(n + m)
    bits = rng.integers(0, 2, n, dtype=np.uint8)
    seed = rng.integers(0, 2, n - 1, dtype=np.uint8)
    assert np.array_equal(
        modified_toeplitz_hash(bits, seed, m),
        modified_toeplitz_hash_naive(bits, seed, m),
    )


def test_modified_hash_is_exact_on_a_long_all_ones_block():
    n, m = 1 << 20, 1 << 18
    bits = np.ones(n, np.uint8)
    seed = np.ones(n - 1, np.uint8)
    # Every output is its own head bit plus the n - m ones of the tail.
    assert (modified_toeplitz_hash(bits, seed, m) == (1 + n - m) % 2).all()


def test_the_2d_convolution_equals_a_1d_fft_convolution_on_a_large_block():
    rng = np.random.default_rng(20)
    n, m = 300_000, 75_000
    bits = rng.integers(0, 2, n, dtype=np.uint8)
    seed = rng.integers(0, 2, n - 1, dtype=np.uint8)
    size = 1 << 19
    spectrum = np.fft.rfft(seed.astype(float), size)
    spectrum *= np.fft.rfft(bits[m:].astype(float), size)
    counts = np.rint(np.fft.irfft(spectrum, size)[n - m - 1 : n - 1]).astype(int)
    expected = bits[:m] ^ (counts & 1).astype(np.uint8)
    assert np.array_equal(modified_toeplitz_hash(bits, seed, m), expected)


def test_threaded_and_single_threaded_transforms_give_the_same_hash(monkeypatch):
    rng = np.random.default_rng(21)
    n, m = 70_000, 17_500
    bits = rng.integers(0, 2, n, dtype=np.uint8)
    seed = rng.integers(0, 2, n - 1, dtype=np.uint8)
    monkeypatch.setattr(privacy, "THREADED_FROM_POINTS", 1)
    monkeypatch.setattr(privacy.os, "sched_getaffinity", lambda pid: {0, 1})
    threaded = modified_toeplitz_hash(bits, seed, m)
    monkeypatch.setattr(privacy, "THREADED_FROM_POINTS", 1 << 62)
    assert np.array_equal(threaded, modified_toeplitz_hash(bits, seed, m))


@pytest.mark.parametrize(
    ("family", "n", "m", "seed_bits"),
    [
        (toeplitz_matrix, 5, 2, 6),
        (modified_toeplitz_matrix, 7, 3, 6),
        (modified_toeplitz_matrix, 6, 1, 5),
    ],
)
def test_every_pair_of_inputs_collides_for_at_most_a_2_to_minus_m_share_of_seeds(
    family, n, m, seed_bits
):
    # The hash is linear, so x and x' collide exactly when H (x XOR x') = 0:
    # enumerate every seed and every non-zero difference.
    seeds = np.array(list(np.ndindex(*([2] * seed_bits))), np.uint8)
    differences = np.array(list(np.ndindex(*([2] * n)))[1:], np.int64).T
    matrices = np.stack([family(seed, n, m) for seed in seeds]).astype(np.int64)
    collide = ((matrices @ differences) & 1).sum(axis=1) == 0
    assert collide.mean(axis=0).max() <= 2.0**-m


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


def test_modified_hash_rejects_a_seed_of_the_plain_length():
    with pytest.raises(ValueError, match="seed"):
        modified_toeplitz_hash(np.ones(10, np.uint8), np.ones(11, np.uint8), 2)


def test_modified_hash_refuses_to_output_as_many_bits_as_it_reads():
    with pytest.raises(ValueError, match="out_bits < n"):
        modified_toeplitz_hash(np.ones(10, np.uint8), np.ones(9, np.uint8), 10)


@pytest.mark.parametrize("n", [1 << 12, 1 << 16, 1 << 20])
def test_single_and_double_precision_give_the_same_hash(monkeypatch, n):
    rng = np.random.default_rng(n)
    m = n // 4
    bits = rng.integers(0, 2, n, dtype=np.uint8)
    seed = rng.integers(0, 2, n - 1, dtype=np.uint8)
    vector = bits[m:]
    rows, cols = privacy._grid_shape(seed.size)
    cells = privacy._cells(vector.size - 1, m, rows, cols)
    single = privacy._single_precision_parity(seed, vector, rows, cols, 1, cells)
    assert single is not None  # a random seed passes the float32 checks
    monkeypatch.setattr(privacy, "SINGLE_PRECISION_UP_TO", 0)
    double = privacy._toeplitz_parity(seed, vector, m)
    assert np.array_equal(single, double)


def test_an_all_zero_seed_fails_the_float32_checks_and_still_hashes_exactly():
    # T = 0, so the hash is the head of the key; at 2^21 bits the +-1 seed's
    # spectrum is one spike and float32 misses whole numbers by up to 1/4.
    n, m = 1 << 21, 1 << 19
    bits = np.random.default_rng(22).integers(0, 2, n, dtype=np.uint8)
    seed = np.zeros(n - 1, np.uint8)
    rows, cols = privacy._grid_shape(seed.size)
    cells = privacy._cells(n - m - 1, m, rows, cols)
    assert (
        privacy._single_precision_parity(seed, bits[m:], rows, cols, 1, cells) is None
    )
    assert np.array_equal(modified_toeplitz_hash(bits, seed, m), bits[:m])


@pytest.mark.parametrize(
    "error",
    [
        0.25,  # off whole numbers: the residual check
        1.0,  # whole, but an odd count: the parity condition
        2.0,  # whole and even, every output alike: the exact recount
    ],
)
def test_a_float32_result_that_is_off_is_refused_and_recomputed(monkeypatch, error):
    n, m = 3001, 1499
    rng = np.random.default_rng(23)
    bits = rng.integers(0, 2, n, dtype=np.uint8)
    seed = rng.integers(0, 2, n - 1, dtype=np.uint8)
    convolve = privacy._convolve
    seen = []

    def off_in_single_precision(*args):
        sums = convolve(*args)
        seen.append(sums.dtype)
        return sums + error if sums.dtype == np.float32 else sums

    monkeypatch.setattr(privacy, "_convolve", off_in_single_precision)
    assert np.array_equal(
        modified_toeplitz_hash(bits, seed, m),
        modified_toeplitz_hash_naive(bits, seed, m),
    )
    assert seen == [np.float32, np.float64]  # tried, refused, recomputed
