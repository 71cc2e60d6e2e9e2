"""Cascade error correction (Brassard-Salvail 1993) with the Yan et al. schedule.

Alice and Bob are emulated in one process, but Bob only ever learns Alice's bits
through parities she discloses; every disclosed parity is counted as leaked.
Parities that follow from earlier disclosures (the sibling of a half in a binary
search, or a sub-block asked again in a later cascade step) are free, because an
eavesdropper can compute them too.

Schedule ("yanetal" in cascade-cpp, "Cascade opt. (2)" in Martinez-Mateo et al.,
Demystifying the information reconciliation protocol Cascade, 2015): first block
0.80/QBER, second five times larger, then eight passes of half the frame, each
pass after the first on a fresh public random permutation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .decoy import binary_entropy

MIN_QBER = 1e-3  # below this the first block would be longer than useful frames
PASSES = 16


@dataclass(frozen=True, eq=False)
class CascadeResult:
    """Bob's corrected bits and what reconciliation cost."""

    corrected: np.ndarray
    leaked_bits: int
    flipped_bits: int
    block_sizes: tuple[int, ...]
    disclosed: tuple[tuple[int, int, int], ...]  # (pass, start, end) Alice revealed

    def efficiency(self, qber: float) -> float:
        """f = leaked / (n h(qber)); 1.0 is the Shannon limit."""
        ideal = self.corrected.size * binary_entropy(qber)
        return self.leaked_bits / ideal if ideal > 0 else math.inf


def block_sizes(qber: float, n: int, passes: int = PASSES) -> tuple[int, ...]:
    """Yan et al.: k1 = ceil(0.80 / Q), k2 = 5 k1, then n / 2 (all capped at n)."""
    k1 = math.ceil(0.80 / max(qber, MIN_QBER))
    sizes = [k1, 5 * k1] + [n // 2] * (passes - 2)
    return tuple(max(1, min(k, n)) for k in sizes)


class _Pass:
    """One Cascade pass: a permutation, its block size and the odd blocks."""

    def __init__(self, alice: np.ndarray, bob: np.ndarray, perm: np.ndarray, k: int):
        self.perm = perm.astype(np.int32)
        self.position = np.empty_like(self.perm)
        self.position[self.perm] = np.arange(perm.size, dtype=np.int32)
        self.k = k
        self.bob = bob[perm].astype(bool)
        # Alice's prefix parities: any range parity in O(1). Only Alice's side
        # uses them; Bob's parities always come from his current bits.
        self.alice_prefix = np.concatenate(
            ([False], np.logical_xor.accumulate(alice[perm].astype(bool)))
        )
        self.odd: set[int] = set()

    def block(self, index: int) -> tuple[int, int]:
        return index * self.k, min((index + 1) * self.k, self.perm.size)

    def alice_parity(self, start: int, end: int) -> bool:
        return bool(self.alice_prefix[end] ^ self.alice_prefix[start])

    def bob_parity(self, start: int, end: int) -> bool:
        return bool(np.count_nonzero(self.bob[start:end]) & 1)


class _Reconciliation:
    """State shared by all passes of one Cascade run."""

    def __init__(self, alice: np.ndarray, bob: np.ndarray, rng: np.random.Generator):
        self.alice = alice
        self.bob = bob.astype(np.uint8, copy=True)
        self.rng = rng
        self.passes: list[_Pass] = []
        self.known: dict[tuple[int, int, int], bool] = {}
        self.disclosed: list[tuple[int, int, int]] = []
        self.leaked = 0
        self.flipped = 0

    def disclose(self, p: int, start: int, end: int) -> bool:
        """Alice's parity of a range of pass p; counted once, when first revealed."""
        key = (p, start, end)
        if key not in self.known:
            self.known[key] = self.passes[p].alice_parity(start, end)
            self.disclosed.append(key)
            self.leaked += 1
        return self.known[key]

    def start_pass(self, k: int) -> None:
        n = self.bob.size
        perm = np.arange(n) if not self.passes else self.rng.permutation(n)
        current = _Pass(self.alice, self.bob, perm, k)
        self.passes.append(current)
        p = len(self.passes) - 1
        for index in range(math.ceil(n / k)):
            start, end = current.block(index)
            if self.disclose(p, start, end) != current.bob_parity(start, end):
                current.odd.add(index)

    def settle(self) -> None:
        """Correct odd blocks, smallest blocks (earliest passes) first."""
        while True:
            pending = next((p for p, ps in enumerate(self.passes) if ps.odd), None)
            if pending is None:
                return
            # Not popped: the flip below toggles this block back to even.
            index = next(iter(self.passes[pending].odd))
            self.flip(self.binary_search(pending, *self.passes[pending].block(index)))

    def binary_search(self, p: int, start: int, end: int) -> int:
        """Halve an odd-parity range until one bit is left; return its index."""
        current = self.passes[p]
        parity = self.disclose(p, start, end)
        while end - start > 1:
            mid = (start + end) // 2
            left = self.disclose(p, start, mid)
            # The right half's parity follows from the parent's: free to Eve too.
            self.known.setdefault((p, mid, end), parity ^ left)
            if left != current.bob_parity(start, mid):
                end, parity = mid, left
            else:
                start, parity = mid, parity ^ left
        return int(current.perm[start])

    def flip(self, bit: int) -> None:
        """Correct one bit; every pass's block holding it changes parity."""
        self.bob[bit] ^= 1
        self.flipped += 1
        for current in self.passes:
            position = current.position[bit]
            current.bob[position] = not current.bob[position]
            current.odd ^= {int(position) // current.k}


def cascade(
    alice: np.ndarray,
    bob: np.ndarray,
    qber: float,
    rng: np.random.Generator,
    passes: int = PASSES,
) -> CascadeResult:
    """Reconcile Bob's bits with Alice's; ``qber`` is the estimate used for k1.

    ``rng`` draws the public permutations, so a seeded generator is fine here.
    """
    if alice.shape != bob.shape or alice.ndim != 1:
        raise ValueError("alice and bob must be 1-D arrays of the same length")
    state = _Reconciliation(alice, bob, rng)
    sizes = block_sizes(qber, alice.size, passes) if alice.size else ()
    for k in sizes:
        state.start_pass(k)
        state.settle()
    disclosed = tuple(state.disclosed)
    return CascadeResult(state.bob, state.leaked, state.flipped, sizes, disclosed)
