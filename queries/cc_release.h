/*
 * cc_release.h: disclosure control: the only way from a query to figures.
 *
 * cc_release_answer() runs a query on the engine and turns the exact result
 * into a *release*: an opaque value holding, per cell, only a protected
 * count and a reason code, and per table what was done (the policy version,
 * threshold, rounding base, perturbation, counts of each kind of cell). Or
 * it refuses the query, saying which rule refused it. In order:
 *
 *  1. Query restrictions (DESIGN, Disclosure control 5): the universe's
 *     public population (ONS estimates of the query's areas, ages and sexes,
 *     never a health count) must reach min_population; that population per
 *     person cell must reach min_cell_population; at most max_cells.
 *  2. Low-effect refusal (8): every restriction (condition, area list, age,
 *     sex, settings, date range) must change the cohort by at least a noisy
 *     threshold around low_effect_persons, drawn from a seed of the
 *     restriction's person set (conditions) or its canonical value (the
 *     others), so the same restriction always gets the same decision. A
 *     date range or settings in a query without conditions only choose the
 *     records counted (they cannot change the cohort) and are not checked.
 *  3. Cell key perturbation (4): noise from a perturbation table indexed by
 *     the count and the cell key (the sum of the record keys of the persons,
 *     or for events of the records, in the cell), so a cell gets the same
 *     value however it is asked for.
 *  4. The condition layer (9): a second draw from a table of its own, seeded
 *     by the cell key together with the person set of every condition and
 *     the canonical value of every other restriction, so two queries with
 *     different restrictions differ whether or not a target is in them.
 *  5. Suppression (1): a perturbed value in 1..threshold-1 is suppressed; a
 *     0 is shown or suppressed as the policy says.
 *  6. Rounding (3) to the policy's base, never to a value below the
 *     threshold.
 *
 * Margins (the raw result's, internal/cc_exec.h): in the default perturbed
 * mode each margin is a cell of its own with its own cell key and is
 * perturbed independently (as ABS TableBuilder), so tables need not add up
 * (docs/privacy.md). In fixed
 * mode (policy "mode": "fixed", for operator-approved tables) no noise is
 * added and, after 5 and 6, secondary suppression (cc_suppress.h) hides
 * more cells (CC_CELL_SUPPRESSED_SECONDARY) until no suppressed cell can be
 * recovered, or pinned within the protection level, from the released
 * cells and margins.
 *
 * The engine (cc_exec_run(), the raw result) and the raw comparison
 * (cc_compare_run()) are internal to queries/: this header names only the
 * engine's options (cc_exec_options.h), so server/ and tools/, which reach
 * figures through it alone, cannot call them (tests/test_release_boundary.c
 * checks the built objects).
 *
 * Must never: let an exact count, a cell key or a cohort size leave through
 * this header. A release holds protected values only (the raw result is
 * freed before cc_release_answer() returns), refusal messages name the rule
 * and the restriction, never a count of persons, and the encoders below
 * accept nothing but a release.
 */
#ifndef CC_RELEASE_H
#define CC_RELEASE_H

#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#include "cc_compare.h"
#include "cc_dataversion.h"
#include "cc_exec_options.h"
#include "cc_policy.h"
#include "cc_query.h"

/* What was done to a cell. The numbers are part of the wire protocol. */
#define CC_RELEASE_REASON_MAP(X)                                                                  \
    X(SHOWN, 1, "shown")                       /* released as counted (rounding base 1) */      \
    X(SUPPRESSED_PRIMARY, 2, "suppressed")     /* in 1..threshold-1, or a 0 not shown */        \
    X(SUPPRESSED_SECONDARY, 3, "suppressed_secondary") /* to protect another cell */            \
    X(PERTURBED, 4, "perturbed")               /* noise added, then rounded */                  \
    X(ROUNDED, 5, "rounded")                   /* rounded to the base, no noise */

enum cc_release_reason {
#define CC_RELEASE_REASON_ENUM_(name, value, text) CC_CELL_##name = value,
    CC_RELEASE_REASON_MAP(CC_RELEASE_REASON_ENUM_)
#undef CC_RELEASE_REASON_ENUM_
};

/* The wire name of a reason ("perturbed"); NULL for a value not in the map. */
const char *cc_release_reason_name(int reason);

/*
 * A released count: what a comparison, a rate or an encoder may be given.
 * It is a distinct type so that an exact count (a uint64_t of the raw
 * result) cannot be passed where a released one is expected. value is
 * meaningful only when released is 1.
 */
struct cc_released_count {
    uint64_t value;  /* a multiple of the rounding base, 0 or >= threshold */
    uint8_t released; /* 0: suppressed */
    uint8_t reason;   /* enum cc_release_reason */
};

/* What was done to a whole table. */
struct cc_release_summary {
    char policy_version[CC_POLICY_VERSION_BYTES];
    uint32_t threshold;
    uint32_t rounding_base;
    uint32_t max_noise;           /* 0 when no noise was added */
    uint32_t condition_max_noise; /* 0 when no condition layer was added */
    uint8_t perturbed;            /* 1: the cell key method was applied */
    uint8_t zeros_shown;
    uint64_t n_cells;
    uint64_t n_shown, n_suppressed_primary, n_suppressed_secondary, n_perturbed, n_rounded;
};

typedef struct cc_release cc_release;

/* Who asks: the disclosure ledger (cc_ledger.h) and the asking account.
 * cc_release_answer() given an asker with a ledger also refuses a query
 * whose cohort differs too little from one the account was answered before
 * (policy ledger_*), and records the cohort before it answers. NULL (or a
 * NULL ledger): no ledger. */
typedef struct cc_ledger cc_ledger;
struct cc_release_asker {
    cc_ledger *ledger;
    int64_t account_id;
};

/*
 * Answers query (validated and bound against version's store) under
 * policy. On success *out is a release the caller frees with
 * cc_release_free(). Returns 0; CC_EREFUSED when a rule refuses the query,
 * with "rule: why" in errbuf (for instance "filters.conditions[1]: changes
 * the cohort by too few persons"); CC_EINVAL for a policy that fails
 * cc_policy_check() or a query the engine cannot run; CC_ENOMEM; CC_ETOOBIG.
 */
int cc_release_answer(const struct cc_policy *policy, const struct cc_release_asker *asker,
                      const struct cc_dataversion *version, const struct cc_query *query,
                      const struct cc_exec_options *options, cc_release **out, char *errbuf,
                      size_t errlen);

/* Frees a release (NULL is allowed). */
void cc_release_free(cc_release *release);

/*
 * A protected comparison: what a server may send for an area comparison.
 * cc_release_comparison() runs the comparison (cc_compare_run), protects
 * every count and denominator (cc_release_compare) and computes the derived
 * figures from the released counts only (cc_compare_finish), freeing the
 * raw comparison before it returns: the raw comparison and both of those
 * steps are internal to queries/ (cc_compare_internal.h,
 * cc_release_internal.h). Returns 0, CC_EREFUSED ("rule: why" in
 * errbuf), CC_EINVAL (a request the comparison cannot run, or a policy that
 * fails cc_policy_check()), CC_ENOTFOUND (an unknown codelist), CC_ETOOBIG,
 * CC_ESTATS or CC_ENOMEM. The caller frees *out with cc_comparison_free().
 * With an asker's ledger, the numerator's cohort goes through the ledger as
 * a count's does (docs/privacy.md, "Disclosure ledger").
 */
typedef struct cc_comparison cc_comparison;

int cc_release_comparison(const struct cc_policy *policy, const struct cc_release_asker *asker,
                          const struct cc_dataversion *version,
                          const struct cc_compare_request *request,
                          const struct cc_codelists *codelists,
                          const struct cc_exec_options *options, cc_comparison **out,
                          char *errbuf, size_t errlen);

void cc_comparison_free(cc_comparison *comparison);

/* What was done, over every count and denominator of the comparison
 * (n_cells counts both). */
const struct cc_release_summary *cc_comparison_summary(const cc_comparison *comparison);

/*
 * Packs a protected comparison as one msgpack map:
 *   {"policy": {...as a release...},
 *    "counts": {...as a release, over counts and denominators...},
 *    "method", "denominator", "level", "comparator": names,
 *    "multiplier": number,
 *    "rows": [{"code", "name", "level", "compared_with": code or nil,
 *              "status", "count", "denominator", "expected", "value",
 *              "ci95": [lower, upper], "ci998": [lower, upper],
 *              "comparator_value", "comparison95", "comparison998",
 *              "funnel95": [lower, upper], "funnel998": [lower, upper]}]}
 * where a number that does not apply (a suppressed count, a value not
 * computed) is nil (docs/protocol.md, "compare"). Returns 0 or CC_ENOMEM.
 */
int cc_comparison_pack(const cc_comparison *comparison, msgpack_packer *packer);

/*
 * The transparency report (docs/privacy.md): per area of level (CC_AREA_
 * REGION, ICB or LAD), the persons registered, those with each type of
 * opt-out in force in the version's publication, those in every figure
 * (opted in), each released like any cell (its own cell key, perturbed,
 * suppressed, rounded), with the area's public ONS estimate and the opted-in
 * coverage derived from the released count. register_ is read (the caller
 * serialises access to its connection). Returns 0, CC_EINVAL (a level
 * other than those; a policy that fails its checks), CC_ENOMEM or a
 * register error. Free with cc_transparency_free().
 */
typedef struct cc_transparency cc_transparency;
struct cc_optout;
int cc_release_transparency(const struct cc_policy *policy, const cc_dataversion *version,
                            struct cc_optout *register_, int level, cc_transparency **out,
                            char *errbuf, size_t errlen);
void cc_transparency_free(cc_transparency *report);
const struct cc_release_summary *cc_transparency_summary(const cc_transparency *report);

/* Packs a report: {"policy", "counts" (as a release), "level",
 * "published_on", "rows": [{"code", "name", "estimate", "registered",
 * "optout_type1", "optout_ndop", "opted_in" (each a released count or
 * nil), "coverage_percent" (or nil), "reasons": [4 reason names]}]}.
 * 0 or CC_ENOMEM. */
int cc_transparency_pack(const cc_transparency *report, msgpack_packer *packer);

/* ---- reading a release ---- */

const struct cc_release_summary *cc_release_summary(const cc_release *release);
uint64_t cc_release_n_cells(const cc_release *release);
uint32_t cc_release_n_dimensions(const cc_release *release);
/* The kind (enum cc_query_dimension_kind) and size of dimension d. */
int cc_release_dimension_kind(const cc_release *release, uint32_t d);
uint32_t cc_release_dimension_size(const cc_release *release, uint32_t d);
/* The label of value v of dimension d ("E06000001", "40-44", "female"). */
void cc_release_label(const cc_release *release, uint32_t d, uint32_t v, char *buf, size_t len);
/* The coordinate of cell along dimension d (cells are in row-major order,
 * the last dimension varying fastest). */
uint32_t cc_release_coordinate(const cc_release *release, uint64_t cell, uint32_t d);
/* The protected count of a cell. */
struct cc_released_count cc_release_cell(const cc_release *release, uint64_t cell);

/* ---- encoders: accept only a release ---- */

/*
 * Packs a release as one msgpack map:
 *   {"policy": {"version", "threshold", "rounding_base", "max_noise",
 *               "condition_max_noise", "perturbed", "zeros_shown"},
 *    "counts": {"cells", "shown", "suppressed", "suppressed_secondary",
 *               "perturbed", "rounded"},
 *    "dimensions": [{"kind": name, "labels": [..]}, ...],
 *    "cells": [[value or nil, reason name], ...]}
 * in row-major cell order (docs/privacy.md, "What a release says"). Returns
 * 0 or CC_ENOMEM.
 */
int cc_release_pack(const cc_release *release, msgpack_packer *packer);

/* The same map as JSON, into a malloc'd NUL-terminated string the caller
 * frees with free(). Returns 0 or CC_ENOMEM. */
int cc_release_encode_json(const cc_release *release, char **out);

#endif
