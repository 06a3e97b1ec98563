/*
 * Tests for the disclosure policy (queries/cc_policy.c): the defaults, every
 * key read from a file, and every bad shape refused with the key and the
 * reason.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cc_testfs.h"
#include "cc_error.h"
#include "cc_policy.h"

static int parse(const char *text, struct cc_policy *p, char *err, size_t errlen)
{
    return cc_policy_parse(text, strlen(text), p, err, errlen);
}

Test(policy, defaults_are_documented_values_and_pass_the_check)
{
    struct cc_policy p;
    cc_policy_default(&p);
    cr_assert_str_eq(p.version, CC_POLICY_DEFAULT_VERSION);
    cr_assert_eq(p.threshold, 8);
    cr_assert(p.show_zeros);
    cr_assert_eq(p.rounding_base, 5);
    cr_assert_eq(p.max_noise, 3);
    cr_assert_float_eq(p.noise_variance, 2.0, 1e-12);
    cr_assert_eq(p.condition_max_noise, 2);
    cr_assert_float_eq(p.condition_noise_variance, 1.0, 1e-12);
    cr_assert_eq(p.min_population, 100);
    cr_assert_eq(p.min_cell_population, 20);
    cr_assert_eq(p.max_cells, 10000);
    cr_assert_eq(p.low_effect_persons, 8);
    cr_assert_eq(p.low_effect_spread, 2);
    cr_assert(p.perturb && p.refuse_low_effect && p.restrict_queries);
    cr_assert_eq(p.mode, CC_POLICY_MODE_PERTURBED);
    cr_assert_eq(p.protection_level, 8);
    char err[256];
    cr_assert_eq(cc_policy_check(&p, err, sizeof err), 0, "%s", err);
}

Test(policy, empty_object_gives_the_defaults)
{
    struct cc_policy p, d;
    char err[256];
    cr_assert_eq(parse("{}", &p, err, sizeof err), 0, "%s", err);
    cc_policy_default(&d);
    cr_assert_eq(memcmp(&p, &d, sizeof p), 0);
}

Test(policy, every_key_is_read)
{
    const char *text = "{\"version\": \"trust-2026-03\", \"threshold\": 10, \"show_zeros\": false,"
                       " \"rounding_base\": 10, \"max_noise\": 4, \"noise_variance\": 3.5,"
                       " \"condition_max_noise\": 1, \"condition_noise_variance\": 0.5,"
                       " \"min_population\": 500, \"min_cell_population\": 30,"
                       " \"max_cells\": 2000, \"low_effect_persons\": 12,"
                       " \"low_effect_spread\": 3, \"mode\": \"fixed\","
                       " \"protection_level\": 6}";
    struct cc_policy p;
    char err[256];
    cr_assert_eq(parse(text, &p, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(p.version, "trust-2026-03");
    cr_assert_eq(p.threshold, 10);
    cr_assert(!p.show_zeros);
    cr_assert_eq(p.rounding_base, 10);
    cr_assert_eq(p.max_noise, 4);
    cr_assert_float_eq(p.noise_variance, 3.5, 1e-12);
    cr_assert_eq(p.condition_max_noise, 1);
    cr_assert_float_eq(p.condition_noise_variance, 0.5, 1e-12);
    cr_assert_eq(p.min_population, 500);
    cr_assert_eq(p.min_cell_population, 30);
    cr_assert_eq(p.max_cells, 2000);
    cr_assert_eq(p.low_effect_persons, 12);
    cr_assert_eq(p.low_effect_spread, 3);
    cr_assert_eq(p.mode, CC_POLICY_MODE_FIXED);
    cr_assert_eq(p.protection_level, 6);
    /* the control switches cannot be set from a file */
    cr_assert(p.perturb && p.refuse_low_effect && p.restrict_queries);
}

Test(policy, low_effect_persons_defaults_to_the_threshold_given)
{
    struct cc_policy p;
    char err[256];
    cr_assert_eq(parse("{\"threshold\": 11}", &p, err, sizeof err), 0, "%s", err);
    cr_assert_eq(p.low_effect_persons, 11);
}

Test(policy, fixed_mode_is_only_by_opting_in_and_protection_defaults_to_the_threshold)
{
    struct cc_policy p;
    char err[256];
    cr_assert_eq(parse("{\"threshold\": 11}", &p, err, sizeof err), 0, "%s", err);
    cr_assert_eq(p.mode, CC_POLICY_MODE_PERTURBED);
    cr_assert_eq(p.protection_level, 11);
    cr_assert_eq(parse("{\"mode\": \"perturbed\"}", &p, err, sizeof err), 0, "%s", err);
    cr_assert_eq(p.mode, CC_POLICY_MODE_PERTURBED);
    cr_assert_eq(parse("{\"mode\": \"fixed\", \"threshold\": 10}", &p, err, sizeof err), 0,
                 "%s", err);
    cr_assert_eq(p.mode, CC_POLICY_MODE_FIXED);
    cr_assert_eq(p.protection_level, 10);
}

Test(policy, a_noise_variance_of_integer_form_is_accepted)
{
    struct cc_policy p;
    char err[256];
    cr_assert_eq(parse("{\"noise_variance\": 3}", &p, err, sizeof err), 0, "%s", err);
    cr_assert_float_eq(p.noise_variance, 3.0, 1e-12);
}

/* Each bad file: its text, the code, and the start of the message. */
static const struct {
    const char *text;
    int rc;
    const char *message;
} bad[] = {
    {"", CC_EPARSE, "malformed JSON"},
    {"{\"threshold\": 8", CC_EPARSE, "malformed JSON"},
    {"[]", CC_EPARSE, "policy: must be a JSON object"},
    {"8", CC_EPARSE, "malformed JSON"},
    {"{\"threshold\": 8, \"threshold\": 9}", CC_EPARSE, "malformed JSON"},
    {"{\"treshold\": 8}", CC_EPARSE, "treshold: unknown key"},
    {"{\"perturb\": false}", CC_EPARSE, "perturb: unknown key"},
    {"{\"version\": 3}", CC_EPARSE, "version: must be a string"},
    {"{\"version\": \"\"}", CC_EINVAL, "version: must be 1 to 63"},
    {"{\"version\": \"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}",
     CC_EINVAL, "version: must be 1 to 63"},
    {"{\"version\": \"tab\\there\"}", CC_EINVAL, "version: printable ASCII"},
    {"{\"threshold\": \"8\"}", CC_EPARSE, "threshold: must be a whole number"},
    {"{\"threshold\": 8.5}", CC_EPARSE, "threshold: must be a whole number"},
    {"{\"threshold\": 0}", CC_EINVAL, "threshold: must be 1 to 100"},
    {"{\"threshold\": -3}", CC_EINVAL, "threshold: must be 0 to 100"},
    {"{\"threshold\": 101}", CC_EINVAL, "threshold: must be 0 to 100"},
    {"{\"show_zeros\": 1}", CC_EPARSE, "show_zeros: must be true or false"},
    {"{\"show_zeros\": null}", CC_EPARSE, "show_zeros: must be true or false"},
    {"{\"rounding_base\": 0}", CC_EINVAL, "rounding_base: must be 1 to 100"},
    {"{\"rounding_base\": 1000}", CC_EINVAL, "rounding_base: must be 0 to 100"},
    {"{\"rounding_base\": true}", CC_EPARSE, "rounding_base: must be a whole number"},
    {"{\"max_noise\": 11}", CC_EINVAL, "max_noise: must be 0 to 10"},
    {"{\"max_noise\": 0}", CC_EINVAL, "noise_variance: must be 0 when max_noise is 0"},
    {"{\"max_noise\": 1}", CC_EINVAL, "noise_variance: 2 cannot be reached with max_noise 1"},
    {"{\"noise_variance\": \"2\"}", CC_EPARSE, "noise_variance: must be a number"},
    {"{\"noise_variance\": -1}", CC_EINVAL, "noise_variance: must be 0 or more"},
    {"{\"noise_variance\": 0}", CC_EINVAL, "noise_variance: must be above 0"},
    {"{\"noise_variance\": 4.7}", CC_EINVAL, "noise_variance: 4.7 cannot be reached"},
    {"{\"condition_max_noise\": 12}", CC_EINVAL, "condition_max_noise: must be 0 to 10"},
    {"{\"condition_max_noise\": 0}", CC_EINVAL, "condition_noise_variance: must be 0 when"},
    {"{\"condition_noise_variance\": 2.6}", CC_EINVAL,
     "condition_noise_variance: 2.6 cannot be reached"},
    {"{\"condition_noise_variance\": []}", CC_EPARSE,
     "condition_noise_variance: must be a number"},
    {"{\"min_population\": -1}", CC_EINVAL, "min_population: must be 0 to"},
    {"{\"min_population\": 1.5}", CC_EPARSE, "min_population: must be a whole number"},
    {"{\"min_cell_population\": {}}", CC_EPARSE,
     "min_cell_population: must be a whole number"},
    {"{\"max_cells\": 0}", CC_EINVAL, "max_cells: must be 1 or more"},
    {"{\"max_cells\": 1000000000}", CC_EINVAL, "max_cells: must be 0 to 100000000"},
    {"{\"low_effect_persons\": 0}", CC_EINVAL, "low_effect_persons: must be 1 or more"},
    {"{\"low_effect_persons\": \"x\"}", CC_EPARSE, "low_effect_persons: must be a whole"},
    {"{\"low_effect_spread\": 8}", CC_EINVAL, "low_effect_spread: must be below"},
    {"{\"threshold\": 2}", CC_EINVAL, "low_effect_spread: must be below low_effect_persons (2)"},
    {"{\"low_effect_spread\": -1}", CC_EINVAL, "low_effect_spread: must be 0 to 1000"},
    {"{\"mode\": \"Fixed\"}", CC_EINVAL, "mode: must be \"perturbed\" or \"fixed\""},
    {"{\"mode\": 1}", CC_EPARSE, "mode: must be a string"},
    {"{\"mode\": true}", CC_EPARSE, "mode: must be a string"},
    {"{\"protection_level\": 0}", CC_EINVAL, "protection_level: must be 1 to 1000"},
    {"{\"protection_level\": 1001}", CC_EINVAL, "protection_level: must be 0 to 1000"},
};

Test(policy, bad_files_are_refused_with_the_key_and_the_reason)
{
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct cc_policy p;
        cc_policy_default(&p);
        p.threshold = 77; /* must be left alone on failure */
        char err[256] = "";
        int rc = parse(bad[i].text, &p, err, sizeof err);
        cr_assert_eq(rc, bad[i].rc, "%s: rc %d (%s)", bad[i].text, rc, err);
        cr_assert(strstr(err, bad[i].message) == err ||
                      (!strncmp(bad[i].message, "malformed", 9) && !strncmp(err, "malformed", 9)),
                  "%s: message \"%s\", expected \"%s\"", bad[i].text, err, bad[i].message);
        cr_assert_eq(p.threshold, 77, "%s: the policy was changed", bad[i].text);
    }
}

Test(policy, a_policy_edited_in_memory_is_checked)
{
    struct cc_policy p;
    char err[256];
    cc_policy_default(&p);
    p.noise_variance = 0.0 / 0.0;
    cr_assert_eq(cc_policy_check(&p, err, sizeof err), CC_EINVAL);
    cr_assert(strstr(err, "noise_variance"));
    cc_policy_default(&p);
    memset(p.version, 'x', sizeof p.version);
    cr_assert_eq(cc_policy_check(&p, err, sizeof err), CC_EINVAL);
    cr_assert(strstr(err, "version"));
    cc_policy_default(&p);
    p.max_noise = 11;
    cr_assert_eq(cc_policy_check(&p, err, sizeof err), CC_EINVAL);
    cr_assert(strstr(err, "max_noise"));
    cc_policy_default(&p);
    p.mode = (enum cc_policy_mode)7;
    cr_assert_eq(cc_policy_check(&p, err, sizeof err), CC_EINVAL);
    cr_assert(strstr(err, "mode"));
    cc_policy_default(&p);
    p.protection_level = 0;
    cr_assert_eq(cc_policy_check(&p, err, sizeof err), CC_EINVAL);
    cr_assert(strstr(err, "protection_level"));
}

Test(policy, max_variance_is_that_of_an_even_spread_over_nonzero_noise)
{
    cr_assert_float_eq(cc_policy_max_variance(1), 1.0, 1e-12);
    cr_assert_float_eq(cc_policy_max_variance(3), 28.0 / 6, 1e-12);
}

Test(policy, load_reads_a_file_and_refuses_missing_large_and_non_regular_ones)
{
    char dir[64];
    cc_testfs_make_dir(dir, sizeof dir, "policy");
    char path[256];
    snprintf(path, sizeof path, "%s/policy.json", dir);
    cc_testfs_write_text(path, "{\"version\": \"from-file\", \"rounding_base\": 10}\n");
    struct cc_policy p;
    char err[256];
    cr_assert_eq(cc_policy_load(path, &p, err, sizeof err), 0, "%s", err);
    cr_assert_str_eq(p.version, "from-file");
    cr_assert_eq(p.rounding_base, 10);

    cc_testfs_write_text(path, "{\"rounding_base\": 0}");
    cr_assert_eq(cc_policy_load(path, &p, err, sizeof err), CC_EINVAL);
    cr_assert(strstr(err, "rounding_base"));

    char *big = malloc(70 * 1024);
    cr_assert(big);
    memset(big, ' ', 70 * 1024 - 3);
    memcpy(big + 70 * 1024 - 3, "{}", 3);
    cc_testfs_write_text(path, big);
    free(big);
    cr_assert_eq(cc_policy_load(path, &p, err, sizeof err), CC_ETOOBIG);
    cr_assert(strstr(err, "policy file"));
    cr_assert_eq(unlink(path), 0);

    cr_assert_eq(cc_policy_load(path, &p, err, sizeof err), CC_EIO);
    cr_assert(strstr(err, "cannot open"));
    cr_assert_eq(cc_policy_load(dir, &p, err, sizeof err), CC_EIO);
    cr_assert(strstr(err, "not a regular file"));
    cr_assert_eq(rmdir(dir), 0);
}

Test(policy, the_ledger_keys_are_read_defaulted_and_checked)
{
    struct cc_policy p;
    char err[256];
    cc_policy_default(&p);
    cr_assert_eq(p.ledger_min_difference, 8);
    cr_assert_eq(p.ledger_near_difference, 100);
    cr_assert_eq(p.ledger_budget, 100);
    cr_assert_eq(p.ledger_window_days, 30);
    cr_assert_eq(parse("{\"threshold\": 11}", &p, err, sizeof err), 0, "%s", err);
    cr_assert_eq(p.ledger_min_difference, 11, "defaults to the threshold given");
    cr_assert_eq(parse("{\"ledger_min_difference\": 20, \"ledger_near_difference\": 300,"
                       " \"ledger_budget\": 7, \"ledger_window_days\": 90}",
                       &p, err, sizeof err),
                 0, "%s", err);
    cr_assert_eq(p.ledger_min_difference, 20);
    cr_assert_eq(p.ledger_near_difference, 300);
    cr_assert_eq(p.ledger_budget, 7);
    cr_assert_eq(p.ledger_window_days, 90);
    cr_assert_eq(parse("{\"ledger_min_difference\": 200}", &p, err, sizeof err), CC_EINVAL);
    cr_assert(strstr(err, "ledger_near_difference") != NULL, "%s", err);
    cr_assert_eq(parse("{\"ledger_min_difference\": 0}", &p, err, sizeof err), CC_EINVAL);
    cr_assert_eq(parse("{\"ledger_window_days\": 0}", &p, err, sizeof err), CC_EINVAL);
}
