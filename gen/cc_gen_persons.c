/*
 * cc_gen_persons.c: one block of synthetic persons and every patient-level
 * row about them (GP registrations and events, hospital episodes, community
 * contacts, opt-out register events), written into the block's buffers.
 *
 * A block depends only on the run's seed, its index and the read-only
 * context, so blocks can be generated on any thread in any order and the
 * output is the same bytes. It must never write a real identifier: NHS
 * numbers come only from the block's slice of an unissued range.
 */
#include "cc_gen_persons.h"

#include <stdlib.h>

#include "cc_error.h"

/* ---- conditions ---- */

enum condition {
    COND_T2_DIABETES = 0,
    COND_HYPERTENSION,
    COND_ASTHMA,
    COND_COPD,
    COND_DEPRESSION,
    COND_CHD,
    COND_BREAST_CANCER,
    N_CONDITIONS
};
_Static_assert(N_CONDITIONS == CC_GEN_N_CONDITIONS, "condition table size");

/* Prevalence in percent by 5-year band (0-4 ... 90+), before the sex
 * multiplier and the area effect; roughly the shape of QOF registers. */
static const float prevalence_percent[N_CONDITIONS][CC_N_AGE_BANDS_5Y] = {
    {0, 0, 0, 0.1f, 0.3f, 0.6f, 1.0f, 1.6f, 2.6f, 4.0f, 6.0f, 8.5f, 11, 13.5f, 15.5f, 17, 17, 16, 14},
    {0, 0, 0, 0.2f, 0.6f, 1.2f, 2.0f, 3.5f, 6, 9, 14, 19, 25, 31, 38, 45, 50, 54, 55},
    {3, 7, 8, 8, 7, 6.5f, 6.5f, 6.5f, 6.5f, 6.5f, 6.5f, 6.5f, 6.5f, 6.5f, 6.5f, 6.5f, 6, 6, 5},
    {0, 0, 0, 0, 0, 0, 0, 0.1f, 0.3f, 0.6f, 1.2f, 2.0f, 3.0f, 4.2f, 5.5f, 6.5f, 7, 7, 6},
    {0, 0, 0.3f, 3, 9, 12, 13, 13, 13, 13, 13, 12.5f, 12, 11, 10, 10, 10, 10, 10},
    {0, 0, 0, 0, 0, 0, 0, 0.1f, 0.3f, 0.8f, 1.6f, 2.8f, 4.5f, 6.5f, 8.5f, 11, 13, 14, 14},
    {0, 0, 0, 0, 0, 0, 0.05f, 0.15f, 0.4f, 0.8f, 1.2f, 1.8f, 2.2f, 2.6f, 3, 3.2f, 3.3f, 3.3f, 3},
};

static const struct {
    const char *name;
    const char *snomed;          /* GP diagnosis code */
    double male, female;         /* sex multipliers */
    double deprivation;          /* log-prevalence per SD of area deprivation */
    double admissions;           /* condition-specific admissions per person over the period */
    double secondary;            /* chance another episode lists it as a secondary diagnosis */
    const char *secondary_icd10;
} conditions[N_CONDITIONS] = {
    {"type2_diabetes", "44054006", 1.20, 0.82, 0.25, 0.15, 0.8, "E119"},
    {"hypertension", "38341003", 1.05, 0.95, 0.10, 0.03, 0.7, "I10X"},
    {"asthma", "195967001", 0.90, 1.10, 0.10, 0.15, 0.4, "J459"},
    {"copd", "13645005", 1.10, 0.90, 0.35, 0.60, 0.6, "J449"},
    {"depression", "35489007", 0.70, 1.30, 0.15, 0.05, 0.4, "F329"},
    {"coronary_heart_disease", "53741008", 1.50, 0.55, 0.20, 0.50, 0.6, "I251"},
    {"breast_cancer", "254837009", 0.00, 1.00, -0.05, 1.50, 0.7, "C509"},
};

/* ---- persons ---- */

/* England's population by 5-year band, percent (Census 2021, rounded). */
static const double band_percent[CC_N_AGE_BANDS_5Y] = {
    5.4, 5.9, 6.0, 5.6, 6.0, 6.6, 6.9, 6.6, 6.3, 6.4, 6.9, 6.7, 5.8, 5.0, 5.0, 3.7, 2.5, 1.5, 0.9,
};
static const double female_share[CC_N_AGE_BANDS_5Y] = {
    0.49, 0.49, 0.49, 0.49, 0.49, 0.49, 0.49, 0.49, 0.49, 0.50, 0.50, 0.50, 0.51, 0.51, 0.53, 0.53,
    0.56, 0.62, 0.70,
};

/* Fixed name lists, with the spellings real feeds carry: apostrophes,
 * commas, quotes, hyphens and letters outside ASCII. */
static const char *const given_male[] = {
    "Oliver", "George", "Harry", "Jack", "Noah", "Leo", "Arthur", "Muhammad", "Oscar",
    "Charlie", "James", "William", "Thomas", "David", "John", "Michael", "Daniel", "Peter",
    "Łukasz", "Seán", "José", "Ravi", "Kwame", "Jean-Luc", "Robert \"Bob\"", "Søren", "Tomás",
    "Ahmed", "Oisín", "Krzysztof",
};
static const char *const given_female[] = {
    "Olivia", "Amelia", "Isla", "Ava", "Lily", "Sophia", "Emily", "Grace", "Freya", "Mia",
    "Sarah", "Margaret", "Susan", "Elizabeth", "Zoë", "Siobhán", "Aoife", "Chloë", "Renée",
    "Fatima", "Priya", "Ngozi", "Małgorzata", "Mary-Jane", "Anne \"Annie\"", "Ffion", "Niamh",
    "Agnieszka", "Jane", "Ayesha",
};
static const char *const family_names[] = {
    "Smith", "Jones", "Taylor", "Brown", "Williams", "Wilson", "Johnson", "Davies", "Patel",
    "Robinson", "Wright", "Thompson", "Evans", "Walker", "White", "Roberts", "Green", "Hall",
    "Wood", "Jackson", "Clarke", "Khan", "Ahmed", "Singh", "O'Brien", "O'Connor", "D'Souza",
    "Nowak", "Kowalski", "Müller", "Núñez", "Ó Súilleabháin", "Smith, Jr", "Jones, Sr",
    "ap Rhys", "Le Sueur", "Fernández", "Öztürk", "Nguyễn", "Brontë", "Hughes", "Edwards",
    "Lewis", "Harris", "Martin", "Cooper", "King", "Lee", "Baker", "Morris",
};
#define N_OF(array) (sizeof(array) / sizeof((array)[0]))

/* ---- hospital episodes ---- */

enum admission_class { ADMIT_EMERGENCY, ADMIT_ELECTIVE, ADMIT_MATERNITY };

struct episode_reason {
    const char *diagnosis, *procedure, *procedure2;
    enum admission_class admission;
    int min_age, max_age, sex; /* sex 0: either */
    double weight;
};

static const struct episode_reason generic_reasons[] = {
    {"J189", NULL, NULL, ADMIT_EMERGENCY, 60, 200, 0, 3},
    {"N390", NULL, NULL, ADMIT_EMERGENCY, 0, 200, 0, 2},
    {"R074", NULL, NULL, ADMIT_EMERGENCY, 30, 200, 0, 3},
    {"R104", NULL, NULL, ADMIT_EMERGENCY, 10, 200, 0, 3},
    {"K358", "H011", NULL, ADMIT_EMERGENCY, 5, 50, 0, 1.5},
    {"S720", "W461", NULL, ADMIT_EMERGENCY, 70, 200, 0, 1.5},
    {"H251", "C712", "C751", ADMIT_ELECTIVE, 60, 200, 0, 3},
    {"M169", "W371", NULL, ADMIT_ELECTIVE, 55, 200, 0, 1.5},
    {"M179", "W401", NULL, ADMIT_ELECTIVE, 55, 200, 0, 1.5},
    {"K802", "J183", "Y752", ADMIT_ELECTIVE, 25, 200, 0, 1.5},
    {"K573", "H229", NULL, ADMIT_ELECTIVE, 45, 200, 0, 2},
    {"O800", "R249", NULL, ADMIT_MATERNITY, 18, 44, 2, 6},
    {"O829", "R179", NULL, ADMIT_MATERNITY, 18, 44, 2, 2.5},
    {"A099", NULL, NULL, ADMIT_EMERGENCY, 0, 15, 0, 3},
    {"J069", NULL, NULL, ADMIT_EMERGENCY, 0, 10, 0, 3},
    {"S060", NULL, NULL, ADMIT_EMERGENCY, 0, 200, 0, 1},
    {"I489", NULL, NULL, ADMIT_EMERGENCY, 60, 200, 0, 1.5},
    {"I509", NULL, NULL, ADMIT_EMERGENCY, 70, 200, 0, 1.5},
    {"R55X", NULL, NULL, ADMIT_EMERGENCY, 15, 200, 0, 1.5},
    {"L031", NULL, NULL, ADMIT_EMERGENCY, 20, 200, 0, 1},
};

/* ---- community contacts (CSDS team types as in docs/data-formats.md) ---- */

enum service {
    SERVICE_DISTRICT_NURSING,
    SERVICE_HEALTH_VISITING,
    SERVICE_SCHOOL_NURSING,
    SERVICE_SPEECH_THERAPY,
    SERVICE_PHYSIOTHERAPY,
    SERVICE_OCCUPATIONAL_THERAPY,
    SERVICE_PODIATRY,
    N_SERVICES
};
static const struct {
    const char *team_type, *snomed;
} services[N_SERVICES] = {
    {"01", "225358003"}, /* wound care */
    {"02", "410620009"}, /* well child visit */
    {"03", "33879002"},  /* vaccination */
    {"08", "5154007"},   /* speech therapy */
    {"11", "91251008"},  /* physical therapy procedure */
    {"12", "84478008"},  /* occupational therapy */
    {"05", "401191002"}, /* diabetic foot examination */
};
/* Mean contacts over the period by age group: 0-4, 5-15, 16-64, 65-74, 75-84, 85+. */
static const float service_means[6][N_SERVICES] = {
    {0, 1.9f, 0, 0.1f, 0, 0, 0},
    {0, 0, 0.3f, 0.1f, 0, 0, 0},
    {0.05f, 0, 0, 0, 0.45f, 0.1f, 0},
    {1.2f, 0, 0, 0.05f, 0.5f, 0.25f, 0},
    {2.8f, 0, 0, 0.1f, 0.5f, 0.6f, 0},
    {4.4f, 0, 0, 0.1f, 0.5f, 1.0f, 0},
};

/* GP codes that are not diagnoses. */
#define SNOMED_BLOOD_PRESSURE "75367002"
#define SNOMED_BMI "60621009"
#define SNOMED_SMOKER "77176002"
#define SNOMED_EX_SMOKER "8517006"
#define SNOMED_NEVER_SMOKED "266919005"
#define SNOMED_FLU_VACCINATION "86198006"
#define SNOMED_MEDICATION_REVIEW "182836005"
#define SNOMED_BODY_WEIGHT "27113001"
#define SNOMED_HBA1C "43396009"

/* ---- one block ---- */

struct person {
    int64_t index;
    char nhs[10];
    int sex, age, band;
    cc_day born;
    int n_regs;
    int lsoa[2], practice[2];
    uint32_t postcode[2];
    cc_day registered[2];
    cc_day moved_on;             /* day of the second registration, or CC_DAY_MAX */
    unsigned conditions;         /* bit per enum condition */
    const char *optout_code;     /* on the latest registration row, or "" */
};

struct block {
    const struct cc_gen_context *ctx;
    struct cc_gen_block *out;
    struct cc_gen_rng rng;
    uint64_t next_nhs_base;
    /* the ground truth of the row being written */
    uint32_t person_offset;
    enum cc_gen_truth_nhs row_nhs;
    enum cc_gen_truth_postcode row_postcode;
};

static inline void write_date(struct cc_gen_buf *buf, const struct cc_gen_context *ctx, cc_day day)
{
    cc_gen_put(buf, ctx->dates[day], 10);
}

/* A date that does not exist in the same year ("2023-02-30"). */
static void write_bad_date(struct cc_gen_buf *buf, const struct cc_gen_context *ctx, cc_day day)
{
    cc_gen_put(buf, ctx->dates[day], 4);
    cc_gen_put(buf, "-02-30", 6);
}

static void write_u64(struct cc_gen_buf *buf, uint64_t v)
{
    char digits[20];
    int n = 0;
    do {
        digits[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    if (buf->len + (size_t)n > buf->cap && cc_gen_buf_reserve(buf, (size_t)n))
        return;
    while (n)
        buf->data[buf->len++] = digits[--n];
}

/* Writes a free-text field with RFC 4180 quoting where needed. */
static void write_text(struct cc_gen_buf *buf, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        cc_gen_puts(buf, s);
        return;
    }
    cc_gen_putc(buf, '"');
    for (; *s; s++) {
        if (*s == '"')
            cc_gen_putc(buf, '"');
        cc_gen_putc(buf, *s);
    }
    cc_gen_putc(buf, '"');
}

/* The NHS number field: missing (when allowed) or with a wrong check digit
 * at the documented rates, otherwise the person's valid number. */
static void write_nhs(struct block *b, enum cc_gen_file file, const struct person *p, int may_be_missing)
{
    struct cc_gen_buf *buf = &b->out->buf[file];
    if (may_be_missing && cc_gen_chance(&b->rng, CC_GEN_RATE_MISSING_NHS)) {
        b->out->counts.missing_nhs[file]++;
        b->row_nhs = CC_GEN_TRUTH_NHS_MISSING;
        return;
    }
    cc_gen_put(buf, p->nhs, 9);
    if (cc_gen_chance(&b->rng, CC_GEN_RATE_INVALID_NHS)) {
        int wrong = (p->nhs[9] - '0' + 1 + (int)cc_gen_below(&b->rng, 9)) % 10;
        cc_gen_putc(buf, (char)('0' + wrong));
        b->out->counts.invalid_nhs[file]++;
        b->row_nhs = CC_GEN_TRUTH_NHS_INVALID;
    } else {
        cc_gen_putc(buf, p->nhs[9]);
        b->row_nhs = CC_GEN_TRUTH_NHS_VALID;
    }
}

/* The postcode field, in a varied spelling at the documented rate. */
static void write_postcode(struct block *b, enum cc_gen_file file, uint32_t postcode)
{
    struct cc_gen_buf *buf = &b->out->buf[file];
    const char *pc = b->ctx->geo.postcodes[postcode];
    if (!cc_gen_chance(&b->rng, CC_GEN_RATE_MESSY_POSTCODE)) {
        cc_gen_puts(buf, pc);
        return;
    }
    b->out->counts.messy_postcodes[file]++;
    const char *space = strchr(pc, ' ');
    size_t outward = space ? (size_t)(space - pc) : strlen(pc);
    switch (cc_gen_below(&b->rng, 4)) {
    case 0: /* lower case */
        for (const char *s = pc; *s; s++)
            cc_gen_putc(buf, (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s));
        break;
    case 1: /* no space */
        cc_gen_put(buf, pc, outward);
        cc_gen_puts(buf, pc + outward + 1);
        break;
    case 2: /* two spaces */
        cc_gen_put(buf, pc, outward);
        cc_gen_puts(buf, "  ");
        cc_gen_puts(buf, pc + outward + 1);
        break;
    default: /* lower case, no space, padded */
        cc_gen_putc(buf, ' ');
        for (const char *s = pc; *s; s++)
            if (*s != ' ')
                cc_gen_putc(buf, (char)(*s >= 'A' && *s <= 'Z' ? *s + 32 : *s));
        cc_gen_putc(buf, ' ');
        break;
    }
}

static void write_sex(struct cc_gen_buf *buf, int sex, int malformed)
{
    cc_gen_putc(buf, malformed ? '7' : (char)('0' + sex));
}

/* A SNOMED CT code, or the same code with a wrong check digit. */
static void write_snomed(struct block *b, struct cc_gen_buf *buf, const char *code, int malformed)
{
    size_t n = strlen(code);
    cc_gen_put(buf, code, n - 1);
    if (malformed)
        cc_gen_putc(buf, (char)('0' + (code[n - 1] - '0' + 1 + (int)cc_gen_below(&b->rng, 9)) % 10));
    else
        cc_gen_putc(buf, code[n - 1]);
}

/* Records the ground truth of the row just written. */
static void add_truth(struct block *b, enum cc_gen_file file)
{
    struct cc_gen_truth *t = &b->out->truth[file];
    if (t->n == t->cap && !t->failed) {
        size_t cap = t->cap ? t->cap * 2 : 1 << 16;
        uint32_t *rows = realloc(t->rows, cap * sizeof *rows);
        if (!rows) {
            t->failed = 1;
            return;
        }
        t->rows = rows;
        t->cap = cap;
    }
    if (!t->failed)
        t->rows[t->n++] = b->person_offset << 4 | (uint32_t)b->row_nhs << 2 | (uint32_t)b->row_postcode;
}

/* Ends a row, and copies it once more at the duplicate rate. */
static void end_row(struct block *b, enum cc_gen_file file, size_t row_start)
{
    struct cc_gen_buf *buf = &b->out->buf[file];
    cc_gen_putc(buf, '\n');
    b->out->counts.rows[file]++;
    if (b->ctx->truth)
        add_truth(b, file);
    if (cc_gen_chance(&b->rng, CC_GEN_RATE_DUPLICATE) && !buf->failed) {
        size_t n = buf->len - row_start;
        if (cc_gen_buf_reserve(buf, n))
            return;
        memcpy(buf->data + buf->len, buf->data + row_start, n);
        buf->len += n;
        b->out->counts.rows[file]++;
        b->out->counts.duplicates[file]++;
        if (b->ctx->truth)
            add_truth(b, file);
    }
}

/* Decides whether this row is malformed and how: one of the kinds allowed
 * for the file (a bit mask of enum cc_gen_malformed), or 0. */
static int pick_malformed(struct block *b, unsigned allowed)
{
    if (!cc_gen_chance(&b->rng, CC_GEN_RATE_MALFORMED))
        return 0;
    int kinds[CC_GEN_N_MALFORMED] = {0}, n = 0;
    for (int k = 1; k < CC_GEN_N_MALFORMED; k++)
        if (allowed & (1u << k))
            kinds[n++] = k;
    if (n == 0)
        return 0;
    int kind = kinds[cc_gen_below(&b->rng, (uint32_t)n)];
    b->out->counts.malformed[kind]++;
    return kind;
}

static cc_day uniform_day(struct block *b, cc_day lo, cc_day hi)
{
    if (hi <= lo)
        return lo;
    return lo + (cc_day)cc_gen_below(&b->rng, (uint32_t)(hi - lo + 1));
}

/* Where the person lived (0) or (1) on a day. */
static int residence_on(const struct person *p, cc_day day)
{
    return p->n_regs > 1 && day >= p->moved_on;
}

static int band_of_age(int age)
{
    int band = age / 5;
    return band >= CC_N_AGE_BANDS_5Y ? CC_N_AGE_BANDS_5Y - 1 : band;
}

static void make_person(struct block *b, struct person *p)
{
    const struct cc_gen_context *ctx = b->ctx;
    const struct cc_gen_geo *geo = &ctx->geo;
    struct cc_gen_rng *rng = &b->rng;

    /* Age and sex. */
    double band_total = 0;
    for (int i = 0; i < CC_N_AGE_BANDS_5Y; i++)
        band_total += band_percent[i];
    double u = cc_gen_uniform(rng) * band_total, cumulative = 0;
    int band = 0;
    for (; band < CC_N_AGE_BANDS_5Y - 1; band++) {
        cumulative += band_percent[band];
        if (u < cumulative)
            break;
    }
    p->sex = cc_gen_chance(rng, female_share[band]) ? CC_SEX_FEMALE : CC_SEX_MALE;
    int age = band * 5 + (int)cc_gen_below(rng, 5);
    if (band == CC_N_AGE_BANDS_5Y - 1) {
        age = 90;
        while (age < 105 && cc_gen_chance(rng, 0.75))
            age++;
    }
    p->born = ctx->reference_day - age * 365 - age / 4 - (cc_day)cc_gen_below(rng, 365);
    p->age = cc_age_on(p->born, ctx->reference_day);
    p->band = band_of_age(p->age);

    /* Residence, practice, registration. */
    p->lsoa[0] = cc_gen_geo_pick_lsoa(geo, cc_gen_uniform(rng));
    const struct cc_gen_lsoa *area = &geo->lsoas[p->lsoa[0]];
    const struct cc_gen_lad *lad = &geo->lads[area->lad];
    p->postcode[0] = area->first_postcode + cc_gen_below(rng, area->n_postcodes);
    p->practice[0] = lad->first_practice + (int)cc_gen_below(rng, (uint32_t)lad->n_practices);
    cc_day earliest = p->born + 7 > ctx->registration_start ? p->born + 7 : ctx->registration_start;
    p->registered[0] = uniform_day(b, earliest, ctx->reference_day);
    p->n_regs = 1;
    p->moved_on = CC_DAY_MAX;
    if (cc_gen_chance(rng, CC_GEN_RATE_MOVED)) {
        cc_day lo = p->registered[0] + 30 > ctx->period_start ? p->registered[0] + 30 : ctx->period_start;
        cc_day hi = ctx->period_end - 30;
        if (lo < hi) {
            p->n_regs = 2;
            p->moved_on = p->registered[1] = uniform_day(b, lo, hi);
            int new_lsoa;
            if (cc_gen_chance(rng, 0.5))
                new_lsoa = lad->first_lsoa + (int)cc_gen_below(rng, (uint32_t)lad->n_lsoas);
            else
                new_lsoa = cc_gen_geo_pick_lsoa(geo, cc_gen_uniform(rng));
            if (new_lsoa == p->lsoa[0])
                new_lsoa = (new_lsoa + 1) % geo->n_lsoas;
            p->lsoa[1] = new_lsoa;
            const struct cc_gen_lsoa *new_area = &geo->lsoas[new_lsoa];
            const struct cc_gen_lad *new_lad = &geo->lads[new_area->lad];
            p->postcode[1] = new_area->first_postcode + cc_gen_below(rng, new_area->n_postcodes);
            if (new_area->lad != area->lad || cc_gen_chance(rng, 0.3))
                p->practice[1] =
                    new_lad->first_practice + (int)cc_gen_below(rng, (uint32_t)new_lad->n_practices);
            else
                p->practice[1] = p->practice[0];
        }
    }

    /* NHS number: the next base in the block's slice whose check digit exists. */
    for (;;) {
        uint64_t base = b->next_nhs_base++;
        for (int i = 8; i >= 0; i--, base /= 10)
            p->nhs[i] = (char)('0' + base % 10);
        int check = cc_gen_nhs_check_digit(p->nhs);
        if (check < 10) {
            p->nhs[9] = (char)('0' + check);
            break;
        }
    }

    /* Conditions, with the area's deprivation and the planted ICB. */
    const struct cc_gen_lsoa *home = &geo->lsoas[p->lsoa[p->n_regs - 1]];
    int icb = geo->lads[home->lad].icb;
    p->conditions = 0;
    for (int c = 0; c < N_CONDITIONS; c++) {
        double prevalence = prevalence_percent[c][p->band] / 100.0 *
                            (p->sex == CC_SEX_MALE ? conditions[c].male : conditions[c].female) *
                            exp(conditions[c].deprivation * home->deprivation);
        if (c == COND_T2_DIABETES && icb == geo->planted_icb)
            prevalence *= CC_GEN_PLANTED_DIABETES_RATIO;
        if (prevalence > 0.9)
            prevalence = 0.9;
        if (cc_gen_chance(rng, prevalence))
            p->conditions |= 1u << c;
    }
    b->out->counts.persons++;
    for (int c = 0; c < N_CONDITIONS; c++)
        if (p->conditions & (1u << c))
            b->out->counts.persons_with_condition[c]++;
}

static void write_registrations(struct block *b, const struct person *p)
{
    const struct cc_gen_geo *geo = &b->ctx->geo;
    struct cc_gen_buf *buf = &b->out->buf[CC_GEN_FILE_REGISTRATIONS];
    const char *given = p->sex == CC_SEX_MALE ? given_male[cc_gen_below(&b->rng, N_OF(given_male))]
                                              : given_female[cc_gen_below(&b->rng, N_OF(given_female))];
    const char *family = family_names[cc_gen_below(&b->rng, N_OF(family_names))];
    for (int r = 0; r < p->n_regs; r++) {
        size_t start = buf->len;
        int bad = pick_malformed(b, 1u << CC_GEN_MALFORMED_BAD_DATE | 1u << CC_GEN_MALFORMED_UNKNOWN_SEX);
        write_nhs(b, CC_GEN_FILE_REGISTRATIONS, p, 0);
        cc_gen_putc(buf, ',');
        write_text(buf, given);
        cc_gen_putc(buf, ',');
        write_text(buf, family);
        cc_gen_putc(buf, ',');
        if (bad == CC_GEN_MALFORMED_BAD_DATE)
            write_bad_date(buf, b->ctx, p->born);
        else
            write_date(buf, b->ctx, p->born);
        cc_gen_putc(buf, ',');
        write_sex(buf, p->sex, bad == CC_GEN_MALFORMED_UNKNOWN_SEX);
        cc_gen_putc(buf, ',');
        b->row_postcode = r == p->n_regs - 1 ? CC_GEN_TRUTH_POSTCODE_CURRENT : CC_GEN_TRUTH_POSTCODE_OLD;
        write_postcode(b, CC_GEN_FILE_REGISTRATIONS, p->postcode[r]);
        cc_gen_putc(buf, ',');
        cc_gen_puts(buf, geo->practices[p->practice[r]].code);
        cc_gen_putc(buf, ',');
        write_date(buf, b->ctx, p->registered[r]);
        cc_gen_putc(buf, ',');
        if (r == p->n_regs - 1)
            cc_gen_puts(buf, p->optout_code);
        end_row(b, CC_GEN_FILE_REGISTRATIONS, start);
    }
}

static void write_gp_event(struct block *b, const struct person *p, cc_day day, const char *snomed)
{
    struct cc_gen_buf *buf = &b->out->buf[CC_GEN_FILE_GP_EVENTS];
    size_t start = buf->len;
    int bad = pick_malformed(b, 1u << CC_GEN_MALFORMED_BAD_DATE | 1u << CC_GEN_MALFORMED_BAD_CODE);
    cc_gen_put(buf, p->nhs, 10);
    b->row_nhs = CC_GEN_TRUTH_NHS_VALID;
    b->row_postcode = CC_GEN_TRUTH_POSTCODE_NONE;
    cc_gen_putc(buf, ',');
    cc_gen_puts(buf, b->ctx->geo.practices[p->practice[residence_on(p, day)]].code);
    cc_gen_putc(buf, ',');
    if (bad == CC_GEN_MALFORMED_BAD_DATE)
        write_bad_date(buf, b->ctx, day);
    else
        write_date(buf, b->ctx, day);
    cc_gen_putc(buf, ',');
    write_snomed(b, buf, snomed, bad == CC_GEN_MALFORMED_BAD_CODE);
    end_row(b, CC_GEN_FILE_GP_EVENTS, start);
}

static void write_gp_events(struct block *b, const struct person *p)
{
    const struct cc_gen_context *ctx = b->ctx;
    struct cc_gen_rng *rng = &b->rng;
    cc_day lo = p->registered[0];
    if (lo < ctx->period_start)
        lo = ctx->period_start;
    int n_conditions = 0;
    for (int c = 0; c < N_CONDITIONS; c++) {
        if (!(p->conditions & (1u << c)))
            continue;
        n_conditions++;
        int n = 1 + cc_gen_poisson(rng, 1.0);
        for (int i = 0; i < n; i++)
            write_gp_event(b, p, uniform_day(b, lo, ctx->period_end), conditions[c].snomed);
        if (c == COND_T2_DIABETES) {
            n = cc_gen_poisson(rng, 2.0);
            for (int i = 0; i < n; i++)
                write_gp_event(b, p, uniform_day(b, lo, ctx->period_end), SNOMED_HBA1C);
        }
    }
    int n = cc_gen_poisson(rng, 0.8 + 0.03 * p->age + 0.5 * n_conditions);
    for (int i = 0; i < n; i++) {
        const char *code;
        if (p->age < 16) {
            code = cc_gen_chance(rng, 0.5) ? SNOMED_BODY_WEIGHT : SNOMED_FLU_VACCINATION;
        } else {
            uint32_t pick = cc_gen_below(rng, n_conditions ? 7 : 6);
            switch (pick) {
            case 0: code = SNOMED_BLOOD_PRESSURE; break;
            case 1: code = SNOMED_BMI; break;
            case 2:
                code = cc_gen_chance(rng, 0.15)   ? SNOMED_SMOKER
                       : cc_gen_chance(rng, 0.35) ? SNOMED_EX_SMOKER
                                                  : SNOMED_NEVER_SMOKED;
                break;
            case 3: code = SNOMED_BODY_WEIGHT; break;
            case 4: code = p->age >= 65 ? SNOMED_FLU_VACCINATION : SNOMED_BLOOD_PRESSURE; break;
            case 5: code = SNOMED_BLOOD_PRESSURE; break;
            default: code = SNOMED_MEDICATION_REVIEW; break;
            }
        }
        write_gp_event(b, p, uniform_day(b, lo, ctx->period_end), code);
    }
    /* The long tail: findings, diagnoses and procedures of every kind. */
    n = cc_gen_poisson(rng, CC_GEN_TAIL_GP_BASE + CC_GEN_TAIL_GP_PER_YEAR * p->age);
    for (int i = 0; i < n; i++)
        write_gp_event(b, p, uniform_day(b, lo, ctx->period_end),
                       cc_gen_vocabulary_pick(&ctx->tail[CC_CODE_SNOMED], cc_gen_uniform(rng)));
}

/* Generic admissions per person over the period, by age and sex. */
static double generic_admission_mean(const struct person *p)
{
    int age = p->age;
    if (age < 5) return 0.6;
    if (age < 15) return 0.25;
    if (age < 20) return 0.35;
    if (age < 45) return p->sex == CC_SEX_FEMALE ? 0.9 : 0.45;
    if (age < 65) return 0.8;
    if (age < 75) return 1.6;
    if (age < 85) return 2.6;
    return 3.2;
}

struct episode {
    const char *diag[6];
    const char *procedure[4];
    enum admission_class admission;
    int primary_condition; /* or -1 */
};

static void pick_generic_reason(struct block *b, const struct person *p, struct episode *e)
{
    double total = 0;
    for (size_t i = 0; i < N_OF(generic_reasons); i++) {
        const struct episode_reason *r = &generic_reasons[i];
        if (p->age >= r->min_age && p->age <= r->max_age && (!r->sex || r->sex == p->sex))
            total += r->weight;
    }
    double u = cc_gen_uniform(&b->rng) * total;
    const struct episode_reason *chosen = &generic_reasons[1]; /* N390: any age and sex */
    for (size_t i = 0; i < N_OF(generic_reasons); i++) {
        const struct episode_reason *r = &generic_reasons[i];
        if (!(p->age >= r->min_age && p->age <= r->max_age && (!r->sex || r->sex == p->sex)))
            continue;
        if (u < r->weight) {
            chosen = r;
            break;
        }
        u -= r->weight;
    }
    e->diag[0] = chosen->diagnosis;
    e->procedure[0] = chosen->procedure;
    e->procedure[1] = chosen->procedure2;
    e->admission = chosen->admission;
    e->primary_condition = -1;
}

/* A generic admission for a reason from the long tail of ICD-10 codes. */
static void pick_tail_reason(struct block *b, struct episode *e)
{
    struct cc_gen_rng *rng = &b->rng;
    const struct cc_gen_context *ctx = b->ctx;
    e->diag[0] = cc_gen_vocabulary_pick(&ctx->tail[CC_CODE_ICD10], cc_gen_uniform(rng));
    e->admission = cc_gen_chance(rng, 0.4) ? ADMIT_ELECTIVE : ADMIT_EMERGENCY;
    if (cc_gen_chance(rng, e->admission == ADMIT_ELECTIVE ? CC_GEN_TAIL_PROCEDURE_ELECTIVE
                                                          : CC_GEN_TAIL_PROCEDURE_EMERGENCY))
        e->procedure[0] = cc_gen_vocabulary_pick(&ctx->tail[CC_CODE_OPCS4], cc_gen_uniform(rng));
    e->primary_condition = -1;
}

static void pick_condition_reason(struct block *b, int condition, struct episode *e)
{
    struct cc_gen_rng *rng = &b->rng;
    double u = cc_gen_uniform(rng);
    e->admission = ADMIT_EMERGENCY;
    e->primary_condition = condition;
    switch (condition) {
    case COND_T2_DIABETES: e->diag[0] = u < 0.6 ? "E119" : u < 0.8 ? "E116" : "E115"; break;
    case COND_HYPERTENSION: e->diag[0] = "I10X"; break;
    case COND_ASTHMA: e->diag[0] = u < 0.7 ? "J459" : "J450"; break;
    case COND_COPD: e->diag[0] = u < 0.6 ? "J441" : u < 0.8 ? "J440" : "J449"; break;
    case COND_DEPRESSION: e->diag[0] = u < 0.6 ? "F329" : "F322"; break;
    case COND_CHD:
        if (u < 0.5) {
            e->diag[0] = "I219";
            e->procedure[0] = cc_gen_chance(rng, 0.6) ? "K751" : NULL;
        } else if (u < 0.8) {
            e->diag[0] = "I200";
        } else {
            e->diag[0] = "I251";
            e->admission = ADMIT_ELECTIVE;
            e->procedure[0] = cc_gen_chance(rng, 0.7) ? "K751" : "K401";
            if (e->procedure[0][1] == '7')
                e->procedure[1] = "Y534";
        }
        break;
    default: /* breast cancer: surgery, or a chemotherapy day case */
        e->admission = ADMIT_ELECTIVE;
        if (u < 0.4) {
            e->diag[0] = cc_gen_chance(rng, 0.7) ? "C509" : "C504";
            e->procedure[0] = cc_gen_chance(rng, 0.6) ? "B281" : "B271";
        } else {
            e->diag[0] = "Z511";
            e->diag[1] = "C509";
            e->procedure[0] = "X352";
        }
        break;
    }
}

static const char *admission_method(struct block *b, enum admission_class admission)
{
    double u = cc_gen_uniform(&b->rng);
    if (u < 0.02)
        return "81"; /* transfer from another provider */
    u = cc_gen_uniform(&b->rng);
    switch (admission) {
    case ADMIT_ELECTIVE: return u < 0.6 ? "11" : u < 0.85 ? "12" : "13";
    case ADMIT_MATERNITY: return u < 0.8 ? "31" : "32";
    default:
        return u < 0.7 ? "21" : u < 0.85 ? "22" : u < 0.9 ? "28" : u < 0.93 ? "2A" : u < 0.96 ? "2B" : "2D";
    }
}

static void write_episode(struct block *b, const struct person *p, int ordinal, struct episode *e)
{
    const struct cc_gen_context *ctx = b->ctx;
    const struct cc_gen_geo *geo = &ctx->geo;
    struct cc_gen_rng *rng = &b->rng;
    struct cc_gen_buf *buf = &b->out->buf[CC_GEN_FILE_HES_APC];

    /* Secondary diagnoses: the person's other long-term conditions. */
    int n_diag = e->diag[1] ? 2 : 1;
    for (int c = 0; c < N_CONDITIONS && n_diag < 6; c++)
        if ((p->conditions & (1u << c)) && c != e->primary_condition &&
            cc_gen_chance(rng, conditions[c].secondary))
            e->diag[n_diag++] = conditions[c].secondary_icd10;
    /* Other secondary diagnoses and procedures from the long tail (never a
     * code already on the episode). */
    int n_tail = cc_gen_poisson(rng, CC_GEN_TAIL_SECONDARY_MEAN);
    for (int i = 0; i < n_tail && n_diag < 6; i++) {
        const char *code = cc_gen_vocabulary_pick(&ctx->tail[CC_CODE_ICD10], cc_gen_uniform(rng));
        int repeated = 0;
        for (int k = 0; k < n_diag; k++)
            repeated |= !strcmp(e->diag[k], code);
        if (!repeated)
            e->diag[n_diag++] = code;
    }
    if (cc_gen_chance(rng, CC_GEN_TAIL_EXTRA_PROCEDURE)) {
        const char *code = cc_gen_vocabulary_pick(&ctx->tail[CC_CODE_OPCS4], cc_gen_uniform(rng));
        int slot = 0, repeated = 0;
        for (; slot < 4 && e->procedure[slot]; slot++)
            repeated |= !strcmp(e->procedure[slot], code);
        if (slot < 4 && !repeated)
            e->procedure[slot] = code;
    }

    cc_day lo = p->born > ctx->period_start ? p->born : ctx->period_start;
    cc_day admitted = uniform_day(b, lo, ctx->period_end);
    int stay;
    switch (e->admission) {
    case ADMIT_ELECTIVE: stay = cc_gen_chance(rng, 0.55) ? 0 : 1 + cc_gen_poisson(rng, 1.5); break;
    case ADMIT_MATERNITY: stay = 1 + cc_gen_poisson(rng, 1.0); break;
    default: stay = cc_gen_poisson(rng, 1.0 + p->age / 25.0); break;
    }
    if (e->diag[0][0] == 'Z')
        stay = 0;
    cc_day discharged = admitted + stay;
    int home = residence_on(p, admitted);
    const struct cc_gen_icb *icb = &geo->icbs[geo->lads[geo->lsoas[p->lsoa[home]].lad].icb];
    int provider = icb->first_acute + (int)cc_gen_below(rng, (uint32_t)icb->n_acutes);
    const char *method = admission_method(b, e->admission);

    size_t start = buf->len;
    int bad = pick_malformed(b, 1u << CC_GEN_MALFORMED_BAD_DATE | 1u << CC_GEN_MALFORMED_UNKNOWN_SEX |
                                    1u << CC_GEN_MALFORMED_BAD_CODE |
                                    1u << CC_GEN_MALFORMED_DISCHARGE_BEFORE_ADMISSION);
    write_u64(buf, CC_GEN_EPIKEY_BASE + (uint64_t)p->index * 16 + (uint64_t)ordinal);
    cc_gen_putc(buf, ',');
    write_nhs(b, CC_GEN_FILE_HES_APC, p, 1);
    cc_gen_putc(buf, ',');
    write_date(buf, ctx, p->born);
    cc_gen_putc(buf, ',');
    write_sex(buf, p->sex, bad == CC_GEN_MALFORMED_UNKNOWN_SEX);
    cc_gen_putc(buf, ',');
    b->row_postcode = home == p->n_regs - 1 ? CC_GEN_TRUTH_POSTCODE_CURRENT : CC_GEN_TRUTH_POSTCODE_OLD;
    write_postcode(b, CC_GEN_FILE_HES_APC, p->postcode[home]);
    cc_gen_putc(buf, ',');
    cc_gen_puts(buf, geo->providers[provider]);
    cc_gen_putc(buf, ',');
    if (bad == CC_GEN_MALFORMED_BAD_DATE)
        write_bad_date(buf, ctx, admitted);
    else
        write_date(buf, ctx, admitted);
    cc_gen_putc(buf, ',');
    if (bad == CC_GEN_MALFORMED_DISCHARGE_BEFORE_ADMISSION)
        write_date(buf, ctx, admitted - 1 - (cc_day)cc_gen_below(rng, 10));
    else if (discharged <= ctx->period_end)
        write_date(buf, ctx, discharged);
    /* else: not yet discharged at the end of the period, left empty */
    cc_gen_putc(buf, ',');
    cc_gen_puts(buf, method);
    for (int i = 0; i < 6; i++) {
        cc_gen_putc(buf, ',');
        if (!e->diag[i])
            continue;
        if (i == 0 && bad == CC_GEN_MALFORMED_BAD_CODE)
            cc_gen_put(buf, e->diag[0], 2); /* "E1": not an ICD-10 code */
        else
            cc_gen_puts(buf, e->diag[i]);
    }
    for (int i = 0; i < 4; i++) {
        cc_gen_putc(buf, ',');
        if (e->procedure[i])
            cc_gen_puts(buf, e->procedure[i]);
    }
    end_row(b, CC_GEN_FILE_HES_APC, start);
}

static void write_hospital(struct block *b, const struct person *p)
{
    const struct cc_gen_geo *geo = &b->ctx->geo;
    struct cc_gen_rng *rng = &b->rng;
    const struct cc_gen_lsoa *home = &geo->lsoas[p->lsoa[p->n_regs - 1]];
    double rate = exp(CC_GEN_DEPRIVATION_ADMISSIONS * home->deprivation);
    if (geo->icbs[geo->lads[home->lad].icb].region == geo->planted_region)
        rate *= CC_GEN_PLANTED_ADMISSION_RATIO;
    int ordinal = 0;
    int n = cc_gen_poisson(rng, generic_admission_mean(p) * rate);
    for (int i = 0; i < n && ordinal < 16; i++) {
        struct episode e = {{NULL}, {NULL}, ADMIT_EMERGENCY, -1};
        if (cc_gen_chance(rng, CC_GEN_TAIL_EPISODE_SHARE))
            pick_tail_reason(b, &e);
        else
            pick_generic_reason(b, p, &e);
        write_episode(b, p, ordinal++, &e);
    }
    for (int c = 0; c < N_CONDITIONS; c++) {
        if (!(p->conditions & (1u << c)))
            continue;
        n = cc_gen_poisson(rng, conditions[c].admissions * rate);
        for (int i = 0; i < n && ordinal < 16; i++) {
            struct episode e = {{NULL}, {NULL}, ADMIT_EMERGENCY, -1};
            pick_condition_reason(b, c, &e);
            write_episode(b, p, ordinal++, &e);
        }
    }
}

static void write_community(struct block *b, const struct person *p)
{
    const struct cc_gen_context *ctx = b->ctx;
    const struct cc_gen_geo *geo = &ctx->geo;
    struct cc_gen_rng *rng = &b->rng;
    struct cc_gen_buf *buf = &b->out->buf[CC_GEN_FILE_COMMUNITY];
    int group = p->age < 5 ? 0 : p->age < 16 ? 1 : p->age < 65 ? 2 : p->age < 75 ? 3 : p->age < 85 ? 4 : 5;
    cc_day lo = p->born > ctx->period_start ? p->born : ctx->period_start;
    int ordinal = 0;
    for (int s = 0; s < N_SERVICES; s++) {
        double mean = service_means[group][s];
        if (s == SERVICE_PODIATRY && (p->conditions & (1u << COND_T2_DIABETES)))
            mean = 1.5;
        int n = cc_gen_poisson(rng, mean);
        for (int i = 0; i < n && ordinal < 32; i++, ordinal++) {
            cc_day day = uniform_day(b, lo, ctx->period_end);
            int home = residence_on(p, day);
            const struct cc_gen_icb *icb = &geo->icbs[geo->lads[geo->lsoas[p->lsoa[home]].lad].icb];
            size_t start = buf->len;
            int bad = pick_malformed(b, 1u << CC_GEN_MALFORMED_BAD_DATE |
                                            1u << CC_GEN_MALFORMED_UNKNOWN_SEX |
                                            1u << CC_GEN_MALFORMED_BAD_CODE);
            write_u64(buf, CC_GEN_CONTACT_ID_BASE + (uint64_t)p->index * 32 + (uint64_t)ordinal);
            cc_gen_putc(buf, ',');
            write_nhs(b, CC_GEN_FILE_COMMUNITY, p, 1);
            cc_gen_putc(buf, ',');
            write_date(buf, ctx, p->born);
            cc_gen_putc(buf, ',');
            write_sex(buf, p->sex, bad == CC_GEN_MALFORMED_UNKNOWN_SEX);
            cc_gen_putc(buf, ',');
            b->row_postcode =
                home == p->n_regs - 1 ? CC_GEN_TRUTH_POSTCODE_CURRENT : CC_GEN_TRUTH_POSTCODE_OLD;
            write_postcode(b, CC_GEN_FILE_COMMUNITY, p->postcode[home]);
            cc_gen_putc(buf, ',');
            cc_gen_puts(buf, geo->providers[icb->community_provider]);
            cc_gen_putc(buf, ',');
            if (bad == CC_GEN_MALFORMED_BAD_DATE)
                write_bad_date(buf, ctx, day);
            else
                write_date(buf, ctx, day);
            cc_gen_putc(buf, ',');
            cc_gen_puts(buf, services[s].team_type);
            cc_gen_putc(buf, ',');
            write_snomed(b, buf, services[s].snomed, bad == CC_GEN_MALFORMED_BAD_CODE);
            end_row(b, CC_GEN_FILE_COMMUNITY, start);
        }
    }
}

struct optout_event {
    cc_day day;
    enum cc_optout_type type;
    int withdraw;
};

/* Draws the person's opt-out history, writes it to the register feed and
 * sets the code their latest GP registration carries at the period's end. */
static void write_optouts(struct block *b, struct person *p)
{
    const struct cc_gen_context *ctx = b->ctx;
    struct cc_gen_rng *rng = &b->rng;
    struct optout_event events[6];
    int n = 0, late = 0, withdrew = 0;
    int in_force_at_period_end[3] = {0, 0, 0};
    static const double rates[3] = {0, CC_GEN_RATE_TYPE1, CC_GEN_RATE_NDOP};
    for (int type = CC_OPTOUT_TYPE1; type <= CC_OPTOUT_NDOP; type++) {
        if (!cc_gen_chance(rng, rates[type]))
            continue;
        b->out->counts.persons_optout[type]++;
        cc_day registered;
        if (cc_gen_chance(rng, CC_GEN_RATE_LATE_OPTOUT)) {
            registered = uniform_day(b, ctx->period_end + 1, ctx->late_end);
            late = 1;
        } else {
            cc_day lo = p->born > ctx->optout_start ? p->born : ctx->optout_start;
            registered = uniform_day(b, lo, ctx->period_end);
        }
        events[n++] = (struct optout_event){registered, (enum cc_optout_type)type, 0};
        int active = registered <= ctx->period_end;
        if (cc_gen_chance(rng, CC_GEN_RATE_WITHDRAW)) {
            cc_day withdrawn = registered + 30 + (cc_day)cc_gen_below(rng, 900);
            if (withdrawn <= ctx->late_end) {
                events[n++] = (struct optout_event){withdrawn, (enum cc_optout_type)type, 1};
                withdrew = 1;
                if (withdrawn <= ctx->period_end)
                    active = 0;
                if (cc_gen_chance(rng, 0.25)) {
                    cc_day again = withdrawn + 30 + (cc_day)cc_gen_below(rng, 400);
                    if (again <= ctx->late_end) {
                        events[n++] = (struct optout_event){again, (enum cc_optout_type)type, 0};
                        if (again <= ctx->period_end)
                            active = 1;
                    }
                }
            }
        }
        in_force_at_period_end[type] = active;
    }
    b->out->counts.persons_late_optout += late;
    b->out->counts.persons_withdrawn += withdrew;
    if (in_force_at_period_end[CC_OPTOUT_TYPE1] || in_force_at_period_end[CC_OPTOUT_NDOP])
        b->out->counts.persons_optout_in_force_at_period_end++;

    p->optout_code = "";
    if (in_force_at_period_end[CC_OPTOUT_TYPE1])
        p->optout_code = "9Nu0";
    else if (in_force_at_period_end[CC_OPTOUT_NDOP] && cc_gen_chance(rng, 0.3))
        p->optout_code = "9Nu4"; /* a type 2 objection also recorded at the practice */

    for (int i = 1; i < n; i++) /* chronological order */
        for (int j = i; j > 0 && events[j].day < events[j - 1].day; j--) {
            struct optout_event t = events[j];
            events[j] = events[j - 1];
            events[j - 1] = t;
        }
    struct cc_gen_buf *buf = &b->out->buf[CC_GEN_FILE_OPTOUT];
    for (int i = 0; i < n; i++) {
        cc_gen_put(buf, p->nhs, 10);
        cc_gen_puts(buf, events[i].type == CC_OPTOUT_TYPE1 ? ",type1," : ",ndop,");
        cc_gen_puts(buf, events[i].withdraw ? "withdraw," : "register,");
        write_date(buf, ctx, events[i].day);
        cc_gen_putc(buf, ',');
        if (events[i].type == CC_OPTOUT_TYPE1)
            cc_gen_puts(buf, ctx->geo.practices[p->practice[residence_on(p, events[i].day)]].code);
        cc_gen_putc(buf, '\n');
        b->out->counts.rows[CC_GEN_FILE_OPTOUT]++;
    }
}

int cc_gen_block_generate(const struct cc_gen_context *ctx, int64_t block_index,
                          struct cc_gen_block *out, uint32_t *population)
{
    struct block b;
    memset(&b, 0, sizeof b);
    b.ctx = ctx;
    b.out = out;
    cc_gen_rng_seed(&b.rng, ctx->seed, (uint64_t)block_index + 1);
    /* The block's slice of the NHS number range; its start moves with the
     * seed inside the slack so different seeds give different numbers. */
    struct cc_gen_rng slice;
    cc_gen_rng_seed(&slice, ctx->seed, 0x6e6873ULL + (uint64_t)block_index * 0x100000000ULL);
    uint64_t slack = ctx->nhs_slot - ctx->nhs_stride;
    b.next_nhs_base = ctx->nhs_first_base + (uint64_t)block_index * ctx->nhs_slot +
                      (slack ? cc_gen_next(&slice) % (slack + 1) : 0);

    memset(&out->counts, 0, sizeof out->counts);
    for (int f = 0; f < CC_GEN_N_FILES; f++) {
        out->buf[f].len = 0;
        out->buf[f].failed = 0;
        out->truth[f].n = 0;
        out->truth[f].failed = 0;
    }
    int64_t first = block_index * CC_GEN_BLOCK_PERSONS;
    int64_t last = first + CC_GEN_BLOCK_PERSONS;
    if (last > ctx->n_patients)
        last = ctx->n_patients;
    for (int64_t i = first; i < last; i++) {
        struct person p;
        memset(&p, 0, sizeof p);
        p.index = i;
        b.person_offset = (uint32_t)(i - first);
        make_person(&b, &p);
        write_optouts(&b, &p);
        write_registrations(&b, &p);
        write_gp_events(&b, &p);
        write_hospital(&b, &p);
        write_community(&b, &p);
        int current = p.lsoa[p.n_regs - 1];
        population[((size_t)current * 2 + (size_t)(p.sex - 1)) * CC_N_AGE_BANDS_5Y + (size_t)p.band]++;
        b.out->counts.persons_moved += p.n_regs > 1;
    }
    for (int f = 0; f < CC_GEN_N_FILES; f++)
        if (out->buf[f].failed || out->truth[f].failed)
            return CC_ENOMEM;
    return 0;
}

const char *cc_gen_condition_name(int condition)
{
    return condition >= 0 && condition < N_CONDITIONS ? conditions[condition].name : NULL;
}

const char *cc_gen_condition_snomed(int condition)
{
    return condition >= 0 && condition < N_CONDITIONS ? conditions[condition].snomed : NULL;
}
