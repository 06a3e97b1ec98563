/* Tests for core/cc_pseudo.c and `carecount keygen`: the key file (mode,
 * refusal, format), and the pseudonyms (construction, determinism, key and
 * domain separation). */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cc_error.h"
#include "cc_pseudo.h"
#include "cc_testfs.h"

static char *join(const char *dir, const char *name)
{
    char *path = malloc(strlen(dir) + strlen(name) + 2);
    cr_assert_not_null(path);
    sprintf(path, "%s/%s", dir, name);
    return path;
}

static cc_pseudo_key *new_key(const char *dir, const char *name)
{
    char *path = join(dir, name);
    cr_assert_eq(cc_pseudo_keygen(path), 0);
    cc_pseudo_key *key = NULL;
    cr_assert_eq(cc_pseudo_key_load(path, &key), 0);
    cr_assert_not_null(key);
    free(path);
    return key;
}

Test(pseudo, keygen_creates_a_file_of_mode_0600)
{
    char *dir = cc_testfs_new_dir("pseudo");
    char *path = join(dir, "key");
    cr_assert_eq(cc_pseudo_keygen(path), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600);
    cc_pseudo_key *key = NULL;
    cr_assert_eq(cc_pseudo_key_load(path, &key), 0);
    cc_pseudo_key_free(key);
    cc_testfs_remove_tree(dir);
    free(path);
    free(dir);
}

Test(pseudo, keygen_never_replaces_an_existing_file)
{
    char *dir = cc_testfs_new_dir("pseudo");
    char *path = join(dir, "key");
    cr_assert_eq(cc_pseudo_keygen(path), 0);
    struct stat before, after;
    cr_assert_eq(stat(path, &before), 0);
    cr_assert_eq(cc_pseudo_keygen(path), CC_EEXISTS);
    cr_assert_eq(stat(path, &after), 0);
    cr_assert_eq(before.st_ino, after.st_ino, "the existing key is kept");
    cc_testfs_remove_tree(dir);
    free(path);
    free(dir);
}

Test(pseudo, load_refuses_a_key_readable_by_others)
{
    char *dir = cc_testfs_new_dir("pseudo");
    char *path = join(dir, "key");
    cr_assert_eq(cc_pseudo_keygen(path), 0);
    cc_pseudo_key *key = NULL;
    cr_assert_eq(chmod(path, 0644), 0);
    cr_assert_eq(cc_pseudo_key_load(path, &key), CC_EPERM);
    cr_assert_null(key);
    cr_assert_eq(chmod(path, 0640), 0);
    cr_assert_eq(cc_pseudo_key_load(path, &key), CC_EPERM);
    cr_assert_eq(chmod(path, 0602), 0);
    cr_assert_eq(cc_pseudo_key_load(path, &key), CC_EPERM);
    cr_assert_eq(chmod(path, 0400), 0);
    cr_assert_eq(cc_pseudo_key_load(path, &key), 0, "owner-only modes are fine");
    cc_pseudo_key_free(key);
    cc_testfs_remove_tree(dir);
    free(path);
    free(dir);
}

Test(pseudo, load_refuses_files_that_are_not_carecount_keys)
{
    char *dir = cc_testfs_new_dir("pseudo");
    char *path = join(dir, "key");
    cc_pseudo_key *key = NULL;
    const char *hex = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
    char good[128];
    snprintf(good, sizeof good, "carecount-key-v1\n%s\n", hex);
    cc_testfs_write(path, good, strlen(good), 0600);
    cr_assert_eq(cc_pseudo_key_load(path, &key), 0, "a well-formed file loads");
    cc_pseudo_key_free(key);
    key = NULL;

    const char *bad[] = {
        "",
        "carecount-key-v1\n",
        "carecount-key-v2\n00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
        "carecount-key-v1\n00112233445566778899aabbccddeeff00112233445566778899aabbccddeeZZ\n",
        "carecount-key-v1\n00112233445566778899aabbccddeeff00112233445566778899aabbccddee\n",
        "carecount-key-v1\n00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\nextra",
        "-----BEGIN OPENSSH PRIVATE KEY-----\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cc_testfs_write(path, bad[i], strlen(bad[i]), 0600);
        cr_assert_eq(cc_pseudo_key_load(path, &key), CC_ECORRUPT, "case %zu", i);
        cr_assert_null(key);
    }
    cr_assert_eq(cc_pseudo_key_load(dir, &key), CC_ECORRUPT, "a directory is not a key");
    char *missing = join(dir, "missing");
    cr_assert_eq(cc_pseudo_key_load(missing, &key), CC_ENOTFOUND);
    free(missing);
    cc_testfs_remove_tree(dir);
    free(path);
    free(dir);
}

Test(pseudo, nhs_pseudonym_is_keyed_blake2b_over_tag_and_digits)
{
    char *dir = cc_testfs_new_dir("pseudo");
    char *path = join(dir, "key");
    const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    char text[128];
    snprintf(text, sizeof text, "carecount-key-v1\n%s\n", hex);
    cc_testfs_write(path, text, strlen(text), 0600);
    cc_pseudo_key *key = NULL;
    cr_assert_eq(cc_pseudo_key_load(path, &key), 0);

    unsigned char raw[32];
    for (int i = 0; i < 32; i++)
        raw[i] = (unsigned char)i;
    unsigned char input[64];
    size_t n = 0;
    memcpy(input, "carecount-nhs-v1", 17); /* with its NUL */
    n = 17;
    memcpy(input + n, "9434765919", 10);
    n += 10;
    unsigned char want[16];
    cr_assert_eq(crypto_generichash(want, 16, input, n, raw, 32), 0);
    cc_pseudonym got;
    cc_pseudo_nhs(key, "9434765919", &got);
    cr_assert_eq(memcmp(got.bytes, want, 16), 0);

    memcpy(input, "carecount-recordkey-v1", 23);
    memcpy(input + 23, got.bytes, 16);
    cr_assert_eq(crypto_generichash(want, 16, input, 39, raw, 32), 0);
    uint32_t record_key = (uint32_t)want[0] | (uint32_t)want[1] << 8 |
                          (uint32_t)want[2] << 16 | (uint32_t)want[3] << 24;
    cr_assert_eq(cc_pseudo_record_key(key, &got), record_key);

    cc_pseudo_key_free(key);
    cc_testfs_remove_tree(dir);
    free(path);
    free(dir);
}

Test(pseudo, the_audit_chain_key_is_its_own_derivation_of_the_key)
{
    char *dir = cc_testfs_new_dir("pseudo");
    char *path = join(dir, "key");
    const char *hex = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
    char text[128];
    snprintf(text, sizeof text, "carecount-key-v1\n%s\n", hex);
    cc_testfs_write(path, text, strlen(text), 0600);
    cc_pseudo_key *key = NULL;
    cr_assert_eq(cc_pseudo_key_load(path, &key), 0);
    unsigned char raw[32], want[32];
    for (int i = 0; i < 32; i++)
        raw[i] = (unsigned char)i;
    static const char tag[] = "carecount-audit-chain-v1"; /* with its NUL */
    cr_assert_eq(crypto_generichash(want, 32, (const unsigned char *)tag, sizeof tag, raw, 32), 0);
    cr_assert_eq(memcmp(cc_pseudo_audit_chain_key(key), want, 32), 0);
    cr_assert_neq(memcmp(cc_pseudo_audit_chain_key(key), cc_pseudo_store_mac_key(key), 32), 0,
                  "the chain key and the store MAC key are separate subkeys");
    cc_pseudo_key *other = new_key(dir, "other");
    cr_assert_neq(memcmp(cc_pseudo_audit_chain_key(key), cc_pseudo_audit_chain_key(other), 32), 0);
    cc_pseudo_key_free(other);
    cc_pseudo_key_free(key);
    cc_testfs_remove_tree(dir);
    free(path);
    free(dir);
}

Test(pseudo, pseudonyms_are_deterministic_under_one_key)
{
    char *dir = cc_testfs_new_dir("pseudo");
    cc_pseudo_key *key = new_key(dir, "key");
    cc_pseudonym a, b, c;
    cc_pseudo_nhs(key, "9434765919", &a);
    cc_pseudo_nhs(key, "9434765919", &b);
    cc_pseudo_nhs(key, "4010232137", &c);
    cr_assert_eq(memcmp(a.bytes, b.bytes, 16), 0);
    cr_assert_neq(memcmp(a.bytes, c.bytes, 16), 0);
    cr_assert_eq(cc_pseudo_record_key(key, &a), cc_pseudo_record_key(key, &b));
    cr_assert_neq(cc_pseudo_record_key(key, &a), cc_pseudo_record_key(key, &c));
    cc_pseudo_postcode(key, "LS1 4AP", 7, &a);
    cc_pseudo_postcode(key, "LS1 4AP", 7, &b);
    cc_pseudo_postcode(key, "LS1 4AQ", 7, &c);
    cr_assert_eq(memcmp(a.bytes, b.bytes, 16), 0);
    cr_assert_neq(memcmp(a.bytes, c.bytes, 16), 0);
    cc_pseudo_key_free(key);
    cc_testfs_remove_tree(dir);
    free(dir);
}

Test(pseudo, another_key_gives_other_pseudonyms)
{
    char *dir = cc_testfs_new_dir("pseudo");
    cc_pseudo_key *first = new_key(dir, "first");
    cc_pseudo_key *second = new_key(dir, "second");
    cc_pseudonym a, b;
    cc_pseudo_nhs(first, "9434765919", &a);
    cc_pseudo_nhs(second, "9434765919", &b);
    cr_assert_neq(memcmp(a.bytes, b.bytes, 16), 0);
    cr_assert_neq(cc_pseudo_record_key(first, &a), cc_pseudo_record_key(second, &a));
    cc_pseudo_postcode(first, "LS1 4AP", 7, &a);
    cc_pseudo_postcode(second, "LS1 4AP", 7, &b);
    cr_assert_neq(memcmp(a.bytes, b.bytes, 16), 0);
    cc_pseudo_key_free(first);
    cc_pseudo_key_free(second);
    cc_testfs_remove_tree(dir);
    free(dir);
}

Test(pseudo, domain_tags_separate_the_same_bytes)
{
    char *dir = cc_testfs_new_dir("pseudo");
    cc_pseudo_key *key = new_key(dir, "key");
    cc_pseudonym as_nhs, as_postcode, record_key_input;
    cc_pseudo_nhs(key, "9434765919", &as_nhs);
    cc_pseudo_postcode(key, "9434765919", 10, &as_postcode);
    cr_assert_neq(memcmp(as_nhs.bytes, as_postcode.bytes, 16), 0);
    /* The record key is not the pseudonym's own first bytes. */
    uint32_t first_bytes = (uint32_t)as_nhs.bytes[0] | (uint32_t)as_nhs.bytes[1] << 8 |
                           (uint32_t)as_nhs.bytes[2] << 16 | (uint32_t)as_nhs.bytes[3] << 24;
    cr_assert_neq(cc_pseudo_record_key(key, &as_nhs), first_bytes);
    memcpy(record_key_input.bytes, "9434765919\0\0\0\0\0\0", 16);
    cc_pseudonym as_nhs_again;
    cc_pseudo_nhs(key, "9434765919", &as_nhs_again);
    cr_assert_neq(memcmp(record_key_input.bytes, as_nhs_again.bytes, 16), 0,
                  "a pseudonym is not the identifier");
    cc_pseudo_key_free(key);
    cc_testfs_remove_tree(dir);
    free(dir);
}

static int run_keygen(const char *arg, const char *stderr_path)
{
    char command[1024];
    snprintf(command, sizeof command, "'%s/carecount' keygen '%s' >/dev/null 2>'%s'",
             CC_BIN_DIR, arg, stderr_path);
    int status = system(command);
    cr_assert(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static int file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    cr_assert_not_null(f);
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return strstr(buf, needle) != NULL;
}

Test(pseudo, keygen_command_creates_key_and_refuses_existing_path)
{
    char *dir = cc_testfs_new_dir("pseudo");
    char *path = join(dir, "key");
    char *err = join(dir, "stderr");
    cr_assert_eq(run_keygen(path, err), 0);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(st.st_mode & 07777, 0600);
    cr_assert_neq(run_keygen(path, err), 0);
    cr_assert(file_contains(err, "already exists"));
    cc_testfs_remove_tree(dir);
    free(err);
    free(path);
    free(dir);
}

Test(pseudo, keygen_command_refuses_the_data_directory)
{
    char *dir = cc_testfs_new_dir("pseudo");
    char *data = join(dir, "data");
    cr_assert_eq(mkdir(data, 0700), 0);
    char *state = join(data, "state.db");
    cc_testfs_write(state, "", strlen(""), 0600);
    char *err = join(dir, "stderr");
    char *inside = join(data, "key");
    cr_assert_neq(run_keygen(inside, err), 0);
    cr_assert(file_contains(err, "outside"));
    cr_assert_neq(access(inside, F_OK), 0, "no key was written");
    char *sub = join(data, "sub");
    cr_assert_eq(mkdir(sub, 0700), 0);
    char *deeper = join(sub, "key");
    cr_assert_neq(run_keygen(deeper, err), 0, "nor below it");
    cr_assert_neq(access(deeper, F_OK), 0);
    char *outside = join(dir, "key");
    cr_assert_eq(run_keygen(outside, err), 0, "beside the data directory is fine");
    cc_testfs_remove_tree(dir);
    free(outside);
    free(deeper);
    free(sub);
    free(inside);
    free(err);
    free(state);
    free(data);
    free(dir);
}
