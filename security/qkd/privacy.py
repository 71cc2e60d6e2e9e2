"""Privacy amplification and key verification with Toeplitz hashing.

A random m x n Toeplitz matrix over GF(2), set by n + m - 1 seed bits, is a
2-universal family: for any two different inputs the hashes collide with
probability exactly 2^-m. It serves twice: as the extractor of privacy
amplification (leftover hash lemma) and, with a fresh 64-bit-output seed, as the
verification hash after error correction (epsilon_verify = 2^-64).

The product T x is a convolution, computed with a float64 FFT and rounded. Exact:
inputs are 0/1, so by Percival's bound (Math. Comp. 2003) the worst-case error
of the convolution is below ||s|| ||x|| * 6 log2(N) * 2^-53 <= N * 6 log2(N) * 2^-53,
about 1e-7 for N = 2^24 bits, far from the 0.5 that would change a rounded
count; we still check every residual and refuse a result that is not integral.

Randomness: seeds that shape key material come from ``secrets`` unless the
caller passes a seeded ``numpy.random.Generator`` for a reproducible run, which
is then no longer secret.
"""

from __future__ import annotations

import math
import secrets

import numpy as np

from .decoy import binary_entropy

VERIFY_TAG_BITS = 64
EPSILON_VERIFY = 2.0**-VERIFY_TAG_BITS
EPSILON_PA = 1e-12  # Kiktenko et al. 2016 use the same order for industrial stacks


def random_bits(count: int, rng: np.random.Generator | None = None) -> np.ndarray:
    """``count`` uniform bits: cryptographic unless a generator is given."""
    if rng is not None:
        return rng.integers(0, 2, count, dtype=np.uint8)
    raw = np.frombuffer(secrets.token_bytes(math.ceil(count / 8)), np.uint8)
    return np.unpackbits(raw)[:count]


def _fast_length(n: int) -> int:
    """Smallest 2^a 3^b 5^c >= n: the FFT is several times faster there."""
    best = 1 << max(n - 1, 0).bit_length()
    power5 = 1
    while power5 < best:
        power35 = power5
        while power35 < best:
            candidate = power35
            while candidate < n:
                candidate *= 2
            best = min(best, candidate)
            power35 *= 3
        power5 *= 5
    return best


def toeplitz_hash(bits: np.ndarray, seed: np.ndarray, out_bits: int) -> np.ndarray:
    """y = T x over GF(2), T[i, j] = seed[i - j + n - 1]; FFT convolution."""
    n = bits.size
    if seed.size != n + out_bits - 1 or out_bits <= 0 or n == 0:
        raise ValueError("seed must hold n + out_bits - 1 bits, out_bits > 0")
    # A circular convolution of length >= n + m - 1 suffices: wrap-around only
    # reaches outputs below index n - 1, and we read n - 1 .. n + m - 2.
    size = _fast_length(seed.size)
    spectrum = np.fft.rfft(seed.astype(np.float64), size)
    spectrum *= np.fft.rfft(bits.astype(np.float64), size)
    counts = np.fft.irfft(spectrum, size)[n - 1 : n - 1 + out_bits]
    rounded = np.rint(counts)
    if np.max(np.abs(counts - rounded), initial=0.0) > 0.25:
        raise ArithmeticError("FFT convolution lost integrality; refusing the hash")
    return (rounded.astype(np.int64) & 1).astype(np.uint8)


def toeplitz_matrix(seed: np.ndarray, n: int, out_bits: int) -> np.ndarray:
    """The explicit m x n matrix, for tests and the naive baseline."""
    rows = np.arange(out_bits)[:, None]
    cols = np.arange(n)[None, :]
    return seed[rows - cols + n - 1]


def toeplitz_hash_naive(
    bits: np.ndarray, seed: np.ndarray, out_bits: int
) -> np.ndarray:
    """Reference GF(2) matrix-vector product, O(n m)."""
    matrix = toeplitz_matrix(seed, bits.size, out_bits).astype(np.int64)
    return ((matrix @ bits.astype(np.int64)) & 1).astype(np.uint8)


def verification_tag(bits: np.ndarray, seed: np.ndarray) -> np.ndarray:
    """64-bit universal-hash tag; the seed must be fresh for every comparison."""
    return toeplitz_hash(bits, seed, VERIFY_TAG_BITS)


def secure_length(
    n1_lower: float,
    e1_upper: float,
    leaked_ec_bits: int,
    epsilon_verify: float = EPSILON_VERIFY,
    epsilon_pa: float = EPSILON_PA,
) -> int:
    """l = n1 [1 - h(e1)] - leak_EC - log2(2/eps_verify) - 2 log2(1/eps_PA)."""
    length = (
        n1_lower * (1.0 - binary_entropy(e1_upper))
        - leaked_ec_bits
        - math.log2(2.0 / epsilon_verify)
        - 2.0 * math.log2(1.0 / epsilon_pa)
    )
    return max(0, math.floor(length))
