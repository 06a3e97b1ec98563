/*
 * cc_frame.c: splitting a byte stream into length-prefixed frames, and
 * building frames in a msgpack buffer.
 *
 * The reader is a two-state machine (reading the header, reading the body).
 * The body is allocated once, at its declared size, only after that size has
 * passed the limit, so a peer cannot make us allocate more than the limit by
 * lying about a length; the bytes a peer must actually send to fill it bound
 * the rest.
 *
 * Must never: allocate before the length check, or read past the input.
 */
#include "cc_frame.h"

#include <stdlib.h>
#include <string.h>

#include "cc_error.h"

enum reader_state { READING_HEADER, READING_BODY, FRAME_COMPLETE, FRAME_REFUSED };

struct cc_frame_reader {
    uint32_t max_body_bytes;
    enum reader_state state;
    uint8_t header[CC_FRAME_HEADER_BYTES];
    size_t header_filled; /* bytes of header[] received, 0..4 */
    uint32_t body_bytes;  /* declared length of the current frame */
    size_t body_filled;   /* bytes of body[] received, 0..body_bytes */
    uint8_t *body;        /* owned; NULL until the header has been checked */
    uint64_t n_frames_taken;
    bool refused_http; /* the refused header was an HTTP request's start */
};

/* The first 4 bytes of the request lines of HTTP/1.x methods (and of
 * HTTP/2's preface, "PRI * HTTP/2.0"). */
static const char http_starts[][CC_FRAME_HEADER_BYTES] = {
    {'G', 'E', 'T', ' '}, {'P', 'O', 'S', 'T'}, {'P', 'U', 'T', ' '},
    {'H', 'E', 'A', 'D'}, {'O', 'P', 'T', 'I'}, {'D', 'E', 'L', 'E'},
    {'P', 'A', 'T', 'C'}, {'C', 'O', 'N', 'N'}, {'P', 'R', 'I', ' '},
};

#define HTTP_REFUSAL_BODY                                                                          \
    "this port speaks the carecount msgpack protocol (docs/protocol.md); "                         \
    "HTTP/JSON is served on the HTTP port\n"

/* Content-Length is written out by hand: the test checks it. */
static const char http_refusal[] = "HTTP/1.1 400 Bad Request\r\n"
                                   "Content-Type: text/plain; charset=utf-8\r\n"
                                   "Content-Length: 105\r\n"
                                   "Connection: close\r\n"
                                   "\r\n" HTTP_REFUSAL_BODY;

static bool is_http_start(const uint8_t header[CC_FRAME_HEADER_BYTES])
{
    for (size_t i = 0; i < sizeof http_starts / sizeof http_starts[0]; i++)
        if (memcmp(header, http_starts[i], CC_FRAME_HEADER_BYTES) == 0)
            return true;
    return false;
}

int cc_frame_reader_new(uint32_t max_body_bytes, struct cc_frame_reader **out)
{
    struct cc_frame_reader *reader = calloc(1, sizeof(*reader));
    if (!reader)
        return CC_ENOMEM;
    reader->max_body_bytes = max_body_bytes;
    reader->state = READING_HEADER;
    *out = reader;
    return 0;
}

void cc_frame_reader_free(struct cc_frame_reader *reader)
{
    if (!reader)
        return;
    free(reader->body);
    free(reader);
}

/* Called once the 4 header bytes are in: checks the declared length and only
 * then allocates the body. */
static int start_body(struct cc_frame_reader *reader)
{
    reader->body_bytes = cc_frame_header_decode(reader->header);
    if (reader->body_bytes > reader->max_body_bytes) {
        reader->state = FRAME_REFUSED;
        reader->refused_http = reader->n_frames_taken == 0 && is_http_start(reader->header);
        return CC_ETOOBIG;
    }
    /* One spare byte so that an empty body still has a non-NULL buffer. */
    reader->body = malloc((size_t)reader->body_bytes + 1);
    if (!reader->body)
        return CC_ENOMEM;
    reader->body_filled = 0;
    reader->state = reader->body_bytes == 0 ? FRAME_COMPLETE : READING_BODY;
    return 0;
}

int cc_frame_reader_feed(struct cc_frame_reader *reader, const uint8_t *data, size_t len,
                         size_t *consumed)
{
    size_t used = 0;
    int rc = 0;

    if (reader->state == FRAME_REFUSED) {
        rc = CC_ETOOBIG;
        goto out;
    }
    if (reader->state == FRAME_COMPLETE) {
        rc = 1; /* the caller has not taken the last frame yet */
        goto out;
    }
    if (reader->state == READING_HEADER) {
        size_t want = CC_FRAME_HEADER_BYTES - reader->header_filled;
        size_t n = len < want ? len : want;
        memcpy(reader->header + reader->header_filled, data, n);
        reader->header_filled += n;
        used += n;
        if (reader->header_filled < CC_FRAME_HEADER_BYTES)
            goto out;
        rc = start_body(reader);
        if (rc < 0)
            goto out;
    }
    if (reader->state == READING_BODY) {
        size_t want = reader->body_bytes - reader->body_filled;
        size_t n = len - used < want ? len - used : want;
        memcpy(reader->body + reader->body_filled, data + used, n);
        reader->body_filled += n;
        used += n;
        if (reader->body_filled == reader->body_bytes)
            reader->state = FRAME_COMPLETE;
    }
    rc = reader->state == FRAME_COMPLETE ? 1 : 0;
out:
    *consumed = used;
    return rc;
}

void cc_frame_reader_take(struct cc_frame_reader *reader, uint8_t **body, size_t *len)
{
    *body = reader->body;
    *len = reader->body_bytes;
    reader->body = NULL;
    reader->body_filled = 0;
    reader->n_frames_taken++;
    reader->header_filled = 0;
    reader->state = READING_HEADER;
}

bool cc_frame_reader_mid_frame(const struct cc_frame_reader *reader)
{
    return reader->header_filled > 0 || reader->state != READING_HEADER;
}

uint32_t cc_frame_reader_declared_bytes(const struct cc_frame_reader *reader)
{
    return reader->body_bytes;
}

bool cc_frame_reader_refused_http(const struct cc_frame_reader *reader)
{
    return reader->state == FRAME_REFUSED && reader->refused_http;
}

const char *cc_frame_http_refusal(size_t *len)
{
    *len = sizeof http_refusal - 1;
    return http_refusal;
}

int cc_frame_header_encode(size_t len, uint8_t out[CC_FRAME_HEADER_BYTES])
{
    if (len > CC_FRAME_MAX_BODY_BYTES)
        return CC_ETOOBIG;
    out[0] = (uint8_t)(len >> 24);
    out[1] = (uint8_t)(len >> 16);
    out[2] = (uint8_t)(len >> 8);
    out[3] = (uint8_t)len;
    return 0;
}

uint32_t cc_frame_header_decode(const uint8_t in[CC_FRAME_HEADER_BYTES])
{
    return (uint32_t)in[0] << 24 | (uint32_t)in[1] << 16 | (uint32_t)in[2] << 8 | (uint32_t)in[3];
}

int cc_frame_sbuffer_begin(msgpack_sbuffer *buffer)
{
    static const char placeholder[CC_FRAME_HEADER_BYTES] = {0};
    if (buffer->size != 0)
        return CC_EINVAL;
    return msgpack_sbuffer_write(buffer, placeholder, sizeof(placeholder)) == 0 ? 0 : CC_ENOMEM;
}

int cc_frame_sbuffer_finish(msgpack_sbuffer *buffer)
{
    if (buffer->size < CC_FRAME_HEADER_BYTES)
        return CC_EINVAL;
    return cc_frame_header_encode(buffer->size - CC_FRAME_HEADER_BYTES, (uint8_t *)buffer->data);
}
