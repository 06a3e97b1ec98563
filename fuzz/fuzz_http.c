/*
 * fuzz_http.c: the HTTP request path (server/cc_http.h): the incremental
 * parser over a hostile byte stream (cut into reads as the first byte says),
 * each complete request translated into the msgpack request map and that
 * map decoded as the msgpack port decodes a frame body (cc_request.h), error
 * responses built; and the reply translation (cc_http_from_reply) over the
 * same bytes read as a reply map.
 *
 * Limits are small (a 512-byte head, a 2 KiB body) so the 413/431 paths are
 * reached by short inputs.
 *
 * Must never: pass an input on which a translated request is not one
 * msgpack map, or a response lacks its status line.
 */
#include <msgpack.h>

#include "cc_error.h"
#include "cc_http.h"
#include "cc_request.h"
#include "fuzz_common.h"

static const char *const origins[] = {"https://dash.example.org"};
static const struct cc_http_cors cors = {origins, 1};

static void check_response(const struct cc_http_response *r)
{
    check(r->data != NULL && r->len >= 12);
    check(memcmp(r->data, "HTTP/1.1 ", 9) == 0);
    check(r->status >= 100 && r->status <= 599);
}

static void translate(const struct cc_http_request *req, uint64_t id)
{
    msgpack_sbuffer map;
    msgpack_sbuffer_init(&map);
    struct cc_http_response response = {0};
    int rc = cc_http_to_request(req, id, &cors, &map, &response);
    check(rc == 0 || rc == 1 || rc == CC_ENOMEM);
    if (rc == 1) {
        check_response(&response);
        cc_http_response_free(&response);
        msgpack_sbuffer_destroy(&map);
        return;
    }
    if (rc != 0) {
        msgpack_sbuffer_destroy(&map);
        return;
    }
    /* one map, exactly the buffer */
    msgpack_zone zone;
    msgpack_zone_init(&zone, 2048);
    msgpack_object obj;
    size_t off = 0;
    check(msgpack_unpack(map.data, map.size, &off, &zone, &obj) == MSGPACK_UNPACK_SUCCESS);
    check(off == map.size);
    check(obj.type == MSGPACK_OBJECT_MAP);
    msgpack_zone_destroy(&zone);
    /* and on as the server dispatches it */
    size_t len = map.size;
    uint8_t *body = (uint8_t *)msgpack_sbuffer_release(&map);
    struct cc_request *request = NULL;
    if (body && cc_request_new(body, len, &request) == 0) {
        cc_request_decode(request);
        msgpack_sbuffer frame;
        msgpack_sbuffer_init(&frame);
        if (cc_request_failed(request))
            check(cc_request_encode_reply(request, &frame) == 0);
        msgpack_sbuffer_destroy(&frame);
        cc_request_free(request);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint8_t cut = data[0];
    data++;
    size--;

    struct cc_http_limits limits = {.max_header_bytes = 512, .max_body_bytes = 2048};
    struct cc_http_conn *conn = NULL;
    if (cc_http_conn_new(&limits, &cors, &conn) < 0)
        return 0;
    size_t at = 0;
    uint64_t id = 0;
    int done = 0;
    while (at < size && !done) {
        size_t want = cut & 1 ? size - at : (size_t)(cut >> 1) + 1;
        if (want > size - at)
            want = size - at;
        size_t used = 0;
        int rc = cc_http_feed(conn, data + at, want, &used);
        check(used <= want);
        at += used;
        switch (rc) {
        case CC_HTTP_NEED_MORE:
            check(used == want);
            break;
        case CC_HTTP_CONTINUE:
            break;
        case CC_HTTP_REQUEST: {
            const struct cc_http_request *req = cc_http_conn_request(conn);
            check(req != NULL && req->path != NULL);
            check(req->body_bytes <= limits.max_body_bytes);
            check(req->body_bytes == 0 || req->body != NULL);
            translate(req, ++id);
            cc_http_conn_next(conn);
            check(cc_http_conn_request(conn) == NULL);
            break;
        }
        case CC_HTTP_ERROR: {
            struct cc_http_response response = {0};
            if (cc_http_conn_error_response(conn, &response) == 0) {
                check_response(&response);
                check(response.status >= 400);
                cc_http_response_free(&response);
            }
            size_t again = 0;
            check(cc_http_feed(conn, data + at, size - at, &again) == CC_HTTP_ERROR);
            done = 1;
            break;
        }
        default:
            check(0);
        }
        if (id > 64)
            break;
    }
    cc_http_conn_free(conn);

    /* the same bytes as a reply map to translate back */
    struct cc_http_request req = {.method = CC_HTTP_POST, .path = "/v1/count", .http_minor = 1,
                                  .keep_alive = true, .origin = "https://dash.example.org"};
    struct cc_http_response response = {0};
    if (cc_http_from_reply(data, size, &req, &cors, &response) == 0) {
        check_response(&response);
        cc_http_response_free(&response);
    }
    return 0;
}
