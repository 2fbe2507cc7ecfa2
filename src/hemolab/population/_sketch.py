"""Bounded-memory, mergeable quantiles of trajectories: one log-binned sketch per output time.

A population of 10⁵–10⁶ patients cannot keep every trajectory to compute its median and 90 %
band at each time. ``BandSketch`` keeps, for each output time, counts in logarithmic bins
(DDSketch, Masson et al., VLDB 2019): a value ``x > 0`` goes to bin ``ceil(log_γ x)`` with
``γ = (1+α)/(1−α)``, so the quantile it returns is within relative error ``α`` of the exact
lower-rank quantile. Negative values use a mirrored store and exact zeros a counter. Bins more
than ``max_bins`` below the largest are collapsed into the lowest kept bin (values 10⁻¹² of the
peak, such as a washed-out drug amount, are not worth bins). Sketches of chunks add up exactly,
so serial, chunked and distributed runs give the same bands.

Why not a library: ``ddsketch`` adds values one Python call at a time (10⁷ values per
population); this is vectorised over a chunk with ``np.add.at``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["BandSketch"]


class _Store:
    """Counts per (time, bin key) for values of one sign, keys in ``[offset, offset+width)``."""

    def __init__(self, n_times: int, max_bins: int):
        self.n_times = n_times
        self.max_bins = max_bins
        self.offset = 0
        self.counts = np.zeros((n_times, 0), dtype=np.int64)

    def add(self, rows: np.ndarray, keys: np.ndarray) -> None:
        if keys.size == 0:
            return
        lo, hi = int(keys.min()), int(keys.max())
        if self.counts.shape[1] == 0:
            self.offset = lo
        new_lo = min(lo, self.offset)
        new_hi = max(hi, self.offset + self.counts.shape[1] - 1)
        new_lo = max(new_lo, new_hi - self.max_bins + 1)  # collapse the lowest bins
        self._reshape(new_lo, new_hi)
        k = np.clip(keys, self.offset, None) - self.offset
        np.add.at(self.counts, (rows, k), 1)

    def _reshape(self, lo: int, hi: int) -> None:
        width = hi - lo + 1
        if lo == self.offset and width == self.counts.shape[1]:
            return
        out = np.zeros((self.n_times, width), dtype=np.int64)
        if self.counts.shape[1]:
            old_keys = np.arange(self.counts.shape[1]) + self.offset
            dest = np.clip(old_keys, lo, hi) - lo
            for j, d in enumerate(dest):
                out[:, d] += self.counts[:, j]
        self.offset, self.counts = lo, out

    def merge(self, other: _Store) -> None:
        if other.counts.shape[1] == 0:
            return
        keys = np.arange(other.counts.shape[1]) + other.offset
        if self.counts.shape[1] == 0:
            self.offset = int(keys[0])
        lo = min(self.offset, int(keys[0]))
        hi = max(self.offset + self.counts.shape[1] - 1, int(keys[-1]))
        lo = max(lo, hi - self.max_bins + 1)
        self._reshape(lo, hi)
        dest = np.clip(keys, lo, hi) - lo
        for j, d in enumerate(dest):
            self.counts[:, d] += other.counts[:, j]


class BandSketch:
    """Quantiles over patients at each of ``n_times`` output times, in bounded memory.

    Parameters
    ----------
    n_times
        Output times (columns of the ``(patients, n_times)`` arrays given to :meth:`add`).
    relative_accuracy
        ``α``: every returned quantile is within ``α·|q|`` of the exact lower-rank quantile
        (``numpy.quantile(..., method="lower")``), for values within ``max_bins`` bins
        (``γ^max_bins`` ≈ 10¹⁷ at the defaults) of the largest magnitude seen.
    """

    def __init__(self, n_times: int, relative_accuracy: float = 0.005, max_bins: int = 4096):
        if not 0 < relative_accuracy < 1:
            raise ValueError("relative_accuracy must lie in (0, 1)")
        self.n_times = n_times
        self.alpha = relative_accuracy
        self.gamma = (1 + relative_accuracy) / (1 - relative_accuracy)
        self._log_gamma = math.log(self.gamma)
        self.pos = _Store(n_times, max_bins)
        self.neg = _Store(n_times, max_bins)
        self.zeros = np.zeros(n_times, dtype=np.int64)
        self.count = np.zeros(n_times, dtype=np.int64)

    def add(self, values: np.ndarray) -> None:
        """Add a ``(patients, n_times)`` block; NaN (failed patients, padding) is skipped."""
        v = np.asarray(values, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != self.n_times:
            raise ValueError(f"expected (patients, {self.n_times}) values, got {v.shape}")
        rows = np.broadcast_to(np.arange(self.n_times), v.shape)
        finite = np.isfinite(v)
        self.count += finite.sum(axis=0)
        for store, sel in ((self.pos, finite & (v > 0)), (self.neg, finite & (v < 0))):
            x = np.abs(v[sel])
            keys = np.ceil(np.log(x) / self._log_gamma).astype(np.int64)
            store.add(rows[sel], keys)
        self.zeros += (finite & (v == 0)).sum(axis=0)

    def merge(self, other: BandSketch) -> BandSketch:
        """Add another sketch of the same shape and accuracy (e.g. from another worker)."""
        if other.n_times != self.n_times or other.gamma != self.gamma:
            raise ValueError("sketches differ in times or accuracy")
        self.pos.merge(other.pos)
        self.neg.merge(other.neg)
        self.zeros += other.zeros
        self.count += other.count
        return self

    def quantile(self, q: float) -> np.ndarray:
        """``(n_times,)`` estimates of the ``q`` quantile (NaN where no value was added)."""
        if not 0 <= q <= 1:
            raise ValueError("q must lie in [0, 1]")
        out = np.full(self.n_times, np.nan)
        for t in range(self.n_times):
            n = int(self.count[t])
            if n == 0:
                continue
            rank = math.floor(q * (n - 1))  # 0-based lower rank
            neg = self.neg.counts[t][::-1]  # most negative first
            c_neg = int(neg.sum())
            if rank < c_neg:
                j = int(np.searchsorted(np.cumsum(neg), rank, side="right"))
                key = self.neg.offset + self.neg.counts.shape[1] - 1 - j
                out[t] = -self._value(key)
            elif rank < c_neg + int(self.zeros[t]):
                out[t] = 0.0
            else:
                r = rank - c_neg - int(self.zeros[t])
                j = int(np.searchsorted(np.cumsum(self.pos.counts[t]), r, side="right"))
                out[t] = self._value(self.pos.offset + j)
        return out

    def _value(self, key: int) -> float:
        """Representative of bin ``key``: within relative α of every value in the bin."""
        return 2.0 * self.gamma**key / (self.gamma + 1.0)

    @property
    def nbytes(self) -> int:
        return int(self.pos.counts.nbytes + self.neg.counts.nbytes)
