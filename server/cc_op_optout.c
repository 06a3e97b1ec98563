/*
 * cc_op_optout.c: the opt-out ops: practice staff (and operators) confirm a
 * patient's opt-out status and history, and register or withdraw a type 1
 * opt-out, through the server: the NHS number is pseudonymised here with
 * the data directory's key, so a practice needs neither the key nor
 * state.db (docs/protocol.md, "Opt-outs").
 *
 *   optout_status    {"nhs_number", "on"?}        -> {"on", "in_force": [type...]}
 *   optout_history   {"nhs_number"}               -> {"events": [...]}
 *   optout_register  {"nhs_number", "type"?, "effective"?} -> {"recorded", "effective"}
 *   optout_withdraw  {"nhs_number", "type"?, "effective"?} -> {"recorded", "effective"}
 *
 * A practice account may only look up and change patients registered with
 * its own practice in the data version in force (else NOTFOUND, the same
 * answer as for an NHS number nobody has), and only type 1 opt-outs (the
 * National Data Opt-out is recorded nationally; operators may record both).
 * The audit record names the person by pseudonym, never by NHS number.
 *
 * Must never: put the NHS number in a reply, an error, the audit log or a
 * log line; answer about a patient of another practice.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cc_error.h"
#include "cc_op.h"
#include "cc_services.h"
#include "cc_store.h"
#include "cc_validate.h"

static bool on_pool(const struct cc_request *request)
{
    (void)request;
    return true;
}

static void pack_text(msgpack_packer *pk, const char *text)
{
    msgpack_pack_str_with_body(pk, text, strlen(text));
}

static void pack_day(msgpack_packer *pk, cc_day day)
{
    char text[11];
    cc_day_format(day, text);
    pack_text(pk, text);
}

/* The person the request names, pseudonymised, after the checks every op
 * makes: a valid NHS number, a register, and for a practice account a
 * patient of its practice. */
static int person_of(struct cc_request *request, cc_pseudonym *person)
{
    const struct cc_services *services = cc_request_services(request);
    const struct cc_account *account = cc_request_account(request);
    if (!services->optout || !services->key || !cc_request_data(request))
        return cc_request_fail(request, CC_EUNSUPPORTED, "this server serves no data directory");
    const msgpack_object *nhs = cc_request_field(request, "nhs_number");
    if (!nhs || nhs->type != MSGPACK_OBJECT_STR)
        return cc_request_fail(request, CC_EINVAL, "nhs_number must be a string");
    char digits[CC_NHS_NUMBER_DIGITS];
    if (cc_validate_nhs_number(nhs->via.str.ptr, nhs->via.str.size, digits) != 0)
        return cc_request_fail(request, CC_EINVAL,
                               "nhs_number is not a valid NHS number (10 digits, Modulus 11)");
    cc_pseudo_nhs(services->key, digits, person);
    memset(digits, 0, sizeof digits);

    char canonical[64];
    char hex[2 * CC_PSEUDONYM_BYTES + 1];
    for (int i = 0; i < CC_PSEUDONYM_BYTES; i++)
        snprintf(hex + 2 * i, 3, "%02x", person->bytes[i]);
    snprintf(canonical, sizeof canonical, "{\"person\":\"%s\"}", hex);
    char *detail = strdup(canonical);
    cc_request_audit_detail(request, detail, 0, 0);

    if (account->role == CC_ROLE_PRACTICE) {
        const cc_store *store = cc_dataversion_store(cc_request_data(request));
        const struct cc_store_columns *c = cc_store_columns(store);
        int64_t index = cc_store_find_person(store, person);
        uint16_t practice = index >= 0 ? c->person_practice[index] : UINT16_MAX;
        if (practice == UINT16_MAX || practice >= c->n_practices ||
            strcmp(c->practice_code[practice], account->practice) != 0)
            return cc_request_fail(request, CC_ENOTFOUND,
                                   "no patient registered with this account's practice has "
                                   "that NHS number");
    }
    return 0;
}

/* The optional "type": type1 (the default) or, for operators, ndop. */
static int type_of(struct cc_request *request, int *type)
{
    const msgpack_object *t = cc_request_field(request, "type");
    *type = CC_OPTOUT_TYPE1;
    if (!t)
        return 0;
    if (t->type == MSGPACK_OBJECT_STR && t->via.str.size == 5 && !memcmp(t->via.str.ptr, "type1", 5))
        return 0;
    if (t->type == MSGPACK_OBJECT_STR && t->via.str.size == 4 && !memcmp(t->via.str.ptr, "ndop", 4)) {
        if (cc_request_account(request)->role == CC_ROLE_PRACTICE)
            return cc_request_fail(request, CC_EDENIED,
                                   "type: a practice records type 1 opt-outs only (the National "
                                   "Data Opt-out is recorded nationally)");
        *type = CC_OPTOUT_NDOP;
        return 0;
    }
    return cc_request_fail(request, CC_EINVAL, "type must be \"type1\" or \"ndop\"");
}

/* An optional day field (YYYY-MM-DD), today by default. */
static int day_of(struct cc_request *request, const char *field, cc_day *day)
{
    const msgpack_object *d = cc_request_field(request, field);
    char message[96];
    *day = cc_day_today();
    if (!d)
        return 0;
    if (d->type != MSGPACK_OBJECT_STR || cc_day_parse(d->via.str.ptr, d->via.str.size, day) != 0) {
        snprintf(message, sizeof message, "%s must be a date YYYY-MM-DD", field);
        return cc_request_fail(request, CC_EINVAL, message);
    }
    return 0;
}

static int status_run(struct cc_request *request)
{
    cc_pseudonym person;
    cc_day on;
    int rc = person_of(request, &person);
    if (rc == 0)
        rc = day_of(request, "on", &on);
    if (rc)
        return rc;
    const struct cc_services *services = cc_request_services(request);
    unsigned mask = 0;
    cc_services_register_lock(services);
    rc = cc_optout_status(services->optout, &person, on, &mask);
    cc_services_register_unlock(services);
    if (rc)
        return cc_request_fail(request, rc, "the opt-out register could not be read");
    pack_day(cc_reply_field(request, "on"), on);
    msgpack_packer *pk = cc_reply_field(request, "in_force");
    msgpack_pack_array(pk, (size_t)__builtin_popcount(mask));
    for (int type = CC_OPTOUT_TYPE1; type <= CC_OPTOUT_NDOP; type++)
        if (mask & CC_OPTOUT_MASK(type))
            pack_text(pk, cc_optout_type_name(type));
    return 0;
}

static int history_run(struct cc_request *request)
{
    cc_pseudonym person;
    int rc = person_of(request, &person);
    if (rc)
        return rc;
    const struct cc_services *services = cc_request_services(request);
    struct cc_optout_event *events = NULL;
    size_t n = 0;
    cc_services_register_lock(services);
    rc = cc_optout_history(services->optout, &person, &events, &n);
    cc_services_register_unlock(services);
    if (rc)
        return cc_request_fail(request, rc, "the opt-out register could not be read");
    msgpack_packer *pk = cc_reply_field(request, "events");
    msgpack_pack_array(pk, n);
    for (size_t i = 0; i < n; i++) {
        const struct cc_optout_event *e = &events[i];
        const char *source = cc_optout_source_name(e->source);
        msgpack_pack_map(pk, 6);
        pack_text(pk, "type");
        pack_text(pk, cc_optout_type_name(e->type));
        pack_text(pk, "action");
        pack_text(pk, cc_optout_action_name(e->action));
        pack_text(pk, "effective");
        pack_day(pk, e->effective_day);
        pack_text(pk, "recorded_at");
        msgpack_pack_int64(pk, e->recorded_at);
        pack_text(pk, "source");
        pack_text(pk, source ? source : "unknown");
        pack_text(pk, "practice");
        if (e->practice_code[0])
            pack_text(pk, e->practice_code);
        else
            msgpack_pack_nil(pk);
    }
    free(events);
    return 0;
}

static int record(struct cc_request *request, int action)
{
    cc_pseudonym person;
    cc_day effective;
    int type;
    int rc = person_of(request, &person);
    if (rc == 0)
        rc = type_of(request, &type);
    if (rc == 0)
        rc = day_of(request, "effective", &effective);
    if (rc)
        return rc;
    if (effective > cc_day_today())
        return cc_request_fail(request, CC_EINVAL, "effective must not be in the future");
    const struct cc_services *services = cc_request_services(request);
    const struct cc_account *account = cc_request_account(request);
    struct cc_optout_event event = {
        .person = person,
        .type = (uint8_t)type,
        .action = (uint8_t)action,
        .source = CC_OPTOUT_SOURCE_OPERATOR, /* a practice's carries its code */
        .effective_day = effective,
        .recorded_at = (int64_t)time(NULL),
    };
    snprintf(event.practice_code, sizeof event.practice_code, "%s", account->practice);
    cc_services_register_lock(services);
    rc = cc_optout_record(services->optout, &event);
    cc_services_register_unlock(services);
    if (rc == CC_EINVAL && action == CC_OPTOUT_WITHDRAW)
        return cc_request_fail(request, CC_EINVAL,
                               "no opt-out of this type is in force on that day to withdraw");
    if (rc == CC_EBUSY)
        return cc_request_fail(request, CC_EBUSY,
                               "the opt-out register is busy (an ingest is writing); try again");
    if (rc < 0)
        return cc_request_fail(request, rc, "the opt-out could not be recorded");
    /* durable now (state.db commits with synchronous=FULL) */
    pack_text(cc_reply_field(request, "recorded"),
              rc == CC_OPTOUT_ALREADY_RECORDED ? "already_recorded" : "added");
    pack_text(cc_reply_field(request, "type"), cc_optout_type_name(type));
    pack_day(cc_reply_field(request, "effective"), effective);
    return 0;
}

static int register_run(struct cc_request *request)
{
    return record(request, CC_OPTOUT_REGISTER);
}

static int withdraw_run(struct cc_request *request)
{
    return record(request, CC_OPTOUT_WITHDRAW);
}

#define OPTOUT_ROLES (CC_OP_ROLE(CC_ROLE_PRACTICE) | CC_OP_ROLE(CC_ROLE_OPERATOR))

const struct cc_op cc_op_optout_status = {"optout_status", status_run, on_pool, OPTOUT_ROLES,
                                          true};
const struct cc_op cc_op_optout_history = {"optout_history", history_run, on_pool, OPTOUT_ROLES,
                                           true};
const struct cc_op cc_op_optout_register = {"optout_register", register_run, on_pool,
                                            OPTOUT_ROLES, true};
const struct cc_op cc_op_optout_withdraw = {"optout_withdraw", withdraw_run, on_pool,
                                            OPTOUT_ROLES, true};
