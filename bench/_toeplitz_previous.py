"""The Toeplitz hash as it was before issue #6, kept as the benchmark's baseline.

Plain m x n Toeplitz matrix (n + m - 1 seed bits), one-dimensional numpy.fft
convolution at the smallest 2^a 3^b 5^c length >= n + m - 1. Not used by the
product; ``bench/qkd.py`` times it beside ``security.qkd.privacy`` in the same run.
"""

from __future__ import annotations

import numpy as np


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


def previous_toeplitz_hash(
    bits: np.ndarray, seed: np.ndarray, out_bits: int
) -> np.ndarray:
    """y = T x over GF(2), T[i, j] = seed[i - j + n - 1]; FFT convolution."""
    n = bits.size
    if seed.size != n + out_bits - 1 or out_bits <= 0 or n == 0:
        raise ValueError("seed must hold n + out_bits - 1 bits, out_bits > 0")
    size = _fast_length(seed.size)
    spectrum = np.fft.rfft(seed.astype(np.float64), size)
    spectrum *= np.fft.rfft(bits.astype(np.float64), size)
    counts = np.fft.irfft(spectrum, size)[n - 1 : n - 1 + out_bits]
    rounded = np.rint(counts)
    if np.max(np.abs(counts - rounded), initial=0.0) > 0.25:
        raise ArithmeticError("FFT convolution lost integrality; refusing the hash")
    return (rounded.astype(np.int64) & 1).astype(np.uint8)
