/*
 * libFuzzer target for node/policy.c and node/acl.c: each input is parsed as a policy (HCL,
 * JSON or base64 of either); a policy that parses is merged into an ACL with the default
 * policy and checked against a few paths and operations, so the matcher meets every pattern
 * shape the parser lets through.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "lib/mem.h"
#include "node/acl.h"
#include "node/policy.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    char errmsg[CF_ERRMSG_SIZE];
    struct policy *p = NULL;
    struct policy *def = NULL;
    if (policy_parse("fuzz", text, size, &p, errmsg) == CF_OK &&
        policy_parse("default", policy_default_text(), strlen(policy_default_text()), &def,
                     errmsg) == CF_OK) {
        const struct policy *list[2] = {p, def};
        struct acl *acl = NULL;
        if (acl_new(list, 2, &acl) == CF_OK) {
            static const char *const paths[] = {"secret/a", "secret/a/b/", "",          "+",
                                                "a/+/b",    "cubbyhole/x", "sys/rotate"};
            json_t *body = json_pack("{s:s,s:i,s:[s]}", "color", "red", "n", 3, "l", "x");
            for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
                for (int op = NODE_OP_READ; op <= NODE_OP_PATCH; op++) {
                    struct acl_request r = {.op = (enum node_op)op,
                                            .path = paths[i],
                                            .data = body,
                                            .wrap_ttl_s = (int64_t)i * 30,
                                            .need_sudo = acl_path_is_sudo(paths[i])};
                    struct acl_result res;
                    if (acl_check(acl, &r, &res) == CF_OK) {
                        json_decref(res.granting_policies);
                    }
                }
                json_decref(acl_capabilities(acl, paths[i]));
            }
            json_decref(body);
            acl_free(acl);
        }
    }
    policy_free(p);
    policy_free(def);
    free(text);
    return 0;
}
