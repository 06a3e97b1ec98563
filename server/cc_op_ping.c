/*
 * cc_op_ping.c: the "ping" op: proves the server is up and says which
 * version it is, and which store version it answered from.
 *
 * In test mode a ping may carry "delay_ms"; it then runs on the thread pool
 * and sleeps that long first, so that tests can show that a slow request does
 * not hold up other clients.
 *
 * Must never: accept delay_ms outside test mode.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "cc_error.h"
#include "cc_op.h"
#include "cc_version.h"

#define MAX_TEST_DELAY_MS 60000

static bool ping_runs_on_pool(const struct cc_request *request)
{
    return cc_request_test_mode(request) && cc_request_field(request, "delay_ms") != NULL;
}

static void sleep_ms(uint64_t ms)
{
    struct timespec left = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
}

static int ping_run(struct cc_request *request)
{
    const msgpack_object *delay = cc_request_field(request, "delay_ms");
    if (delay) {
        if (!cc_request_test_mode(request))
            return cc_request_fail(request, CC_EINVAL, "delay_ms is accepted only in test mode");
        if (delay->type != MSGPACK_OBJECT_POSITIVE_INTEGER || delay->via.u64 > MAX_TEST_DELAY_MS)
            return cc_request_fail(request, CC_ERANGE, "delay_ms must be an integer from 0 to 60000");
        sleep_ms(delay->via.u64);
    }
    msgpack_packer *packer = cc_reply_field(request, "server");
    msgpack_pack_str_with_body(packer, "carecountd", strlen("carecountd"));
    packer = cc_reply_field(request, "version");
    msgpack_pack_str_with_body(packer, CC_VERSION_STRING, strlen(CC_VERSION_STRING));
    /* Read after the test delay: the version this request held throughout. */
    const cc_dataversion *data = cc_request_data(request);
    if (data)
        msgpack_pack_uint64(cc_reply_field(request, "data_version"),
                            cc_dataversion_store_version(data));
    return 0;
}

const struct cc_op cc_op_ping = {"ping", ping_run, ping_runs_on_pool, 0, false};
