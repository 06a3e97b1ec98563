/*
 * Tests for core/cc_stats.c: each method against the reference values of the R
 * package PHEindicatormethods (ukhsa-collaboration/PHEindicatormethods,
 * commit 093fd288d8f8949dbcfbed70049dbbf385b6141d, 2024-12-13). "PHE xlsx
 * SHEET row N" means tests/testthat/testdata_*.xlsx in that package, the
 * expected values its own testthat suite checks against; the funnel values
 * come from its tests/testthat/testdata_funnel_*.csv files, the inputs and
 * expected outputs of the cases in tests/testthat/testFunnels.R
 * (calculate_funnel_limits: proportions, with axis variation, ratios, rates
 * dsr and crude; assign_funnel_significance: proportions, ratios, rates dsr
 * and crude with and without 0; calculate_funnel_points: dsr and crude).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gsl/gsl_errno.h>

#include "cc_error.h"
#include "cc_stats.h"
#include "cc_testtool.h"

static void gsl_quiet(void)
{
    gsl_set_error_handler_off();
}

TestSuite(stats, .init = gsl_quiet);

/* Asserts |actual - expected| <= relative * |expected| (1e-6 is well beyond
 * the 4 significant figures the brief asks for). */
#define assert_close(actual, expected, relative)                               \
    do {                                                                       \
        double a_ = (actual), e_ = (expected);                                 \
        cr_assert(fabs(a_ - e_) <= (relative) * fabs(e_),                      \
                  "%s = %.12g, expected %.12g", #actual, a_, e_);              \
    } while (0)

#define REL 1e-6

/* ---- Wilson score intervals ------------------------------------------- */

Test(stats, wilson_matches_phe_byars_wilson_sheet)
{
    struct cc_interval ci;
    /* PHE xlsx testdata_Byars_Wilson/testdata_B_W rows 8-13 */
    cr_assert_eq(cc_stats_wilson(65, 100, 0.95, &ci), 0);
    assert_close(ci.value, 0.65, REL);
    assert_close(ci.lower, 0.55254443296887967, REL);
    assert_close(ci.upper, 0.73635751756902468, REL);
    cr_assert_eq(ci.method, CC_STATS_WILSON);
    cr_assert_eq(cc_stats_wilson(1045, 5000, 0.95, &ci), 0);
    assert_close(ci.lower, 0.19795549880013297, REL);
    assert_close(ci.upper, 0.22049130373189027, REL);
    cr_assert_eq(cc_stats_wilson(0.445, 1, 0.95, &ci), 0);
    assert_close(ci.lower, 0.043817447720588223, REL);
    assert_close(ci.upper, 0.93346212769791559, REL);
    cr_assert_eq(cc_stats_wilson(65, 100, 0.998, &ci), 0);
    assert_close(ci.lower, 0.49549465740704313, REL);
    assert_close(ci.upper, 0.77835406140896968, REL);
    cr_assert_eq(cc_stats_wilson(0.445, 1, 0.998, &ci), 0);
    assert_close(ci.lower, 0.019347006132900975, REL);
    assert_close(ci.upper, 0.97022599470195414, REL);
}

Test(stats, proportion_scales_by_multiplier_as_phe_proportion_sheet)
{
    struct cc_interval ci;
    /* PHE xlsx testdata_Proportion/testdata_Prop rows 14 and 15 (percent) */
    cr_assert_eq(cc_stats_proportion(9856, 12345, 0.95, 100, &ci), 0);
    assert_close(ci.value, 79.837991089509913, REL);
    assert_close(ci.lower, 79.121017529090693, REL);
    assert_close(ci.upper, 80.536400736149091, REL);
    cr_assert_eq(cc_stats_proportion(9856, 12345, 0.998, 100, &ci), 0);
    assert_close(ci.lower, 78.699241084190632, REL);
    assert_close(ci.upper, 80.930614125896255, REL);
    /* row 7: a large denominator */
    cr_assert_eq(cc_stats_proportion(7776456, 7564336677.0, 0.95, 1, &ci), 0);
    assert_close(ci.lower, 1.0273201001641094e-3, REL);
    assert_close(ci.upper, 1.0287644578977231e-3, REL);
    /* row 2: count 1 of 100 */
    cr_assert_eq(cc_stats_proportion(1, 100, 0.998, 1, &ci), 0);
    assert_close(ci.lower, 8.73065697299977e-4, REL);
    assert_close(ci.upper, 0.10455445283705821, REL);
}

Test(stats, wilson_count_zero_has_lower_limit_zero)
{
    struct cc_interval ci;
    cr_assert_eq(cc_stats_wilson(0, 50, 0.95, &ci), 0);
    cr_assert_eq(ci.value, 0.0);
    cr_assert(fabs(ci.lower) < 1e-15, "lower %g", ci.lower);
    cr_assert(ci.upper > 0.05 && ci.upper < 0.1, "upper %g", ci.upper);
}

Test(stats, wilson_count_equal_to_denominator_has_upper_limit_one)
{
    struct cc_interval ci;
    cr_assert_eq(cc_stats_wilson(50, 50, 0.95, &ci), 0);
    cr_assert_eq(ci.value, 1.0);
    cr_assert(fabs(ci.upper - 1.0) < 1e-15, "upper %g", ci.upper);
    cr_assert(ci.lower > 0.9 && ci.lower < 0.95, "lower %g", ci.lower);
}

Test(stats, proportion_rejects_impossible_inputs)
{
    struct cc_interval ci;
    cr_assert_eq(cc_stats_wilson(11, 10, 0.95, &ci), CC_EINVAL);
    cr_assert_eq(cc_stats_wilson(-1, 10, 0.95, &ci), CC_EINVAL);
    cr_assert_eq(cc_stats_wilson(0, 0, 0.95, &ci), CC_EINVAL);
    cr_assert_eq(cc_stats_wilson(1, -5, 0.95, &ci), CC_EINVAL);
    cr_assert_eq(cc_stats_wilson(NAN, 10, 0.95, &ci), CC_EINVAL);
    cr_assert_eq(cc_stats_proportion(1, 10, 0.95, 0, &ci), CC_EINVAL);
}

Test(stats, confidence_must_lie_strictly_between_zero_and_one)
{
    struct cc_interval ci;
    double z;
    cr_assert_eq(cc_stats_wilson(1, 10, 1.0, &ci), CC_EINVAL);
    cr_assert_eq(cc_stats_wilson(1, 10, 0.0, &ci), CC_EINVAL);
    cr_assert_eq(cc_stats_wilson(1, 10, 95, &ci), CC_EINVAL);
    cr_assert_eq(cc_stats_rate(1, 10, -0.5, 1, &ci), CC_EINVAL);
    cr_assert_eq(cc_stats_z(NAN, &z), CC_EINVAL);
    cr_assert_eq(cc_stats_z(0.95, &z), 0);
    assert_close(z, 1.959963984540054, 1e-9);
}

/* ---- Byar's and exact Poisson limits ---------------------------------- */

Test(stats, byars_matches_phe_byars_wilson_sheet)
{
    struct cc_interval ci;
    /* PHE xlsx testdata_Byars_Wilson/testdata_B_W rows 2-7 and 14 */
    cr_assert_eq(cc_stats_byars(65, 0.95, &ci), 0);
    assert_close(ci.lower, 50.163187710459454, REL);
    assert_close(ci.upper, 82.849138545939837, REL);
    cr_assert_eq(cc_stats_byars(1045, 0.95, &ci), 0);
    assert_close(ci.lower, 982.59320180733255, REL);
    assert_close(ci.upper, 1110.3312129856499, REL);
    cr_assert_eq(cc_stats_byars(1, 0.95, &ci), 0);
    assert_close(ci.lower, 1.3072132901504351e-2, REL);
    assert_close(ci.upper, 5.5637555824752605, REL);
    cr_assert_eq(cc_stats_byars(65, 0.998, &ci), 0);
    assert_close(ci.lower, 42.880261471480203, REL);
    assert_close(ci.upper, 94.000290844318016, REL);
    cr_assert_eq(cc_stats_byars(10, 0.998, &ci), 0);
    assert_close(ci.lower, 2.916318374695686, REL);
    assert_close(ci.upper, 24.193724927880535, REL);
    /* row 14: the 99.8% lower limit of 1 is negative, so not given */
    cr_assert_eq(cc_stats_byars(1, 0.998, &ci), 0);
    cr_assert(isnan(ci.lower));
    assert_close(ci.upper, 9.362180217908362, REL);
}

Test(stats, exact_poisson_of_zero_has_lower_limit_zero)
{
    struct cc_interval ci;
    cr_assert_eq(cc_stats_poisson_count(0, 0.95, &ci), 0);
    cr_assert_eq(ci.method, CC_STATS_EXACT);
    cr_assert_eq(ci.lower, 0.0);
    /* chi-square(0.975; 2)/2 = -ln(0.025) */
    assert_close(ci.upper, -log(0.025), 1e-9);
}

Test(stats, poisson_count_switches_from_exact_to_byars_at_ten)
{
    struct cc_interval ci;
    cr_assert_eq(cc_stats_poisson_count(9, 0.95, &ci), 0);
    cr_assert_eq(ci.method, CC_STATS_EXACT);
    cr_assert_eq(cc_stats_poisson_count(9.99, 0.95, &ci), 0);
    cr_assert_eq(ci.method, CC_STATS_EXACT);
    cr_assert_eq(cc_stats_poisson_count(10, 0.95, &ci), 0);
    cr_assert_eq(ci.method, CC_STATS_BYARS);
    cr_assert_eq(cc_stats_poisson_count(-1, 0.95, &ci), CC_EINVAL);
}

/* ---- crude rates ------------------------------------------------------ */

Test(stats, rate_uses_exact_limits_below_ten_as_phe_rate_sheet)
{
    struct cc_interval ci;
    /* PHE xlsx testdata_Rate/testdata_Rate rows 2 and 3 (per 100) */
    cr_assert_eq(cc_stats_rate(1, 100, 0.95, 100, &ci), 0);
    cr_assert_eq(ci.method, CC_STATS_EXACT);
    assert_close(ci.value, 1.0, REL);
    assert_close(ci.lower, 2.5317807984289897e-2, REL);
    assert_close(ci.upper, 5.571643390938898, REL);
    cr_assert_eq(cc_stats_rate(1, 100, 0.998, 100, &ci), 0);
    assert_close(ci.lower, 1.0005003335835344e-3, REL);
    assert_close(ci.upper, 9.2334134764515845, REL);
    cr_assert_eq(cc_stats_rate(5, 100, 0.95, 100, &ci), 0);
    assert_close(ci.lower, 1.62348639011842, REL);
    assert_close(ci.upper, 11.668332079322669, REL);
    cr_assert_eq(cc_stats_rate(5, 100, 0.998, 100, &ci), 0);
    assert_close(ci.lower, 0.739371731917839, REL);
    assert_close(ci.upper, 16.454745203680105, REL);
    /* testdata_Rate_g row 2: 2 per 200, per 100,000 */
    cr_assert_eq(cc_stats_rate(2, 200, 0.95, 100000, &ci), 0);
    assert_close(ci.lower, 121.10463927198258, REL);
    assert_close(ci.upper, 3612.3438338619794, REL);
}

Test(stats, rate_uses_byars_from_ten_as_phe_rate_sheet)
{
    struct cc_interval ci;
    /* PHE xlsx testdata_Rate/testdata_Rate_g row 3: exactly 10 is Byar's */
    cr_assert_eq(cc_stats_rate(10, 200, 0.95, 100000, &ci), 0);
    cr_assert_eq(ci.method, CC_STATS_BYARS);
    assert_close(ci.value, 5000, REL);
    assert_close(ci.lower, 2393.7249569837822, REL);
    assert_close(ci.upper, 9195.7293028782369, REL);
    /* testdata_Rate rows 4, 14 and 21 */
    cr_assert_eq(cc_stats_rate(20, 100, 0.95, 100, &ci), 0);
    assert_close(ci.lower, 12.211428834875937, REL);
    assert_close(ci.upper, 30.889880369197066, REL);
    cr_assert_eq(cc_stats_rate(9856, 12345, 0.998, 100000, &ci), 0);
    assert_close(ci.value, 79837.991089509916, REL);
    assert_close(ci.lower, 77375.905432710526, REL);
    assert_close(ci.upper, 82354.472770954308, REL);
    cr_assert_eq(cc_stats_rate(250, 220, 0.95, 100000, &ci), 0);
    assert_close(ci.lower, 99984.947385328764, REL);
    assert_close(ci.upper, 128631.14487455782, REL);
}

Test(stats, rate_of_zero_events_has_lower_limit_zero)
{
    struct cc_interval ci;
    cr_assert_eq(cc_stats_rate(0, 1000, 0.95, 100000, &ci), 0);
    cr_assert_eq(ci.value, 0.0);
    cr_assert_eq(ci.lower, 0.0);
    assert_close(ci.upper, -log(0.025) / 1000 * 100000, 1e-9);
}

Test(stats, rate_rejects_impossible_inputs)
{
    struct cc_interval ci;
    cr_assert_eq(cc_stats_rate(-1, 100, 0.95, 1000, &ci), CC_EINVAL);
    cr_assert_eq(cc_stats_rate(1, 0, 0.95, 1000, &ci), CC_EINVAL);
    cr_assert_eq(cc_stats_rate(1, 100, 0.95, -1000, &ci), CC_EINVAL);
    cr_assert_eq(cc_stats_rate(INFINITY, 100, 0.95, 1000, &ci), CC_EINVAL);
}

/* ---- directly standardised rates -------------------------------------- */

/* PHE xlsx testdata_DSR_ISR/testdata_multiarea, areas testdata_big and
 * testdata_small; also the populations of testdata_multiarea_isr. */
static const double big_counts[19] = {127, 25, 18, 21, 12, 27, 48, 27, 29, 32,
                                      32, 34, 45, 65, 38, 68, 74, 82, 91};
static const double small_counts[19] = {12, 4, 3, 2, 3, 4, 8, 2, 2, 3,
                                        4, 5, 6, 8, 5, 6, 5, 5, 4};
static const double band_populations[19] = {636, 558, 609, 543, 384, 594, 669,
                                            843, 660, 576, 606, 522, 426, 273,
                                            300, 288, 153, 123, 207};

Test(stats, esp2013_weights_sum_to_one_hundred_thousand)
{
    double sum = 0;
    for (int i = 0; i < CC_STATS_ESP2013_BANDS; i++)
        sum += cc_stats_esp2013[i];
    cr_assert_eq(sum, 100000.0);
    cr_assert_eq(cc_stats_esp2013_band(0), 0);
    cr_assert_eq(cc_stats_esp2013_band(4), 0);
    cr_assert_eq(cc_stats_esp2013_band(5), 1);
    cr_assert_eq(cc_stats_esp2013_band(89), 17);
    cr_assert_eq(cc_stats_esp2013_band(90), 18);
    cr_assert_eq(cc_stats_esp2013_band(104), 18);
    cr_assert_eq(cc_stats_esp2013_band(-1), -1);
}

Test(stats, dsr_matches_phe_dsr_results_sheet)
{
    struct cc_interval ci;
    double total;
    /* PHE xlsx testdata_DSR_ISR/testresults_DSR rows 6 and 7 (per 100,000) */
    cr_assert_eq(cc_stats_dsr(19, big_counts, band_populations, cc_stats_esp2013,
                              0.95, 100000, &ci, &total), 0);
    cr_assert_eq(total, 895.0);
    cr_assert_eq(ci.method, CC_STATS_DOBSON);
    assert_close(ci.value, 10430.247991469423, REL);
    assert_close(ci.lower, 9717.709067985681, REL);
    assert_close(ci.upper, 11178.94091547925, REL);
    cr_assert_eq(cc_stats_dsr(19, big_counts, band_populations, cc_stats_esp2013,
                              0.998, 100000, &ci, NULL), 0);
    assert_close(ci.lower, 9323.2878802199029, REL);
    assert_close(ci.upper, 11620.595999522058, REL);
    cr_assert_eq(cc_stats_dsr(19, small_counts, band_populations, cc_stats_esp2013,
                              0.95, 100000, &ci, &total), 0);
    cr_assert_eq(total, 91.0);
    assert_close(ci.value, 1103.212025300104, REL);
    assert_close(ci.lower, 877.455767536709, REL);
    assert_close(ci.upper, 1367.0882227251795, REL);
    /* row 3: per 10,000 */
    cr_assert_eq(cc_stats_dsr(19, small_counts, band_populations, cc_stats_esp2013,
                              0.998, 10000, &ci, NULL), 0);
    assert_close(ci.lower, 76.36420357939879, REL);
    assert_close(ci.upper, 153.00328948244763, REL);
}

Test(stats, dsr_accepts_another_standard_population)
{
    /* PHE xlsx testdata_DSR_ISR/testdata_1976 with the 1976 European
     * Standard Population (18 bands, 85+); testresults_DSR row 9. */
    static const double counts[18] = {127, 25, 18, 21, 12, 27, 48, 27, 29,
                                      32, 32, 34, 45, 65, 38, 68, 74, 82};
    static const double populations[18] = {636, 558, 609, 543, 384, 594,
                                           669, 843, 660, 576, 606, 522,
                                           426, 273, 300, 288, 153, 123};
    static const double esp1976[18] = {8000, 7000, 7000, 7000, 7000, 7000,
                                       7000, 7000, 7000, 7000, 7000, 6000,
                                       5000, 4000, 3000, 2000, 1000, 1000};
    struct cc_interval ci;
    cr_assert_eq(cc_stats_dsr(18, counts, populations, esp1976, 0.95, 100000,
                              &ci, NULL), 0);
    assert_close(ci.value, 8592.0975850223658, REL);
    assert_close(ci.lower, 7991.160931442103, REL);
    assert_close(ci.upper, 9225.2538803183179, REL);
}

Test(stats, dsr_is_not_calculated_below_ten_events)
{
    /* PHE xlsx testresults_DSR row 8: testdata_tiny, total count 9 */
    double counts[19] = {0};
    counts[6] = 1, counts[12] = 1, counts[15] = 1, counts[16] = 1;
    counts[17] = 2, counts[18] = 3;
    struct cc_interval ci;
    double total = -1;
    cr_assert_eq(cc_stats_dsr(19, counts, band_populations, cc_stats_esp2013,
                              0.95, 100000, &ci, &total), CC_ERANGE);
    cr_assert_eq(total, 9.0);
    cr_assert(isnan(ci.value) && isnan(ci.lower) && isnan(ci.upper));
    counts[0] = 1; /* ten events: calculated */
    cr_assert_eq(cc_stats_dsr(19, counts, band_populations, cc_stats_esp2013,
                              0.95, 100000, &ci, &total), 0);
    cr_assert(isfinite(ci.lower) && ci.lower < ci.value && ci.value < ci.upper);
}

Test(stats, dsr_rejects_impossible_inputs)
{
    double counts[19], populations[19];
    struct cc_interval ci;
    for (int i = 0; i < 19; i++)
        counts[i] = big_counts[i], populations[i] = band_populations[i];
    populations[3] = 0;
    cr_assert_eq(cc_stats_dsr(19, counts, populations, cc_stats_esp2013, 0.95,
                              100000, &ci, NULL), CC_EINVAL);
    populations[3] = 543;
    counts[5] = -26; /* PHE testdata_err1 */
    cr_assert_eq(cc_stats_dsr(19, counts, populations, cc_stats_esp2013, 0.95,
                              100000, &ci, NULL), CC_EINVAL);
    cr_assert_eq(cc_stats_dsr(0, counts, populations, cc_stats_esp2013, 0.95,
                              100000, &ci, NULL), CC_EINVAL);
}

/* ---- indirectly standardised ratios ----------------------------------- */

/* PHE xlsx testdata_DSR_ISR/refdata */
static const double reference_counts[19] = {10303, 2824, 0, 3615, 3641, 3490,
                                            3789, 3213, 3031, 2771, 3089, 3490,
                                            3595, 4745, 5514, 7125, 5694, 6210,
                                            5757};
static const double reference_populations[19] = {
    50520, 57173, 60213, 54659, 44345, 50128, 62163, 67423, 62899, 55463,
    60479, 49974, 44140, 40888, 37239, 30819, 18136, 15325, 13918};

Test(stats, expected_count_matches_phe_isr_results_sheet)
{
    double expected;
    /* PHE xlsx testresults_ISR rows 2-13: expected 835.88356123117433 */
    cr_assert_eq(cc_stats_expected(19, band_populations, reference_counts,
                                   reference_populations, &expected), 0);
    assert_close(expected, 835.88356123117433, REL);
}

Test(stats, isr_matches_phe_isr_results_sheet)
{
    const double expected = 835.88356123117433;
    struct cc_interval ci;
    /* PHE xlsx testresults_ISR rows 8-10 (ratio x 1) */
    cr_assert_eq(cc_stats_isr(895, expected, 0.95, 1, &ci), 0);
    cr_assert_eq(ci.method, CC_STATS_BYARS);
    assert_close(ci.value, 1.0707232939020275, REL);
    assert_close(ci.lower, 1.0017147712553987, REL);
    assert_close(ci.upper, 1.1432332872498949, REL);
    cr_assert_eq(cc_stats_isr(895, expected, 0.998, 1, &ci), 0);
    assert_close(ci.lower, 0.96351556196144372, REL);
    assert_close(ci.upper, 1.1860070415876287, REL);
    cr_assert_eq(cc_stats_isr(91, expected, 0.95, 1, &ci), 0);
    assert_close(ci.lower, 8.765040101829405e-2, REL);
    assert_close(ci.upper, 0.13366576328418911, REL);
    cr_assert_eq(cc_stats_isr(9, expected, 0.95, 1, &ci), 0);
    cr_assert_eq(ci.method, CC_STATS_EXACT);
    assert_close(ci.value, 1.0767049882813684e-2, REL);
    assert_close(ci.lower, 4.9233808250957762e-3, REL);
    assert_close(ci.upper, 2.043921455549973e-2, REL);
    cr_assert_eq(cc_stats_isr(9, expected, 0.998, 100, &ci), 0);
    assert_close(ci.lower, 0.2933930655068262, REL);
    assert_close(ci.upper, 2.7105896514690211, REL);
}

Test(stats, isr_with_reference_rate_gives_phe_israte)
{
    /* PHE xlsx testresults_ISR row 2: indirectly standardised rate per
     * 100,000, reference rate 9349.8830922110192 per 100,000. */
    double reference_events = 0, reference_population = 0;
    for (int i = 0; i < 19; i++) {
        reference_events += reference_counts[i];
        reference_population += reference_populations[i];
    }
    double reference_rate = reference_events / reference_population;
    assert_close(reference_rate * 100000, 9349.8830922110192, REL);
    struct cc_interval ci;
    cr_assert_eq(cc_stats_isr(895, 835.88356123117433, 0.95,
                              reference_rate * 100000, &ci), 0);
    assert_close(ci.value, 10011.137622091057, REL);
    assert_close(ci.lower, 9365.91600297888, REL);
    assert_close(ci.upper, 10689.097582910616, REL);
}

Test(stats, isr_rejects_zero_expected)
{
    struct cc_interval ci;
    double expected;
    cr_assert_eq(cc_stats_isr(3, 0, 0.95, 1, &ci), CC_EINVAL);
    cr_assert_eq(cc_stats_isr(-3, 2, 0.95, 1, &ci), CC_EINVAL);
    double zero_population[1] = {0}, count[1] = {5}, population[1] = {100};
    cr_assert_eq(cc_stats_expected(1, population, count, zero_population, &expected),
                 CC_EINVAL);
}

/* ---- means -------------------------------------------------------------- */

Test(stats, mean_matches_phe_mean_results_sheet)
{
    /* PHE xlsx testdata_Mean/testdata_Mean (Area1) and testdata_Mean_results
     * row 2. */
    static const double area1[8] = {33.09375, 48.38596, 64.83495, 67.98475,
                                     22.93556, 71.23587, 38.78465, 82.37927};
    struct cc_interval ci;
    double sd;
    cr_assert_eq(cc_stats_mean(8, area1, 0.95, &ci, &sd), 0);
    cr_assert_eq(ci.method, CC_STATS_STUDENT_T);
    assert_close(sd, 20.975575257709309, REL);
    assert_close(ci.value, 53.704345000000011, REL);
    assert_close(ci.lower, 36.168325241336504, REL);
    assert_close(ci.upper, 71.240364758663517, REL);
    cr_assert_eq(cc_stats_mean(8, area1, 0.998, &ci, NULL), 0);
    assert_close(ci.lower, 18.216705294788838, REL);
    assert_close(ci.upper, 89.191984705211183, REL);
}

Test(stats, mean_from_summary_matches_phe_mean_results_sheet)
{
    /* testdata_Mean_results row 3 (Area2: 18 values) */
    struct cc_interval ci;
    cr_assert_eq(cc_stats_mean_from_summary(18, 5678.9629577777778,
                                            2117.8317161590671, 0.95, &ci), 0);
    assert_close(ci.lower, 4625.7900224529722, REL);
    assert_close(ci.upper, 6732.1358931025834, REL);
    cr_assert_eq(cc_stats_mean_from_summary(18, 5678.9629577777778,
                                            2117.8317161590671, 0.998, &ci), 0);
    assert_close(ci.lower, 3859.0770997295967, REL);
    assert_close(ci.upper, 7498.8488158259588, REL);
}

Test(stats, mean_needs_two_values)
{
    double one[1] = {3}, bad[2] = {1, NAN};
    struct cc_interval ci;
    cr_assert_eq(cc_stats_mean(1, one, 0.95, &ci, NULL), CC_EINVAL);
    cr_assert_eq(cc_stats_mean(2, bad, 0.95, &ci, NULL), CC_EINVAL);
    cr_assert_eq(cc_stats_mean_from_summary(1, 3, 0, 0.95, &ci), CC_EINVAL);
}

/* ---- funnel plots ------------------------------------------------------- */

/* testdata_funnel_prop_inputs.csv: sum(numerator) / sum(denominator),
 * the baseline of testdata_funnel_prop_outputs.csv (80.642448%). */
static const double funnel_average = 0.806424478571495;

Test(stats, funnel_proportion_matches_phe_funnel_outputs)
{
    /* testdata_funnel_prop_outputs.csv: Population, 2s lower/upper, 3s
     * lower/upper, in percent (6 decimals). */
    static const double rows[][5] = {
        {1, 3.204264, 100, 0, 100},
        {2, 25.885383, 100, 0, 100},
        {24, 64.835445, 96.449451, 55.719892, 100},
        {30, 66.504234, 94.780661, 58.351036, 100},
        {99108, 80.396467, 80.888428, 80.254616, 81.03028},
        {110000, 80.408963, 80.875933, 80.274317, 81.010578},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct cc_funnel_point two, three;
        cr_assert_eq(cc_stats_funnel_proportion(funnel_average, rows[i][0], 0.95,
                                                100, &two), 0);
        cr_assert_eq(cc_stats_funnel_proportion(funnel_average, rows[i][0], 0.998,
                                                100, &three), 0);
        cr_assert(fabs(two.lower_limit - rows[i][1]) < 2e-6, "row %zu: %.9g", i,
                  two.lower_limit);
        cr_assert(fabs(two.upper_limit - rows[i][2]) < 2e-6, "row %zu: %.9g", i,
                  two.upper_limit);
        cr_assert(fabs(three.lower_limit - rows[i][3]) < 2e-6, "row %zu: %.9g", i,
                  three.lower_limit);
        cr_assert(fabs(three.upper_limit - rows[i][4]) < 2e-6, "row %zu: %.9g", i,
                  three.upper_limit);
    }
}

Test(stats, funnel_ratio_matches_phe_funnel_outputs)
{
    /* testdata_funnel_ratio_outputs.csv: observed events, then for 2s and 3s
     * lower expected, lower isr (x100), upper expected, upper isr. PHE finds
     * these by bisection to an absolute 1e-7 on a transformed scale, which
     * is 5e-5 relative for the smallest (0.001000547 where the exact value
     * is -ln(0.999) = 0.0010005003), hence the tolerance of 1e-4: four
     * significant figures. */
    static const double rows[][9] = {
        {1, 5.571644585, 17.94802207, 0.025317898, 3949.774946, 9.233410143,
         10.83023482, 0.001000547, 99945.32721},
        {2, 7.224687515, 27.6828582, 0.242209467, 825.7315569, 11.22886836,
         17.81123382, 0.04540199, 4405.093268},
        {67, 85.0876134, 78.74236604, 51.92408873, 129.0345226, 96.35358134,
         69.53555755, 44.52205864, 150.4872013},
        {684, 737.2376756, 92.77876357, 633.6939776, 107.9385357, 768.7368323,
         88.97713382, 606.0208883, 112.8673967},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct cc_funnel_point two, three;
        cr_assert_eq(cc_stats_funnel_ratio(rows[i][0], 0.95, &two), 0);
        cr_assert_eq(cc_stats_funnel_ratio(rows[i][0], 0.998, &three), 0);
        assert_close(two.lower_denominator, rows[i][1], 1e-4);
        assert_close(two.lower_limit * 100, rows[i][2], 1e-4);
        assert_close(two.upper_denominator, rows[i][3], 1e-4);
        assert_close(two.upper_limit * 100, rows[i][4], 1e-4);
        assert_close(three.lower_denominator, rows[i][5], 1e-4);
        assert_close(three.lower_limit * 100, rows[i][6], 1e-4);
        assert_close(three.upper_denominator, rows[i][7], 1e-4);
        assert_close(three.upper_limit * 100, rows[i][8], 1e-4);
        /* The same limits read at the table's expected counts, as the tool
         * writes them for a row with that expected count. */
        struct cc_funnel_point at;
        cr_assert_eq(cc_stats_funnel_ratio_at(rows[i][1], 0.95, 100, &at), 0);
        assert_close(at.lower_limit, rows[i][2], 1e-4);
        cr_assert_eq(cc_stats_funnel_ratio_at(rows[i][3], 0.95, 100, &at), 0);
        assert_close(at.upper_limit, rows[i][4], 1e-4);
        cr_assert_eq(cc_stats_funnel_ratio_at(rows[i][5], 0.998, 100, &at), 0);
        assert_close(at.lower_limit, rows[i][6], 1e-4);
        cr_assert_eq(cc_stats_funnel_ratio_at(rows[i][7], 0.998, 100, &at), 0);
        assert_close(at.upper_limit, rows[i][8], 1e-4);
    }
}

Test(stats, funnel_rate_matches_phe_funnel_outputs)
{
    /* testdata_funnel_rate_outputs.csv (dsr per 100,000, 3 years of data,
     * baseline 116.1720835): events, 2s lower population per year, 2s lower
     * limit, 2s upper population, 2s upper limit, then 3s the same. */
    static const double rows[][9] = {
        {1, 1598.675694, 20.85059119, 7.264481402, 4588.535848, 2649.348525,
         12.58170943, 0.287087625, 116108.569},
        {89, 31425.26072, 94.40388398, 20508.17444, 144.6577644, 35058.69305,
         84.62000173, 17981.56205, 164.9838128},
        {1360, 411529.9259, 110.158048, 369759.5622, 122.6021934, 424043.2424,
         106.9073359, 358342.3275, 126.5084525},
    };
    const double average_rate = 116.1720835 / 100000, years = 3;
    /* Tolerance 1e-4: PHE's bisection, as for ratios above. */
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct cc_funnel_point two, three;
        cr_assert_eq(cc_stats_funnel_rate(rows[i][0], average_rate, 0.95, 100000,
                                          &two), 0);
        cr_assert_eq(cc_stats_funnel_rate(rows[i][0], average_rate, 0.998, 100000,
                                          &three), 0);
        assert_close(two.lower_denominator / years, rows[i][1], 1e-4);
        assert_close(two.lower_limit, rows[i][2], 1e-4);
        assert_close(two.upper_denominator / years, rows[i][3], 1e-4);
        assert_close(two.upper_limit, rows[i][4], 1e-4);
        assert_close(three.lower_denominator / years, rows[i][5], 1e-4);
        assert_close(three.lower_limit, rows[i][6], 1e-4);
        assert_close(three.upper_denominator / years, rows[i][7], 1e-4);
        assert_close(three.upper_limit, rows[i][8], 1e-4);
        struct cc_funnel_point at;
        cr_assert_eq(cc_stats_funnel_rate_at(rows[i][1] * years, average_rate, 0.95,
                                             100000, &at), 0);
        assert_close(at.lower_limit, rows[i][2], 1e-4);
        cr_assert_eq(cc_stats_funnel_rate_at(rows[i][3] * years, average_rate, 0.95,
                                             100000, &at), 0);
        assert_close(at.upper_limit, rows[i][4], 1e-4);
        cr_assert_eq(cc_stats_funnel_rate_at(rows[i][5] * years, average_rate, 0.998,
                                             100000, &at), 0);
        assert_close(at.lower_limit, rows[i][6], 1e-4);
        cr_assert_eq(cc_stats_funnel_rate_at(rows[i][7] * years, average_rate, 0.998,
                                             100000, &at), 0);
        assert_close(at.upper_limit, rows[i][8], 1e-4);
    }
}

Test(stats, funnel_limits_at_a_denominator_invert_the_funnel_points)
{
    /* At the expected count where O events lie on a limit, the limit is
     * O / expected, to the precision of the bisection (1e-13). */
    static const double levels[] = {0.95, 0.998};
    static const double events[] = {1, 2, 9, 10, 67, 684, 4716, 99999, 250000};
    for (size_t l = 0; l < 2; l++)
        for (size_t i = 0; i < sizeof events / sizeof events[0]; i++) {
            struct cc_funnel_point point, lower, upper;
            cr_assert_eq(cc_stats_funnel_ratio(events[i], levels[l], &point), 0);
            cr_assert_eq(cc_stats_funnel_ratio_at(point.lower_denominator, levels[l], 1,
                                                  &lower), 0);
            cr_assert_eq(cc_stats_funnel_ratio_at(point.upper_denominator, levels[l], 1,
                                                  &upper), 0);
            assert_close(lower.lower_limit, point.lower_limit, 1e-9);
            assert_close(upper.upper_limit, point.upper_limit, 1e-9);
            cr_assert(lower.lower_limit < 1 && lower.upper_limit > 1);
        }
}

Test(stats, funnel_lower_limit_is_zero_where_no_events_would_be_low)
{
    /* 0 events have an exact 95% upper count limit of -ln(0.025) = 3.689:
     * at a smaller expected count no count lies below the funnel. */
    struct cc_funnel_point point;
    cr_assert_eq(cc_stats_funnel_ratio_at(3.6, 0.95, 1, &point), 0);
    cr_assert_eq(point.lower_limit, 0);
    cr_assert_gt(point.upper_limit, 2);
    cr_assert_eq(cc_stats_funnel_ratio_at(3.7, 0.95, 1, &point), 0);
    cr_assert_gt(point.lower_limit, 0);
    cr_assert_lt(point.lower_limit, 0.01);
    cr_assert_eq(cc_stats_funnel_ratio_at(0, 0.95, 1, &point), CC_EINVAL);
    cr_assert_eq(cc_stats_funnel_ratio_at(5, 0.95, 0, &point), CC_EINVAL);
    cr_assert_eq(cc_stats_funnel_rate_at(100, 0, 0.95, 1000, &point), CC_EINVAL);
}

/* testdata_funnel_rate_input_funnels.csv: ev, rate (dsr per 100,000), the
 * input of PHEindicatormethods' rate funnel tests (testFunnels.R,
 * "confidence limits calculate correctly for rates (dsr)" and
 * "calculate_funnel_points works for ..."), and its denominator_derived
 * column (3 years of data) for the first rows. */
static const double rate_funnel_input[][2] = {
    {414, 184}, {462, 102}, {178, 83},  {525, 118}, {194, 121}, {937, 125},
    {817, 112}, {117, 190}, {298, 146}, {228, 140}, {243, 87},  {13, 70},
    {373, 90},  {664, 139}, {601, 109}, {602, 65},  {767, 165}, {708, 143},
    {90, 55},   {952, 135}, {347, 135}, {648, 88},  {988, 167}, {354, 99},
    {839, 83},  {25, 53},   {518, 62},  {425, 118}, {648, 176}, {765, 101},
    {210, 71},  {931, 138}, {589, 74},  {592, 84},  {554, 161}, {870, 79},
    {372, 189}, {843, 170}, {142, 159}, {543, 113}, {489, 191}, {620, 116},
    {774, 200}, {904, 171}, {936, 128}, {841, 134}, {22, 185},  {922, 100},
    {955, 123}, {308, 155},
};

Test(stats, funnel_dsr_population_and_average_match_phe)
{
    static const double derived_per_year[] = {75000, 150980.3922, 71485.94378,
                                              148305.0847, 53443.52617};
    const size_t n = sizeof rate_funnel_input / sizeof rate_funnel_input[0];
    double events = 0, population = 0, crude_events = 0, crude_population = 0;
    for (size_t i = 0; i < n; i++) {
        double p;
        cr_assert_eq(cc_stats_funnel_dsr_population(rate_funnel_input[i][0],
                                                    rate_funnel_input[i][1], 100000, &p), 0);
        if (i < sizeof derived_per_year / sizeof derived_per_year[0])
            assert_close(p / 3, derived_per_year[i], 1e-9);
        events += rate_funnel_input[i][0];
        population += p;
        /* testdata_funnel_rate_outputs_2.csv: the largest count (988)
         * replaced by 5, crude */
        double crude = rate_funnel_input[i][0] == 988 ? 5 : rate_funnel_input[i][0];
        crude_events += crude;
        crude_population += 100000 * crude / rate_funnel_input[i][1];
    }
    /* the baselines of testdata_funnel_rate_outputs.csv and _2.csv */
    assert_close(events / population * 100000, 116.1720835, 1e-9);
    assert_close(crude_events / crude_population * 100000, 114.8591735, 1e-9);
    double p;
    cr_assert_eq(cc_stats_funnel_dsr_population(0, NAN, 100000, &p), CC_ERANGE);
    cr_assert(isnan(p));
    cr_assert_eq(cc_stats_funnel_dsr_population(5, 0, 100000, &p), CC_EINVAL);
}

/* Asserts that the axis points 1, 2, 3, 50, 99 and 100 are those given. */
static void assert_axis(const double points[CC_STATS_FUNNEL_TABLE_POINTS],
                        const double expected[6], const char *table)
{
    static const int at[6] = {1, 2, 3, 50, 99, 100};
    for (int i = 0; i < 6; i++)
        cr_assert_eq(points[at[i] - 1], expected[i], "%s point %d: %.17g, expected %g", table,
                     at[i], points[at[i] - 1], expected[i]);
    for (int i = 1; i < CC_STATS_FUNNEL_TABLE_POINTS; i++)
        cr_assert_gt(points[i], points[i - 1]);
}

/* The first column of each table testFunnels.R checks
 * calculate_funnel_limits() against ("confidence limits calculate correctly
 * for proportions", "... with axis variation", "... for ratios (isr)",
 * "... for rates (dsr)", "... rates (crude); with less than 10 events",
 * "... with 0 events and denominator supplied"), from the denominators of
 * its inputs. */
Test(stats, funnel_axis_matches_phe_funnel_tables)
{
    double points[CC_STATS_FUNNEL_TABLE_POINTS];
    /* testdata_funnel_prop_inputs.csv: denominators 16386 to 102950, and
     * below 31000 ("with axis variation") 16386 to 30929 */
    static const double prop[6] = {1, 2, 3, 598, 99108, 110000};
    cr_assert_eq(cc_stats_funnel_axis(CC_STATS_FUNNEL_OF_PROPORTION, 16386, 102950, NAN, NAN,
                                      points), 0);
    assert_axis(points, prop, "testdata_funnel_prop_outputs.csv");
    static const double prop_varied[6] = {10000, 10121, 10244, 18055, 32604, 33000};
    cr_assert_eq(cc_stats_funnel_axis(CC_STATS_FUNNEL_OF_PROPORTION, 16386, 30929, NAN, NAN,
                                      points), 0);
    assert_axis(points, prop_varied, "testdata_funnel_prop_outputs_with_axis_variation.csv");
    /* testdata_funnel_ratio_inputs.csv: expected 4.293052052 to 706.7669173 */
    static const double ratio[6] = {1, 2, 3, 73, 684, 716};
    cr_assert_eq(cc_stats_funnel_axis(CC_STATS_FUNNEL_OF_RATIO, 4.293052052, 706.7669173, NAN,
                                      NAN, points), 0);
    assert_axis(points, ratio, "testdata_funnel_ratio_outputs.csv");

    /* The rate tables, from testdata_funnel_rate_input_funnels.csv (3 years
     * of data): dsr; crude with the largest count (988) replaced by 5; and
     * crude with that row's events and rate 0, its population given, and
     * only populations above half the largest. */
    const size_t n = sizeof rate_funnel_input / sizeof rate_funnel_input[0];
    double events[3] = {0, 0, 0}, population[3] = {0, 0, 0};
    double smallest[3] = {INFINITY, INFINITY, INFINITY}, largest[3] = {0, 0, 0};
    double largest_population = 0;
    for (size_t i = 0; i < n; i++) {
        double p = 100000 * rate_funnel_input[i][0] / rate_funnel_input[i][1];
        if (p > largest_population)
            largest_population = p;
    }
    for (size_t i = 0; i < n; i++) {
        double ev = rate_funnel_input[i][0], rate = rate_funnel_input[i][1];
        double p = 100000 * ev / rate;
        double ev_of[3] = {ev, ev == 988 ? 5 : ev, ev == 988 ? 0 : ev};
        double p_of[3] = {p, 100000 * ev_of[1] / rate, p};
        for (int t = 0; t < 3; t++) {
            if (t == 2 && !(p > largest_population / 2))
                continue;
            events[t] += ev_of[t];
            population[t] += p_of[t];
            smallest[t] = p_of[t] < smallest[t] ? p_of[t] : smallest[t];
            largest[t] = p_of[t] > largest[t] ? p_of[t] : largest[t];
        }
    }
    static const double rate[3][6] = {{1, 2, 3, 94, 1289, 1360},
                                      {1, 2, 3, 94, 1274, 1344},
                                      {286, 290, 294, 561, 1104, 1119}};
    static const double baseline[3] = {116.1720835, 114.8591735, 95.60285106};
    static const char *table[3] = {"testdata_funnel_rate_outputs.csv",
                                   "testdata_funnel_rate_outputs_2.csv",
                                   "testdata_funnel_rate_outputs_3.csv"};
    for (int t = 0; t < 3; t++) {
        double average = events[t] / population[t];
        assert_close(average * 100000, baseline[t], 1e-9);
        cr_assert_eq(cc_stats_funnel_axis(CC_STATS_FUNNEL_OF_RATE, smallest[t], largest[t],
                                          average, 3, points), 0);
        assert_axis(points, rate[t], table[t]);
    }
    cr_assert_eq(cc_stats_funnel_axis(CC_STATS_FUNNEL_OF_RATE, 1, 2, 0, 3, points), CC_EINVAL);
    cr_assert_eq(cc_stats_funnel_axis(CC_STATS_FUNNEL_OF_RATIO, 0, 2, NAN, NAN, points),
                 CC_EINVAL);
    cr_assert_eq(cc_stats_funnel_axis(CC_STATS_FUNNEL_OF_RATIO, 3, 2, NAN, NAN, points),
                 CC_EINVAL);
}

Test(stats, funnel_axis_counts_digits_as_r_writes_them)
{
    /* 95% of the smallest denominator is 15000000.3: R's as.character()
     * writes floor() of it as "1.5e+07" (7 characters, not 8), so
     * signif.floor keeps two figures: 15000000, not 10000000. */
    double points[CC_STATS_FUNNEL_TABLE_POINTS];
    cr_assert_eq(cc_stats_funnel_axis(CC_STATS_FUNNEL_OF_PROPORTION, 15789474, 20000000,
                                      NAN, NAN, points), 0);
    cr_assert_eq(points[0], 15000000, "%.17g", points[0]);
    cr_assert_eq(points[99], 21000000, "%.17g", points[99]);
    /* 95% of 16386 is 15566.7, five digits: 10000 (the package's table) */
    cr_assert_eq(cc_stats_funnel_axis(CC_STATS_FUNNEL_OF_PROPORTION, 16386, 30000, NAN, NAN,
                                      points), 0);
    cr_assert_eq(points[0], 10000);
}

/* testdata_funnel_rate_dsr_inputs.csv: count, rate_dsr, and the labels of
 * assign_funnel_significance(statistic = "rate", rate_type = "dsr",
 * multiplier = 1e5), column dsr_per_100000_with_0 (testFunnels.R,
 * "Significance for rates calculates correctly; dsr per 100,000 with 0"). */
static const struct {
    double count;
    double dsr;
    const char *significance;
} dsr_funnel_rows[] = {
    {2419, 907.6174266, "High (0.001)"}, {2337, 948.5620216, "High (0.001)"},
    {2291, 799.9690496, "High (0.001)"}, {2242, 852.5637927, "High (0.001)"},
    {2218, 868.5358183, "High (0.001)"}, {2159, 769.6242217, "High (0.001)"},
    {2130, 752.3254955, "High (0.025)"}, {2111, 710.2689402, "Not significant"},
    {2105, 815.3530325, "High (0.001)"}, {2083, 717.7035916, "Not significant"},
    {2078, 755.8016993, "High (0.001)"}, {2062, 825.9742848, "High (0.001)"},
    {2061, 702.2972468, "Not significant"}, {2033, 785.6210132, "High (0.001)"},
    {2033, 743.6763018, "High (0.025)"}, {2010, 781.8323058, "High (0.001)"},
    {2004, 772.6781064, "High (0.001)"}, {2002, 652.3391553, "Low (0.001)"},
    {1977, 648.4969973, "Low (0.001)"}, {1944, 727.5777428, "Not significant"},
    {1932, 625.6551186, "Low (0.001)"}, {1922, 688.5582424, "Not significant"},
    {1912, 662.4465438, "Low (0.025)"}, {1881, 627.1624732, "Low (0.001)"},
    {1844, 657.1114147, "Low (0.025)"}, {1835, 724.8456714, "Not significant"},
    {1833, 659.7820553, "Low (0.025)"}, {1825, 654.7053631, "Low (0.001)"},
    {1816, 624.4435507, "Low (0.001)"}, {1809, 646.7588823, "Low (0.001)"},
    {1798, 703.1689982, "Not significant"}, {1754, 567.9922764, "Low (0.001)"},
    {1746, 617.7750715, "Low (0.001)"}, {1709, 610.8327232, "Low (0.001)"},
    {1694, 608.5089462, "Low (0.001)"}, {1688, 662.3775859, "Low (0.025)"},
    {1649, 667.6454503, "Low (0.025)"}, {1553, 604.1141693, "Low (0.001)"},
    {1332, 469.5645784, "Low (0.001)"},
    {0, NAN, "Not applicable for events less than 10 for dsrs"},
};

Test(stats, funnel_significance_of_dsrs_matches_phe)
{
    const size_t n = sizeof dsr_funnel_rows / sizeof dsr_funnel_rows[0];
    double populations[sizeof dsr_funnel_rows / sizeof dsr_funnel_rows[0]];
    double events = 0, population = 0;
    for (size_t i = 0; i < n; i++) {
        int rc = cc_stats_funnel_dsr_population(dsr_funnel_rows[i].count,
                                                dsr_funnel_rows[i].dsr, 100000,
                                                &populations[i]);
        cr_assert_eq(rc, dsr_funnel_rows[i].count > 0 ? 0 : CC_ERANGE);
        events += dsr_funnel_rows[i].count;
        if (rc == 0)
            population += populations[i]; /* the 0-event row adds nothing */
    }
    for (size_t i = 0; i < n; i++) {
        enum cc_stats_funnel_significance s;
        cr_assert_eq(cc_stats_funnel_significance_dsr(dsr_funnel_rows[i].count,
                                                      populations[i],
                                                      events / population, &s), 0);
        cr_assert_str_eq(cc_stats_funnel_significance_name(s),
                         dsr_funnel_rows[i].significance, "row %zu", i);
    }
    enum cc_stats_funnel_significance s;
    cr_assert_eq(cc_stats_funnel_significance_dsr(9, NAN, 0.01, &s), 0);
    cr_assert_eq(s, CC_STATS_FUNNEL_NOT_APPLICABLE);
    cr_assert_eq(cc_stats_funnel_significance_dsr(10, NAN, 0.01, &s), CC_EINVAL);
}

Test(stats, funnel_ratio_at_one_event_is_exact)
{
    /* The 99.8% upper limit at 1 event: expected = chisq(0.001; 2)/2. */
    struct cc_funnel_point point;
    cr_assert_eq(cc_stats_funnel_ratio(1, 0.998, &point), 0);
    assert_close(point.upper_denominator, -log1p(-0.001), 1e-9);
    assert_close(point.upper_limit, 1 / -log1p(-0.001), 1e-9);
}

Test(stats, funnel_limits_exist_for_millions_of_events)
{
    struct cc_funnel_point below, above;
    /* exact limits just below the switch, Byar's just above: continuous */
    cr_assert_eq(cc_stats_funnel_ratio(100000, 0.998, &below), 0);
    cr_assert_eq(cc_stats_funnel_ratio(100001, 0.998, &above), 0);
    assert_close(above.lower_limit, below.lower_limit, 1e-5);
    assert_close(above.upper_limit, below.upper_limit, 1e-5);
    cr_assert_eq(cc_stats_funnel_rate(5e6, 0.01, 0.95, 100000, &above), 0);
    cr_assert(above.lower_limit < 1000 && above.upper_limit > 1000);
    assert_close(above.lower_limit, 1000, 1e-3);
}

Test(stats, funnel_needs_at_least_one_event)
{
    struct cc_funnel_point point;
    cr_assert_eq(cc_stats_funnel_ratio(0, 0.95, &point), CC_EINVAL);
    cr_assert_eq(cc_stats_funnel_rate(0, 0.001, 0.95, 1000, &point), CC_EINVAL);
    cr_assert_eq(cc_stats_funnel_rate(5, 0, 0.95, 1000, &point), CC_EINVAL);
    cr_assert_eq(cc_stats_funnel_proportion(1.5, 100, 0.95, 1, &point), CC_EINVAL);
}

struct significance_row {
    double numerator;
    double denominator;
    const char *expected;
};

Test(stats, funnel_significance_of_proportions_matches_phe)
{
    /* testdata_funnel_prop_inputs.csv: numerator, denominator, significance
     * (the first rows with each label; the only Low (0.025) row). */
    static const struct significance_row rows[] = {
        {35078.4880000, 41980, "High (0.001)"},
        {48686.4364000, 59804, "High (0.001)"},
        {22506.3828000, 25932, "High (0.001)"},
        {24803.6256000, 31824, "Low (0.001)"},
        {48514.4460000, 64755, "Low (0.001)"},
        {70670.2858000, 93122, "Low (0.001)"},
        {50050.7443000, 61921, "Not significant"},
        {24648.7596000, 30521, "Not significant"},
        {29561.6517000, 36627, "Not significant"},
        {26789.2380000, 33012, "High (0.025)"},
        {36850.0492000, 45449, "High (0.025)"},
        {23910.2469000, 29457, "High (0.025)"},
        {30277.5312000, 37828, "Low (0.025)"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        enum cc_stats_funnel_significance s;
        cr_assert_eq(cc_stats_funnel_significance_proportion(
                         rows[i].numerator, rows[i].denominator, funnel_average, &s),
                     0);
        cr_assert_str_eq(cc_stats_funnel_significance_name(s), rows[i].expected,
                         "row %zu", i);
    }
}

Test(stats, funnel_significance_of_ratios_matches_phe)
{
    /* testdata_funnel_ratio_inputs.csv: obs, expected, significance */
    static const struct significance_row rows[] = {
        {8, 6.239860227, "Not significant"},
        {191, 184.0963855, "Not significant"},
        {220, 249.8012944, "Not significant"},
        {151, 106.4429719, "High (0.001)"},
        {206, 139.4719025, "High (0.001)"},
        {159, 232.9329036, "Low (0.001)"},
        {0, 240.6273499, "Low (0.001)"},
        {150, 119.5695496, "High (0.025)"},
        {182, 143.6804295, "High (0.025)"},
        {101, 126.2973615, "Low (0.025)"},
        {241, 288.6919023, "Low (0.025)"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        enum cc_stats_funnel_significance s;
        cr_assert_eq(cc_stats_funnel_significance_poisson(rows[i].numerator,
                                                          rows[i].denominator, &s),
                     0);
        cr_assert_str_eq(cc_stats_funnel_significance_name(s), rows[i].expected,
                         "row %zu", i);
    }
}

/* ---- comparison with a comparator ------------------------------------- */

Test(stats, compare_uses_whether_comparator_lies_outside_the_interval)
{
    struct cc_interval ci = {.value = 50, .lower = 40, .upper = 60,
                             .confidence = 0.95, .method = CC_STATS_BYARS};
    cr_assert_eq(cc_stats_compare(&ci, 39.9), CC_STATS_HIGHER);
    cr_assert_eq(cc_stats_compare(&ci, 60.1), CC_STATS_LOWER);
    cr_assert_eq(cc_stats_compare(&ci, 55), CC_STATS_SIMILAR);
    cr_assert_eq(cc_stats_compare(&ci, 40), CC_STATS_SIMILAR);
    cr_assert_eq(cc_stats_compare(&ci, 60), CC_STATS_SIMILAR);
    cr_assert_str_eq(cc_stats_comparison_name(CC_STATS_HIGHER), "significantly higher");
    cr_assert_str_eq(cc_stats_comparison_name(CC_STATS_LOWER), "significantly lower");
    cr_assert_str_eq(cc_stats_comparison_name(CC_STATS_SIMILAR), "similar");
}

Test(stats, compare_without_an_interval_is_not_compared)
{
    struct cc_interval ci;
    double counts[19] = {0};
    cr_assert_eq(cc_stats_dsr(19, counts, band_populations, cc_stats_esp2013, 0.95,
                              100000, &ci, NULL), CC_ERANGE);
    cr_assert_eq(cc_stats_compare(&ci, 100), CC_STATS_NOT_COMPARED);
    cr_assert_eq(cc_stats_compare(NULL, 100), CC_STATS_NOT_COMPARED);
    struct cc_interval ok = {.value = 1, .lower = 0.5, .upper = 2};
    cr_assert_eq(cc_stats_compare(&ok, NAN), CC_STATS_NOT_COMPARED);
    cr_assert_str_eq(cc_stats_comparison_name(CC_STATS_NOT_COMPARED), "not compared");
}

Test(stats, rate_compared_with_national_value_end_to_end)
{
    /* An area with 65 events in 100 people (PHE B_W row 2: 50.16-82.85 per
     * 100) is significantly higher than a national 40 per 100, similar to
     * 70 and significantly lower than 90. */
    struct cc_interval ci;
    cr_assert_eq(cc_stats_rate(65, 100, 0.95, 100, &ci), 0);
    cr_assert_eq(cc_stats_compare(&ci, 40), CC_STATS_HIGHER);
    cr_assert_eq(cc_stats_compare(&ci, 70), CC_STATS_SIMILAR);
    cr_assert_eq(cc_stats_compare(&ci, 90), CC_STATS_LOWER);
}

/* ---- the carecount stats tool ----------------------------------------- */

/* Runs `carecount stats ARGS` on input; returns its exit status and its
 * standard output followed by its standard error in out. */
static int run_tool(const char *args, const char *input, char *out, size_t capacity)
{
    char command[1024];
    snprintf(command, sizeof command, "stats %s", args);
    return cc_testtool_run(command, input, out, capacity);
}

Test(stats, tool_adds_interval_columns_to_each_proportion_row)
{
    char out[4096];
    int rc = run_tool("proportion --multiplier 100",
                      "area,numerator,denominator\n\"Area, one\",65,100\n", out,
                      sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    /* PHE testdata_Prop row 13: 55.25444329688797, 73.635751756902465 */
    cr_assert_str_eq(out,
                     "area,numerator,denominator,value,lowercl,uppercl,confidence,"
                     "statistic,method\n"
                     "\"Area, one\",65,100,65,55.2544432969,73.6357517569,95%,"
                     "percentage,Wilson\n");
}

Test(stats, tool_rate_reads_renamed_columns_and_a_percentage_level)
{
    char out[4096];
    int rc = run_tool("rate --confidence 99.8 --columns count=deaths,denominator=pop",
                      "deaths,pop\n1,100\n", out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    /* PHE testdata_Rate row 10: 1.0005003335835343, 9233.4134764515857 */
    cr_assert_str_eq(out,
                     "deaths,pop,value,lowercl,uppercl,confidence,statistic,method\n"
                     "1,100,1000,1.00050033358,9233.41347645,99.8%,"
                     "rate per 100000,Exact\n");
}

Test(stats, tool_dsr_gives_one_row_per_area_and_none_below_ten)
{
    /* PHE testdata_multiarea, testdata_small (91 events) and a 9-event area;
     * testresults_DSR row 7: 1103.212025300104, 877.455767536709,
     * 1367.0882227251795. */
    static const char *bands[19] = {"0-4", "5-9", "10-14", "15-19", "20-24",
                                    "25-29", "30-34", "35-39", "40-44", "45-49",
                                    "50-54", "55-59", "60-64", "65-69", "70-74",
                                    "75-79", "80-84", "85-89", "90+"};
    char input[4096], out[4096];
    size_t used = (size_t)snprintf(input, sizeof input, "area,age_band,count,population\n");
    for (int i = 18; i >= 0; i--) /* bands in any order */
        used += (size_t)snprintf(input + used, sizeof input - used, "small,%s,%g,%g\n",
                                 bands[i], small_counts[i], band_populations[i]);
    for (int i = 0; i < 19; i++)
        used += (size_t)snprintf(input + used, sizeof input - used, "tiny,%s,%d,100\n",
                                 bands[i], i < 9 ? 1 : 0);
    int rc = run_tool("dsr", input, out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert_str_eq(out,
                     "area,total_count,total_pop,value,lowercl,uppercl,confidence,"
                     "statistic,method\n"
                     "small,91,8970,1103.2120253,877.455767537,1367.08822273,"
                     "95%,dsr per 100000,Dobson\n"
                     "tiny,9,1900,,,,95%,dsr NA for total count < 10,Dobson\n");
}

Test(stats, tool_isr_and_mean_match_phe)
{
    char out[4096];
    /* One band whose expected count is 835.88356123117433 reproduces PHE
     * testresults_ISR row 8 (895 observed). */
    int rc = run_tool("isr", "count,population,reference_count,reference_population\n"
                             "895,835.88356123117433,1,1\n", out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "\n895,835.883561231,1.0707232939,1.00171477126,"
                          "1.14323328725,95%,indirectly standardised ratio x 1,Byars\n"),
              "%s", out);
    /* PHE testdata_Mean Area1; testdata_Mean_results row 2 */
    rc = run_tool("mean --columns group=area",
                  "area,value\nA,33.09375\nA,48.38596\nA,64.83495\nA,67.98475\n"
                  "A,22.93556\nA,71.23587\nA,38.78465\nA,82.37927\n", out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "\nA,429.63476,8,20.9755752577,53.704345,36.1683252413,"
                          "71.2403647587,95%,mean,Student's t-distribution\n"),
              "%s", out);
}

Test(stats, tool_bad_cell_names_line_and_column_but_not_the_value)
{
    char out[4096];
    int rc = run_tool("proportion", "name,numerator,denominator\nA,1,100\nB,SECRET,10\n",
                      out, sizeof out);
    cr_assert_eq(rc, 1);
    cr_assert(strstr(out, "line 3, column 'numerator' (2): not a number"), "%s", out);
    cr_assert_null(strstr(out, "SECRET"), "%s", out);
}

Test(stats, tool_rejects_impossible_rows_and_missing_columns)
{
    char out[4096];
    cr_assert_eq(run_tool("proportion", "numerator,denominator\n11,10\n", out, sizeof out), 1);
    cr_assert(strstr(out, "line 2: a proportion needs"), "%s", out);
    cr_assert_eq(run_tool("rate", "count\n11\n", out, sizeof out), 1);
    cr_assert(strstr(out, "needs a column 'denominator'"), "%s", out);
    cr_assert_eq(run_tool("rate", "count,denominator\n1,2,3\n", out, sizeof out), 1);
    cr_assert(strstr(out, "line 2: has 3 fields, the header has 2"), "%s", out);
    cr_assert_eq(run_tool("dsr", "area,age_band,count,population\nA,0-5,1,10\n", out,
                          sizeof out), 1);
    cr_assert(strstr(out, "line 2, column 'age_band' (2)"), "%s", out);
    cr_assert_eq(run_tool("mean", "value\n3\n", out, sizeof out), 1);
    cr_assert(strstr(out, "at least 2 values"), "%s", out);
    cr_assert_eq(run_tool("median", "value\n3\n", out, sizeof out), 2);
    cr_assert_eq(run_tool("rate --confidence 1", "count,denominator\n1,2\n", out,
                          sizeof out), 2);
}

Test(stats, tool_compares_each_area_with_a_comparator)
{
    char out[4096];
    /* 65 per 100 has 95% limits 50.16-82.85 (PHE testdata_Rate row 5), 20
     * per 100 has 12.21-30.89 (row 4); 40 per 100 contains 45. */
    int rc = run_tool("rate --multiplier 100 --comparator 45",
                      "area,count,denominator\nA,65,100\nB,40,100\nC,20,100\n", out,
                      sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, ",method,comparison\n"), "%s", out);
    cr_assert(strstr(out, ",Byars,significantly higher\nB,"), "%s", out);
    cr_assert(strstr(out, ",Byars,similar\nC,"), "%s", out);
    cr_assert(strstr(out, ",Byars,significantly lower\n"), "%s", out);
}

Test(stats, tool_funnel_proportion_marks_rows_as_phe_does)
{
    char out[8192];
    /* testdata_funnel_prop_inputs.csv rows, around its own average
     * (80.6424478571495%) given as the comparator. */
    int rc = run_tool("funnel-proportion --multiplier 100 --comparator 80.6424478571495",
                      "numerator,denominator\n"
                      "35078.4880000,41980\n"
                      "30277.5312000,37828\n"
                      "26789.2380000,33012\n"
                      "50050.7443000,61921\n",
                      out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "numerator,denominator,value,baseline,lower95_0limit,"
                          "upper95_0limit,lower99_8limit,upper99_8limit,significance\n"),
              "%s", out);
    cr_assert(strstr(out, "\n35078.4880000,41980,83.56,80.6424478571,"), "%s", out);
    cr_assert(strstr(out, ",High (0.001)\n30277.5312000,"), "%s", out);
    cr_assert(strstr(out, ",Low (0.025)\n26789.2380000,"), "%s", out);
    cr_assert(strstr(out, ",High (0.025)\n50050.7443000,"), "%s", out);
    cr_assert(strstr(out, ",Not significant\n"), "%s", out);
}

Test(stats, tool_funnel_ratio_and_rate_mark_rows_as_phe_does)
{
    char out[4096];
    /* testdata_funnel_ratio_inputs.csv rows */
    int rc = run_tool("funnel-ratio --columns observed=obs",
                      "obs,expected\n151,106.4429719\n0,240.6273499\n101,126.2973615\n",
                      out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(strstr(out, "obs,expected,value,lower95_0limit,upper95_0limit,"
                          "lower99_8limit,upper99_8limit,significance\n"), "%s", out);
    cr_assert(strstr(out, ",High (0.001)\n0,240.6273499,0,"), "%s", out);
    cr_assert(strstr(out, ",Low (0.001)\n101,"), "%s", out);
    cr_assert(strstr(out, ",Low (0.025)\n"), "%s", out);
    /* A rate funnel around the rows' own average, 30 per 1000: 50 events
     * have a 99.8% Byar's lower limit of 30.9 (above the expected 30), 10
     * an upper limit of 24.2 (below it). The limits are those at 30
     * expected events, times the baseline. */
    rc = run_tool("funnel-rate --multiplier 1000",
                  "count,denominator\n10,1000\n50,1000\n", out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    struct cc_funnel_point two, three;
    cr_assert_eq(cc_stats_funnel_ratio_at(30, 0.95, 30, &two), 0);
    cr_assert_eq(cc_stats_funnel_ratio_at(30, 0.998, 30, &three), 0);
    char limits[256], expected[1024];
    snprintf(limits, sizeof limits, "%.12g,%.12g,%.12g,%.12g", two.lower_limit,
             two.upper_limit, three.lower_limit, three.upper_limit);
    snprintf(expected, sizeof expected,
             "count,denominator,value,baseline,lower95_0limit,upper95_0limit,"
             "lower99_8limit,upper99_8limit,significance\n"
             "10,1000,10,30,%s,Low (0.001)\n"
             "50,1000,50,30,%s,High (0.001)\n", limits, limits);
    cr_assert_str_eq(out, expected);
    cr_assert(two.lower_limit > three.lower_limit && two.lower_limit < 30 &&
              two.upper_limit > 30 && two.upper_limit < three.upper_limit);
}

Test(stats, tool_funnel_ratio_limits_match_phe_table)
{
    char out[4096];
    /* testdata_funnel_ratio_outputs.csv, Observed_events 67: the ISR
     * (x100) limits lie at expected 85.0876134 (lower 2s, 78.74236604),
     * 51.92408873 (upper 2s, 129.0345226), 96.35358134 (lower 3s,
     * 69.53555755) and 44.52205864 (upper 3s, 150.4872013). */
    int rc = run_tool("funnel-ratio --multiplier 100",
                      "observed,expected\n67,85.0876134\n67,51.92408873\n"
                      "67,96.35358134\n67,44.52205864\n", out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    static const int column[4] = {3, 4, 5, 6};
    static const double want[4] = {78.74236604, 129.0345226, 69.53555755, 150.4872013};
    const char *line = strchr(out, '\n') + 1;
    for (int row = 0; row < 4; row++) {
        const char *f = line;
        for (int c = 0; c < column[row]; c++)
            f = strchr(f, ',') + 1;
        assert_close(strtod(f, NULL), want[row], 1e-4);
        line = strchr(line, '\n') + 1;
    }
}

Test(stats, tool_funnel_dsr_marks_rows_as_phe_does)
{
    char input[4096], out[16384];
    size_t used = (size_t)snprintf(input, sizeof input, "count,rate,pop\n");
    const size_t n = sizeof dsr_funnel_rows / sizeof dsr_funnel_rows[0];
    for (size_t i = 0; i < n; i++) {
        if (isnan(dsr_funnel_rows[i].dsr)) /* written NA, as R does */
            used += (size_t)snprintf(input + used, sizeof input - used, "%g,NA,297820\n",
                                     dsr_funnel_rows[i].count);
        else
            used += (size_t)snprintf(input + used, sizeof input - used, "%g,%.10g,1\n",
                                     dsr_funnel_rows[i].count, dsr_funnel_rows[i].dsr);
    }
    int rc = run_tool("funnel-dsr --columns denominator=pop", input, out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(!strncmp(out, "count,rate,pop,value,denominator_derived,baseline,"
                            "lower95_0limit,upper95_0limit,lower99_8limit,"
                            "upper99_8limit,significance\n", 118), "%s", out);
    const char *line = strchr(out, '\n') + 1;
    for (size_t i = 0; i < n; i++) {
        const char *end = strchr(line, '\n');
        cr_assert(end);
        size_t len = strlen(dsr_funnel_rows[i].significance);
        cr_assert(end - line > (ptrdiff_t)len &&
                      !strncmp(end - len, dsr_funnel_rows[i].significance, len) &&
                      end[-(ptrdiff_t)len - 1] == ',',
                  "row %zu: %.*s", i, (int)(end - line), line);
        line = end + 1;
    }
    /* The 0-event row is drawn nowhere: no value, population or limits. */
    cr_assert(strstr(out, "\n0,NA,297820,,,704.900470332,,,,,Not applicable"), "%s", out);
    /* a row of 0 events needs a denominator */
    cr_assert_eq(run_tool("funnel-dsr", "count,rate\n12,100\n0,NA\n", out, sizeof out), 1);
    cr_assert(strstr(out, "line 3: a dsr of 0 events needs a denominator column"), "%s",
              out);
    cr_assert_eq(run_tool("funnel-dsr", "count,rate,denominator\n12,0,5\n", out,
                          sizeof out), 1);
    cr_assert(strstr(out, "line 2, column 'rate' (2): a dsr of events > 0 needs a rate > 0"),
              "%s", out);
}

Test(stats, tool_takes_a_missing_dsr_or_isr_count_as_zero)
{
    /* calculate_dsr: na.zero(x); calculate_ISRatio: sum(x, na.rm = TRUE),
     * na.zero(x_ref), na.zero(n). */
    char with_zero[4096], with_na[4096], out_zero[4096], out_na[4096];
    size_t used_zero = (size_t)snprintf(with_zero, sizeof with_zero,
                                        "age_band,count,population\n");
    size_t used_na = (size_t)snprintf(with_na, sizeof with_na, "age_band,count,population\n");
    for (int i = 0; i < 19; i++) {
        char band[8], count[32];
        if (i == 18)
            snprintf(band, sizeof band, "90+");
        else
            snprintf(band, sizeof band, "%d-%d", i * 5, i * 5 + 4);
        /* every third band missing: as 0, as NA, or empty */
        snprintf(count, sizeof count, "%g", i % 3 ? small_counts[i] : 0);
        used_zero += (size_t)snprintf(with_zero + used_zero, sizeof with_zero - used_zero,
                                      "%s,%s,%g\n", band, count, band_populations[i]);
        used_na += (size_t)snprintf(with_na + used_na, sizeof with_na - used_na,
                                    "%s,%s,%g\n", band,
                                    i % 3 ? count : i % 2 ? "NA" : "", band_populations[i]);
    }
    cr_assert_eq(run_tool("dsr", with_zero, out_zero, sizeof out_zero), 0, "%s", out_zero);
    cr_assert_eq(run_tool("dsr", with_na, out_na, sizeof out_na), 0, "%s\n%s", out_na, with_na);
    cr_assert_str_eq(out_na, out_zero);
    cr_assert(strstr(out_zero, ",95%,dsr per 100000,Dobson\n"), "%s", out_zero);
    cr_assert_eq(run_tool("dsr", "age_band,count,population\n0-4,1,NA\n", out_na,
                          sizeof out_na), 1);
    cr_assert(strstr(out_na, "column 'population' (3): not a number"), "%s", out_na);

    cr_assert_eq(run_tool("isr", "count,population,reference_count,reference_population\n"
                                 "5,100,10,1000\n5,200,20,1000\n0,100,0,1000\n",
                          out_zero, sizeof out_zero), 0, "%s", out_zero);
    cr_assert_eq(run_tool("isr", "count,population,reference_count,reference_population\n"
                                 "5,100,10,1000\n5,200,20,1000\nNA,,NA,1000\n",
                          out_na, sizeof out_na), 0, "%s", out_na);
    cr_assert_str_eq(out_na, out_zero);
    cr_assert(strstr(out_zero, "\n10,5,2,"), "%s", out_zero); /* 10 observed, 5 expected */
    cr_assert_eq(run_tool("isr", "count,population,reference_count,reference_population\n"
                                 "5,100,10,NA\n", out_na, sizeof out_na), 1);
    cr_assert(strstr(out_na, "column 'reference_population' (4): not a number"), "%s",
              out_na);
}

Test(stats, tool_funnel_rejects_impossible_rows)
{
    char out[4096];
    cr_assert_eq(run_tool("funnel-proportion", "numerator,denominator\n5,4\n", out,
                          sizeof out), 1);
    cr_assert(strstr(out, "line 2: a proportion needs numerator <= denominator"), "%s",
              out);
    cr_assert_eq(run_tool("funnel-rate", "count,denominator\n5,0\n", out, sizeof out), 1);
    cr_assert(strstr(out, "line 2: a funnel needs"), "%s", out);
    cr_assert_eq(run_tool("funnel-ratio --confidence 0.9", "observed,expected\n1,1\n",
                          out, sizeof out), 2);
}

Test(stats, tool_reads_spreadsheet_csv_with_byte_order_mark_and_crlf)
{
    char out[4096];
    int rc = run_tool("funnel-ratio", "\xEF\xBB\xBFobserved,expected\r\n8,6.239860227\r\n",
                      out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    /* testdata_funnel_ratio_inputs.csv row 2 */
    cr_assert(!strncmp(out, "observed,expected,value,lower95_0limit,", 39), "%s", out);
    cr_assert(strstr(out, "\n8,6.239860227,1.28208000003,"), "%s", out);
    cr_assert(strstr(out, ",Not significant\n"), "%s", out);
}

/* GSL's chi-square Pinv fails to converge for many upper-tail quantiles in
 * the thousands; the exact interval must not. */
Test(stats, exact_poisson_limits_exist_for_every_count_up_to_100000)
{
    static const double levels[] = {0.95, 0.998};
    for (size_t l = 0; l < 2; l++)
        for (int x = 1; x <= 100000; x += (x < 2000 ? 1 : 7)) {
            struct cc_interval iv;
            cr_assert_eq(cc_stats_exact_poisson(x, levels[l], &iv), 0, "count %d", x);
            cr_assert(iv.lower < x && iv.upper > x, "count %d: %g..%g", x, iv.lower, iv.upper);
            if (x >= 1000) {
                /* Byar's approximation is within 0.01% of the exact limits here */
                struct cc_interval byars;
                cr_assert_eq(cc_stats_byars(x, levels[l], &byars), 0);
                cr_assert_lt(fabs(iv.upper - byars.upper) / iv.upper, 1e-4, "count %d", x);
                cr_assert_lt(fabs(iv.lower - byars.lower) / iv.lower, 1e-4, "count %d", x);
            }
        }
    struct cc_funnel_point fp;
    cr_assert_eq(cc_stats_funnel_ratio(1159, 0.998, &fp), 0);
    cr_assert_lt(fp.lower_limit, 1.0);
    cr_assert_gt(fp.upper_limit, 1.0);
}

/* Returns the numbers of the output line whose first field is first, in
 * values (at most n); the count read. */
static size_t table_row(const char *out, const char *first, double *values, size_t n)
{
    char start[64];
    snprintf(start, sizeof start, "\n%s,", first);
    const char *line = strstr(out, start);
    cr_assert(line, "no row %s in %s", first, out);
    line++;
    size_t got = 0;
    while (got < n) {
        char *end;
        values[got++] = strtod(line, &end);
        if (*end != ',')
            break;
        line = end + 1;
    }
    return got;
}

Test(stats, tool_funnel_table_matches_phe_calculate_funnel_limits)
{
    char out[32768];
    double v[10];
    /* testdata_funnel_ratio_inputs.csv: the axis runs from its smallest
     * expected count (4.293052052) to its largest (706.7669173); rows 67
     * and 716 of testdata_funnel_ratio_outputs.csv, ISRs x 100. */
    int rc = run_tool("funnel-ratio --table --multiplier 100",
                      "observed,expected\n8,4.293052052\n500,706.7669173\n", out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    cr_assert(!strncmp(out, "Observed_events,lower_2s_exp_events,lower_2s_limit,", 51), "%s",
              out);
    static const double row67[9] = {67, 85.0876134, 78.74236604, 51.92408873, 129.0345226,
                                    96.35358134, 69.53555755, 44.52205864, 150.4872013};
    static const double row716[9] = {716, 770.4222128, 92.93605352, 664.5083011, 107.7488421,
                                     802.60414, 89.20960712, 636.1521174, 112.5516964};
    cr_assert_eq(table_row(out, "67", v, 10), 9);
    for (int i = 0; i < 9; i++)
        assert_close(v[i], row67[i], 1e-4);
    cr_assert_eq(table_row(out, "716", v, 10), 9);
    for (int i = 0; i < 9; i++)
        assert_close(v[i], row716[i], 1e-4);
    size_t lines = 0;
    for (const char *p = out; (p = strchr(p, '\n')) != NULL; p++)
        lines++;
    cr_assert_eq(lines, 1 + CC_STATS_FUNNEL_TABLE_POINTS);

    /* testdata_funnel_prop_outputs_with_axis_variation.csv: denominators
     * 16386 to 30929, around 82.18033788% (its baseline), rows 1 and 50 */
    rc = run_tool("funnel-proportion --table --multiplier 100 --comparator 82.18033788",
                  "numerator,denominator\n10000,16386\n20000,30929\n", out, sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    static const double row1[6] = {10000, 81.43030244, 82.93037332, 80.99777342, 83.36290233,
                                   82.18033788};
    static const double row50[6] = {18055, 81.62214661, 82.73852914, 81.30024992, 83.06042583,
                                    82.18033788};
    cr_assert_eq(table_row(out, "10000", v, 10), 6);
    for (int i = 0; i < 6; i++)
        cr_assert(fabs(v[i] - row1[i]) < 1e-8, "%d: %.12g", i, v[i]);
    cr_assert_eq(table_row(out, "18055", v, 10), 6);
    for (int i = 0; i < 6; i++)
        cr_assert(fabs(v[i] - row50[i]) < 1e-8, "%d: %.12g", i, v[i]);
}

Test(stats, tool_funnel_table_of_dsrs_is_per_year)
{
    char input[2048], out[32768];
    double v[11];
    /* testdata_funnel_rate_input_funnels.csv (3 years of data) and the first
     * row of testdata_funnel_rate_outputs.csv */
    size_t used = (size_t)snprintf(input, sizeof input, "ev,rate\n");
    for (size_t i = 0; i < sizeof rate_funnel_input / sizeof rate_funnel_input[0]; i++)
        used += (size_t)snprintf(input + used, sizeof input - used, "%g,%g\n",
                                 rate_funnel_input[i][0], rate_funnel_input[i][1]);
    int rc = run_tool("funnel-dsr --table --years 3 --columns count=ev", input, out,
                      sizeof out);
    cr_assert_eq(rc, 0, "%s", out);
    static const double row1[10] = {1, 1598.675694, 20.85059119, 7.264481402, 4588.535848,
                                    2649.348525, 12.58170943, 0.287087625, 116108.569,
                                    116.1720835};
    cr_assert_eq(table_row(out, "1", v, 11), 10);
    for (int i = 0; i < 10; i++)
        assert_close(v[i], row1[i], 1e-4);
    cr_assert_eq(run_tool("funnel-ratio --years 3 --table", "observed,expected\n1,2\n", out,
                          sizeof out), 2);
    cr_assert(strstr(out, "--years is for the table of a rate funnel"), "%s", out);
    cr_assert_eq(run_tool("rate --table", "count,denominator\n1,2\n", out, sizeof out), 2);
    cr_assert_eq(run_tool("funnel-rate --table --years 0", "count,denominator\n1,2\n", out,
                          sizeof out), 2);
}
