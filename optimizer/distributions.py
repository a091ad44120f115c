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

    def _apply(self, x, fn, aux=None) -> np.ndarray:
        """fn(code, x_sub, mean_sub, sd_sub) per kind; x is (n,) or (n, k). `aux`, shaped
        like x, is passed on as fn's fifth argument when given."""
        x = np.asarray(x, dtype=float)
        col = x.ndim == 2
        out = np.empty(np.broadcast_shapes(x.shape, self.mean.shape + ((1,) if col else ())))
        xb = np.broadcast_to(x, out.shape)
        ab = None if aux is None else np.broadcast_to(np.asarray(aux, dtype=float), out.shape)
        for code, mask in self._groups():
            m = self.mean[mask]
            s = self.sd[mask]
            if col:
                m, s = m[:, None], s[:, None]
            if ab is None:
                out[mask] = fn(code, xb[mask], m, s)
            else:
                out[mask] = fn(code, xb[mask], m, s, ab[mask])
        return out

    def loss(self, r) -> np.ndarray:
        """b(r) = E (v - r)^+, units."""
        return self._apply(r, _loss)

    def survival(self, r) -> np.ndarray:
        """P(v > r)."""
        return self._apply(r, _survival)

    def density(self, r) -> np.ndarray:
        """-dS/dr by a central difference of the survival (step 1e-3 sd): the density of
        continuous kinds, the pmf averaged over r +- 0.5 for Poisson's unit steps; per unit.
        The slope Newton models need (`solve._Context.response`, `policy.
        predict_floor_prices`), not an exact density."""
        r = np.asarray(r, dtype=float)
        eps = np.where(self.discrete, 0.5, np.maximum(1e-3 * self.sd, 1e-9))
        return np.maximum((self.survival(r - eps) - self.survival(r + eps)) / (2 * eps), 0.0)

    def cdf(self, r) -> np.ndarray:
        """P(v <= r)."""
        return 1.0 - self.survival(r)

    def isf(self, q, start=None) -> np.ndarray:
        """Continuous kinds: r with P(v > r) = q (q >= 1: lower end of the support, q <= 0:
        upper end). Poisson: the smallest integer r >= 0 with P(v > r) <= q.
        Deterministic: the mean. `start` (optional, like q): a nearby answer, e.g. the
        last iteration's, where the gamma and Poisson searches begin (same result)."""
        return self._apply(q, _isf, start)

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
        x = rp / theta
        q1 = special.gammaincc(k + 1, x)
        val = m * q1 - rp * (q1 - _gamma_term(k, x))
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
        return np.where(r <= 0, 1.0, _gamma_upper(k, np.maximum(r, 0.0) / theta))
    a, c = _uniform_ends(m, s)
    return np.clip((c - r) / (c - a), 0.0, 1.0)


def _isf(code, q, m, s, start=None):
    q = np.broadcast_to(q, np.broadcast_shapes(np.shape(q), np.shape(m)))
    m = np.broadcast_to(m, q.shape)
    s = np.broadcast_to(s, q.shape)
    if code == _DETERMINISTIC:
        return np.array(m, dtype=float)
    if code == NORMAL:
        return m - s * special.ndtri(np.clip(q, 0.0, 1.0))
    if code == POISSON:
        return _poisson_isf(np.clip(q, 0.0, 1.0), m, start)
    if code == GAMMA:
        k, theta = _gamma_params(m, s)
        x0 = None if start is None else start / theta
        return theta * _gamma_upper_inverse(k, np.clip(q, 0.0, 1.0), x0=x0)
    a, c = _uniform_ends(m, s)
    return c - np.clip(q, 0.0, 1.0) * (c - a)


def _gamma_term(k, x):
    """x^k e^-x / Gamma(k + 1): the step between the regularised incomplete gammas of
    shapes k and k + 1 (Q(k, x) = Q(k + 1, x) - term, P(k, x) = P(k + 1, x) + term)."""
    with np.errstate(divide="ignore"):
        return np.exp(k * np.log(x) - x - special.gammaln(k + 1))


def _gamma_upper(k, x):
    """Q(k, x) = P(Gamma(k, 1) > x) for x >= 0.

    scipy's Q(k, x) takes about ten times longer for the small shapes that high-CV
    lead-time demand has (k < 1) than for k + 1, so it is taken one shape up and the
    closed-form step subtracted; the subtraction costs at most a few ulps times x / k,
    nothing at the service levels in use."""
    return np.maximum(special.gammaincc(k + 1, x) - _gamma_term(k, x), 0.0)


def _gamma_lower(k, x):
    """P(k, x) = P(Gamma(k, 1) <= x), as a sum of positive terms (no cancellation)."""
    return np.minimum(special.gammainc(k + 1, x) + _gamma_term(k, x), 1.0)


def _gamma_upper_inverse(k, q, rtol: float = 1e-12, max_iter: int = 100, x0=None):
    """x with Q(k, x) = q, for shape k > 0 and 0 <= q <= 1 (q >= 1 gives 0, q <= 0 inf).

    Newton's method on a log scale. The upper tail (q <= 1/2) solves log Q(k, x) = log q
    in x: log Q is concave in x for k >= 1 (log-concave density) and convex for k < 1
    (decreasing hazard), and Newton on a monotone convex or concave function converges
    from any start after at most one overshoot. The lower tail solves log P(k, e^t) =
    log (1 - q) in t = log x, concave in t because log v has a log-concave density. Each
    side is computed where it has no cancellation. Same answer as scipy's gammainccinv to
    ~1e-13 (the tests compare both), several times faster for the shapes below 1 that
    high-CV demand gives."""
    k, q = np.broadcast_arrays(np.asarray(k, dtype=float), np.asarray(q, dtype=float))
    shape = q.shape
    k, q = k.ravel(), q.ravel()
    out = np.where(q >= 1.0, 0.0, np.where(q <= 0.0, np.inf, np.nan))
    idx = np.flatnonzero(np.isnan(out))
    if idx.size == 0:
        return out.reshape(shape)
    kk, qq = k[idx], q[idx]
    lg1 = special.gammaln(kk + 1.0)  # log Gamma(k + 1)
    # root at or above the mean k: upper-tail equation in x; below: lower-tail one in t
    upper = qq <= special.gammaincc(kk + 1.0, kk) - np.exp(kk * np.log(kk) - kk - lg1)
    target = np.log(np.where(upper, qq, 1.0 - qq))
    # starts: the Wilson-Hilferty cube for k >= 1; below, the upper tail's
    # x^(k-1) e^-x / Gamma(k) ~ q and the lower tail's P ~ x^k / Gamma(k + 1)
    z = special.ndtri(1.0 - qq)
    wh = kk * np.maximum(1.0 - 1.0 / (9.0 * kk) + z / (3.0 * np.sqrt(kk)), 1e-3) ** 3
    small = np.where(upper, np.maximum(-target - lg1 + np.log(kk), 1e-3),
                     np.exp(np.minimum((target + lg1) / kk, 6.0)))
    x = np.where(kk >= 1.0, wh, np.clip(small, 1e-300, 700.0))  # Q underflows past ~745
    if x0 is not None:  # a nearby answer given: start there (same root, fewer steps)
        near = np.broadcast_to(np.asarray(x0, dtype=float), shape).ravel()[idx]
        x = np.where(np.isfinite(near) & (near > 0) & (near < 700.0 + 2.0 * kk), near, x)
    for side_rows in (np.flatnonzero(upper), np.flatnonzero(~upper)):
        if side_rows.size:
            x[side_rows] = _gamma_newton(kk[side_rows], target[side_rows], lg1[side_rows],
                                         x[side_rows], bool(upper[side_rows[0]]), rtol,
                                         max_iter)
    out[idx] = x
    return out.reshape(shape)


def _gamma_newton(k, target, lg1, x, upper: bool, rtol, max_iter):
    """Safeguarded Newton for `_gamma_upper_inverse` on one side: log Q(k, x) = target in
    x (upper) or log P(k, e^t) = target in t = log x (lower). lg1 = log Gamma(k + 1)."""
    x = x.copy()
    lo = np.zeros(x.size)  # bracket of the root, kept by the sign of the residual
    hi = np.full(x.size, np.inf)
    live = np.arange(x.size)
    incomplete = special.gammaincc if upper else special.gammainc
    sign = -1.0 if upper else 1.0
    with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
        for _ in range(max_iter):
            xl, kl = x[live], k[live]
            logx = np.log(xl)
            # x^k e^-x / Gamma(k + 1): the step from shape k + 1 to shape k
            term = np.exp(kl * logx - xl - lg1[live])
            value = incomplete(kl + 1.0, xl) + sign * term
            f = np.log(value) - target[live]
            left = (f > 0) if upper else (f < 0)
            lo[live] = np.where(left, xl, lo[live])
            hi[live] = np.where(left, hi[live], xl)
            # d log Q / dx = -(k term / x) / Q;  d log P / d log x = k term / P
            ratio = kl * term / value
            new = xl + f * xl / ratio if upper else xl * np.exp(-f / ratio)
            # a step that has converged is taken as is (the bracket has shrunk onto x)
            moving = ~(np.abs(new - xl) <= rtol * xl)
            l_, h_ = lo[live], hi[live]
            out_of = moving & (~np.isfinite(new) | (new <= l_) | (new >= h_))
            if out_of.any():
                mid = np.where(np.isfinite(h_),
                               np.where(l_ > 0, np.sqrt(l_ * h_), 0.25 * h_),
                               4.0 * np.maximum(l_, xl))
                new = np.where(out_of, mid, new)
            x[live] = new
            live = live[moving]
            if live.size == 0:
                break
    return x


def _poisson_isf(q, m, start=None):
    """Smallest integer r >= 0 with P(v > r) <= q (inf for q <= 0). Starts from the
    Cornish-Fisher quantile and steps by one until the definition holds exactly; each
    check is one Poisson tail (scipy's ppf costs about ten of them)."""
    q, m = np.broadcast_arrays(np.asarray(q, dtype=float), np.asarray(m, dtype=float))
    shape = q.shape
    q, m = q.ravel(), m.ravel()
    z = special.ndtri(np.clip(1.0 - q, 0.0, 1.0))
    with np.errstate(invalid="ignore"):
        guess = m + z * np.sqrt(m) + (z * z - 1.0) / 6.0
    r = np.floor(np.clip(np.nan_to_num(guess, nan=0.0), 0.0, 1e15))
    if start is not None:  # a nearby answer: step from there instead
        near = np.broadcast_to(np.asarray(start, dtype=float), shape).ravel()
        r = np.where(np.isfinite(near) & (near >= 0), np.floor(np.minimum(near, 1e15)), r)
    live = np.flatnonzero(q > 0)
    for _ in range(10_000):  # up: r too small while P(v > r) > q
        if live.size == 0:
            break
        high = special.pdtrc(r[live], m[live]) > q[live]
        live = live[high]
        r[live] += 1.0
    live = np.flatnonzero((q > 0) & (r > 0))
    for _ in range(10_000):  # down: r - 1 also meets the definition
        if live.size == 0:
            break
        ok = special.pdtrc(r[live] - 1.0, m[live]) <= q[live]
        live = live[ok]
        r[live] -= 1.0
        live = live[r[live] > 0]
    return np.where(q <= 0, np.inf, r).reshape(shape)


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
