/*
 * cc_op_status.c: the "status" op: the server's own counters (uptime,
 * connections, requests served). Runs on the loop; it only copies numbers.
 *
 * Data version details need an account (hello first).
 *
 * Must never: report anything about the data (counts of persons or records
 * are figures and go through disclosure control).
 */
#include "cc_op.h"

#include "cc_date.h"
#include "cc_release_cache.h"
#include "cc_services.h"

static int status_run(struct cc_request *request)
{
    const struct cc_server_stats *stats = cc_request_server_stats(request);
    msgpack_pack_uint64(cc_reply_field(request, "uptime_s"), stats->uptime_s);
    msgpack_pack_uint64(cc_reply_field(request, "connections"), stats->connections_open);
    msgpack_pack_uint64(cc_reply_field(request, "connections_accepted"),
                        stats->connections_accepted);
    msgpack_pack_uint64(cc_reply_field(request, "connections_refused"),
                        stats->connections_refused);
    msgpack_pack_uint64(cc_reply_field(request, "connections_paused"), stats->connections_paused);
    msgpack_pack_uint64(cc_reply_field(request, "requests_served"), stats->requests_served);
    msgpack_pack_uint64(cc_reply_field(request, "requests_in_progress"),
                        stats->requests_in_progress);
    const struct cc_services *services = cc_request_services(request);
    if (services && services->release_cache) {
        struct cc_release_cache_stats cache;
        cc_release_cache_stats(services->release_cache, &cache);
        msgpack_pack_uint64(cc_reply_field(request, "release_cache_hits"), cache.hits);
        msgpack_pack_uint64(cc_reply_field(request, "release_cache_misses"), cache.misses);
        msgpack_pack_uint64(cc_reply_field(request, "release_cache_entries"), cache.entries);
    }
    /* which publication is in force moves when opt-outs are published:
     * only an authenticated client learns it */
    if (stats->data_version && cc_request_account(request)) {
        char day[11];
        cc_day_format(stats->data_published_on, day);
        msgpack_pack_uint64(cc_reply_field(request, "data_version"), stats->data_version);
        msgpack_pack_uint64(cc_reply_field(request, "data_publication"), stats->data_publication);
        msgpack_packer *pk = cc_reply_field(request, "data_published_on");
        msgpack_pack_str(pk, 10);
        msgpack_pack_str_body(pk, day, 10);
    }
    return 0;
}

const struct cc_op cc_op_status = {"status", status_run, NULL, 0, false};
