/* Tests for queries/cc_codelist.c: loading OpenCodelists-shaped CSV, inferring
 * the code system, refusing mixed lists, the registry. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cc_codelist.h"
#include "cc_error.h"
#include "cc_testfs.h"

static char errbuf[256];

static cc_codelists *registry(void)
{
    cc_codelists *lists = NULL;
    cr_assert_eq(cc_codelists_new(&lists), 0);
    return lists;
}

static int add(cc_codelists *lists, const char *name, const char *csv, int system)
{
    errbuf[0] = '\0';
    return cc_codelists_add_csv(lists, name, csv, strlen(csv), system, errbuf, sizeof errbuf);
}

Test(codelist, snomed_list_is_inferred_sorted_and_deduplicated)
{
    cc_codelists *lists = registry();
    cr_assert_eq(add(lists, "diabetes",
                     "code,term\r\n73211009,Diabetes mellitus\r\n44054006,\"Diabetes mellitus "
                     "type 2, with \"\"quotes\"\"\"\r\n73211009,Diabetes mellitus\r\n",
                     0),
                 0, "%s", errbuf);
    const struct cc_codelist *list = cc_codelists_find(lists, "diabetes");
    cr_assert_not_null(list);
    cr_assert_eq(list->system, CC_CODE_SNOMED);
    cr_assert_eq(list->n_codes, 2);
    cr_assert_str_eq(list->codes[0].text, "44054006");
    cr_assert_str_eq(list->codes[1].text, "73211009");
    cc_codelists_free(lists);
}

Test(codelist, icd10_is_inferred_when_a_code_settles_it)
{
    cc_codelists *lists = registry();
    cr_assert_eq(add(lists, "mi", "code,term\nI21,Acute MI\ni22.1,Subsequent MI\nI25X,x\n", 0), 0,
                 "%s", errbuf);
    const struct cc_codelist *list = cc_codelists_find(lists, "mi");
    cr_assert_eq(list->system, CC_CODE_ICD10);
    cr_assert_eq(list->n_codes, 3);
    cr_assert_str_eq(list->codes[1].text, "I221", "dot removed, upper case");
    cr_assert_str_eq(list->codes[2].text, "I25", "filler X removed");
    cc_codelists_free(lists);
}

Test(codelist, letter_codes_that_fit_icd10_and_opcs4_need_the_system)
{
    cc_codelists *lists = registry();
    cr_assert_eq(add(lists, "hernia", "code,term\nK40,Inguinal hernia\nK401,x\n", 0), CC_EINVAL);
    cr_assert(strstr(errbuf, "ambiguous"), "%s", errbuf);
    cr_assert(strstr(errbuf, "hernia.icd10.csv"), "%s", errbuf);
    cr_assert_null(cc_codelists_find(lists, "hernia"));
    cr_assert_eq(add(lists, "hernia", "code,term\nK40,Inguinal hernia\nK401,x\n", CC_CODE_OPCS4),
                 0, "%s", errbuf);
    cr_assert_eq(cc_codelists_find(lists, "hernia")->system, CC_CODE_OPCS4);
    cc_codelists_free(lists);
}

Test(codelist, mixed_list_is_refused_naming_both_rows)
{
    cc_codelists *lists = registry();
    cr_assert_eq(add(lists, "mixed", "code,term\n73211009,Diabetes\nI21,MI\n", 0), CC_EINVAL);
    cr_assert_str_eq(errbuf, "codelist 'mixed', row 3: 'I21' is ICD-10 but row 2 holds a SNOMED "
                             "CT code; a list has one system");
    cr_assert_eq(cc_codelists_count(lists), 0);
    cc_codelists_free(lists);
}

Test(codelist, code_of_another_system_than_given_is_refused)
{
    cc_codelists *lists = registry();
    cr_assert_eq(add(lists, "x", "code,term\nE11,Diabetes\n", CC_CODE_SNOMED), CC_EINVAL);
    cr_assert_str_eq(errbuf, "codelist 'x', row 2: 'E11' is ICD-10 or OPCS-4 but the list's "
                             "system is SNOMED CT");
    cc_codelists_free(lists);
}

Test(codelist, header_needs_a_code_column_found_by_name)
{
    cc_codelists *lists = registry();
    cr_assert_eq(add(lists, "a", "id,name\n73211009,x\n", 0), CC_EPARSE);
    cr_assert(strstr(errbuf, "no `code` column"), "%s", errbuf);
    /* column order does not matter; a BOM and extra columns are fine */
    cr_assert_eq(add(lists, "b", "\xef\xbb\xbfterm,Code,extra\nDiabetes,73211009,1\n", 0), 0, "%s",
                 errbuf);
    cr_assert_eq(cc_codelists_find(lists, "b")->n_codes, 1);
    cc_codelists_free(lists);
}

Test(codelist, bad_rows_are_refused_with_their_row)
{
    cc_codelists *lists = registry();
    cr_assert_eq(add(lists, "a", "code,term\n73211009,x\nnot a code,y\n", 0), CC_EPARSE);
    cr_assert_str_eq(errbuf, "codelist 'a', row 3: not a code (letters and digits only)");
    cr_assert_eq(add(lists, "b", "code,term\n73211008,x\n", 0), CC_EPARSE);
    cr_assert(strstr(errbuf, "'73211008' is not a SNOMED CT, ICD-10 or OPCS-4 code"), "%s",
              errbuf);
    cr_assert_eq(add(lists, "c", "code,term\n", 0), CC_EINVAL);
    cr_assert(strstr(errbuf, "no codes"), "%s", errbuf);
    cr_assert_eq(add(lists, "d", "code,term\n\"73211009,x\n", 0), CC_EPARSE);
    cr_assert(strstr(errbuf, "malformed CSV"), "%s", errbuf);
    cr_assert_eq(cc_codelists_count(lists), 0);
    cc_codelists_free(lists);
}

Test(codelist, names_are_checked_and_unique)
{
    cc_codelists *lists = registry();
    cr_assert_eq(add(lists, "Bad Name", "code\n73211009\n", 0), CC_EINVAL);
    cr_assert_eq(add(lists, "", "code\n73211009\n", 0), CC_EINVAL);
    cr_assert_eq(add(lists, "ok-1.v2", "code\n73211009\n", 0), 0, "%s", errbuf);
    cr_assert_eq(add(lists, "ok-1.v2", "code\n73211009\n", 0), CC_EEXISTS);
    cr_assert(cc_codelists_name_valid("opensafely-asthma-2020"));
    cr_assert_not(cc_codelists_name_valid("-x"));
    cc_codelists_free(lists);
}

Test(codelist, registry_lists_in_name_order)
{
    cc_codelists *lists = registry();
    cr_assert_eq(add(lists, "zeta", "code\n73211009\n", 0), 0);
    cr_assert_eq(add(lists, "alpha", "code\n73211009\n", 0), 0);
    cr_assert_eq(add(lists, "mid", "code\n73211009\n", 0), 0);
    cr_assert_eq(cc_codelists_count(lists), 3);
    cr_assert_str_eq(cc_codelists_at(lists, 0)->name, "alpha");
    cr_assert_str_eq(cc_codelists_at(lists, 1)->name, "mid");
    cr_assert_str_eq(cc_codelists_at(lists, 2)->name, "zeta");
    cr_assert_null(cc_codelists_at(lists, 3));
    cr_assert_null(cc_codelists_find(lists, "beta"));
    cc_codelists_free(lists);
}

Test(codelist, directory_loads_every_csv_and_takes_the_system_from_the_name)
{
    char dir[64];
    cc_testfs_make_dir(dir, sizeof dir, "codelist");
    char path[256];
    snprintf(path, sizeof path, "%s/asthma.csv", dir);
    cc_testfs_write_text(path, "code,term\n195967001,Asthma\n");
    snprintf(path, sizeof path, "%s/hernia-repair.opcs4.csv", dir);
    cc_testfs_write_text(path, "code,term\nT20,Primary repair of inguinal hernia\n");
    snprintf(path, sizeof path, "%s/notes.txt", dir);
    cc_testfs_write_text(path, "not a codelist");

    cc_codelists *lists = registry();
    cr_assert_eq(cc_codelists_load_dir(lists, dir, errbuf, sizeof errbuf), 0, "%s", errbuf);
    cr_assert_eq(cc_codelists_count(lists), 2);
    cr_assert_eq(cc_codelists_find(lists, "asthma")->system, CC_CODE_SNOMED);
    cr_assert_eq(cc_codelists_find(lists, "hernia-repair")->system, CC_CODE_OPCS4);

    snprintf(path, sizeof path, "%s/zz-bad.csv", dir);
    cc_testfs_write_text(path, "code,term\nK40,x\n");
    cc_codelists *again = registry();
    cr_assert_eq(cc_codelists_load_dir(again, dir, errbuf, sizeof errbuf), CC_EINVAL);
    cr_assert(strstr(errbuf, "zz-bad.csv: codelist 'zz-bad'"), "the error names the file: %s",
              errbuf);

    cc_codelists_free(again);
    cc_codelists_free(lists);
    cc_testfs_remove_tree(dir);
}

Test(codelist, missing_file_is_an_io_error_naming_the_path)
{
    cc_codelists *lists = registry();
    cr_assert_eq(cc_codelists_load_file(lists, "x", "/nonexistent/x.csv", 0, errbuf,
                                        sizeof errbuf),
                 CC_EIO);
    cr_assert(strstr(errbuf, "/nonexistent/x.csv"), "%s", errbuf);
    cc_codelists_free(lists);
}

/* A FIFO named like a codelist is refused at once (opening it for reading
 * would wait for a writer forever; the timeout fails a regression). */
Test(codelist, a_fifo_in_the_directory_is_refused_without_waiting, .timeout = 20)
{
    char dir[64];
    cc_testfs_make_dir(dir, sizeof dir, "codelist");
    char path[256];
    snprintf(path, sizeof path, "%s/asthma.csv", dir);
    cr_assert_eq(mkfifo(path, 0600), 0);
    cc_codelists *lists = registry();
    cr_assert_eq(cc_codelists_load_dir(lists, dir, errbuf, sizeof errbuf), CC_EIO);
    cr_assert(strstr(errbuf, "asthma.csv"), "the error names the file: %s", errbuf);
    cr_assert_eq(cc_codelists_count(lists), 0);
    cc_codelists_free(lists);
    unlink(path);
    rmdir(dir);
}

Test(codelist, a_name_ending_in_a_system_settles_letter_codes)
{
    cc_codelists *lists = registry();
    cr_assert_eq(add(lists, "asthma_icd10", "code,term\nJ45,Asthma\nJ46,Status asthmaticus\n", 0),
                 0, "%s", errbuf);
    cr_assert_eq(cc_codelists_find(lists, "asthma_icd10")->system, CC_CODE_ICD10);
    cr_assert_eq(add(lists, "hernia-opcs4", "code,term\nT19,Hernia repair\n", 0), 0, "%s", errbuf);
    cr_assert_eq(cc_codelists_find(lists, "hernia-opcs4")->system, CC_CODE_OPCS4);
    /* a suffix the codes do not fit does not help */
    cr_assert_neq(add(lists, "odd_snomed", "code,term\nJ45,Asthma\n", 0), 0);
    cc_codelists_free(lists);
}

Test(codelist, per_system_files_of_one_name_make_one_list_of_several_systems)
{
    char dir[64];
    cc_testfs_make_dir(dir, sizeof dir, "codelist");
    char path[256];
    snprintf(path, sizeof path, "%s/diabetes.snomed.csv", dir);
    cc_testfs_write_text(path, "code,term\n73211009,Diabetes mellitus\n44054006,Type 2\n");
    snprintf(path, sizeof path, "%s/diabetes.icd10.csv", dir);
    cc_testfs_write_text(path, "code,term\nE11,Type 2 diabetes\nE10,Type 1 diabetes\n");
    cc_codelists *lists = registry();
    cr_assert_eq(cc_codelists_load_dir(lists, dir, errbuf, sizeof errbuf), 0, "%s", errbuf);
    cr_assert_eq(cc_codelists_count(lists), 1);
    const struct cc_codelist *list = cc_codelists_find(lists, "diabetes");
    cr_assert_eq(list->system, 0, "several systems");
    cr_assert_eq(list->n_codes, 4);
    /* grouped by system in enum order, each group sorted */
    static const struct {
        int system;
        const char *text;
    } want[] = {{CC_CODE_SNOMED, "44054006"}, {CC_CODE_SNOMED, "73211009"},
                {CC_CODE_ICD10, "E10"}, {CC_CODE_ICD10, "E11"}};
    for (uint32_t i = 0; i < 4; i++) {
        cr_assert_eq(list->codes[i].system, want[i].system, "code %u", i);
        cr_assert_str_eq(list->codes[i].text, want[i].text);
    }
    cc_codelists_free(lists);
    snprintf(path, sizeof path, "%s/diabetes.snomed.csv", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/diabetes.icd10.csv", dir);
    unlink(path);
    rmdir(dir);
}
