/*
 * cc_tls.c: TLS sessions over memory BIOs (cc_tls.h).
 *
 * Each session's SSL reads from one memory BIO (the ciphertext the caller
 * fed) and writes to another (the ciphertext the caller takes). Neither can
 * block: an empty input BIO is OpenSSL's "want read", and the output grows
 * until taken. So the only state is OpenSSL's own, and the caller's loop
 * keeps its timers and its write queue.
 *
 * The key file is opened once, checked on that descriptor (so the file
 * checked is the file read), read into memory, parsed, and its bytes wiped.
 *
 * Must never: log, accept a key file group or others can read, keep the
 * key's bytes, or let a client proceed past a failed verification.
 */
#include "cc_tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "cc_error.h"

/* A PEM file larger than this is not a certificate chain or a key. */
#define MAX_PEM_FILE_BYTES (1u << 20)
/* An output BIO that grew past this for a large reply is replaced once
 * drained, so an idle connection does not keep its largest reply's size. */
#define OUTPUT_KEEP_BYTES 65536

struct cc_tls_context {
    SSL_CTX *ctx;
    char not_after[64]; /* the server certificate's last day ("" for a client) */
    bool expired;
};

struct cc_tls {
    SSL *ssl;
    BIO *input;  /* ciphertext from the peer: the SSL's read BIO (owned by ssl) */
    BIO *output; /* ciphertext for the peer: the SSL's write BIO (owned by ssl) */
    bool client;
    bool failed;     /* a fatal error: no more reading, writing or close_notify */
    bool close_sent; /* close_notify queued */
    char error[256];
};

/* OpenSSL's reason for the failure at the head of the error queue, then
 * clears the queue (it is per thread: what is left would be blamed on the
 * next connection). */
static void openssl_reason(char *out, size_t out_bytes)
{
    unsigned long e = ERR_peek_error();
    const char *reason = e ? ERR_reason_error_string(e) : NULL;
    if (reason)
        snprintf(out, out_bytes, "%s", reason);
    else if (e)
        ERR_error_string_n(e, out, out_bytes);
    else
        snprintf(out, out_bytes, "unknown TLS error");
    ERR_clear_error();
}

/* ---- files --------------------------------------------------------------- */

/* Reads the file at path whole into a malloc'd, NUL-terminated buffer after
 * checking, on the descriptor it reads, that it is a regular file with none
 * of the mode bits in forbidden. what names the config key in messages. */
static int read_pem_file(const char *what, const char *path, mode_t forbidden, char **out,
                         size_t *out_len, char *errbuf, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int saved = errno;
        return cc_errorf(errbuf, errlen, cc_error_from_errno(saved), "%s %s: %s", what, path,
                         strerror(saved));
    }
    struct stat st;
    int rc = 0;
    char *text = NULL;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        rc = cc_errorf(errbuf, errlen, CC_EIO, "%s %s: not a regular file", what, path);
        goto out;
    }
    if (st.st_mode & forbidden) {
        if (forbidden & S_IRGRP)
            rc = cc_errorf(errbuf, errlen, CC_EPERM,
                           "%s %s: group or others can read or write this TLS key file (mode "
                           "%04o): whoever reads it can pose as this server; chmod 600 it",
                           what, path, (unsigned)(st.st_mode & 07777));
        else
            rc = cc_errorf(errbuf, errlen, CC_EPERM,
                           "%s %s: writable by group or others (mode %04o): another user could "
                           "replace the server's certificate; chmod go-w it",
                           what, path, (unsigned)(st.st_mode & 07777));
        goto out;
    }
    if (st.st_size <= 0 || (uint64_t)st.st_size > MAX_PEM_FILE_BYTES) {
        rc = cc_errorf(errbuf, errlen, CC_EPARSE, "%s %s: %s", what, path,
                       st.st_size <= 0 ? "the file is empty" : "too large for a PEM file");
        goto out;
    }
    size_t size = (size_t)st.st_size, len = 0;
    text = malloc(size + 1);
    if (!text) {
        rc = cc_errorf(errbuf, errlen, CC_ENOMEM, "%s %s: out of memory", what, path);
        goto out;
    }
    while (len < size) {
        ssize_t n = read(fd, text + len, size - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = cc_errorf(errbuf, errlen, CC_EIO, "%s %s: %s", what, path,
                           n < 0 ? strerror(errno) : "the file shrank while it was read");
            goto out;
        }
        len += (size_t)n;
    }
    text[len] = '\0';
    *out = text;
    *out_len = len;
    text = NULL;
out:
    if (text) {
        OPENSSL_cleanse(text, (size_t)st.st_size);
        free(text);
    }
    close(fd);
    return rc;
}

/* OpenSSL asks for a passphrase with this: there is nobody to ask. */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)arg;
    return -1;
}

/* Puts the certificate chain of a PEM file into ctx: the server's
 * certificate first, then its intermediates. */
static int load_chain(SSL_CTX *ctx, const char *path, char *errbuf, size_t errlen)
{
    char *text = NULL, why[200];
    size_t len = 0;
    int rc = read_pem_file("tls-cert", path, S_IWGRP | S_IWOTH, &text, &len, errbuf, errlen);
    if (rc < 0)
        return rc;
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    X509 *cert = bio ? PEM_read_bio_X509_AUX(bio, NULL, NULL, NULL) : NULL;
    if (!bio) {
        rc = cc_errorf(errbuf, errlen, CC_ENOMEM, "tls-cert %s: out of memory", path);
        goto out;
    }
    if (!cert) {
        openssl_reason(why, sizeof why);
        rc = cc_errorf(errbuf, errlen, CC_EPARSE, "tls-cert %s: no PEM certificate in it (%s)",
                       path, why);
        goto out;
    }
    if (SSL_CTX_use_certificate(ctx, cert) != 1) {
        openssl_reason(why, sizeof why);
        rc = cc_errorf(errbuf, errlen, CC_ECRYPTO, "tls-cert %s: the certificate is refused: %s",
                       path, why);
        goto out;
    }
    for (;;) {
        X509 *ca = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (!ca)
            break;
        if (SSL_CTX_add0_chain_cert(ctx, ca) != 1) { /* takes ca when it succeeds */
            X509_free(ca);
            openssl_reason(why, sizeof why);
            rc = cc_errorf(errbuf, errlen, CC_ECRYPTO,
                           "tls-cert %s: an intermediate certificate is refused: %s", path, why);
            goto out;
        }
    }
    /* The loop ends at the file's end ("no start line") or at a broken
     * certificate, which must not be served as if the chain were whole. */
    unsigned long e = ERR_peek_last_error();
    if (e && !(ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)) {
        openssl_reason(why, sizeof why);
        rc = cc_errorf(errbuf, errlen, CC_EPARSE,
                       "tls-cert %s: a certificate after the first is malformed: %s", path, why);
        goto out;
    }
    ERR_clear_error();
out:
    X509_free(cert);
    BIO_free(bio);
    free(text);
    return rc;
}

/* Whether OpenSSL's last error says a key is not the certificate's (as
 * SSL_CTX_use_PrivateKey finds when a certificate is loaded). */
static bool key_mismatch(void)
{
    unsigned long e = ERR_peek_last_error();
    return ERR_GET_LIB(e) == ERR_LIB_X509 && (ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH ||
                                              ERR_GET_REASON(e) == X509_R_KEY_TYPE_MISMATCH);
}

/* Puts the private key of a PEM file into ctx; the file's bytes are wiped. */
static int load_key(SSL_CTX *ctx, const char *path, char *errbuf, size_t errlen)
{
    char *text = NULL, why[200];
    size_t len = 0;
    int rc = read_pem_file("tls-key", path, S_IRWXG | S_IRWXO, &text, &len, errbuf, errlen);
    if (rc < 0)
        return rc;
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    EVP_PKEY *key = bio ? PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL) : NULL;
    if (!bio) {
        rc = cc_errorf(errbuf, errlen, CC_ENOMEM, "tls-key %s: out of memory", path);
        goto out;
    }
    if (!key && strstr(text, "ENCRYPTED")) {
        ERR_clear_error();
        rc = cc_errorf(errbuf, errlen, CC_EPARSE,
                       "tls-key %s: the key is encrypted with a passphrase, which carecountd "
                       "cannot ask for: keep it decrypted in a mode 0600 file "
                       "(openssl pkey -in ENCRYPTED -out %s)",
                       path, path);
        goto out;
    }
    if (!key) {
        openssl_reason(why, sizeof why);
        rc = cc_errorf(errbuf, errlen, CC_EPARSE, "tls-key %s: no PEM private key in it (%s)", path,
                       why);
        goto out;
    }
    ERR_clear_error();
    /* With the certificate loaded, SSL_CTX_use_PrivateKey itself refuses a
     * key that is not its; SSL_CTX_check_private_key says so for certain. */
    bool used = SSL_CTX_use_PrivateKey(ctx, key) == 1;
    if (!used && !key_mismatch()) {
        openssl_reason(why, sizeof why);
        rc = cc_errorf(errbuf, errlen, CC_ECRYPTO, "tls-key %s: the key is refused: %s", path, why);
    } else if (!used || SSL_CTX_check_private_key(ctx) != 1) {
        openssl_reason(why, sizeof why);
        rc = cc_errorf(errbuf, errlen, CC_ECRYPTO,
                       "tls-key %s does not match the certificate of tls-cert (%s): give the key "
                       "the certificate was issued for",
                       path, why);
    }
out:
    EVP_PKEY_free(key);
    BIO_free(bio);
    OPENSSL_cleanse(text, len);
    free(text);
    return rc;
}

/* ---- contexts ------------------------------------------------------------- */

/* What both sides share: TLS 1.2 or later, no compression, no
 * renegotiation, no resumption. */
static SSL_CTX *new_ctx(const SSL_METHOD *method)
{
    SSL_CTX *ctx = SSL_CTX_new(method);
    if (!ctx)
        return NULL;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1) {
        SSL_CTX_free(ctx);
        return NULL;
    }
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_TICKET);
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    /* an idle connection gives its record buffers back */
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return ctx;
}

int cc_tls_server_context_new(const char *cert_path, const char *key_path,
                              struct cc_tls_context **out, char *errbuf, size_t errlen)
{
    *out = NULL;
    struct cc_tls_context *context = calloc(1, sizeof *context);
    if (!context)
        return cc_errorf(errbuf, errlen, CC_ENOMEM, "out of memory");
    int rc = 0;
    context->ctx = new_ctx(TLS_server_method());
    if (!context->ctx) {
        char why[200];
        openssl_reason(why, sizeof why);
        rc = cc_errorf(errbuf, errlen, CC_ECRYPTO, "cannot set up TLS: %s", why);
        goto fail;
    }
    /* TLS 1.3 sends session tickets unless told not to; nothing resumes */
    SSL_CTX_set_num_tickets(context->ctx, 0);
    SSL_CTX_set_options(context->ctx, SSL_OP_CIPHER_SERVER_PREFERENCE);
    rc = load_chain(context->ctx, cert_path, errbuf, errlen);
    if (rc == 0)
        rc = load_key(context->ctx, key_path, errbuf, errlen);
    if (rc < 0)
        goto fail;
    X509 *cert = SSL_CTX_get0_certificate(context->ctx);
    const ASN1_TIME *not_after = cert ? X509_get0_notAfter(cert) : NULL;
    BIO *text = BIO_new(BIO_s_mem());
    if (not_after && text && ASN1_TIME_print(text, not_after) == 1) {
        int n = BIO_read(text, context->not_after, (int)sizeof context->not_after - 1);
        context->not_after[n > 0 ? n : 0] = '\0';
        context->expired = X509_cmp_current_time(not_after) < 0;
    }
    BIO_free(text);
    ERR_clear_error();
    *out = context;
    return 0;
fail:
    cc_tls_context_free(context);
    return rc;
}

bool cc_tls_context_expired(const struct cc_tls_context *context, char *out, size_t out_bytes)
{
    snprintf(out, out_bytes, "%s", context->not_after);
    return context->expired;
}

int cc_tls_client_context_new(const char *ca_path, struct cc_tls_context **out, char *errbuf,
                              size_t errlen)
{
    char why[200];
    *out = NULL;
    struct cc_tls_context *context = calloc(1, sizeof *context);
    if (!context)
        return cc_errorf(errbuf, errlen, CC_ENOMEM, "out of memory");
    int rc = 0;
    context->ctx = new_ctx(TLS_client_method());
    if (!context->ctx) {
        openssl_reason(why, sizeof why);
        rc = cc_errorf(errbuf, errlen, CC_ECRYPTO, "cannot set up TLS: %s", why);
        goto fail;
    }
    SSL_CTX_set_verify(context->ctx, SSL_VERIFY_PEER, NULL);
    if (ca_path) {
        /* OpenSSL's message for a missing file is "system lib": say it */
        if (access(ca_path, R_OK) != 0) {
            int saved = errno;
            rc = cc_errorf(errbuf, errlen, CC_EIO, "ca-file %s: %s", ca_path, strerror(saved));
            goto fail;
        }
        if (SSL_CTX_load_verify_locations(context->ctx, ca_path, NULL) != 1) {
            openssl_reason(why, sizeof why);
            rc =
                cc_errorf(errbuf, errlen, CC_ECRYPTO,
                          "ca-file %s: no CA certificate could be read from it (%s)", ca_path, why);
            goto fail;
        }
    } else if (SSL_CTX_set_default_verify_paths(context->ctx) != 1) {
        openssl_reason(why, sizeof why);
        rc = cc_errorf(errbuf, errlen, CC_ECRYPTO, "cannot read the system's CA store: %s", why);
        goto fail;
    }
    ERR_clear_error();
    *out = context;
    return 0;
fail:
    cc_tls_context_free(context);
    return rc;
}

void cc_tls_context_free(struct cc_tls_context *context)
{
    if (!context)
        return;
    SSL_CTX_free(context->ctx);
    free(context);
}

/* ---- sessions ------------------------------------------------------------- */

static int new_session(struct cc_tls_context *context, bool client, struct cc_tls **out)
{
    *out = NULL;
    struct cc_tls *tls = calloc(1, sizeof *tls);
    if (!tls)
        return CC_ENOMEM;
    tls->client = client;
    tls->ssl = SSL_new(context->ctx);
    tls->input = BIO_new(BIO_s_mem());
    tls->output = BIO_new(BIO_s_mem());
    if (!tls->ssl || !tls->input || !tls->output) {
        BIO_free(tls->input);
        BIO_free(tls->output);
        SSL_free(tls->ssl);
        free(tls);
        ERR_clear_error();
        return CC_ENOMEM;
    }
    SSL_set_bio(tls->ssl, tls->input, tls->output); /* ssl owns both now */
    if (client)
        SSL_set_connect_state(tls->ssl);
    else
        SSL_set_accept_state(tls->ssl);
    *out = tls;
    return 0;
}

int cc_tls_server_new(struct cc_tls_context *context, struct cc_tls **out)
{
    return new_session(context, false, out);
}

int cc_tls_client_new(struct cc_tls_context *context, const char *host, struct cc_tls **out)
{
    unsigned char probe[sizeof(struct in6_addr)];
    int rc = new_session(context, true, out);
    if (rc < 0)
        return rc;
    SSL *ssl = (*out)->ssl;
    X509_VERIFY_PARAM *param = SSL_get0_param(ssl);
    bool numeric = inet_pton(AF_INET, host, probe) == 1 || inet_pton(AF_INET6, host, probe) == 1;
    if (numeric) {
        /* an address is matched against the certificate's IP entries, and
         * is never sent as SNI (RFC 6066 allows names only) */
        rc = X509_VERIFY_PARAM_set1_ip_asc(param, host) == 1 ? 0 : CC_EINVAL;
    } else {
        X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        rc = SSL_set1_host(ssl, host) == 1 && SSL_set_tlsext_host_name(ssl, host) == 1 ? 0
                                                                                       : CC_EINVAL;
    }
    if (rc < 0) {
        ERR_clear_error();
        cc_tls_free(*out);
        *out = NULL;
    }
    return rc;
}

void cc_tls_free(struct cc_tls *tls)
{
    if (!tls)
        return;
    SSL_free(tls->ssl); /* and both BIOs */
    free(tls);
}

int cc_tls_feed(struct cc_tls *tls, const void *data, size_t len)
{
    size_t written = 0;
    if (len == 0)
        return 0;
    if (BIO_write_ex(tls->input, data, len, &written) != 1 || written != len) {
        ERR_clear_error();
        return CC_ENOMEM;
    }
    return 0;
}

/* Marks the session failed and keeps why. A client whose verification
 * failed is told what was wrong with the certificate. */
static int fail(struct cc_tls *tls, int ssl_error)
{
    tls->failed = true;
    long verify = tls->client ? SSL_get_verify_result(tls->ssl) : X509_V_OK;
    if (verify != X509_V_OK) {
        snprintf(tls->error, sizeof tls->error, "certificate verify failed: %s",
                 X509_verify_cert_error_string(verify));
        ERR_clear_error();
    } else if (ssl_error == SSL_ERROR_SSL) {
        openssl_reason(tls->error, sizeof tls->error);
    } else {
        snprintf(tls->error, sizeof tls->error, "TLS failed (OpenSSL error %d)", ssl_error);
        ERR_clear_error();
    }
    return CC_ECRYPTO;
}

int cc_tls_handshake(struct cc_tls *tls)
{
    if (tls->failed)
        return CC_ECRYPTO;
    ERR_clear_error();
    int rc = SSL_do_handshake(tls->ssl);
    if (rc == 1)
        return 1;
    int e = SSL_get_error(tls->ssl, rc);
    if (e == SSL_ERROR_WANT_READ)
        return 0;
    return fail(tls, e);
}

bool cc_tls_handshake_done(const struct cc_tls *tls)
{
    return SSL_is_init_finished(tls->ssl);
}

int cc_tls_read(struct cc_tls *tls, void *out, size_t cap, size_t *n)
{
    *n = 0;
    if (tls->failed)
        return CC_ECRYPTO;
    ERR_clear_error();
    size_t got = 0;
    int rc = SSL_read_ex(tls->ssl, out, cap, &got);
    if (rc == 1) {
        *n = got;
        return CC_TLS_PLAINTEXT;
    }
    int e = SSL_get_error(tls->ssl, rc);
    if (e == SSL_ERROR_WANT_READ)
        return CC_TLS_WANT_INPUT;
    if (e == SSL_ERROR_ZERO_RETURN)
        return CC_TLS_CLOSED;
    return fail(tls, e);
}

int cc_tls_write(struct cc_tls *tls, const void *data, size_t len)
{
    const char *bytes = data;
    if (tls->failed || tls->close_sent || !SSL_is_init_finished(tls->ssl))
        return CC_EINVAL;
    while (len > 0) {
        size_t written = 0;
        ERR_clear_error();
        int rc = SSL_write_ex(tls->ssl, bytes, len, &written);
        if (rc != 1)
            return fail(tls, SSL_get_error(tls->ssl, rc));
        bytes += written;
        len -= written;
    }
    return 0;
}

int cc_tls_close_notify(struct cc_tls *tls)
{
    if (tls->failed || tls->close_sent || !SSL_is_init_finished(tls->ssl))
        return 0;
    tls->close_sent = true;
    ERR_clear_error();
    /* 0: ours is queued and the peer's not yet seen, which is all we wait
     * for (the connection closes after it); <0 is not worth more than that */
    (void)SSL_shutdown(tls->ssl);
    ERR_clear_error();
    return 0;
}

int cc_tls_take_output(struct cc_tls *tls, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    size_t pending = BIO_ctrl_pending(tls->output);
    if (pending == 0)
        return 0;
    char *bytes = malloc(pending);
    if (!bytes)
        return CC_ENOMEM;
    size_t got = 0;
    if (BIO_read_ex(tls->output, bytes, pending, &got) != 1 || got != pending) {
        free(bytes);
        ERR_clear_error();
        return CC_ENOMEM;
    }
    BUF_MEM *buffer = NULL;
    BIO_get_mem_ptr(tls->output, &buffer);
    if (buffer && buffer->max > OUTPUT_KEEP_BYTES) {
        BIO *fresh = BIO_new(BIO_s_mem());
        if (fresh) {
            SSL_set0_wbio(tls->ssl, fresh); /* frees the old one, now empty */
            tls->output = fresh;
        }
        ERR_clear_error();
    }
    *data = bytes;
    *len = got;
    return 0;
}

const char *cc_tls_error(const struct cc_tls *tls)
{
    return tls->error;
}
