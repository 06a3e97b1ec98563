/*
 * cc_op_transparency.c: the "transparency" op: the opt-outs in force by
 * area and type, and each area's opted-in coverage, for anyone
 * authenticated; released through disclosure control like every figure
 * (cc_release_transparency).
 *
 * Must never: release a count other than through the release layer.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cc_error.h"
#include "cc_op_internal.h"
#include "cc_release.h"
#include "cc_services.h"

#define EVERY_ROLE                                                                                 \
    (CC_OP_ROLE(CC_ROLE_RESEARCHER) | CC_OP_ROLE(CC_ROLE_PLANNER) |                                \
     CC_OP_ROLE(CC_ROLE_DASHBOARD) | CC_OP_ROLE(CC_ROLE_PRACTICE) | CC_OP_ROLE(CC_ROLE_OPERATOR))

static bool on_pool(const struct cc_request *request)
{
    (void)request;
    return true;
}

static int transparency_run(struct cc_request *request)
{
    const struct cc_services *services = cc_request_services(request);
    if (!cc_request_data(request) || !services->optout)
        return cc_request_fail(request, CC_EUNSUPPORTED, "this server serves no data");
    int level = CC_AREA_REGION;
    const msgpack_object *l = cc_request_field(request, "level");
    if (l) {
        if (l->type == MSGPACK_OBJECT_STR && l->via.str.size == 3 && !memcmp(l->via.str.ptr, "icb", 3))
            level = CC_AREA_ICB;
        else if (l->type == MSGPACK_OBJECT_STR && l->via.str.size == 3 &&
                 !memcmp(l->via.str.ptr, "lad", 3))
            level = CC_AREA_LAD;
        else if (!(l->type == MSGPACK_OBJECT_STR && l->via.str.size == 6 &&
                   !memcmp(l->via.str.ptr, "region", 6)))
            return cc_request_fail(request, CC_EINVAL, "level must be region, icb or lad");
    }
    char detail[40];
    snprintf(detail, sizeof detail, "{\"level\":\"%s\"}", cc_query_area_level_name(level));
    char *canonical = strdup(detail);
    cc_request_audit_detail(request, canonical, 0, 0);
    cc_transparency *report = NULL;
    char why[160];
    cc_services_register_lock(services);
    int rc = cc_release_transparency(&services->policy, cc_request_data(request), services->optout,
                                     level, &report, why, sizeof why);
    cc_services_register_unlock(services);
    if (rc)
        return cc_request_fail(request, rc, why);
    const struct cc_release_summary *s = cc_transparency_summary(report);
    cc_request_audit_detail(request, canonical, s->n_shown + s->n_perturbed + s->n_rounded,
                            s->n_suppressed_primary + s->n_suppressed_secondary);
    cc_op_reply_data_version(request);
    rc = cc_transparency_pack(report, cc_reply_field(request, "report"));
    cc_transparency_free(report);
    return rc ? cc_request_fail(request, rc, NULL) : 0;
}

const struct cc_op cc_op_transparency = {"transparency", transparency_run, on_pool, EVERY_ROLE,
                                         true};
