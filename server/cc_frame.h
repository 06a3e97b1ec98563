/*
 * cc_frame.h: the wire framing of the carecount protocol.
 *
 * A frame is a 4-byte big-endian unsigned length followed by exactly that many
 * bytes of body (one msgpack map; see docs/protocol.md). This module only
 * splits a byte stream into frames and builds frames; it knows nothing of
 * sockets or of what a body means, so the server, the client and the tests
 * share it.
 *
 * Must never: allocate for a frame before its declared length has been
 * checked against the limit, or look inside a body.
 */
#ifndef CC_FRAME_H
#define CC_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <msgpack.h>

#define CC_FRAME_HEADER_BYTES 4

/* The largest body any frame can declare: the length field is 32 bits. */
#define CC_FRAME_MAX_BODY_BYTES UINT32_MAX

/* An incremental frame decoder. Opaque: it holds a partly received frame. */
struct cc_frame_reader;

/* Creates a reader that refuses frames whose declared body is longer than
 * max_body_bytes. Returns 0 and sets *out (free it with
 * cc_frame_reader_free), or CC_ENOMEM. */
int cc_frame_reader_new(uint32_t max_body_bytes, struct cc_frame_reader **out);

/* Frees a reader and any partly received body. NULL is allowed. */
void cc_frame_reader_free(struct cc_frame_reader *reader);

/* Consumes bytes from data[0..len) until one frame is complete or the input
 * is used up, and sets *consumed to the number of bytes used. Returns 1 when a
 * frame is complete (collect it with cc_frame_reader_take before feeding
 * again; any unused input belongs to the next frame), 0 when every byte was
 * used and the frame is not yet complete, CC_ETOOBIG when the declared length
 * exceeds the limit (nothing is allocated for it and the reader must not be
 * fed again), or CC_ENOMEM. */
int cc_frame_reader_feed(struct cc_frame_reader *reader, const uint8_t *data, size_t len,
                         size_t *consumed);

/* Hands over the completed frame: *body (malloc'd; the caller frees it; never
 * NULL, even for an empty body) and *len. Only valid after feed returned 1. */
void cc_frame_reader_take(struct cc_frame_reader *reader, uint8_t **body, size_t *len);

/* True if the reader holds part of a frame (a header or body not yet
 * complete): a stream that ends now was cut off mid-frame. */
bool cc_frame_reader_mid_frame(const struct cc_frame_reader *reader);

/* The length declared by the last header read (for TOOBIG reporting). */
uint32_t cc_frame_reader_declared_bytes(const struct cc_frame_reader *reader);

/* After feed returned CC_ETOOBIG: true if the refused header was the first
 * of the stream and its 4 bytes are the start of an HTTP request line
 * ("GET ", "POST", "PUT ", "HEAD", "OPTI", "DELE", "PATC", "CONN", "PRI "
 * of HTTP/2's preface). Such bytes read as a length of over 1.1 GB, so only
 * a header already over the limit is taken for HTTP: a frame within the
 * limit is never misread. The caller then writes
 * cc_frame_http_refusal() instead of a TOOBIG frame, and closes. */
bool cc_frame_reader_refused_http(const struct cc_frame_reader *reader);

/* A complete HTTP/1.1 400 response (plain text, Connection: close) telling
 * an HTTP client that this port speaks msgpack frames. Static; sets *len. */
const char *cc_frame_http_refusal(size_t *len);

/* Writes the header of a frame whose body is len bytes. Returns 0, or
 * CC_ETOOBIG if len does not fit the 32-bit length field. */
int cc_frame_header_encode(size_t len, uint8_t out[CC_FRAME_HEADER_BYTES]);

/* Reads the body length from a header. */
uint32_t cc_frame_header_decode(const uint8_t in[CC_FRAME_HEADER_BYTES]);

/* Starts a frame in an empty msgpack buffer by reserving room for the
 * header; pack the body after it, then call cc_frame_sbuffer_finish.
 * Returns 0 or CC_ENOMEM. */
int cc_frame_sbuffer_begin(msgpack_sbuffer *buffer);

/* Fills in the header reserved by cc_frame_sbuffer_begin with the length of
 * everything packed since. Returns 0, or CC_ETOOBIG for a body over 4 GiB. */
int cc_frame_sbuffer_finish(msgpack_sbuffer *buffer);

#endif
