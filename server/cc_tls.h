/*
 * cc_tls.h: TLS for carecountd's listeners and for its client, on OpenSSL,
 * through memory buffers: the caller moves the bytes, this module only
 * turns ciphertext into plaintext and back.
 *
 * A context holds what every connection of one side shares: the server's
 * certificate chain and key (checked at start: the files' permissions, the
 * key matching the certificate), or the client's trusted CAs. A session is
 * one connection's TLS state. The caller feeds it the ciphertext it read
 * (cc_tls_feed), takes plaintext out (cc_tls_read, which also advances the
 * handshake), gives it plaintext to send (cc_tls_write) and, after either,
 * takes the ciphertext to put on the wire (cc_tls_take_output) and writes
 * it before anything taken later. No socket is touched here, so the server
 * keeps libuv's event loop, its write queue and its timers as they are.
 *
 * Both sides: TLS 1.2 or later, OpenSSL's default ciphers, no compression,
 * no renegotiation, no session resumption (a client opens one connection
 * per command). A client always verifies the server's certificate chain and
 * its name (or IP address); there is no way to turn that off.
 *
 * Sessions and contexts are used from one thread at a time (the server's
 * loop; a client's own thread).
 *
 * Must never: log or return anything about the peer beyond OpenSSL's reason
 * for a failure, keep a key file's bytes after loading them (they are wiped),
 * or accept a key file group or others can read.
 */
#ifndef CC_TLS_H
#define CC_TLS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cc_tls_context;
struct cc_tls;

/* cc_tls_read's results besides the negative error codes. */
#define CC_TLS_WANT_INPUT 0 /* everything fed so far is used: feed more */
#define CC_TLS_PLAINTEXT  1 /* *n bytes of plaintext were read */
#define CC_TLS_CLOSED     2 /* the peer sent close_notify: no more plaintext */

/* The first byte of every TLS connection (a handshake record); anything
 * else on a TLS port is a plaintext client. */
#define CC_TLS_HANDSHAKE_RECORD 0x16

/* The server's context from a PEM certificate file (the server's
 * certificate first, then the intermediates, as CAs issue "fullchain"
 * files) and a PEM private key file without a passphrase. Refused, with the
 * path and the reason in errbuf: a missing or unreadable file; a key file
 * that group or others can read or write (mode & 077), or a certificate
 * file they can write (mode & 022); a file that holds no certificate or no
 * key; a key that does not match the certificate. Returns 0 and sets *out
 * (free with cc_tls_context_free), CC_ENOTFOUND, CC_EPERM, CC_EACCESS,
 * CC_EIO, CC_EPARSE, CC_ECRYPTO or CC_ENOMEM. */
int cc_tls_server_context_new(const char *cert_path, const char *key_path,
                              struct cc_tls_context **out, char *errbuf, size_t errlen);

/* The certificate's last day of validity, as OpenSSL prints it ("Jan  1
 * 00:00:00 2027 GMT"), into out; and whether that day has passed. */
bool cc_tls_context_expired(const struct cc_tls_context *context, char *out, size_t out_bytes);

/* A client's context trusting the CA certificates of the PEM file ca_path,
 * or the system's store when ca_path is NULL. Returns 0 and sets *out, or
 * CC_EIO / CC_ECRYPTO / CC_ENOMEM with the reason in errbuf. */
int cc_tls_client_context_new(const char *ca_path, struct cc_tls_context **out, char *errbuf,
                              size_t errlen);

/* Frees a context (sessions made from it keep what they need). NULL is
 * allowed. */
void cc_tls_context_free(struct cc_tls_context *context);

/* A server session: it waits for the client's hello. Returns 0 and sets
 * *out (free with cc_tls_free), or CC_ENOMEM. */
int cc_tls_server_new(struct cc_tls_context *context, struct cc_tls **out);

/* A client session that will accept only a certificate for host (a DNS
 * name, also sent as SNI, or a numeric IPv4 or IPv6 address). The client
 * speaks first: call cc_tls_handshake, then send what cc_tls_take_output
 * gives. Returns 0 and sets *out, or CC_ENOMEM / CC_EINVAL (host). */
int cc_tls_client_new(struct cc_tls_context *context, const char *host, struct cc_tls **out);

/* Frees a session. NULL is allowed. */
void cc_tls_free(struct cc_tls *tls);

/* Takes ciphertext read from the peer. Returns 0 or CC_ENOMEM. */
int cc_tls_feed(struct cc_tls *tls, const void *data, size_t len);

/* Advances the handshake with what was fed. Returns 1 once it is complete,
 * 0 if it needs more input, or CC_ECRYPTO (the reason in cc_tls_error; a
 * client's certificate verification failure reads "certificate verify
 * failed: ..."). Take the output after it either way: it may hold the next
 * handshake message or an alert. */
int cc_tls_handshake(struct cc_tls *tls);

/* Whether the handshake has completed. */
bool cc_tls_handshake_done(const struct cc_tls *tls);

/* Reads plaintext into out[0..cap), advancing the handshake first if it is
 * not complete. Returns CC_TLS_PLAINTEXT with *n > 0, CC_TLS_WANT_INPUT,
 * CC_TLS_CLOSED, or CC_ECRYPTO (the session is unusable; the output may
 * hold an alert for the peer). Call it until it returns something other
 * than CC_TLS_PLAINTEXT: what was fed is then used up, and no plaintext is
 * left waiting inside. */
int cc_tls_read(struct cc_tls *tls, void *out, size_t cap, size_t *n);

/* Encrypts data[0..len) (all of it) into the output. Returns 0; CC_EINVAL
 * before the handshake is complete or after a failure; CC_ECRYPTO. */
int cc_tls_write(struct cc_tls *tls, const void *data, size_t len);

/* Queues close_notify (once; nothing before the handshake is complete or
 * after a failure). Returns 0. */
int cc_tls_close_notify(struct cc_tls *tls);

/* Takes the ciphertext waiting to be sent: *data (malloc'd, the caller
 * frees; NULL when *len is 0) and *len. Returns 0 or CC_ENOMEM. */
int cc_tls_take_output(struct cc_tls *tls, char **data, size_t *len);

/* The reason of the last failure ("" if none): OpenSSL's reason, no
 * identifiers. */
const char *cc_tls_error(const struct cc_tls *tls);

#endif
