"""Fixed-bucket latency histograms, mergeable by addition, so that any window's p50/p95/p99 come
from rollups rather than raw rows.

Buckets (milliseconds): bucket 0 holds [0, 1); bucket i (1..80) holds [2^((i-1)/4), 2^(i/4)) — four
per doubling up to 2^20 ms (17.5 min); bucket 81 holds everything longer. A percentile is computed as
numpy's default (linear interpolation between the two closest ranks), each rank's value taken as the
geometric middle of its bucket. Error bound: every value in a bucket is within a factor 2^(1/8) of that
middle, and interpolation with non-negative weights keeps the factor, so a reported percentile is
within +9.05 % / -8.30 % of the exact one from raw values (at most 0.5 ms off below 1 ms; anything
over 17.5 min reads as 17.5 min).

Storage: a histogram is one Python int holding each bucket's count in its own 40-bit field (bucket i
at bits 40·i), stored as its little-endian bytes. Merging is integer addition — one C-speed operation
a row instead of 82 — and a field cannot carry into the next below 2^40 (10^12) requests.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

PER_DOUBLING = 4
TOP = 20  # 2^20 ms
BUCKETS = PER_DOUBLING * TOP + 2  # underflow, 80 log buckets, overflow
WIDTH = 40
MASK = (1 << WIDTH) - 1
BOUND = 2 ** (1 / (2 * PER_DOUBLING)) - 1  # +9.05 %: the documented relative error bound
# A bucket's representative value: the geometric middle of its range.
MIDDLE = [0.5] + [2 ** ((i - 0.5) / PER_DOUBLING) for i in range(1, BUCKETS - 1)] + [float(2 ** TOP)]
SHIFT = [1 << (WIDTH * i) for i in range(BUCKETS)]


def bucket(ms: float) -> int:
    if ms < 1:
        return 0
    return min(BUCKETS - 1, int(math.log2(ms) * PER_DOUBLING) + 1)


def add(hist: int, ms: float) -> int:
    """`hist` with one more value of `ms` milliseconds."""
    return hist + SHIFT[bucket(ms)]


def of(values: Iterable[float]) -> int:
    hist = 0
    for ms in values:
        hist += SHIFT[bucket(ms)]
    return hist


def to_bytes(hist: int) -> bytes:
    return hist.to_bytes((hist.bit_length() + 7) // 8, "little")


def from_bytes(raw: bytes | memoryview | None) -> int:
    return int.from_bytes(raw, "little") if raw else 0


def counts(hist: int) -> list[int]:
    return [(hist >> (WIDTH * i)) & MASK for i in range(BUCKETS)]


def percentiles(hist: int, qs: Iterable[float]) -> list[float | None]:
    """The q-quantiles (0 ≤ q ≤ 1) of a histogram; None for an empty one."""
    cs = counts(hist)
    n = sum(cs)
    qs = list(qs)
    if n == 0:
        return [None] * len(qs)
    cumulative = []
    total = 0
    for c in cs:
        total += c
        cumulative.append(total)

    def at(rank: int) -> float:  # the value of the rank-th smallest (0-based)
        for i, upto in enumerate(cumulative):
            if rank < upto:
                return MIDDLE[i]
        return MIDDLE[-1]

    out: list[float | None] = []
    for q in qs:
        pos = (n - 1) * q
        low = int(pos)
        high = min(low + 1, n - 1)
        a, b = at(low), at(high)
        out.append(a + (b - a) * (pos - low))
    return out
