/*
 * Unit tests for lib/hcl.c: a full Vault server config and an ACL policy parsed into the
 * expected tree (kinds, values, line numbers), every error kind with its "FILE:LINE:" prefix,
 * and allocation-failure injection over the whole config (rule T3).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "lib/err.h"
#include "lib/hcl.h"
#include "lib/mem.h"

static const char server_hcl[] =
    "# Coffer server configuration\n"                       /* 1 */
    "ui            = true\n"                                /* 2 */
    "disable_mlock = false\n"                               /* 3 */
    "api_addr      = \"https://10.0.0.1:8200\"\n"           /* 4 */
    "cluster_addr  = \"https://10.0.0.1:8201\" // inline\n" /* 5 */
    "log_level     = \"info\"\n"                            /* 6 */
    "/* block comment\n"                                    /* 7 */
    "   spanning lines */\n"                                /* 8 */
    "storage \"raft\" {\n"                                  /* 9 */
    "  path    = \"/var/lib/coffer\"\n"                     /* 10 */
    "  node_id = \"node-1\"\n"                              /* 11 */
    "  retry_join {\n"                                      /* 12 */
    "    leader_api_addr = \"https://10.0.0.2:8200\"\n"     /* 13 */
    "  }\n"                                                 /* 14 */
    "  retry_join {\n"                                      /* 15 */
    "    leader_api_addr = \"https://10.0.0.3:8200\"\n"     /* 16 */
    "  }\n"                                                 /* 17 */
    "}\n"                                                   /* 18 */
    "\n"                                                    /* 19 */
    "listener \"tcp\" {\n"                                  /* 20 */
    "  address       = \"0.0.0.0:8200\"\n"                  /* 21 */
    "  tls_cert_file = \"/etc/coffer/tls.crt\"\n"           /* 22 */
    "  tls_min_version = \"tls12\"\n"                       /* 23 */
    "}\n"                                                   /* 24 */
    "listener \"tcp\" {\n"                                  /* 25 */
    "  address     = \"127.0.0.1:8300\"\n"                  /* 26 */
    "  tls_disable = true\n"                                /* 27 */
    "}\n"                                                   /* 28 */
    "seal \"shamir\" {}\n"                                  /* 29 */
    "telemetry {\n"                                         /* 30 */
    "  disable_hostname = true\n"                           /* 31 */
    "  prometheus_retention_time = \"30s\"\n"               /* 32 */
    "}\n"                                                   /* 33 */
    "default_lease_ttl = \"768h\"\n"                        /* 34 */
    "max_request_size  = 33554432\n"                        /* 35 */
    "ratio = -1.5e2\n"                                      /* 36 */
    "banner = <<EOF\n"                                      /* 37 */
    "Authorized use only.\n"                                /* 38 */
    "  Indented line.\n"                                    /* 39 */
    "EOF\n"                                                 /* 40 */
    "after_heredoc = \"x\"\n";                              /* 41 */

static const char policy_hcl[] =
    "# Policy\n"                                             /* 1 */
    "path \"secret/data/*\" {\n"                             /* 2 */
    "  capabilities = [\"create\", \"read\", \"update\",]\n" /* 3 */
    "}\n"                                                    /* 4 */
    "path \"secret/foo\" {\n"                                /* 5 */
    "  capabilities = [\n"                                   /* 6 */
    "    \"read\",\n"                                        /* 7 */
    "    \"list\"\n"                                         /* 8 */
    "  ]\n"                                                  /* 9 */
    "  allowed_parameters = {\n"                             /* 10 */
    "    \"*\"   = []\n"                                     /* 11 */
    "    \"bar\" = [\"zip\", \"zap\"]\n"                     /* 12 */
    "  }\n"                                                  /* 13 */
    "  min_wrapping_ttl = \"1s\"\n"                          /* 14 */
    "  max_wrapping_ttl = 90\n"                              /* 15 */
    "}\n"                                                    /* 16 */
    "path \"sys/*\" { capabilities = [\"deny\"] }\n";        /* 17 */

static struct cf_hcl *parse_ok(const char *text, size_t len)
{
    struct cf_hcl *v = NULL;
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = cf_hcl_parse(text, len, "t.hcl", &v, errmsg);
    if (rv != CF_OK) {
        fail_msg("unexpected parse failure: %s", errmsg);
    }
    assert_non_null(v);
    return v;
}

static struct cf_hcl *parse_str(const char *text)
{
    return parse_ok(text, strlen(text));
}

static void check_string(const struct cf_hcl *obj, const char *key, const char *want, int line)
{
    const struct cf_hcl *v = cf_hcl_get(obj, key);
    assert_non_null(v);
    assert_int_equal(v->kind, CF_HCL_STRING);
    assert_string_equal(v->str, want);
    assert_int_equal(v->line, line);
}

/* The single-entry object a block label creates: returns the body under that label. */
static const struct cf_hcl *label(const struct cf_hcl *v, const char *name)
{
    assert_non_null(v);
    assert_int_equal(v->kind, CF_HCL_OBJECT);
    assert_int_equal(v->n_entries, 1);
    assert_string_equal(v->entries[0].key, name);
    return v->entries[0].value;
}

static void test_server_config(void **state)
{
    (void)state;
    long live = cf_mem_live();
    struct cf_hcl *root = parse_ok(server_hcl, sizeof(server_hcl) - 1);
    assert_int_equal(root->kind, CF_HCL_OBJECT);
    assert_int_equal(root->line, 1);
    assert_int_equal(root->n_entries, 15);

    const struct cf_hcl *ui = cf_hcl_get(root, "ui");
    assert_int_equal(ui->kind, CF_HCL_BOOL);
    assert_true(ui->b);
    assert_int_equal(ui->line, 2);
    const struct cf_hcl *dm = cf_hcl_get(root, "disable_mlock");
    assert_int_equal(dm->kind, CF_HCL_BOOL);
    assert_false(dm->b);
    check_string(root, "api_addr", "https://10.0.0.1:8200", 4);
    check_string(root, "cluster_addr", "https://10.0.0.1:8201", 5);
    check_string(root, "log_level", "info", 6);

    /* storage "raft" { ... } with two retry_join blocks kept apart. */
    const struct cf_hcl *storage = cf_hcl_get(root, "storage");
    assert_int_equal(storage->line, 9);
    const struct cf_hcl *raft = label(storage, "raft");
    assert_int_equal(raft->kind, CF_HCL_OBJECT);
    assert_int_equal(raft->line, 9);
    assert_int_equal(raft->n_entries, 4);
    check_string(raft, "path", "/var/lib/coffer", 10);
    check_string(raft, "node_id", "node-1", 11);
    assert_string_equal(raft->entries[2].key, "retry_join");
    assert_string_equal(raft->entries[3].key, "retry_join");
    assert_int_equal(raft->entries[2].value->line, 12);
    assert_int_equal(raft->entries[3].value->line, 15);
    check_string(raft->entries[2].value, "leader_api_addr", "https://10.0.0.2:8200", 13);
    check_string(raft->entries[3].value, "leader_api_addr", "https://10.0.0.3:8200", 16);

    /* Two listener "tcp" blocks: two entries, in order, not merged. */
    const struct cf_hcl *l1 = NULL;
    const struct cf_hcl *l2 = NULL;
    for (size_t k = 0; k < root->n_entries; k++) {
        if (strcmp(root->entries[k].key, "listener") == 0) {
            if (l1 == NULL) {
                l1 = root->entries[k].value;
            } else {
                l2 = root->entries[k].value;
            }
        }
    }
    assert_non_null(l1);
    assert_non_null(l2);
    assert_int_equal(l1->line, 20);
    assert_int_equal(l2->line, 25);
    check_string(label(l1, "tcp"), "address", "0.0.0.0:8200", 21);
    check_string(label(l1, "tcp"), "tls_min_version", "tls12", 23);
    check_string(label(l2, "tcp"), "address", "127.0.0.1:8300", 26);
    assert_true(cf_hcl_get(label(l2, "tcp"), "tls_disable")->b);

    const struct cf_hcl *shamir = label(cf_hcl_get(root, "seal"), "shamir");
    assert_int_equal(shamir->kind, CF_HCL_OBJECT);
    assert_int_equal(shamir->n_entries, 0);
    assert_int_equal(shamir->line, 29);

    const struct cf_hcl *tel = cf_hcl_get(root, "telemetry");
    assert_int_equal(tel->kind, CF_HCL_OBJECT);
    assert_int_equal(tel->line, 30);
    assert_true(cf_hcl_get(tel, "disable_hostname")->b);
    check_string(tel, "prometheus_retention_time", "30s", 32);

    check_string(root, "default_lease_ttl", "768h", 34);
    const struct cf_hcl *mrs = cf_hcl_get(root, "max_request_size");
    assert_int_equal(mrs->kind, CF_HCL_NUMBER);
    assert_true(mrs->is_int);
    assert_int_equal(mrs->i, 33554432);
    assert_true(mrs->num == 33554432.0);
    const struct cf_hcl *ratio = cf_hcl_get(root, "ratio");
    assert_int_equal(ratio->kind, CF_HCL_NUMBER);
    assert_false(ratio->is_int);
    assert_true(ratio->num == -150.0);

    check_string(root, "banner", "Authorized use only.\n  Indented line.\n", 37);
    check_string(root, "after_heredoc", "x", 41);

    assert_null(cf_hcl_get(root, "nope"));
    assert_null(cf_hcl_get(ui, "x"));
    assert_null(cf_hcl_get(NULL, "x"));
    cf_hcl_free(root);
    assert_int_equal(cf_mem_live(), live);
}

static void test_policy(void **state)
{
    (void)state;
    long live = cf_mem_live();
    struct cf_hcl *root = parse_ok(policy_hcl, sizeof(policy_hcl) - 1);
    assert_int_equal(root->n_entries, 3);
    for (size_t k = 0; k < 3; k++) {
        assert_string_equal(root->entries[k].key, "path");
    }
    const struct cf_hcl *p1 = label(root->entries[0].value, "secret/data/*");
    const struct cf_hcl *caps = cf_hcl_get(p1, "capabilities");
    assert_int_equal(caps->kind, CF_HCL_LIST);
    assert_int_equal(caps->line, 3);
    assert_int_equal(caps->n_items, 3);
    assert_string_equal(caps->items[0]->str, "create");
    assert_string_equal(caps->items[2]->str, "update");

    const struct cf_hcl *p2 = label(root->entries[1].value, "secret/foo");
    assert_int_equal(p2->line, 5);
    caps = cf_hcl_get(p2, "capabilities");
    assert_int_equal(caps->n_items, 2);
    assert_int_equal(caps->items[0]->line, 7);
    assert_int_equal(caps->items[1]->line, 8);
    assert_string_equal(caps->items[1]->str, "list");

    const struct cf_hcl *ap = cf_hcl_get(p2, "allowed_parameters");
    assert_int_equal(ap->kind, CF_HCL_OBJECT);
    assert_int_equal(ap->line, 10);
    assert_int_equal(ap->n_entries, 2);
    const struct cf_hcl *star = cf_hcl_get(ap, "*");
    assert_int_equal(star->kind, CF_HCL_LIST);
    assert_int_equal(star->n_items, 0);
    assert_int_equal(star->line, 11);
    const struct cf_hcl *bar = cf_hcl_get(ap, "bar");
    assert_int_equal(bar->n_items, 2);
    assert_string_equal(bar->items[0]->str, "zip");
    assert_string_equal(bar->items[1]->str, "zap");
    check_string(p2, "min_wrapping_ttl", "1s", 14);
    assert_int_equal(cf_hcl_get(p2, "max_wrapping_ttl")->i, 90);

    const struct cf_hcl *p3 = label(root->entries[2].value, "sys/*");
    assert_int_equal(p3->line, 17);
    assert_string_equal(cf_hcl_get(p3, "capabilities")->items[0]->str, "deny");
    cf_hcl_free(root);
    assert_int_equal(cf_mem_live(), live);
}

static void test_values(void **state)
{
    (void)state;
    struct cf_hcl *root = parse_str(
        "s = \"a\\n\\t\\r\\\"\\\\\\/\\u00e9\\u20ac\\ud83d\\ude00\\U0001F600\"\n"
        "e = \"\"\n"
        "n0 = 0\n"
        "n1 = -42\n"
        "n2 = 3.25\n"
        "n3 = 1e3\n"
        "n4 = 9223372036854775807\n"
        "n5 = 9223372036854775808\n"
        "n6 = -9223372036854775808\n"
        "z = null\n"
        "l = [1, [2, [3]], {a = 1}, \"x\", true]\n"
        "o = { k = 1, k2 = 2 k3 = \"v\"\n k4 = [] }\n"
        "\"quoted key\" = 1\n"
        "a.b-c_d = 2, next = 3\n"
        "x = \"caf\xc3\xa9 \xe2\x82\xac\"\n");
    check_string(root, "s", "a\n\t\r\"\\/\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf0\x9f\x98\x80", 1);
    check_string(root, "e", "", 2);
    assert_true(cf_hcl_get(root, "n0")->is_int);
    assert_int_equal(cf_hcl_get(root, "n0")->i, 0);
    assert_int_equal(cf_hcl_get(root, "n1")->i, -42);
    assert_true(cf_hcl_get(root, "n1")->num == -42.0);
    assert_false(cf_hcl_get(root, "n2")->is_int);
    assert_true(cf_hcl_get(root, "n2")->num == 3.25);
    assert_false(cf_hcl_get(root, "n3")->is_int);
    assert_true(cf_hcl_get(root, "n3")->num == 1000.0);
    assert_true(cf_hcl_get(root, "n4")->is_int);
    assert_true(cf_hcl_get(root, "n4")->i == INT64_MAX);
    assert_false(cf_hcl_get(root, "n5")->is_int);
    assert_true(cf_hcl_get(root, "n5")->num == 9223372036854775808.0);
    assert_true(cf_hcl_get(root, "n6")->is_int);
    assert_true(cf_hcl_get(root, "n6")->i == INT64_MIN);
    assert_int_equal(cf_hcl_get(root, "z")->kind, CF_HCL_NULL);

    const struct cf_hcl *l = cf_hcl_get(root, "l");
    assert_int_equal(l->n_items, 5);
    assert_int_equal(l->items[1]->kind, CF_HCL_LIST);
    assert_int_equal(l->items[1]->items[1]->items[0]->i, 3);
    assert_int_equal(l->items[2]->kind, CF_HCL_OBJECT);
    assert_int_equal(cf_hcl_get(l->items[2], "a")->i, 1);
    assert_int_equal(l->items[4]->kind, CF_HCL_BOOL);

    const struct cf_hcl *o = cf_hcl_get(root, "o");
    assert_int_equal(o->n_entries, 4);
    check_string(o, "k3", "v", 12);
    assert_int_equal(cf_hcl_get(o, "k4")->line, 13);
    assert_int_equal(cf_hcl_get(root, "quoted key")->i, 1);
    assert_int_equal(cf_hcl_get(root, "a.b-c_d")->i, 2);
    assert_int_equal(cf_hcl_get(root, "next")->i, 3);
    check_string(root, "x", "caf\xc3\xa9 \xe2\x82\xac", 16);
    cf_hcl_free(root);
}

static void test_blocks(void **state)
{
    (void)state;
    struct cf_hcl *root = parse_str(
        "a \"b\" \"c\" { x = 1 }\n"
        "t { }\n"
        "t = { y = 2 }\n"
        "u label { }\n"
        "dup = 1\n"
        "dup = 2\n");
    const struct cf_hcl *c = label(label(cf_hcl_get(root, "a"), "b"), "c");
    assert_int_equal(cf_hcl_get(c, "x")->i, 1);
    assert_int_equal(root->n_entries, 6);
    assert_int_equal(root->entries[1].value->kind, CF_HCL_OBJECT);
    assert_int_equal(root->entries[1].value->n_entries, 0);
    assert_int_equal(cf_hcl_get(root->entries[2].value, "y")->i, 2);
    assert_int_equal(label(cf_hcl_get(root, "u"), "label")->n_entries, 0);
    assert_int_equal(root->entries[4].value->i, 1);
    assert_int_equal(root->entries[5].value->i, 2);
    cf_hcl_free(root);

    /* Empty input, comments only, BOM, CRLF line endings. */
    root = parse_str("");
    assert_int_equal(root->kind, CF_HCL_OBJECT);
    assert_int_equal(root->n_entries, 0);
    cf_hcl_free(root);
    root = parse_str("# only\n// comments\n/* here */");
    assert_int_equal(root->n_entries, 0);
    cf_hcl_free(root);
    root = parse_str("\xef\xbb\xbfk = 1\r\nj = <<EOT\r\nline\r\nEOT\r\nm = 2\r\n");
    assert_int_equal(cf_hcl_get(root, "k")->i, 1);
    check_string(root, "j", "line\n", 2);
    assert_int_equal(cf_hcl_get(root, "m")->line, 5);
    cf_hcl_free(root);
}

static void test_heredoc(void **state)
{
    (void)state;
    struct cf_hcl *root = parse_str(
        "a = <<EOF\n"      /* 1 */
        "EOF\n"            /* 2 */
        "b = <<-EOT\n"     /* 3 */
        "    line one\n"   /* 4 */
        "\n"               /* 5 */
        "      line two\n" /* 6 */
        "    EOT\n"        /* 7 */
        "c = <<X_1\n"      /* 8 */
        "  not X_1\n"      /* 9 */
        "  X_1\n"          /* 10 */
        "X_1\n"            /* 11 */
        "d = [<<A\n"       /* 12 */
        "in list\n"        /* 13 */
        "A\n"              /* 14 */
        ", 2]\n"           /* 15 */
        "e = 1\n");        /* 16 */
    check_string(root, "a", "", 1);
    check_string(root, "b", "line one\n\n  line two\n", 3);
    /* Plain <<: an indented anchor does not end the body. */
    check_string(root, "c", "  not X_1\n  X_1\n", 8);
    const struct cf_hcl *d = cf_hcl_get(root, "d");
    assert_int_equal(d->n_items, 2);
    assert_string_equal(d->items[0]->str, "in list\n");
    assert_int_equal(d->items[1]->line, 15);
    assert_int_equal(cf_hcl_get(root, "e")->line, 16);
    cf_hcl_free(root);
}

struct bad_case
{
    const char *text;
    int line;
    const char *needle; /* substring expected in the message */
};

static void check_bad(const char *text, size_t len, int line, const char *needle)
{
    long live = cf_mem_live();
    struct cf_hcl *v = (struct cf_hcl *)(uintptr_t)1;
    char errmsg[CF_ERRMSG_SIZE] = "";
    int rv = cf_hcl_parse(text, len, "bad.hcl", &v, errmsg);
    if (rv != CF_EMALFORMED) {
        fail_msg("input %s: rv %d, want CF_EMALFORMED", text, rv);
    }
    assert_null(v);
    char prefix[64];
    snprintf(prefix, sizeof(prefix), "bad.hcl:%d: ", line);
    if (strncmp(errmsg, prefix, strlen(prefix)) != 0 || strstr(errmsg, needle) == NULL) {
        fail_msg("input %s: message \"%s\", want prefix \"%s\" and \"%s\"", text, errmsg, prefix,
                 needle);
    }
    assert_int_equal(cf_mem_live(), live);
}

static void test_errors(void **state)
{
    (void)state;
    static const struct bad_case cases[] = {
        {"a = \"abc\nb = 1\n", 1, "unterminated string"},
        {"a = 1\nb = \"abc", 2, "unterminated string"},
        {"a = \"x\\q\"", 1, "invalid escape '\\q'"},
        {"a = \"x\\u12\"", 1, "invalid \\u escape"},
        {"a = \"x\\ud800\"", 1, "surrogate"},
        {"a = \"x\\udc00\"", 1, "surrogate"},
        {"a = \"x\\u0000\"", 1, "NUL"},
        {"a = \"x\\U00110000\"", 1, "out of range"},
        {"a = \"x\x01\"", 1, "control character"},
        {"a = 1\n\nb = @", 3, "unexpected character '@'"},
        {"a = 1\nb = <x", 2, "unexpected character '<'"},
        {"a = 1\n\nstorage\n", 3, "expected '=' or '{' after \"storage\""},
        {"a = 1\nstorage \"raft\"\n", 2, "expected '{' after block label \"raft\""},
        {"a\n= 1 b\n", 2, "expected '=' or '{' after \"b\""},
        {"a \"b\" = 1", 1, "expected '{' after block label \"b\""},
        {"a = \n", 2, "expected a value for \"a\", found end of file"},
        {"a = }", 1, "expected a value for \"a\", found '}'"},
        {"a = foo", 1, "unexpected identifier \"foo\""},
        {"a = 1\n}", 2, "unexpected '}'"},
        {"= 1", 1, "expected a key, found '='"},
        {"a = 1,, b = 2", 1, "expected a key, found ','"},
        {"x = 1\nl = [1,\n2\n", 2, "unterminated list"},
        {"l = [1 2]", 1, "expected ',' or ']' in list, found number"},
        {"l = [1,,2]", 1, "expected a value in list, found ','"},
        {"x = 1\no = {\n a = 1\n", 2, "unterminated object"},
        {"x = 1\nblk \"l\" {\n a = 1\n", 2, "unterminated object"},
        {"a = 1\nh = <<EOF\nbody\n  EOF\n", 2, "unterminated heredoc"},
        {"h = <<EOF trailing\nEOF\n", 1, "followed by a newline"},
        {"h = <<\nEOF\n", 1, "heredoc anchor"},
        {"a = 1\n/* never\n closed\n", 2, "unterminated comment"},
        {"/* a\n b */ x = 1\n c = \"\n", 3, "unterminated string"},
        {"h = <<EOF\n1\n2\n3\nEOF\nq = 08\n", 6, "leading zero"},
        {"a = 10s", 1, "invalid number \"10s\""},
        {"a = 1.", 1, "invalid number"},
        {"a = 1e", 1, "invalid number"},
        {"a = -", 1, "unexpected character '-'"},
        {"a = 1e999", 1, "out of range"},
        {"a = 1\nb = \xff", 2, "invalid UTF-8"},
        {"a = \"\xc0\xaf\"", 1, "invalid UTF-8"},
        {"a = \"\xed\xa0\x80\"", 1, "invalid UTF-8"},
        {"a = \"\xe2\x82\"", 1, "invalid UTF-8"},
        {"a = \xc3\xa9", 1, "unexpected byte 0xc3"},
    };
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        check_bad(cases[k].text, strlen(cases[k].text), cases[k].line, cases[k].needle);
    }
    /* NUL bytes inside the given length. */
    static const char nul[] = "a = 1\nb = \"x\0y\"\n";
    check_bad(nul, sizeof(nul) - 1, 2, "NUL byte");
}

static void test_depth_limit(void **state)
{
    (void)state;
    char buf[1024];
    /* 64 nested lists are fine, 65 are not. */
    for (int depth = 64; depth <= 65; depth++) {
        size_t n = 0;
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "a = ");
        for (int k = 0; k < depth; k++) {
            buf[n++] = '[';
        }
        for (int k = 0; k < depth; k++) {
            buf[n++] = ']';
        }
        buf[n] = '\0';
        if (depth == 64) {
            struct cf_hcl *v = parse_str(buf);
            cf_hcl_free(v);
        } else {
            check_bad(buf, n, 1, "nesting deeper than 64");
        }
    }
    /* Block labels count too; deep input never recurses without bound. */
    size_t n = 0;
    for (int k = 0; k < 100; k++) {
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "a ");
    }
    check_bad(buf, n, 1, "nesting deeper");
    static char huge[200001];
    memset(huge, '[', sizeof(huge) - 1);
    memcpy(huge, "a = ", 4);
    check_bad(huge, sizeof(huge) - 1, 1, "nesting deeper");
}

static void test_kind_names(void **state)
{
    (void)state;
    assert_string_equal(cf_hcl_kind_name(CF_HCL_NULL), "null");
    assert_string_equal(cf_hcl_kind_name(CF_HCL_BOOL), "bool");
    assert_string_equal(cf_hcl_kind_name(CF_HCL_NUMBER), "number");
    assert_string_equal(cf_hcl_kind_name(CF_HCL_STRING), "string");
    assert_string_equal(cf_hcl_kind_name(CF_HCL_LIST), "list");
    assert_string_equal(cf_hcl_kind_name(CF_HCL_OBJECT), "object");
    cf_hcl_free(NULL);
}

/* Rule T3: fail each allocation in turn; every failure is a clean CF_ENOMEM with no leak. */
static void fault_loop(const char *text, size_t len)
{
    long live = cf_mem_live();
    unsigned long n;
    for (n = 1; n < 100000; n++) {
        struct cf_hcl *v = NULL;
        char errmsg[CF_ERRMSG_SIZE] = "";
        cf_mem_fail_after(n);
        int rv = cf_hcl_parse(text, len, "fault.hcl", &v, errmsg);
        cf_mem_fail_after(0);
        if (rv == CF_OK) {
            assert_non_null(v);
            cf_hcl_free(v);
            assert_int_equal(cf_mem_live(), live);
            break;
        }
        assert_int_equal(rv, CF_ENOMEM);
        assert_null(v);
        assert_string_equal(errmsg, "fault.hcl: out of memory");
        assert_int_equal(cf_mem_live(), live);
    }
    assert_true(n > 10);
    assert_true(n < 100000);
}

static void test_fault_injection(void **state)
{
    (void)state;
    fault_loop(server_hcl, sizeof(server_hcl) - 1);
    fault_loop(policy_hcl, sizeof(policy_hcl) - 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_config),   cmocka_unit_test(test_policy),
        cmocka_unit_test(test_values),          cmocka_unit_test(test_blocks),
        cmocka_unit_test(test_heredoc),         cmocka_unit_test(test_errors),
        cmocka_unit_test(test_depth_limit),     cmocka_unit_test(test_kind_names),
        cmocka_unit_test(test_fault_injection),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
