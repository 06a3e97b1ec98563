/*
 * cc_gen_geo.c: the synthetic geography of the generator: regions, ICBs,
 * local authority districts, LSOAs, postcodes, GP practices and providers.
 *
 * England's shape at full scale (10 million patients): the 9 real regions
 * with their real codes, names and population shares, 42 ICBs, 296
 * districts and 33,755 LSOAs; at smaller N the ICBs and regions stay and
 * districts and LSOAs thin out (never below one district per ICB and two
 * LSOAs per district). Area names other than regions are invented from
 * syllables, and postcodes are built from patterns, so nothing here is a real
 * address. Everything is drawn from a stream of the run's seed reserved for
 * the geography, so it does not depend on threads or block sizes.
 */
#include "cc_gen_internal.h"

#include <stdio.h>
#include <stdlib.h>

#include "cc_error.h"

#define FULL_SCALE_PATIENTS 10000000.0
#define FULL_SCALE_LADS 296
#define FULL_SCALE_LSOAS 33755
#define PATIENTS_PER_PRACTICE 9000
#define LSOAS_PER_OUTWARD_CODE 32

enum { STREAM_GEO = 0x6e6f6967, STREAM_PLANTED = 0x746e616c };

static const struct {
    const char *code, *name;
    double population_millions; /* Census 2021 */
    int n_icbs;
    char practice_letter;
    int has_metropolitan;
} region_table[CC_GEN_N_REGIONS] = {
    {"E12000001", "North East", 2.647, 1, 'A', 1},
    {"E12000002", "North West", 7.417, 3, 'P', 1},
    {"E12000003", "Yorkshire and The Humber", 5.481, 3, 'B', 1},
    {"E12000004", "East Midlands", 4.880, 5, 'C', 0},
    {"E12000005", "West Midlands", 5.950, 6, 'M', 1},
    {"E12000006", "East of England", 6.335, 6, 'D', 0},
    {"E12000007", "London", 8.799, 5, 'F', 0},
    {"E12000008", "South East", 9.278, 6, 'H', 0},
    {"E12000009", "South West", 5.701, 7, 'L', 0},
};

static const char *const name_starts[] = {
    "Ash", "Brad", "Carl", "Dun", "East", "Fair", "Glen", "Hal", "Hart", "Kings", "Lang",
    "Mar", "Nor", "Oak", "Pen", "Red", "Sand", "Thorn", "Up", "Wal", "West", "Whit",
    "Wood", "Bar", "Bel", "Brom", "Chel", "Crow", "Dal", "Elm", "Fen", "Gold", "Har",
    "Hol", "Ley", "Mil", "New", "Old", "Ring", "Stan", "Stock", "Sut", "Tam", "Wick",
};
static const char *const name_ends[] = {
    "ton", "ley", "bury", "ford", "ham", "worth", "field", "by", "chester", "wick", "stead",
    "mouth", "bridge", "dale", "hurst", "well", "combe", "minster", "borough", "thorpe",
    "ington", "stow",
};
#define N_STARTS (sizeof name_starts / sizeof name_starts[0])
#define N_ENDS (sizeof name_ends / sizeof name_ends[0])

/* English postcode areas (outward letters). */
static const char *const postcode_areas[] = {
    "AL", "B", "BA", "BB", "BD", "BH", "BL", "BN", "BR", "BS", "CA", "CB", "CH", "CM", "CO",
    "CR", "CT", "CV", "CW", "DA", "DE", "DH", "DL", "DN", "DT", "DY", "E", "EN", "EX", "GL",
    "GU", "HA", "HD", "HG", "HP", "HR", "HU", "HX", "IG", "IP", "KT", "L", "LA", "LE", "LN",
    "LS", "LU", "M", "ME", "MK", "N", "NE", "NG", "NN", "NR", "NW", "OL", "OX", "PE", "PL",
    "PO", "PR", "RG", "RH", "RM", "S", "SE", "SG", "SK", "SL", "SM", "SN", "SO", "SP", "SR",
    "SS", "ST", "SW", "TA", "TF", "TN", "TQ", "TR", "TS", "TW", "UB", "W", "WA", "WD", "WF",
    "WN", "WR", "WS", "WV", "YO",
};
#define N_POSTCODE_AREAS (sizeof postcode_areas / sizeof postcode_areas[0])
#define MAX_OUTWARD_NUMBER 99
/* Letters allowed in the inward code (not C, I, K, M, O, V). */
static const char inward_letters[] = "ABDEFGHJLNPQRSTUWXYZ";

static const char provider_letters[] = "ABCDEFGHJKLMNPQRTVWXY";           /* 21 */
static const char provider_alnum[] = "0123456789ABCDEFGHJKLMNPQRTVWXY"; /* 31 */

/* A distinct invented place name for each index below N_STARTS * N_ENDS. */
static void place_name(char *out, size_t size, int index)
{
    const unsigned n = (unsigned)(N_STARTS * N_ENDS);
    unsigned combo = ((unsigned)index * 7919u + 101u) % n; /* 7919 is prime: a bijection */
    snprintf(out, size, "%s%s", name_starts[combo / N_ENDS], name_ends[combo % N_ENDS]);
}

/* Splits `total` into n shares proportional to weights, each at least
 * min_each (largest remainder method; deterministic). */
static void allocate(int total, int n, const double *weights, int min_each, int *out)
{
    double weight_sum = 0;
    for (int i = 0; i < n; i++)
        weight_sum += weights[i];
    int rest = total - n * min_each, given = 0;
    if (rest < 0)
        rest = 0;
    for (int i = 0; i < n; i++) {
        out[i] = min_each + (int)(rest * weights[i] / weight_sum);
        given += out[i] - min_each;
    }
    while (given < rest) { /* hand out what rounding kept back, biggest remainder first */
        int best = 0;
        double best_gap = -1;
        for (int i = 0; i < n; i++) {
            double gap = rest * weights[i] / weight_sum - (out[i] - min_each);
            if (gap > best_gap) {
                best_gap = gap;
                best = i;
            }
        }
        out[best]++;
        given++;
    }
}

/* Writes an area code: a 3-character prefix and 6 digits ("E01000123"). */
static void area_code(char out[CC_GEN_CODE_LEN], const char *prefix, unsigned number)
{
    memcpy(out, prefix, 3);
    for (int i = 8; i >= 3; i--, number /= 10)
        out[i] = (char)('0' + number % 10);
    out[9] = '\0';
}

static int clamp_int(double x, int lo, int hi)
{
    int v = (int)lround(x);
    return v < lo ? lo : v > hi ? hi : v;
}

int cc_gen_geo_build(struct cc_gen_geo *geo, uint64_t seed, int64_t n_patients)
{
    memset(geo, 0, sizeof *geo);
    struct cc_gen_rng rng;
    cc_gen_rng_seed(&rng, seed, STREAM_GEO);
    double scale = (double)n_patients / FULL_SCALE_PATIENTS;
    double *weights = NULL;
    int *shares = NULL;

    /* Regions and ICBs. */
    double england = 0;
    for (int r = 0; r < CC_GEN_N_REGIONS; r++)
        england += region_table[r].population_millions;
    int icb = 0;
    for (int r = 0; r < CC_GEN_N_REGIONS; r++) {
        struct cc_gen_region *region = &geo->regions[r];
        memcpy(region->code, region_table[r].code, CC_GEN_CODE_LEN);
        region->name = region_table[r].name;
        region->weight = region_table[r].population_millions / england;
        region->practice_letter = region_table[r].practice_letter;
        double sum = 0, raw[8];
        for (int i = 0; i < region_table[r].n_icbs; i++)
            sum += raw[i] = 0.6 + 0.8 * cc_gen_uniform(&rng);
        for (int i = 0; i < region_table[r].n_icbs; i++, icb++) {
            geo->icbs[icb].region = r;
            geo->icbs[icb].weight = region->weight * raw[i] / sum;
            area_code(geo->icbs[icb].code, "E54", (unsigned)(8 + icb));
        }
    }

    /* Districts: at least one per ICB. */
    geo->n_lads = clamp_int(FULL_SCALE_LADS * scale, CC_GEN_N_ICBS, FULL_SCALE_LADS);
    geo->lads = calloc((size_t)geo->n_lads, sizeof *geo->lads);
    weights = calloc((size_t)geo->n_lads + CC_GEN_N_ICBS, sizeof *weights);
    shares = calloc((size_t)geo->n_lads + CC_GEN_N_ICBS, sizeof *shares);
    if (!geo->lads || !weights || !shares)
        goto fail;
    for (int i = 0; i < CC_GEN_N_ICBS; i++)
        weights[i] = geo->icbs[i].weight;
    allocate(geo->n_lads, CC_GEN_N_ICBS, weights, 1, shares);
    int lad = 0, counter_e06 = 0, counter_e07 = 0, counter_e08 = 0, counter_e09 = 0;
    for (int i = 0; i < CC_GEN_N_ICBS; i++) {
        struct cc_gen_icb *board = &geo->icbs[i];
        int r = board->region;
        board->first_lad = lad;
        board->n_lads = shares[i];
        double sum = 0;
        for (int j = 0; j < board->n_lads; j++)
            sum += geo->lads[lad + j].weight = 0.5 + cc_gen_uniform(&rng);
        for (int j = 0; j < board->n_lads; j++, lad++) {
            struct cc_gen_lad *district = &geo->lads[lad];
            district->icb = i;
            district->weight = board->weight * district->weight / sum;
            place_name(district->name, sizeof district->name, lad);
            double u = cc_gen_uniform(&rng);
            if (r == 6)
                area_code(district->code, "E09", (unsigned)(++counter_e09));
            else if (region_table[r].has_metropolitan && u < 0.35)
                area_code(district->code, "E08", (unsigned)(++counter_e08));
            else if (u < 0.6)
                area_code(district->code, "E06", (unsigned)(++counter_e06));
            else
                area_code(district->code, "E07", (unsigned)(++counter_e07));
        }
        char place[48];
        place_name(place, sizeof place, FULL_SCALE_LADS + 10 + i);
        snprintf(board->name, sizeof board->name, "NHS %s Integrated Care Board", place);
    }

    /* LSOAs: at least two per district, about 300 patients each. */
    geo->n_lsoas = (int)lround(FULL_SCALE_LSOAS * scale);
    if (geo->n_lsoas < 2 * geo->n_lads)
        geo->n_lsoas = 2 * geo->n_lads;
    geo->lsoas = calloc((size_t)geo->n_lsoas, sizeof *geo->lsoas);
    geo->lsoa_cumulative = calloc((size_t)geo->n_lsoas, sizeof *geo->lsoa_cumulative);
    if (!geo->lsoas || !geo->lsoa_cumulative)
        goto fail;
    for (int i = 0; i < geo->n_lads; i++)
        weights[i] = geo->lads[i].weight;
    allocate(geo->n_lsoas, geo->n_lads, weights, 2, shares);
    int lsoa = 0;
    double cumulative = 0;
    uint32_t n_postcodes = 0;
    for (int i = 0; i < geo->n_lads; i++) {
        geo->lads[i].first_lsoa = lsoa;
        geo->lads[i].n_lsoas = shares[i];
        for (int j = 0; j < shares[i]; j++, lsoa++) {
            struct cc_gen_lsoa *area = &geo->lsoas[lsoa];
            area_code(area->code, "E01", (unsigned)(lsoa + 1));
            area->lad = i;
            area->deprivation = (float)cc_gen_normal(&rng);
            area->n_postcodes = 5 + cc_gen_below(&rng, 8);
            area->first_postcode = n_postcodes;
            n_postcodes += area->n_postcodes;
            cumulative += geo->lads[i].weight / shares[i] * (0.8 + 0.4 * cc_gen_uniform(&rng));
            geo->lsoa_cumulative[lsoa] = cumulative;
        }
    }
    for (int i = 0; i < geo->n_lsoas; i++)
        geo->lsoa_cumulative[i] /= cumulative;
    /* Deprivation varies between the LSOAs of a district but is centred on
     * each district's mean, so districts, ICBs and regions differ only by
     * chance and by the planted effects: comparisons at those levels have
     * exactly the differences the manifest declares to find. */
    for (int i = 0; i < geo->n_lads; i++) {
        double mean = 0;
        for (int j = 0; j < geo->lads[i].n_lsoas; j++)
            mean += geo->lsoas[geo->lads[i].first_lsoa + j].deprivation;
        mean /= geo->lads[i].n_lsoas;
        for (int j = 0; j < geo->lads[i].n_lsoas; j++)
            geo->lsoas[geo->lads[i].first_lsoa + j].deprivation -= (float)mean;
    }
    geo->lsoa_cumulative[geo->n_lsoas - 1] = 1.0;

    /* Postcodes: a new outward code for every LSOAS_PER_OUTWARD_CODE LSOAs of
     * a district, inward codes from a bijection of 0..3999 (1237 is prime) so each is unique
     * within its outward code. */
    geo->n_postcodes = n_postcodes;
    geo->postcodes = calloc(n_postcodes, sizeof *geo->postcodes);
    if (!geo->postcodes)
        goto fail;
    int outward_used[N_POSTCODE_AREAS] = {0};
    for (int i = 0; i < geo->n_lads; i++) {
        const struct cc_gen_lad *district = &geo->lads[i];
        char outward[16] = "";
        unsigned inward_index = 0, outward_serial = 0;
        for (int j = 0; j < district->n_lsoas; j++) {
            if (j % LSOAS_PER_OUTWARD_CODE == 0) {
                size_t area = (size_t)i % N_POSTCODE_AREAS;
                while (outward_used[area] >= MAX_OUTWARD_NUMBER)
                    area = (area + 1) % N_POSTCODE_AREAS;
                outward_used[area]++;
                snprintf(outward, sizeof outward, "%s%d", postcode_areas[area], outward_used[area]);
                inward_index = 0;
                outward_serial++;
            }
            const struct cc_gen_lsoa *area = &geo->lsoas[district->first_lsoa + j];
            for (uint32_t k = 0; k < area->n_postcodes; k++, inward_index++) {
                unsigned code = (inward_index * 1237u + outward_serial * 331u + (unsigned)i * 17u) % 4000u;
                char *pc = geo->postcodes[area->first_postcode + k];
                size_t n = strlen(outward);
                memcpy(pc, outward, n);
                pc[n] = ' ';
                pc[n + 1] = (char)('0' + code / 400u);
                pc[n + 2] = inward_letters[code / 20u % 20u];
                pc[n + 3] = inward_letters[code % 20u];
                pc[n + 4] = '\0';
            }
        }
    }

    /* Practices: about PATIENTS_PER_PRACTICE patients each, at least one
     * per district, each in one district. */
    geo->n_practices = clamp_int((double)n_patients / PATIENTS_PER_PRACTICE, geo->n_lads, 100000);
    geo->practices = calloc((size_t)geo->n_practices, sizeof *geo->practices);
    if (!geo->practices)
        goto fail;
    for (int i = 0; i < geo->n_lads; i++)
        weights[i] = geo->lads[i].weight;
    allocate(geo->n_practices, geo->n_lads, weights, 1, shares);
    int practice = 0, per_region[CC_GEN_N_REGIONS] = {0};
    for (int i = 0; i < geo->n_lads; i++) {
        geo->lads[i].first_practice = practice;
        geo->lads[i].n_practices = shares[i];
        int r = geo->icbs[geo->lads[i].icb].region;
        for (int j = 0; j < shares[i]; j++, practice++) {
            geo->practices[practice].lad = i;
            char *code = geo->practices[practice].code;
            unsigned number = 81001u + (unsigned)(per_region[r]++ % 18999);
            code[0] = geo->regions[r].practice_letter;
            for (int k = 5; k >= 1; k--, number /= 10)
                code[k] = (char)('0' + number % 10);
            code[6] = '\0';
        }
    }

    /* Providers: one to three acute trusts and one community provider per ICB. */
    geo->providers = calloc(CC_GEN_N_ICBS * 4, sizeof *geo->providers);
    if (!geo->providers)
        goto fail;
    int n_acute = 0;
    for (int i = 0; i < CC_GEN_N_ICBS; i++) {
        struct cc_gen_icb *board = &geo->icbs[i];
        board->first_acute = geo->n_providers;
        board->n_acutes = 1 + (int)cc_gen_below(&rng, 3);
        for (int j = 0; j < board->n_acutes; j++, n_acute++)
            snprintf(geo->providers[geo->n_providers++], 6, "R%c%c", provider_letters[n_acute % 21],
                     provider_alnum[n_acute / 21]);
        board->community_provider = geo->n_providers;
        snprintf(geo->providers[geo->n_providers++], 6, "N%c%c", provider_letters[i % 21],
                 provider_alnum[i / 21]);
    }

    /* Planted effects: a region with fewer admissions, and one of the six
     * most populous ICBs outside it with more type 2 diabetes (large enough
     * that the effect shows at small N). */
    struct cc_gen_rng planted;
    cc_gen_rng_seed(&planted, seed, STREAM_PLANTED);
    geo->planted_region = (int)cc_gen_below(&planted, CC_GEN_N_REGIONS);
    int order[CC_GEN_N_ICBS], n_order = 0;
    for (int i = 0; i < CC_GEN_N_ICBS; i++)
        if (geo->icbs[i].region != geo->planted_region)
            order[n_order++] = i;
    for (int i = 1; i < n_order; i++) /* insertion sort by weight, largest first */
        for (int j = i; j > 0 && geo->icbs[order[j]].weight > geo->icbs[order[j - 1]].weight; j--) {
            int t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    geo->planted_icb = order[cc_gen_below(&planted, 6)];

    free(weights);
    free(shares);
    return 0;
fail:
    free(weights);
    free(shares);
    return CC_ENOMEM;
}

void cc_gen_geo_free(struct cc_gen_geo *geo)
{
    free(geo->lads);
    free(geo->lsoas);
    free(geo->lsoa_cumulative);
    free(geo->postcodes);
    free(geo->practices);
    free(geo->providers);
    memset(geo, 0, sizeof *geo);
}

int cc_gen_geo_pick_lsoa(const struct cc_gen_geo *geo, double u)
{
    int lo = 0, hi = geo->n_lsoas - 1;
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (geo->lsoa_cumulative[mid] > u)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}
