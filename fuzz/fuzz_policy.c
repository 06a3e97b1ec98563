/*
 * fuzz_policy.c: the policy parser (queries/cc_policy.h) on hostile JSON.
 * Whatever it accepts must pass cc_policy_check(): the parser may never
 * hand out a policy the release layer would refuse.
 *
 * Must never: pass an input that parses into a policy failing its checks.
 */
#include "cc_error.h"
#include "cc_policy.h"
#include "fuzz_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct cc_policy policy;
    char err[256] = "";
    int rc = cc_policy_parse((const char *)data, size, &policy, err, sizeof err);
    check(rc == 0 || rc == CC_EPARSE || rc == CC_EINVAL || rc == CC_ENOMEM);
    if (rc != 0) {
        check(err[0] != '\0' || rc == CC_ENOMEM);
        return 0;
    }
    rc = cc_policy_check(&policy, err, sizeof err);
    if (rc != 0)
        fprintf(stderr, "accepted, then refused: %s\n", err);
    check(rc == 0);
    check(memchr(policy.version, '\0', sizeof policy.version) != NULL);
    return 0;
}
