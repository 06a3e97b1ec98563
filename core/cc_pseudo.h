/*
 * cc_pseudo.h: pseudonymisation of identifiers with a secret key.
 *
 * NHS numbers and postcodes are replaced by keyed hashes before anything is
 * stored, so the store can link records of the same person without holding
 * the identifier, and nobody without the key can re-identify or link new
 * data. The key lives in a file outside the data directory, mode 0600.
 *
 * The hash is keyed BLAKE2b (libsodium crypto_generichash) over a domain tag
 * and the normalised identifier, truncated to 16 bytes (128 bits: collision
 * chance about 1e-25 at 10 million persons). Each person's record key for
 * the cell key method is derived from their pseudonym with the same key
 * under a different domain tag, so it is stable, secret, and unrelated to
 * the pseudonym for anyone without the key.
 *
 * Must never: log, print or store a key or a raw identifier.
 */
#ifndef CC_PSEUDO_H
#define CC_PSEUDO_H

#include <stddef.h>
#include <stdint.h>

#define CC_PSEUDONYM_BYTES 16
#define CC_KEY_BYTES 32

/* A pseudonym: compared and hashed as 16 opaque bytes. */
typedef struct cc_pseudonym {
    uint8_t bytes[CC_PSEUDONYM_BYTES];
} cc_pseudonym;

/* The secret key, held in locked memory where possible and wiped on free. */
typedef struct cc_pseudo_key cc_pseudo_key;

/* Creates a new random key file at path with mode 0600. Fails with CC_EEXISTS
 * if the file exists (a key is never silently replaced). */
int cc_pseudo_keygen(const char *path);

/* Loads a key file. Fails with CC_EPERM if the file is readable or writable
 * by group or others, CC_ECORRUPT if it is not a carecount key, CC_EWEAKKEY
 * if its 32 bytes are all zero (no generator makes that key; a file of
 * zeros is a placeholder or a mistake, and would pseudonymise with a key
 * everyone knows). The caller frees with cc_pseudo_key_free(). */
int cc_pseudo_key_load(const char *path, cc_pseudo_key **out);

/* The key's fingerprint: BLAKE2b-256(key; "carecount-key-fingerprint-v1").
 * A data directory records it to recognise its key: it tells keys apart
 * and reveals nothing about the key (finding a key from it is as hard as
 * breaking the keyed hash). */
#define CC_KEY_FINGERPRINT_BYTES 32
void cc_pseudo_key_fingerprint(const cc_pseudo_key *key, uint8_t out[CC_KEY_FINGERPRINT_BYTES]);

/* The subkey that keys the checksums of store snapshots (cc_store_save,
 * cc_store_load): BLAKE2b-256(key; "carecount-store-mac-v1"). Valid while
 * the key is. Whoever holds it can write a snapshot the store accepts, so it
 * is secret like the key; it cannot be turned back into the key. */
const uint8_t *cc_pseudo_store_mac_key(const cc_pseudo_key *key);

/* The subkey that keys the hash chain of the audit log (cc_audit):
 * BLAKE2b-256(key; "carecount-audit-chain-v1"). Valid while the key is.
 * Whoever holds it can forge a chain, so it is secret like the key; it
 * cannot be turned back into the key, and it is unrelated to the store MAC
 * key, so neither can stand in for the other. */
#define CC_AUDIT_CHAIN_KEY_BYTES 32
const uint8_t *cc_pseudo_audit_chain_key(const cc_pseudo_key *key);

/* The 16-byte keyed identity of a feed record's own identifier (the source
 * tag, then HES's episode key or a contact id): what the store keeps to
 * recognise a record sent again, without keeping the identifier. */
void cc_pseudo_record_identity(const cc_pseudo_key *key, uint8_t source, const void *id,
                               size_t len, uint8_t out[CC_PSEUDONYM_BYTES]);

/* Wipes and frees a key (NULL is allowed). */
void cc_pseudo_key_free(cc_pseudo_key *key);

/* Pseudonym of a valid NHS number given as its 10 digits (no spaces). */
void cc_pseudo_nhs(const cc_pseudo_key *key, const char digits[10], cc_pseudonym *out);

/* Pseudonym of a postcode in canonical form ("LS1 4AP"). */
void cc_pseudo_postcode(const cc_pseudo_key *key, const char *canonical, size_t len,
                        cc_pseudonym *out);

/* The secret record key of a person, derived from their pseudonym. */
uint32_t cc_pseudo_record_key(const cc_pseudo_key *key, const cc_pseudonym *person);

#endif
