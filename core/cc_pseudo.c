/*
 * cc_pseudo.c: keyed pseudonyms of NHS numbers and postcodes, and record keys
 * (see cc_pseudo.h), with libsodium's keyed BLAKE2b.
 *
 * pseudonym   = BLAKE2b-128(key; "carecount-nhs-v1" || 0x00 || 10 digits)
 *               (or "carecount-postcode-v1" || 0x00 || canonical postcode)
 * record key  = first 4 bytes, little-endian, of
 *               BLAKE2b-128(key; "carecount-recordkey-v1" || 0x00 || pseudonym)
 * record identity = BLAKE2b-128(key; "carecount-record-id-v1" || 0x00 ||
 *               source || feed identifier)
 * fingerprint = BLAKE2b-256(key; "carecount-key-fingerprint-v1" || 0x00)
 * store MAC key = BLAKE2b-256(key; "carecount-store-mac-v1" || 0x00)
 * audit chain key = BLAKE2b-256(key; "carecount-audit-chain-v1" || 0x00)
 * The tag ends with a NUL so that no tag is a prefix of another's input.
 *
 * Speed: BLAKE2b absorbs the key as a whole first block. The key holds one
 * hash state per domain with the key and the tag already absorbed, so a
 * pseudonym costs one copy of that state and one compression.
 *
 * The key file is text: the line "carecount-key-v1", then 64 hex digits (the
 * 32 key bytes from randombytes_buf), then a line end. It is created with
 * O_EXCL and mode 0600 and fsync'd, and its directory too, so a key that
 * keygen reported as written survives a crash: data pseudonymised with a key
 * that was then lost could never be linked again.
 *
 * Must never: log, print or store a key or an identifier; every copy of key
 * material (file buffer, hash states) is wiped after use.
 */
#include "cc_pseudo.h"
#include "cc_error.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define KEY_FILE_MAGIC "carecount-key-v1"
#define KEY_FILE_MAGIC_LEN (sizeof KEY_FILE_MAGIC - 1)
#define KEY_FILE_HEX_LEN (2 * CC_KEY_BYTES)
/* magic, '\n', hex, '\n' */
#define KEY_FILE_BYTES (KEY_FILE_MAGIC_LEN + 1 + KEY_FILE_HEX_LEN + 1)

static const char tag_nhs[] = "carecount-nhs-v1";
static const char tag_postcode[] = "carecount-postcode-v1";
static const char tag_record_key[] = "carecount-recordkey-v1";
static const char tag_record_identity[] = "carecount-record-id-v1";
static const char tag_fingerprint[] = "carecount-key-fingerprint-v1";
static const char tag_store_mac[] = "carecount-store-mac-v1";
static const char tag_audit_chain[] = "carecount-audit-chain-v1";

/* Lives in sodium_malloc'd memory: guarded, locked where the system allows,
 * wiped by sodium_free. Its size is a multiple of the states' 64-byte
 * alignment, so sodium_malloc's end-of-page placement keeps them aligned. */
struct cc_pseudo_key {
    crypto_generichash_state nhs;        /* key and tag_nhs absorbed */
    crypto_generichash_state postcode;   /* key and tag_postcode absorbed */
    crypto_generichash_state record_key; /* key and tag_record_key absorbed */
    crypto_generichash_state record_identity; /* key and tag_record_identity */
    uint8_t fingerprint[CC_KEY_FINGERPRINT_BYTES];
    uint8_t store_mac_key[32];
    uint8_t audit_chain_key[CC_AUDIT_CHAIN_KEY_BYTES];
};
_Static_assert(sizeof(struct cc_pseudo_key) % 64 == 0, "the hash states must stay 64-byte aligned");

/* Starts a keyed hash of 16 bytes with the domain tag (and its NUL). */
static int start_domain(crypto_generichash_state *state, const uint8_t key[CC_KEY_BYTES],
                        const char *tag, size_t tag_bytes)
{
    if (crypto_generichash_init(state, key, CC_KEY_BYTES, CC_PSEUDONYM_BYTES) != 0)
        return CC_ECRYPTO;
    if (crypto_generichash_update(state, (const unsigned char *)tag, tag_bytes) != 0)
        return CC_ECRYPTO;
    return 0;
}

/* Finishes a copy of a domain's state over input. */
static void hash_in_domain(const crypto_generichash_state *domain, const void *input,
                           size_t len, uint8_t out[CC_PSEUDONYM_BYTES])
{
    crypto_generichash_state state;
    memcpy(&state, domain, sizeof state);
    /* Cannot fail: the state is initialised and out has the length it was
     * initialised with. */
    (void)crypto_generichash_update(&state, input, len);
    (void)crypto_generichash_final(&state, out, CC_PSEUDONYM_BYTES);
    sodium_memzero(&state, sizeof state);
}

/* Writes all of buf to fd. Returns 0 or CC_EIO. */
static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return CC_EIO;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

/* fsyncs the directory holding path, so the new file's entry is durable. */
static int sync_parent_directory(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return CC_ENOMEM;
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return CC_EIO;
    int rc = fsync(fd) == 0 ? 0 : CC_EIO;
    close(fd);
    return rc;
}

int cc_pseudo_keygen(const char *path)
{
    int rc;
    int fd = -1;
    int created = 0;
    char *text = NULL;
    uint8_t *key = NULL;

    if (sodium_init() < 0)
        return CC_ECRYPTO;
    key = sodium_malloc(CC_KEY_BYTES);
    text = sodium_malloc(KEY_FILE_BYTES + 1);
    if (!key || !text) {
        rc = CC_ENOMEM;
        goto fail;
    }
    randombytes_buf(key, CC_KEY_BYTES);
    memcpy(text, KEY_FILE_MAGIC "\n", KEY_FILE_MAGIC_LEN + 1);
    sodium_bin2hex(text + KEY_FILE_MAGIC_LEN + 1, KEY_FILE_HEX_LEN + 1, key, CC_KEY_BYTES);
    text[KEY_FILE_BYTES - 1] = '\n';

    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = errno == EEXIST ? CC_EEXISTS : CC_EIO;
        goto fail;
    }
    created = 1;
    /* The umask can only narrow 0600; fchmod makes the mode exact. */
    if (fchmod(fd, 0600) != 0 || write_all(fd, text, KEY_FILE_BYTES) != 0 || fsync(fd) != 0) {
        rc = CC_EIO;
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        rc = CC_EIO;
        goto fail;
    }
    fd = -1;
    rc = sync_parent_directory(path);
    if (rc)
        goto fail;
    sodium_free(key);
    sodium_free(text);
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    if (created)
        unlink(path);
    sodium_free(key);
    sodium_free(text);
    return rc;
}

int cc_pseudo_key_load(const char *path, cc_pseudo_key **out)
{
    int rc;
    int fd = -1;
    char *text = NULL;
    uint8_t *raw = NULL;
    cc_pseudo_key *key = NULL;
    *out = NULL;

    if (sodium_init() < 0)
        return CC_ECRYPTO;
    fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0) {
        rc = cc_error_from_errno(errno);
        goto fail;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        rc = CC_EIO;
        goto fail;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = CC_ECORRUPT;
        goto fail;
    }
    if (st.st_mode & (S_IRWXG | S_IRWXO)) {
        rc = CC_EPERM;
        goto fail;
    }
    /* One byte more than a key file holds, to notice trailing content. */
    text = sodium_malloc(KEY_FILE_BYTES + 1);
    raw = sodium_malloc(CC_KEY_BYTES);
    key = sodium_malloc(sizeof *key);
    if (!text || !raw || !key) {
        rc = CC_ENOMEM;
        goto fail;
    }
    size_t filled = 0;
    while (filled < KEY_FILE_BYTES + 1) {
        ssize_t n = read(fd, text + filled, KEY_FILE_BYTES + 1 - filled);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = CC_EIO;
            goto fail;
        }
        if (n == 0)
            break;
        filled += (size_t)n;
    }
    size_t hex_len = 0;
    if (filled != KEY_FILE_BYTES || memcmp(text, KEY_FILE_MAGIC "\n", KEY_FILE_MAGIC_LEN + 1) ||
        text[KEY_FILE_BYTES - 1] != '\n' ||
        sodium_hex2bin(raw, CC_KEY_BYTES, text + KEY_FILE_MAGIC_LEN + 1, KEY_FILE_HEX_LEN, NULL,
                       &hex_len, NULL) != 0 ||
        hex_len != CC_KEY_BYTES) {
        rc = CC_ECORRUPT;
        goto fail;
    }
    static const uint8_t zero_key[CC_KEY_BYTES];
    if (sodium_memcmp(raw, zero_key, CC_KEY_BYTES) == 0) {
        rc = CC_EWEAKKEY;
        goto fail;
    }
    if ((rc = start_domain(&key->nhs, raw, tag_nhs, sizeof tag_nhs)) ||
        (rc = start_domain(&key->postcode, raw, tag_postcode, sizeof tag_postcode)) ||
        (rc = start_domain(&key->record_key, raw, tag_record_key, sizeof tag_record_key)) ||
        (rc = start_domain(&key->record_identity, raw, tag_record_identity,
                           sizeof tag_record_identity)))
        goto fail;
    if (crypto_generichash(key->fingerprint, sizeof key->fingerprint,
                           (const unsigned char *)tag_fingerprint, sizeof tag_fingerprint, raw,
                           CC_KEY_BYTES) != 0 ||
        crypto_generichash(key->store_mac_key, sizeof key->store_mac_key,
                           (const unsigned char *)tag_store_mac, sizeof tag_store_mac, raw,
                           CC_KEY_BYTES) != 0 ||
        crypto_generichash(key->audit_chain_key, sizeof key->audit_chain_key,
                           (const unsigned char *)tag_audit_chain, sizeof tag_audit_chain, raw,
                           CC_KEY_BYTES) != 0) {
        rc = CC_ECRYPTO;
        goto fail;
    }
    close(fd);
    sodium_free(text);
    sodium_free(raw);
    *out = key;
    return 0;

fail:
    if (fd >= 0)
        close(fd);
    sodium_free(text);
    sodium_free(raw);
    sodium_free(key);
    return rc;
}

void cc_pseudo_key_fingerprint(const cc_pseudo_key *key, uint8_t out[CC_KEY_FINGERPRINT_BYTES])
{
    memcpy(out, key->fingerprint, CC_KEY_FINGERPRINT_BYTES);
}

const uint8_t *cc_pseudo_store_mac_key(const cc_pseudo_key *key)
{
    return key->store_mac_key;
}

const uint8_t *cc_pseudo_audit_chain_key(const cc_pseudo_key *key)
{
    return key->audit_chain_key;
}

void cc_pseudo_record_identity(const cc_pseudo_key *key, uint8_t source, const void *id,
                               size_t len, uint8_t out[CC_PSEUDONYM_BYTES])
{
    crypto_generichash_state state;
    memcpy(&state, &key->record_identity, sizeof state);
    (void)crypto_generichash_update(&state, &source, 1);
    (void)crypto_generichash_update(&state, id, len);
    (void)crypto_generichash_final(&state, out, CC_PSEUDONYM_BYTES);
    sodium_memzero(&state, sizeof state);
}

void cc_pseudo_key_free(cc_pseudo_key *key)
{
    sodium_free(key); /* wipes; NULL is allowed */
}

void cc_pseudo_nhs(const cc_pseudo_key *key, const char digits[10], cc_pseudonym *out)
{
    hash_in_domain(&key->nhs, digits, 10, out->bytes);
}

void cc_pseudo_postcode(const cc_pseudo_key *key, const char *canonical, size_t len,
                        cc_pseudonym *out)
{
    hash_in_domain(&key->postcode, canonical, len, out->bytes);
}

uint32_t cc_pseudo_record_key(const cc_pseudo_key *key, const cc_pseudonym *person)
{
    uint8_t digest[CC_PSEUDONYM_BYTES];
    hash_in_domain(&key->record_key, person->bytes, CC_PSEUDONYM_BYTES, digest);
    uint32_t record_key = (uint32_t)digest[0] | (uint32_t)digest[1] << 8 |
                          (uint32_t)digest[2] << 16 | (uint32_t)digest[3] << 24;
    sodium_memzero(digest, sizeof digest);
    return record_key;
}
