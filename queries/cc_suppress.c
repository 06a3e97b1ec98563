/*
 * cc_suppress.c: the auditor (integer interval propagation over the margin
 * constraints) and greedy secondary suppression (cc_suppress.h).
 *
 * Must never: unsuppress a cell, or keep any count after it returns.
 */
#include "cc_suppress.h"

#include <stdlib.h>
#include <string.h>

#include "cc_error.h"

#define UNB CC_SUPPRESS_UNBOUNDED
/* A candidate too small to give a primary cell room costs this much more. */
#define SMALL_PENALTY (INT64_C(1) << 40)
/* Propagation rounds at most; stopping early leaves sound (wider) bounds. */
#define MAX_ROUNDS 100000

uint64_t cc_suppress_n_cells(const struct cc_suppress_shape *shape)
{
    if (shape->n_dimensions < 1 || shape->n_dimensions > CC_SUPPRESS_DIMENSIONS_CAP)
        return 0;
    uint64_t n = 1;
    for (uint32_t d = 0; d < shape->n_dimensions; d++) {
        if (shape->size[d] < 2 || n > (UINT64_C(1) << 32) / shape->size[d])
            return 0;
        n *= shape->size[d];
    }
    return n;
}

static void strides(const struct cc_suppress_shape *shape, uint64_t *stride)
{
    uint64_t s = 1;
    for (uint32_t d = shape->n_dimensions; d-- > 0;) {
        stride[d] = s;
        s *= shape->size[d];
    }
}

static uint32_t coord(const struct cc_suppress_shape *shape, const uint64_t *stride, uint64_t cell,
                      uint32_t d)
{
    return (uint32_t)(cell / stride[d] % shape->size[d]);
}

static int64_t sat_add(int64_t a, int64_t b)
{
    return (a == UNB || b == UNB || a > UNB - b) ? UNB : a + b;
}

/* One constraint: margin m along d. Tightens lo/hi; *changed when it did;
 * returns CC_EINVAL when the bounds cross. */
static int propagate(const struct cc_suppress_shape *shape, const uint64_t *stride, uint64_t m,
                     uint32_t d, int64_t *lo, int64_t *hi, bool *changed)
{
    uint32_t k = shape->size[d] - 1;
    uint64_t first = m - (uint64_t)k * stride[d];
    int64_t sum_lo = 0, sum_hi = 0, max_lo = 0;
    uint32_t n_unb = 0;
    for (uint32_t v = 0; v < k; v++) {
        uint64_t c = first + v * stride[d];
        sum_lo = sat_add(sum_lo, lo[c]);
        if (hi[c] == UNB)
            n_unb++;
        else
            sum_hi += hi[c];
        if (lo[c] > max_lo)
            max_lo = lo[c];
    }
    bool additive = shape->additive[d];
    /* the margin */
    int64_t mlo = additive ? sum_lo : max_lo;
    int64_t mhi = n_unb ? UNB : sum_hi;
    if (mlo > lo[m]) {
        lo[m] = mlo;
        *changed = true;
    }
    if (mhi < hi[m]) {
        hi[m] = mhi;
        *changed = true;
    }
    /* each cell */
    for (uint32_t v = 0; v < k; v++) {
        uint64_t c = first + v * stride[d];
        /* the others' upper bounds: unbounded if any other is */
        uint32_t others_unb = n_unb - (hi[c] == UNB);
        if (!others_unb) {
            int64_t others_hi = sum_hi - (hi[c] == UNB ? 0 : hi[c]);
            int64_t clo = lo[m] - others_hi;
            if (clo > lo[c]) {
                lo[c] = clo;
                *changed = true;
            }
        }
        int64_t chi = hi[m];
        if (additive && chi != UNB)
            chi -= sum_lo - lo[c];
        if (chi < hi[c]) {
            hi[c] = chi;
            *changed = true;
        }
        if (lo[c] > hi[c])
            return CC_EINVAL;
    }
    return lo[m] > hi[m] ? CC_EINVAL : 0;
}

int cc_suppress_audit(const struct cc_suppress_shape *shape, const int64_t *known_lo,
                      const int64_t *known_hi, int64_t *lo, int64_t *hi)
{
    uint64_t n = cc_suppress_n_cells(shape);
    if (!n)
        return CC_EINVAL;
    uint64_t stride[CC_SUPPRESS_DIMENSIONS_CAP];
    strides(shape, stride);
    for (uint64_t i = 0; i < n; i++) {
        lo[i] = known_lo[i] > 0 ? known_lo[i] : 0;
        hi[i] = known_hi[i];
        if (lo[i] > hi[i])
            return CC_EINVAL;
    }
    for (int round = 0; round < MAX_ROUNDS; round++) {
        bool changed = false;
        for (uint64_t m = 0; m < n; m++)
            for (uint32_t d = 0; d < shape->n_dimensions; d++) {
                if (coord(shape, stride, m, d) != shape->size[d] - 1)
                    continue;
                int rc = propagate(shape, stride, m, d, lo, hi, &changed);
                if (rc)
                    return rc;
            }
        if (!changed)
            break;
    }
    return 0;
}

bool cc_suppress_protected(int64_t x, int64_t lo, int64_t hi, uint32_t p, int64_t floor,
                           int64_t ceiling)
{
    int64_t want_lo = x - (int64_t)p > floor ? x - (int64_t)p : floor;
    int64_t want_hi = ceiling == UNB || x + (int64_t)p < ceiling ? x + (int64_t)p : ceiling;
    return lo <= want_lo && hi >= want_hi;
}

void cc_suppress_known(const struct cc_suppress_shape *shape,
                       const struct cc_suppress_rules *rules, const uint64_t *released,
                       const uint8_t *suppressed, int64_t *known_lo, int64_t *known_hi)
{
    uint64_t n = cc_suppress_n_cells(shape);
    uint32_t b = rules->rounding_base ? rules->rounding_base : 1;
    int64_t threshold = rules->threshold;
    int64_t bump = (threshold + b - 1) / b * b; /* the threshold rounded up */
    for (uint64_t i = 0; i < n; i++) {
        if (suppressed[i] == 1) {
            known_lo[i] = rules->primary_lo;
            known_hi[i] = threshold - 1;
            continue;
        }
        if (suppressed[i]) {
            known_lo[i] = 0;
            known_hi[i] = UNB;
            continue;
        }
        int64_t v = (int64_t)released[i];
        if (v == 0) {
            known_lo[i] = known_hi[i] = 0;
            continue;
        }
        int64_t lo = v - (int64_t)(b / 2), hi = v + (int64_t)((b - 1) / 2);
        if (v == bump && threshold < lo)
            lo = threshold; /* rounded up to the threshold's multiple */
        if (lo < threshold)
            lo = threshold; /* a shown count was never below it */
        known_lo[i] = lo;
        known_hi[i] = hi;
    }
}

int cc_suppress_baseline(const struct cc_suppress_shape *shape,
                         const struct cc_suppress_rules *rules, const uint8_t *suppressed,
                         int64_t *floor, int64_t *ceiling)
{
    uint64_t n = cc_suppress_n_cells(shape);
    if (!n)
        return CC_EINVAL;
    int64_t *buf = malloc(2 * n * sizeof *buf);
    if (!buf)
        return CC_ENOMEM;
    for (uint64_t i = 0; i < n; i++) {
        buf[i] = suppressed[i] == 1 ? rules->primary_lo : 0;
        buf[n + i] = suppressed[i] == 1 ? (int64_t)rules->threshold - 1 : UNB;
    }
    int rc = cc_suppress_audit(shape, buf, buf + n, floor, ceiling);
    free(buf);
    return rc;
}

int cc_suppress_secondary(const struct cc_suppress_shape *shape,
                          const struct cc_suppress_rules *rules, const uint64_t *counts,
                          const uint64_t *released, uint8_t *suppressed, uint32_t p,
                          uint64_t *n_secondary)
{
    *n_secondary = 0;
    uint64_t n = cc_suppress_n_cells(shape);
    if (!n)
        return CC_EINVAL;
    int64_t *buf = malloc(6 * n * sizeof *buf);
    if (!buf)
        return CC_ENOMEM;
    int64_t *klo = buf, *khi = buf + n, *lo = buf + 2 * n, *hi = buf + 3 * n;
    int64_t *floor = buf + 4 * n, *ceiling = buf + 5 * n;
    uint64_t stride[CC_SUPPRESS_DIMENSIONS_CAP];
    strides(shape, stride);
    int rc = cc_suppress_baseline(shape, rules, suppressed, floor, ceiling);
    for (; rc == 0;) {
        cc_suppress_known(shape, rules, released, suppressed, klo, khi);
        if ((rc = cc_suppress_audit(shape, klo, khi, lo, hi)) != 0)
            break;
        uint64_t bad = n;
        for (uint64_t i = 0; i < n && bad == n; i++)
            if (suppressed[i] == 1 && !cc_suppress_protected((int64_t)counts[i], lo[i], hi[i], p, floor[i], ceiling[i]))
                bad = i;
        if (bad == n)
            break;
        /* the cheapest cell not suppressed in a line through bad, else in
         * the whole table */
        uint64_t best = n;
        int64_t best_cost = INT64_MAX;
        for (uint32_t d = 0; d < shape->n_dimensions; d++) {
            uint64_t first = bad - (uint64_t)coord(shape, stride, bad, d) * stride[d];
            for (uint32_t v = 0; v < shape->size[d]; v++) {
                uint64_t c = first + v * stride[d];
                if (suppressed[c])
                    continue;
                int64_t cost = (int64_t)counts[c] + (counts[c] < p ? SMALL_PENALTY : 0);
                if (cost < best_cost) {
                    best_cost = cost;
                    best = c;
                }
            }
        }
        for (uint64_t c = 0; c < n && best == n; c++)
            if (!suppressed[c] && (best == n || counts[c] < counts[best]))
                best = c;
        if (best == n) {
            rc = CC_EINTERNAL; /* everything suppressed is the baseline: cannot be */
            break;
        }
        suppressed[best] = 2;
        (*n_secondary)++;
    }
    free(buf);
    return rc;
}
