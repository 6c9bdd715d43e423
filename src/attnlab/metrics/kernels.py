"""Compiled loops (numba) of the metrics and the benchmark chunk, on CPU.

:func:`fused_row`, behind :func:`attnlab.metrics.saliency.saliency_metrics`, computes everything
AUC-Judd (without jitter), shuffled AUC, KLD and SIM need, and the statistics NSS, CC and IG are
finished from, in two reads of one map and its human density: the first gives (min, max, Σ, Σ²) of
both and Σ p·q; the second, chunk by chunk while a chunk is in L1, forms both densities for SIM
and KLD and places every pixel among the sorted thresholds (the values at the fixations) for
AUC-Judd's exact counts. The torch path made ~15 whole-map passes; it stays for GPU tensors,
jittered AUC-Judd and the single metrics. Definitions are the plain ones of
:mod:`attnlab.metrics.saliency_reference`; the tests hold the two equal (and to pysaliency).
Everything is float64; KLD's logarithm is a polynomial (:func:`_log_chunk`, ~1e-13) because
libm's scalar ``log`` does not vectorise.

Below it: the dynamic programmes of the scanpath metrics one pair at a time
(:mod:`attnlab.metrics.scanpath_batch`) and the Gaussian kernel windows of the benchmark's
leave-one-out and half blurs (:mod:`attnlab.benchmark.scoring`), each the recurrence or sum of the
plain code in the same order, so the values are the same bits.

Kernels release the GIL (``nogil``) and use no threading layer of numba's own: the callers run
maps on Python threads (:func:`attnlab.metrics.maps.for_each_row`), which stay safe in the
benchmark's forked workers, where numba's OpenMP layer is not. Compiled code is cached next to
this file (``cache=True``): the first call in a fresh checkout took 11.8 s (imports included),
later processes 3.1 s.
"""

from __future__ import annotations

import math

import numba
import numpy as np
from llvmlite import ir
from numba.core import types
from numba.extending import intrinsic

# Floating-point freedoms of the passes over raw maps: reorder sums (SIMD), fuse multiply-adds,
# reciprocals. Not "nnan"/"ninf": a NaN or inf in a map must reach the sums, where the checks look
# for it. The later passes (fastmath=True) only see maps those checks passed.
FAST = {"reassoc", "contract", "nsz", "arcp", "afn"}
# Pixels per chunk of the second pass: a chunk of each map and its scratch stay in L1.
CHUNK = 1024
# Histogram keys of x = (v − min)/(max − min) ∈ [0, 1]: ⌊x·2^13⌋ plus the float32 bits of x from
# 2^-20 up, 256 keys per octave (bits >> 15). Both terms are non-decreasing in v, so their sum is;
# the first resolves maps whose values are spread evenly, the second the many near-zero pixels of
# peaked maps. A pixel whose key no threshold has is placed by one table lookup; only those sharing
# a threshold's key are compared exactly: 2.3-2.5% of the pixels of 600×800 maps with 138 OSIE
# thresholds, smooth or cubed-uniform, against 12.8% (cubed maps) with the linear term alone and 24%
# (smooth maps) with the octave term alone. The table (13,313 int32) stays in L2; 4× finer keys
# made the call slower, not faster (a 213 KiB table).
LINEAR_KEYS = 1 << 13
KEY_SHIFT = 15
KEY_BASE = (127 - 20) << 23  # float32 bits of 2^-20; smaller x adds 0
BINS = LINEAR_KEYS + (((127 << 23) - KEY_BASE) >> KEY_SHIFT)  # the key of x = 1: 13,312

_LN2 = math.log(2.0)
_SQRT2 = math.sqrt(2.0)
_EXPONENT_MAGIC = 0x4330000000000000  # bits of 2^52: (2^52 + e) − 2^52 = e, without an int→float cast


def _llvm_min_max(name):
    """LLVM's minnum/maxnum of two floats, which the loop vectoriser turns into SIMD reductions
    (numba's min/max keep Python's NaN rules and stay scalar: 3.7× slower per pass here). A NaN is
    ignored by them; the sums of the same pass still carry it to the caller."""

    @intrinsic
    def call(typingctx, a, b):
        def codegen(context, builder, signature, args):
            d = ir.DoubleType()
            fn = builder.module.declare_intrinsic(name, [d], ir.FunctionType(d, [d, d]))
            return builder.call(fn, args, fastmath=("nnan", "nsz"))

        return types.float64(types.float64, types.float64), codegen

    return call


_min = _llvm_min_max("llvm.minnum")
_max = _llvm_min_max("llvm.maxnum")
# njit options of every kernel: no GIL (maps run on Python threads), cached compilation, and
# NumPy's error model (no ZeroDivisionError branch per division, which blocks SIMD)
KERNEL = dict(nogil=True, cache=True, error_model="numpy")


@numba.njit(fastmath=FAST, **KERNEL)
def stats(p, q, has_q, out):
    """out[:9] = (min, max, Σ, Σ²) of p, the same of q (if ``has_q``), Σ p·q."""
    n = p.size
    lo, hi, s, ss = np.inf, -np.inf, 0.0, 0.0
    qlo, qhi, qs, qss, pq = np.inf, -np.inf, 0.0, 0.0, 0.0
    if has_q:
        for j in range(n):
            v, w = p[j], q[j]
            lo, hi = _min(lo, v), _max(hi, v)
            s += v
            ss += v * v
            qlo, qhi = _min(qlo, w), _max(qhi, w)
            qs += w
            qss += w * w
            pq += v * w
    else:
        for j in range(n):
            v = p[j]
            lo, hi = _min(lo, v), _max(hi, v)
            s += v
            ss += v * v
    out[0], out[1], out[2], out[3] = lo, hi, s, ss
    out[4], out[5], out[6], out[7], out[8] = qlo, qhi, qs, qss, pq


@numba.njit(fastmath=True, **KERNEL)
def _log_chunk(x, bits, exponent, n):
    """x[:n] ← ln x[:n] for positive normal x: exponent and mantissa from the bits, then
    ln m = 2 atanh((m − 1)/(m + 1)) to the s¹³ term on m ∈ [√½, √2)
    (|s| ≤ 0.172: error < 1e-13 absolute)."""
    xi = x.view(np.int64)
    ei = exponent.view(np.int64)
    for j in range(n):
        b = xi[j]
        ei[j] = _EXPONENT_MAGIC | (b >> 52)
        bits[j] = (b & 0x000FFFFFFFFFFFFF) | 0x3FF0000000000000
    mantissa = bits.view(np.float64)
    for j in range(n):
        m = mantissa[j]
        e = exponent[j] - 4503599627370496.0 - 1023.0
        if m > _SQRT2:
            m *= 0.5
            e += 1.0
        s = (m - 1.0) / (m + 1.0)
        s2 = s * s
        poly = 1.0 + s2 * (1 / 3 + s2 * (1 / 5 + s2 * (1 / 7 + s2 * (1 / 9 + s2 * (1 / 11 + s2 * (1 / 13))))))
        x[j] = e * _LN2 + 2.0 * s * poly


@numba.njit(fastmath=True, **KERNEL)
def _keys(values, start, m, lo, inv_span, scaled, keys):
    """keys[:m] ← the histogram keys of values[start:start + m] (non-decreasing in the value:
    every step rounds monotonically; the clamps catch ulps past 1 and x below 2^-20)."""
    for j in range(m):
        scaled[j] = np.float32((values[start + j] - lo) * inv_span)
    bits = scaled.view(np.int32)
    for j in range(m):
        x = scaled[j]
        keys[j] = min(np.int32(x * LINEAR_KEYS) + (max(bits[j] - KEY_BASE, 0) >> KEY_SHIFT), BINS)


@numba.njit(**KERNEL)
def _table(sorted_keys):
    """below[key] = how many thresholds have a smaller key (BINS + 2 entries: below[key + 1] −
    below[key] thresholds have this one)."""
    below = np.empty(BINS + 2, np.int32)
    k = 0
    for key in range(BINS + 2):
        below[key] = k
        while k < sorted_keys.size and sorted_keys[k] == key:
            k += 1
    return below


@numba.njit(**KERNEL)
def _rank(v, key, below, ts):
    """(#thresholds < v, #thresholds ≤ v): the table's count below v's key, then exact comparisons
    with the thresholds that share it."""
    lt = below[key]
    end = below[key + 1]
    while lt < end and ts[lt] < v:
        lt += 1
    le = lt
    while le < end and ts[le] <= v:
        le += 1
    return lt, le


@numba.njit(**KERNEL)
def _count_ranks(p, start, m, keys, below, ts, hist, shared):
    """hist[4r + j mod 4] += 1 for each pixel with r thresholds ≤ it (four interleaved copies: no
    chain of increments of one counter). Branch-free first: every pixel is counted at the rank of
    its key and, if a threshold shares the key, noted in ``shared``; those few are then moved to
    their exact rank (a branch per pixel cost ~20% more)."""
    noted = 0
    for j in range(m):
        key = keys[j]
        r = below[key]
        hist[4 * r + (j & 3)] += 1
        shared[noted] = j
        noted += below[key + 1] > r
    for k in range(noted):
        j = shared[k]
        key = keys[j]
        r, end = below[key], below[key + 1]
        v = p[start + j]
        exact = r
        while exact < end and ts[exact] <= v:
            exact += 1
        if exact != r:
            hist[4 * r + (j & 3)] -= 1
            hist[4 * exact + (j & 3)] += 1


@numba.njit(fastmath=True, **KERNEL)
def _densities(p, q, start, m, p_shift, p_scale, p_add, q_shift, q_scale, eps, qd, ratio):
    """Σ min(P, Q) over pixels start..start+m of the two densities; qd ← Q, ratio ← ε + Q/(P + ε)."""
    sim = 0.0
    for j in range(m):
        pd = (p[start + j] - p_shift) * p_scale + p_add
        d = (q[start + j] - q_shift) * q_scale
        qd[j] = d
        sim += min(pd, d)
        ratio[j] = eps + d / (pd + eps)
    return sim


@numba.njit(fastmath=True, **KERNEL)
def _dot(x, y, m):
    s = 0.0
    for j in range(m):
        s += x[j] * y[j]
    return s


@numba.njit(fastmath=FAST, **KERNEL)
def fused_row(p, q, has_q, fix_idx, fix_w, neg_idx, neg_w, kld_eps, want_kld, want_sim, want_judd, moments, out, ge):
    """One map p (flat, float64) and its human density q: ``moments`` ← :func:`stats`; ``out`` ←
    (KLD, SIM, shuffled AUC), NaN where not wanted or undefined; ``ge[k]`` ← pixels ≥ the threshold
    p[fix_idx[k]] (AUC-Judd). Shuffled AUC's positives are p[fix_idx] weighted by ``fix_w``, its
    negatives p[neg_idx] weighted by ``neg_w``. Returns False, with nothing else computed, when a map
    has NaN/inf or the density sums to 0 (the caller's checks and rules handle those)."""
    n = p.size
    stats(p, q, has_q, moments)
    out[0], out[1], out[2] = np.nan, np.nan, np.nan
    if not (math.isfinite(moments[2]) and math.isfinite(moments[3])):
        return False
    if has_q and not (math.isfinite(moments[6]) and math.isfinite(moments[7]) and moments[6] != 0.0):
        return False
    lo, hi = moments[0], moments[1]
    k_fix = fix_idx.size
    thresholds = np.empty(k_fix)
    for k in range(k_fix):
        thresholds[k] = p[fix_idx[k]]
    order = np.argsort(thresholds, kind="mergesort")
    ts = thresholds[order]
    inv_span = 1.0 / (hi - lo) if hi > lo else 0.0
    if not math.isfinite(inv_span):
        inv_span = 0.0  # a span below ~1e-308: one key, every pixel compared exactly
    scaled = np.empty(max(CHUNK, k_fix), np.float32)
    keys = np.empty(max(CHUNK, k_fix), np.int32)
    shared = np.empty(CHUNK, np.int64)
    _keys(ts, 0, k_fix, lo, inv_span, scaled, keys)
    below = _table(keys[:k_fix])
    want_densities = has_q and (want_kld or want_sim)
    judd = want_judd and k_fix > 0 and hi > lo
    hist = np.zeros(4 * (k_fix + 1), np.int64)
    # the two densities (pysaliency: shift negatives to 0, divide by the sum; all-zero → uniform)
    p_shift = min(lo, 0.0)
    p_total = moments[2] - p_shift * n
    p_scale, p_add = (1.0 / p_total, 0.0) if p_total > 0 else (0.0, 1.0 / n)
    q_shift = min(moments[4], 0.0)
    q_scale = 1.0 / (moments[6] - q_shift * n)
    sim, kld = 0.0, 0.0
    ratio = np.empty(CHUNK)
    bits = np.empty(CHUNK, np.int64)
    exponent = np.empty(CHUNK)
    qd = np.empty(CHUNK)
    for start in range(0, n if (want_densities or judd) else 0, CHUNK):
        m = min(CHUNK, n - start)
        if want_densities:
            sim += _densities(p, q, start, m, p_shift, p_scale, p_add, q_shift, q_scale, kld_eps, qd, ratio)
            if want_kld:
                _log_chunk(ratio, bits, exponent, m)
                kld += _dot(qd, ratio, m)
        if judd:
            _keys(p, start, m, lo, inv_span, scaled, keys)
            _count_ranks(p, start, m, keys, below, ts, hist, shared)
    if want_densities:
        out[0] = kld if want_kld else np.nan
        out[1] = sim if want_sim else np.nan
    # AUC-Judd: pixels ≥ t_k are those with more than k thresholds ≤ them (t ascending)
    above = n
    for k in range(k_fix):
        if judd:
            above -= hist[4 * k] + hist[4 * k + 1] + hist[4 * k + 2] + hist[4 * k + 3]
        ge[order[k]] = above
    # shuffled AUC: each negative's weight below each threshold, and equal to it (as differences)
    total_neg = 0.0
    for j in range(neg_w.size):
        total_neg += neg_w[j]
    if neg_idx.size == 0 or k_fix == 0 or total_neg == 0.0:
        return True
    if hi == lo:
        out[2] = 0.5
        return True
    negatives = np.empty(neg_idx.size)
    for j in range(neg_idx.size):
        negatives[j] = p[neg_idx[j]]
    below_w = np.zeros(k_fix + 1)
    equal_w = np.zeros(k_fix + 1)
    for start in range(0, neg_idx.size, CHUNK):
        m = min(CHUNK, neg_idx.size - start)
        _keys(negatives, start, m, lo, inv_span, scaled, keys)
        for j in range(m):
            w = neg_w[start + j]
            v = negatives[start + j]
            lt, le = _rank(v, keys[j], below, ts)
            below_w[le] += w  # below t_k for every k ≥ le
            equal_w[lt] += w  # equal to t_k for lt ≤ k < le
            equal_w[le] -= w
    total_pos, auc, under, equal = 0.0, 0.0, 0.0, 0.0
    for k in range(k_fix):
        under += below_w[k]
        equal += equal_w[k]
        w = fix_w[order[k]]
        total_pos += w
        auc += w * (under + 0.5 * equal)
    out[2] = auc / max(total_pos * total_neg, 1e-300)
    return True


# --- dynamic programmes of the scanpath metrics, one pair at a time (attnlab.metrics.scanpath_batch)
# The batched NumPy versions advance every pair one cell (or row) per Python step; compiled, each
# pair's table is a plain double loop, the recurrence of attnlab.metrics.scanpath as written there.


@numba.njit(**KERNEL)
def needleman_wunsch_pairs(a, la, b, lb, table, gap, final, best):
    """final[k] ← F[n, m] and best[k] ← max F of Needleman–Wunsch for pair k of the padded symbol
    rows a (B×N), b (B×M) with lengths la, lb; F[i, j] = max(F[i−1, j−1] + table[a_i, b_j],
    F[i−1, j] + gap, F[i, j−1] + gap)."""
    prev = np.empty(b.shape[1] + 1)
    row = np.empty(b.shape[1] + 1)
    for k in range(a.shape[0]):
        n, m = la[k], lb[k]
        top = -np.inf
        for j in range(m + 1):
            prev[j] = gap * j
            top = max(top, prev[j])
        for i in range(1, n + 1):
            row[0] = gap * i
            top = max(top, row[0])
            symbol = a[k, i - 1]
            for j in range(1, m + 1):
                diag = prev[j - 1] + table[symbol, b[k, j - 1]]
                up = prev[j] + gap
                step = diag if diag >= up else up
                left = row[j - 1] + gap
                row[j] = step if step >= left else left
                top = max(top, row[j])
            prev, row = row, prev
        final[k] = prev[m]
        best[k] = top


@numba.njit(**KERNEL)
def damerau_levenshtein_pairs(a, la, b, lb, alphabet, out):
    """out[k] ← the unrestricted Damerau–Levenshtein distance of pair k (symbols in [0, alphabet))."""
    n_max, m_max = a.shape[1], b.shape[1]
    d = np.zeros((n_max + 2, m_max + 2), np.int64)
    last_row = np.zeros(alphabet + 2, np.int64)
    for k in range(a.shape[0]):
        n, m = la[k], lb[k]
        big = n + m
        for j in range(m + 2):
            d[0, j] = big
        for i in range(n + 2):
            d[i, 0] = big
        for i in range(n + 1):
            d[i + 1, 1] = i
        for j in range(m + 1):
            d[1, j + 1] = j
        last_row[:] = 0
        for i in range(1, n + 1):
            last_col = 0
            ai = a[k, i - 1]
            for j in range(1, m + 1):
                bj = b[k, j - 1]
                i1, j1 = last_row[bj], last_col
                cost = 0 if ai == bj else 1
                if cost == 0:
                    last_col = j
                transposed = d[i1, j1] + (i - i1 - 1) + 1 + (j - j1 - 1)
                d[i + 1, j + 1] = min(min(d[i, j] + cost, d[i + 1, j] + 1), min(d[i, j + 1] + 1, transposed))
            last_row[ai] = i
        out[k] = d[n + 1, m + 1]


@numba.njit(**KERNEL)
def min_plus_tables(cost, start_zero, acc):
    """acc (B×(n+1)×(m+1), inf border) ← the cheapest monotone paths through each cost matrix
    (right, down, diagonal): acc[k, i+1, j+1] = min(up, left, diagonal) + cost[k, i, j]."""
    n, m = cost.shape[1], cost.shape[2]
    acc[:] = np.inf
    for k in range(cost.shape[0]):
        if start_zero:
            acc[k, 1, 1] = 0.0
        else:
            acc[k, 0, 0] = 0.0
        for i in range(1, n + 1):
            for j in range(1, m + 1):
                if start_zero and i == 1 and j == 1:
                    continue
                u, left, diag = acc[k, i - 1, j], acc[k, i, j - 1], acc[k, i - 1, j - 1]
                low = u if u <= left else left
                acc[k, i, j] = (low if low <= diag else diag) + cost[k, i - 1, j - 1]


# --- Gaussian kernel windows of fixations (attnlab.benchmark.scoring's leave-one-out and half blurs)


@numba.njit(**KERNEL)
def add_fixation_windows(out, count, rows, cols, my, mx, radius, subtract):
    """For each fixation (rows[f], cols[f]): out[window] += (or −=, ``subtract``) the outer product
    my[window rows, r] ⊗ mx[window columns, c] — its Gaussian, as the separable blur operators give
    it — and count[window] += 1; the window is the kernel's (2·radius + 1)² cut to the map. Each
    product is rounded before it is added, as NumPy's ``out[window] += np.multiply.outer(a, b)``."""
    h, w = out.shape
    column = np.empty(2 * radius + 1)
    for f in range(rows.size):
        i, j = rows[f], cols[f]
        y0, y1 = max(0, i - radius), min(h, i + radius + 1)
        x0, x1 = max(0, j - radius), min(w, j + radius + 1)
        for x in range(x1 - x0):
            column[x] = mx[x0 + x, j]
        for y in range(y0, y1):
            a = my[y, i]
            row, counts = out[y, x0:x1], count[y, x0:x1]  # 1-D rows: the loops below vectorise (4× faster)
            if subtract:
                for x in range(x1 - x0):
                    row[x] -= a * column[x]
            else:
                for x in range(x1 - x0):
                    row[x] += a * column[x]
            for x in range(x1 - x0):
                counts[x] += 1


@numba.njit(**KERNEL)
def zero_where_equal(out, cover, own, y0, y1, x0, x1):
    """out[y, x] ← 0 inside the box where cover == own: pixels that only the removed kernels
    reached, exactly 0 (as a blur without them), not the rounding the subtraction leaves."""
    for y in range(y0, y1):
        row, covered, owned = out[y, x0:x1], cover[y, x0:x1], own[y, x0:x1]
        for x in range(x1 - x0):
            if covered[x] == owned[x]:
                row[x] = 0.0
