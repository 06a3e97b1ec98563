/*
 * cc_model.h: the vocabulary of carecount's data model, shared by every
 * layer: care settings, code systems, sex codes, area levels, opt-out types.
 *
 * These are plain values; the modules that hold data (the store, the opt-out
 * register) define their own opaque types. Numeric values are persisted in
 * store files and appear on the wire: never renumber, only append.
 */
#ifndef CC_MODEL_H
#define CC_MODEL_H

#include <stdint.h>

/* Where a record came from. */
enum cc_setting {
    CC_SETTING_GP = 1,        /* GP coded event (SNOMED CT) */
    CC_SETTING_HOSPITAL = 2,  /* HES Admitted Patient Care episode */
    CC_SETTING_COMMUNITY = 3, /* Community Services Data Set contact */
};

/* The code system a clinical code belongs to. */
enum cc_code_system {
    CC_CODE_SNOMED = 1, /* SNOMED CT concept id: 6-18 digits, Verhoeff check */
    CC_CODE_ICD10 = 2,  /* ICD-10, 3 or 4 characters without the dot (E11, E119) */
    CC_CODE_OPCS4 = 3,  /* OPCS-4, 3 or 4 characters without the dot (K40, K401) */
};

/* Person stated gender code, as in the NHS Data Dictionary. */
enum cc_sex {
    CC_SEX_NOT_KNOWN = 0,
    CC_SEX_MALE = 1,
    CC_SEX_FEMALE = 2,
    CC_SEX_INDETERMINATE = 9,
};

/* The area hierarchy, finest first. Each LSOA lies in one local authority
 * district, each district in one ICB, each ICB in one region. */
enum cc_area_level {
    CC_AREA_LSOA = 0,
    CC_AREA_LAD = 1,
    CC_AREA_ICB = 2,
    CC_AREA_REGION = 3,
    CC_AREA_NATION = 4,
};

/* Opt-out types. */
enum cc_optout_type {
    CC_OPTOUT_TYPE1 = 1, /* Read 9Nu0: GP-sourced data never leaves the practice */
    CC_OPTOUT_NDOP = 2,  /* Read 9Nu4 (type 2), now the National Data Opt-out */
};

/* The role a code plays within its record (hospital episodes carry several). */
enum cc_code_role {
    CC_ROLE_PRIMARY = 0,   /* the event's main code (GP/community code, primary diagnosis) */
    CC_ROLE_SECONDARY = 1, /* secondary diagnosis */
    CC_ROLE_PROCEDURE = 2, /* OPCS-4 procedure */
};

/* The 19 five-year age bands of ONS population estimates: 0-4 ... 85-89, 90+. */
#define CC_N_AGE_BANDS_5Y 19

#endif
