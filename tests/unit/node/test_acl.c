/* Unit tests for node/policy.c and node/acl.c: parsing, refusals with lines, Vault's
 * precedence, parameters, wrapping bounds, sudo and capability listings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "lib/crypto.h"
#include "lib/mem.h"
#include "node/acl.h"
#include "node/policy.h"

static struct policy *parse_ok(const char *name, const char *text)
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    struct policy *p = NULL;
    int rv = policy_parse(name, text, strlen(text), &p, errmsg);
    if (rv != CF_OK) {
        fail_msg("policy %s: %s", name, errmsg);
    }
    return p;
}

static void expect_error(const char *text, const char *needle)
{
    char errmsg[CF_ERRMSG_SIZE] = "";
    struct policy *p = NULL;
    assert_int_equal(policy_parse("bad", text, strlen(text), &p, errmsg), CF_EMALFORMED);
    assert_null(p);
    if (strstr(errmsg, needle) == NULL) {
        fail_msg("error \"%s\" lacks \"%s\"", errmsg, needle);
    }
}

static struct acl *acl_of(const char *a, const char *b)
{
    struct policy *p[2] = {parse_ok("p1", a), b ? parse_ok("p2", b) : NULL};
    struct acl *acl = NULL;
    assert_int_equal(acl_new((const struct policy *const *)p, b ? 2 : 1, &acl), CF_OK);
    policy_free(p[0]);
    policy_free(p[1]);
    return acl;
}

static bool allowed(struct acl *acl,
                    enum node_op op,
                    const char *path,
                    const char *body,
                    int64_t wrap)
{
    json_t *data = body ? json_loads(body, 0, NULL) : NULL;
    struct acl_request r = {.op = op,
                            .path = path,
                            .data = data,
                            .wrap_ttl_s = wrap,
                            .need_sudo = acl_path_is_sudo(path)};
    struct acl_result res;
    assert_int_equal(acl_check(acl, &r, &res), CF_OK);
    json_decref(res.granting_policies);
    json_decref(data);
    return res.allowed;
}

static char *caps(struct acl *acl, const char *path)
{
    json_t *c = acl_capabilities(acl, path);
    char *s = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    return s;
}

static void assert_caps(struct acl *acl, const char *path, const char *want)
{
    char *s = caps(acl, path);
    if (strcmp(s, want) != 0) {
        fail_msg("%s: %s, want %s", path, s, want);
    }
    free(s);
}

static void test_parse_forms(void **state)
{
    (void)state;
    struct policy *h = parse_ok("Mixed", "path \"secret/*\" {\n capabilities = [\"read\"]\n}\n");
    assert_string_equal(policy_name(h), "mixed");
    assert_int_equal(h->n_rules, 1);
    assert_int_equal(h->rules[0].caps, ACL_CAP_READ);
    assert_int_equal(h->rules[0].line, 1);
    policy_free(h);
    struct policy *j = parse_ok("j",
                                "{\"path\":{\"a\":{\"capabilities\":[\"update\"]},"
                                "\"b/*\":{\"capabilities\":[\"deny\",\"read\"]}}}");
    assert_int_equal(j->n_rules, 2);
    assert_int_equal(j->rules[1].caps, ACL_CAP_DENY);
    policy_free(j);
    const char *hcl = "path \"c\" { capabilities = [\"list\"] }";
    char *b64 = cf_base64_encode((const uint8_t *)hcl, strlen(hcl));
    struct policy *b = parse_ok("b", b64);
    cf_free(b64);
    assert_int_equal(b->rules[0].caps, ACL_CAP_LIST);
    policy_free(b);
    struct policy *d = parse_ok("default", policy_default_text());
    assert_true(d->n_rules > 10);
    policy_free(d);
    policy_free(parse_ok("rw", policy_response_wrapping_text()));
    struct policy *l = parse_ok("legacy", "path \"x\" { policy = \"write\" }");
    assert_true(l->rules[0].caps & ACL_CAP_UPDATE);
    policy_free(l);
}

static void test_parse_errors(void **state)
{
    (void)state;
    expect_error("path \"a\" {\n  capabilities = [\"reed\"]\n}\n",
                 "line 2: unknown capability \"reed\"");
    expect_error("path \"a\" {\n  capabilities = \"read\"\n}\n", "line 2");
    expect_error("path \"a\" {\n  capabilities = [\"read\"]\n  max_wrapping_ttl = \"x\"\n}\n",
                 "line 3");
    expect_error("path \"a\" {\n  capabilities = [\"read\"]\n  bogus = 1\n}\n",
                 "line 3: unknown key \"bogus\"");
    expect_error("frob \"a\" { capabilities = [\"read\"] }", "line 1: unknown top-level key");
    expect_error("path \"a\" {\n capabilities = [\"read\"\n", "line");
    expect_error("path \"a\" { }", "no capabilities");
    expect_error(
        "path \"a\" { capabilities = [\"read\"] min_wrapping_ttl = \"2m\" "
        "max_wrapping_ttl = \"1m\" }",
        "max_wrapping_ttl");
    expect_error("path \"a\" { capabilities = [\"read\"] allowed_parameters = \"x\" }",
                 "allowed_parameters");
    expect_error("{\"path\": 3}", "path rule");
    expect_error("{\"path\": {", "line 1");
}

static void test_precedence(void **state)
{
    (void)state;
    struct acl *acl = acl_of(
        "path \"secret/*\" { capabilities = [\"read\"] }\n"
        "path \"secret/team/*\" { capabilities = [\"list\"] }\n"
        "path \"secret/team/exact\" { capabilities = [\"update\"] }\n"
        "path \"secret/+/shared\" { capabilities = [\"create\"] }\n"
        "path \"secret/team/+\" { capabilities = [\"delete\"] }\n"
        "path \"secret/locked/*\" { capabilities = [\"deny\"] }\n",
        "path \"secret/team/exact\" { capabilities = [\"read\"] }\n"
        "path \"secret/locked/*\" { capabilities = [\"sudo\", \"read\"] }\n");
    assert_caps(acl, "secret/x", "[\"read\"]");
    assert_caps(acl, "secret/team/exact", "[\"read\",\"update\"]");
    assert_caps(acl, "secret/team/shared", "[\"delete\"]");
    assert_caps(acl, "secret/ops/shared", "[\"create\"]");
    assert_caps(acl, "secret/team/a/b", "[\"list\"]");
    assert_caps(acl, "secret/locked/x", "[\"deny\"]");
    assert_caps(acl, "other", "[\"deny\"]");
    assert_true(allowed(acl, NODE_OP_READ, "secret/x", NULL, 0));
    assert_false(allowed(acl, NODE_OP_UPDATE, "secret/x", NULL, 0));
    assert_false(allowed(acl, NODE_OP_READ, "secret/locked/x", NULL, 0));
    /* LIST of a folder under a glob; "+" also matches an empty last segment, as in Vault. */
    assert_true(allowed(acl, NODE_OP_LIST, "secret/team/a/", NULL, 0));
    assert_false(allowed(acl, NODE_OP_LIST, "secret/team/", NULL, 0));
    acl_free(acl);
    acl = acl_of("path \"kv/list-me\" { capabilities = [\"list\"] }", NULL);
    assert_true(allowed(acl, NODE_OP_LIST, "kv/list-me/", NULL, 0));
    assert_false(allowed(acl, NODE_OP_READ, "kv/list-me", NULL, 0));
    acl_free(acl);
}

static void test_params(void **state)
{
    (void)state;
    struct acl *acl = acl_of(
        "path \"a\" {\n capabilities = [\"update\"]\n"
        " allowed_parameters = { \"color\" = [\"red\", \"gr*\", \"*ue\"], \"Size\" = [] }\n}\n"
        "path \"d\" {\n capabilities = [\"update\"]\n denied_parameters = { \"admin\" = [] "
        "\"mode\" = [\"root\"] }\n}\n"
        "path \"r\" {\n capabilities = [\"update\"]\n required_parameters = [\"owner\"]\n}\n"
        "path \"s\" {\n capabilities = [\"update\"]\n denied_parameters = { \"*\" = [] }\n}\n",
        NULL);
    assert_true(allowed(acl, NODE_OP_UPDATE, "a", "{\"color\":\"red\",\"SIZE\":9}", 0));
    assert_true(allowed(acl, NODE_OP_UPDATE, "a", "{\"color\":\"green\"}", 0));
    assert_true(allowed(acl, NODE_OP_UPDATE, "a", "{\"color\":\"blue\"}", 0));
    assert_false(allowed(acl, NODE_OP_UPDATE, "a", "{\"color\":\"pink\"}", 0));
    assert_false(allowed(acl, NODE_OP_UPDATE, "a", "{\"shape\":\"x\"}", 0));
    assert_true(allowed(acl, NODE_OP_UPDATE, "a", "{}", 0));
    assert_false(allowed(acl, NODE_OP_UPDATE, "d", "{\"admin\":\"no\"}", 0));
    assert_false(allowed(acl, NODE_OP_UPDATE, "d", "{\"mode\":\"root\"}", 0));
    assert_true(allowed(acl, NODE_OP_UPDATE, "d", "{\"mode\":\"user\"}", 0));
    assert_false(allowed(acl, NODE_OP_UPDATE, "r", "{}", 0));
    assert_true(allowed(acl, NODE_OP_UPDATE, "r", "{\"owner\":\"me\"}", 0));
    assert_false(allowed(acl, NODE_OP_UPDATE, "s", "{\"x\":1}", 0));
    assert_true(allowed(acl, NODE_OP_UPDATE, "s", "{}", 0));
    acl_free(acl);
}

static void test_wrapping_and_sudo(void **state)
{
    (void)state;
    struct acl *acl = acl_of(
        "path \"w\" { capabilities = [\"read\"] min_wrapping_ttl = \"1m\" "
        "max_wrapping_ttl = 600 }\n"
        "path \"sys/rotate\" { capabilities = [\"update\"] }\n",
        "path \"w\" { capabilities = [\"read\"] max_wrapping_ttl = \"5m\" }\n"
        "path \"sys/audit/*\" { capabilities = [\"update\", \"sudo\"] }\n");
    assert_false(allowed(acl, NODE_OP_READ, "w", NULL, 0));
    assert_false(allowed(acl, NODE_OP_READ, "w", NULL, 30));
    assert_true(allowed(acl, NODE_OP_READ, "w", NULL, 120));
    assert_false(allowed(acl, NODE_OP_READ, "w", NULL, 400)); /* the lower max (5m) wins */
    assert_false(allowed(acl, NODE_OP_UPDATE, "sys/rotate", NULL, 0));
    assert_true(allowed(acl, NODE_OP_UPDATE, "sys/audit/file", NULL, 0));
    assert_true(acl_path_is_sudo("auth/token/accessors/"));
    assert_false(acl_path_is_sudo("secret/x"));
    acl_free(acl);
}

static void test_root_and_templates(void **state)
{
    (void)state;
    struct policy *root = parse_ok("root", "");
    struct policy *tmpl = parse_ok("t",
                                   "path \"identity/entity/id/{{identity.entity.id}}\" "
                                   "{ capabilities = [\"read\"] }");
    const struct policy *list[2] = {root, tmpl};
    struct acl *acl = NULL;
    assert_int_equal(acl_new(list, 1, &acl), CF_OK);
    assert_true(acl_is_root(acl));
    assert_caps(acl, "anything", "[\"root\"]");
    assert_true(allowed(acl, NODE_OP_DELETE, "sys/seal", NULL, 0));
    acl_free(acl);
    assert_int_equal(acl_new(list + 1, 1, &acl), CF_OK);
    assert_caps(acl, "identity/entity/id/{{identity.entity.id}}", "[\"deny\"]");
    acl_free(acl);
    policy_free(root);
    policy_free(tmpl);
}

static void test_mount_access(void **state)
{
    (void)state;
    struct acl *acl = acl_of(
        "path \"secret/app/*\" { capabilities = [\"read\"] }\n"
        "path \"kv2/+/x\" { capabilities = [\"list\"] }\n"
        "path \"*\" { capabilities = [\"deny\"] }\n"
        "path \"team\" { capabilities = [\"read\"] }\n"
        "path \"blocked/*\" { capabilities = [\"deny\"] }\n",
        "path \"all-*\" { capabilities = [\"read\"] }\n");
    assert_true(acl_has_access_under(acl, "secret/"));
    assert_true(acl_has_access_under(acl, "kv2/"));
    assert_true(acl_has_access_under(acl, "team/"));
    assert_true(acl_has_access_under(acl, "all-things/"));
    assert_false(acl_has_access_under(acl, "blocked/"));
    assert_false(acl_has_access_under(acl, "other/"));
    acl_free(acl);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_forms),       cmocka_unit_test(test_parse_errors),
        cmocka_unit_test(test_precedence),        cmocka_unit_test(test_params),
        cmocka_unit_test(test_wrapping_and_sudo), cmocka_unit_test(test_root_and_templates),
        cmocka_unit_test(test_mount_access),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
