"""Lead-time demand distributions, vectorised over SKUs.

`LeadTimeDemand` holds one distribution per SKU (kind code, mean, sd) and evaluates the
quantities the (R, Z) model needs for all SKUs at once: the first-order loss
b(r) = E (v - r)^+ (seed 004, eq. 2), the survival P(v > r) (eq. 6), its inverse, and
the loss inverse (fill-rate targets). Parameters broadcast as column vectors, so an (n, k)
array of candidate reorder points is evaluated in one call. The only loop is over the (at
most five) kinds.

Fits (units of demand): normal N(mean, sd); Poisson(mean) (sd ignored); gamma with shape
mean^2/sd^2 and scale sd^2/mean; uniform on [mean - sqrt(3) sd, mean + sqrt(3) sd]. A SKU
with sd = 0 (and not Poisson), or with mean 0, is deterministic: v = mean.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import special, stats

from optimizer.instance import GAMMA, NORMAL, POISSON, UNIFORM

_DETERMINISTIC = -1
_SQRT3 = np.sqrt(3.0)


@dataclass(frozen=True)
class LeadTimeDemand:
    kind: np.ndarray  # int8 codes
    mean: np.ndarray
    sd: np.ndarray

    @classmethod
    def build(cls, kind, mean, sd) -> "LeadTimeDemand":
        k, m, s = np.broadcast_arrays(np.asarray(kind), np.asarray(mean, dtype=float),
                                      np.asarray(sd, dtype=float))
        return cls(np.array(k, dtype=np.int8), np.array(m, dtype=float),
                   np.array(s, dtype=float))

    @property
    def deterministic(self) -> np.ndarray:
        return ((self.sd <= 0) & (self.kind != POISSON)) | (self.mean <= 0)

    @property
    def discrete(self) -> np.ndarray:
        return (self.kind == POISSON) & ~self.deterministic

    @property
    def lower(self) -> np.ndarray:
        low = np.where(self.kind == NORMAL, -np.inf, 0.0)
        low = np.where(self.kind == UNIFORM, self.mean - _SQRT3 * self.sd, low)
        return np.where(self.deterministic, self.mean, low)

    @property
    def upper(self) -> np.ndarray:
        up = np.where(self.kind == UNIFORM, self.mean + _SQRT3 * self.sd, np.inf)
        return np.where(self.deterministic, self.mean, up)

    def take(self, index) -> "LeadTimeDemand":
        return LeadTimeDemand(self.kind[index], self.mean[index], self.sd[index])

    # -- evaluation by kind --------------------------------------------------------------
    def _groups(self):
        det = self.deterministic
        codes = np.where(det, _DETERMINISTIC, self.kind)
        for code in (_DETERMINISTIC, NORMAL, POISSON, GAMMA, UNIFORM):
            mask = codes == code
            if mask.any():
                yield code, mask

    def _apply(self, x, fn) -> np.ndarray:
        """fn(code, x_sub, mean_sub, sd_sub) per kind; x is (n,) or (n, k)."""
        x = np.asarray(x, dtype=float)
        col = x.ndim == 2
        out = np.empty(np.broadcast_shapes(x.shape, self.mean.shape + ((1,) if col else ())))
        xb = np.broadcast_to(x, out.shape)
        for code, mask in self._groups():
            m = self.mean[mask]
            s = self.sd[mask]
            if col:
                m, s = m[:, None], s[:, None]
            out[mask] = fn(code, xb[mask], m, s)
        return out

    def loss(self, r) -> np.ndarray:
        """b(r) = E (v - r)^+, units."""
        return self._apply(r, _loss)

    def survival(self, r) -> np.ndarray:
        """P(v > r)."""
        return self._apply(r, _survival)

    def cdf(self, r) -> np.ndarray:
        """P(v <= r)."""
        return 1.0 - self.survival(r)

    def isf(self, q) -> np.ndarray:
        """Continuous kinds: r with P(v > r) = q (q >= 1: lower end of the support, q <= 0:
        upper end). Poisson: the smallest integer r >= 0 with P(v > r) <= q.
        Deterministic: the mean."""
        return self._apply(q, _isf)

    def loss_inverse(self, target) -> np.ndarray:
        """r with b(r) = target (> 0); Poisson: smallest integer r >= 0 with b(r) <= target.
        Targets at or above b(lower end) give the lower end (never below 0 for Poisson)."""
        return self._apply(target, _loss_inverse)


def _uniform_ends(m, s):
    return m - _SQRT3 * s, m + _SQRT3 * s


def _gamma_params(m, s):
    return m * m / (s * s), s * s / m


def _loss(code, r, m, s):
    if code == _DETERMINISTIC:
        return np.maximum(m - r, 0.0)
    if code == NORMAL:
        z = (r - m) / s
        return s * (np.exp(-0.5 * z * z) / np.sqrt(2 * np.pi) - z * special.ndtr(-z))
    if code == POISSON:
        # integer-valued v: E (v - r)^+ = m P(v >= f) - r P(v > f) ... written for real r:
        # with f = floor(r): E (v - r)^+ = sum_{k > f} (k - r) p_k = m P(v >= f) - r P(v > f)
        f = np.floor(r)
        below = r < 0
        f = np.where(below, 0.0, f)
        val = m * special.pdtrc(f - 1, m) - r * special.pdtrc(f, m)
        # pdtrc(k, m) = P(v > k) for k >= 0; P(v >= 0) = 1
        val = np.where(f - 1 < 0, m - r * special.pdtrc(f, m), val)
        return np.where(below, m - r, val)
    if code == GAMMA:
        k, theta = _gamma_params(m, s)
        rp = np.maximum(r, 0.0)
        val = m * special.gammaincc(k + 1, rp / theta) - rp * special.gammaincc(k, rp / theta)
        return np.where(r <= 0, m - r, val)
    a, c = _uniform_ends(m, s)
    inside = (c - r) ** 2 / (2 * (c - a))
    return np.where(r <= a, m - r, np.where(r >= c, 0.0, inside))


def _survival(code, r, m, s):
    if code == _DETERMINISTIC:
        return (r < m).astype(float)
    if code == NORMAL:
        return special.ndtr(-(r - m) / s)
    if code == POISSON:
        f = np.floor(r)
        return np.where(r < 0, 1.0, special.pdtrc(np.maximum(f, 0.0), m))
    if code == GAMMA:
        k, theta = _gamma_params(m, s)
        return np.where(r <= 0, 1.0, special.gammaincc(k, np.maximum(r, 0.0) / theta))
    a, c = _uniform_ends(m, s)
    return np.clip((c - r) / (c - a), 0.0, 1.0)


def _isf(code, q, m, s):
    q = np.broadcast_to(q, np.broadcast_shapes(np.shape(q), np.shape(m)))
    m = np.broadcast_to(m, q.shape)
    s = np.broadcast_to(s, q.shape)
    if code == _DETERMINISTIC:
        return np.array(m, dtype=float)
    if code == NORMAL:
        return m - s * special.ndtri(np.clip(q, 0.0, 1.0))
    if code == POISSON:
        return _poisson_isf(np.clip(q, 0.0, 1.0), m)
    if code == GAMMA:
        k, theta = _gamma_params(m, s)
        qq = np.clip(q, 0.0, 1.0)
        return np.where(qq >= 1.0, 0.0, theta * special.gammainccinv(k, qq))
    a, c = _uniform_ends(m, s)
    return c - np.clip(q, 0.0, 1.0) * (c - a)


def _poisson_isf(q, m):
    """Smallest integer r >= 0 with P(v > r) <= q, i.e. P(v <= r) >= 1 - q: the Poisson
    quantile at 1 - q (scipy's ppf: the continuous inverse of the cdf in k, then one
    integer correction). 1 - q loses nothing for the q >= 1e-12 that service levels use."""
    r = stats.poisson.ppf(1.0 - q, m)
    return np.where(q <= 0, np.inf, np.maximum(r, 0.0))


def _loss_inverse(code, t, m, s):
    t = np.broadcast_to(np.asarray(t, dtype=float), np.broadcast_shapes(np.shape(t), np.shape(m)))
    m = np.broadcast_to(m, t.shape)
    s = np.broadcast_to(s, t.shape)
    if code == _DETERMINISTIC:
        return np.where(t > 0, m - t, m)
    if code == UNIFORM:
        a, c = _uniform_ends(m, s)
        inside = c - np.sqrt(2 * (c - a) * np.maximum(t, 0.0))
        return np.where(t >= m - a, m - t, inside)
    if code == POISSON:
        lo = np.zeros(t.shape)
        hi = np.ceil(m + 10 * np.sqrt(m) + 10)
        while True:  # make sure hi satisfies b(hi) <= t
            bad = _loss(POISSON, hi, m, s) > t
            if not bad.any():
                break
            hi = np.where(bad, hi * 2 + 1, hi)
        ok0 = _loss(POISSON, lo, m, s) <= t
        for _ in range(200):  # integer bisection: b decreasing
            if np.all(hi - lo <= 1):
                break
            mid = np.floor((lo + hi) / 2)
            okm = _loss(POISSON, mid, m, s) <= t
            hi = np.where(okm, mid, hi)
            lo = np.where(okm, lo, mid)
        return np.where(ok0, 0.0, hi)
    # normal / gamma: Newton on b(r) - t with b' = -P(v > r), safeguarded by a bracket
    lo = np.where(code == NORMAL, m - 40 * s, 0.0) * np.ones(t.shape)
    hi = m + 40 * s
    r = np.clip(m, lo, hi)
    for _ in range(100):
        f = _loss(code, r, m, s) - t
        g = _survival(code, r, m, s)
        lo = np.where(f > 0, r, lo)
        hi = np.where(f > 0, hi, r)
        with np.errstate(divide="ignore", invalid="ignore"):
            step = np.where(g > 1e-300, f / g, np.inf)
        nr = r + step
        nr = np.where((nr <= lo) | (nr >= hi) | ~np.isfinite(nr), 0.5 * (lo + hi), nr)
        if np.all(np.abs(nr - r) <= 1e-12 * np.maximum(np.abs(r), 1.0)):
            r = nr
            break
        r = nr
    if code == GAMMA:
        r = np.where(t >= m, m - t, r)  # at or below 0 the loss is linear: m - r
    return r
