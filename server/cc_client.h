/*
 * cc_client.h: the client side of the carecount protocol, blocking, with
 * timeouts.
 *
 * Used by the `carecount` tool (ping now, query later) and by the tests. One
 * struct cc_client is one TCP connection, plaintext or, after
 * cc_client_start_tls, TLS; every call waits at most the client's timeout.
 * Requests are packed with msgpack-c: start the map with
 * cc_client_pack_envelope, then pack the op's own fields.
 *
 * Must never: print or log what it sends or receives (a reply may carry
 * figures meant only for the caller, a request may carry a token).
 */
#ifndef CC_CLIENT_H
#define CC_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define CC_CLIENT_DEFAULT_TIMEOUT_MS 30000
#define CC_CLIENT_DEFAULT_MAX_FRAME_BYTES (64u << 20) /* replies can be large tables */
#define CC_CLIENT_ERROR_CODE_BYTES 32
#define CC_CLIENT_ERROR_MESSAGE_BYTES 256

struct cc_client;

/* A decoded reply. The envelope fields are copied out; everything else is
 * read through cc_reply_get. Free with cc_reply_free. */
struct cc_reply {
    uint8_t *body; /* the frame body (decoded strings point into it) */
    size_t body_bytes;
    msgpack_unpacked unpacked;
    const msgpack_object *map; /* the reply map */
    bool has_id;               /* false when the server could not read our id */
    uint64_t id;
    bool ok;
    char error_code[CC_CLIENT_ERROR_CODE_BYTES];       /* "" when ok */
    char error_message[CC_CLIENT_ERROR_MESSAGE_BYTES]; /* "" when ok */
};

/* Connects to host (a name or a numeric address) and port within timeout_ms.
 * Returns 0 and sets *out (close with cc_client_close), CC_ETIMEDOUT,
 * CC_EIO (refused, unreachable), CC_EINVAL (unknown host) or CC_ENOMEM. */
int cc_client_connect(const char *host, uint16_t port, int timeout_ms, struct cc_client **out);

/* Makes the connection TLS (cc_tls.h): the handshake, within the client's
 * timeout, with a server that must show a certificate chain to a CA of the
 * PEM file ca_file (NULL: the system's CA store) for host (the name or
 * address connected to). Call it right after cc_client_connect; everything
 * sent and received after is encrypted. Returns 0, or with the reason in
 * errbuf: CC_ECRYPTO (the handshake failed; a certificate the client does
 * not trust reads "certificate verify failed: ..."), CC_EIO (ca_file, or
 * the connection), CC_ETIMEDOUT, CC_ENOMEM; after a failure only
 * cc_client_close is of use. Verification cannot be turned off. */
int cc_client_start_tls(struct cc_client *client, const char *host, const char *ca_file,
                        char *errbuf, size_t errlen);

/* Closes the connection (with TLS's close_notify, if it can be sent at
 * once) and frees the client. NULL is allowed. */
void cc_client_close(struct cc_client *client);

/* Sets the time each later call may wait, in milliseconds. */
void cc_client_set_timeout(struct cc_client *client, int timeout_ms);

/* The socket, for callers that poll several plaintext clients at once (on
 * TLS, plaintext can wait inside the client while the socket is quiet). */
int cc_client_fd(const struct cc_client *client);

/* Sends len raw bytes (tests use it to send broken frames; encrypted on
 * TLS). Returns 0, CC_ETIMEDOUT or CC_EIO. */
int cc_client_send_raw(struct cc_client *client, const void *data, size_t len);

/* Sends one frame with body[0..len). Returns 0, CC_ETOOBIG, CC_ETIMEDOUT or
 * CC_EIO. */
int cc_client_send_frame(struct cc_client *client, const void *body, size_t len);

/* Receives one frame. Returns 1 and sets *body (malloc'd; the caller frees)
 * and *len; 0 if the server closed the connection between frames;
 * CC_ETIMEDOUT; CC_EIO (reset, or closed mid-frame); CC_ETOOBIG (a frame
 * over the client's limit). */
int cc_client_recv_frame(struct cc_client *client, uint8_t **body, size_t *len);

/* Receives and decodes one reply frame. Returns 1 (free *reply with
 * cc_reply_free), 0 on a clean close, or a negative code as
 * cc_client_recv_frame, or CC_EPARSE if the frame is not a reply map. */
int cc_client_recv_reply(struct cc_client *client, struct cc_reply *reply);

/* Returns the value of key in the reply map, or NULL. */
const msgpack_object *cc_reply_get(const struct cc_reply *reply, const char *key);

/* Frees what a reply holds. */
void cc_reply_free(struct cc_reply *reply);

/* Packs the start of a request: a map of 3 + n_op_fields entries and its
 * "v", "id" and "op" entries. Pack n_op_fields key/value pairs after it. */
void cc_client_pack_envelope(msgpack_packer *packer, uint64_t id, const char *op,
                             uint32_t n_op_fields);

/* Sends a request with no op fields and receives its reply. Returns 1 with
 * *reply set, or a negative code (0 if the server closed the connection). */
int cc_client_call_simple(struct cc_client *client, uint64_t id, const char *op,
                          struct cc_reply *reply);

/* Packs the op's own fields of a request (after the envelope). */
typedef int (*cc_client_pack_fn)(msgpack_packer *packer, const void *arg);

/* Sends a request with n_op_fields fields packed by pack(packer, arg) and
 * receives its reply (any id: for one request at a time). Returns 1 with
 * *reply set, or a negative code (0 if the server closed the connection). */
int cc_client_call(struct cc_client *client, uint64_t id, const char *op, uint32_t n_op_fields,
                   cc_client_pack_fn pack, const void *arg, struct cc_reply *reply);

/* The largest token accepted from a file or the environment. */
#define CC_CLIENT_TOKEN_BYTES 256

/* Reads a token: from the file at path if not NULL, else from the
 * environment variable CARECOUNT_TOKEN_FILE (a path) or CARECOUNT_TOKEN
 * (the token). A token file must be a regular file that only its owner
 * can read or write (mode 0600 or tighter): a looser one is refused
 * (CC_EPERM). Trailing newlines are dropped. Returns 0, CC_ENOTFOUND (no
 * token given), CC_EPERM, CC_EIO or CC_EINVAL (empty or too long), with the
 * reason in errbuf (never the token). */
int cc_client_read_token(const char *path, char token[CC_CLIENT_TOKEN_BYTES], char *errbuf,
                         size_t errlen);

/* Says hello with token. Returns 0; CC_EAUTH with the server's message in
 * errbuf when the token is refused; or another negative code. */
int cc_client_hello(struct cc_client *client, const char *token, char *errbuf, size_t errlen);

#endif
