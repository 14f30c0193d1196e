/* Unit tests for node/config.c: a full Vault-shaped config and each kind of error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/mem.h"
#include "node/config.h"

static char path[64];

static int write_config(const char *text)
{
    snprintf(path, sizeof(path), "/tmp/coffer-cfg-XXXXXX");
    int fd = mkstemp(path);
    if (fd < 0) {
        return -1;
    }
    ssize_t n = write(fd, text, strlen(text));
    close(fd);
    return n == (ssize_t)strlen(text) ? 0 : -1;
}

static int load(const char *text, struct node_config *cfg, char *errmsg)
{
    assert_int_equal(write_config(text), 0);
    int rv = node_config_load(path, cfg, errmsg);
    unlink(path);
    return rv;
}

static void test_full_config(void **state)
{
    (void)state;
    const char *text =
        "# a full config\n"
        "ui = true\n"
        "disable_mlock = true\n"
        "api_addr = \"https://10.0.0.1:8200\"\n"
        "cluster_addr = \"https://10.0.0.1:8201\"\n"
        "log_level = \"debug\"\n"
        "storage \"raft\" {\n"
        "  path = \"/var/lib/coffer\"\n"
        "  node_id = \"n1\"\n"
        "  snapshot_threshold = 500\n"
        "  trailing_logs = \"2000\"\n"
        "}\n"
        "listener \"tcp\" {\n"
        "  address = \"127.0.0.1:8200\"\n"
        "  tls_disable = \"true\"\n"
        "  http_read_header_timeout = \"2s\"\n"
        "  max_request_size = 1024\n"
        "}\n"
        "listener \"tcp\" {\n"
        "  address = \"0.0.0.0:8300\"\n"
        "  tls_cert_file = \"/c.pem\"\n"
        "  tls_key_file = \"/k.pem\"\n"
        "  tls_min_version = \"tls13\"\n"
        "}\n"
        "seal \"shamir\" {}\n"
        "telemetry { disable_hostname = true }\n";
    struct node_config cfg;
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(load(text, &cfg, errmsg), CF_OK);
    assert_string_equal(cfg.storage_path, "/var/lib/coffer");
    assert_string_equal(cfg.node_id, "n1");
    assert_int_equal(cfg.snapshot_threshold, 500);
    assert_int_equal(cfg.trailing_logs, 2000);
    assert_string_equal(cfg.api_addr, "https://10.0.0.1:8200");
    assert_string_equal(cfg.cluster_addr, "https://10.0.0.1:8201");
    assert_string_equal(cfg.log_level, "debug");
    assert_true(cfg.disable_mlock);
    assert_true(cfg.ui);
    assert_int_equal(cfg.n_seals, 1);
    assert_string_equal(cfg.seals[0].type, "shamir");
    assert_int_equal(cfg.n_listeners, 2);
    assert_true(cfg.listeners[0].tls_disable);
    assert_int_equal(cfg.listeners[0].read_header_timeout_ms, 2000);
    assert_int_equal(cfg.listeners[0].max_request_size, 1024);
    assert_false(cfg.listeners[1].tls_disable);
    assert_int_equal(cfg.listeners[1].tls_min_version, 13);
    assert_string_equal(cfg.listeners[1].tls_cert_file, "/c.pem");
    node_config_close(&cfg);
}

struct bad_case
{
    const char *text;
    int line;             /* expected line in the message; 0 = file-level message */
    const char *contains; /* expected text in the message */
};

static const struct bad_case bad_cases[] = {
    {"storage \"raft\" {\n  path = \"/x\"\n\nlistener \"tcp\" {}\n", 0, ""}, /* unterminated */
    {"storage \"raft\" { path = \"/x\" }\nlistener \"tcp\" { tls_disable = true }\nbogus = 1\n", 3,
     "unknown configuration key \"bogus\""},
    {"storage \"consul\" { path = \"/x\" }\n", 1, "storage type \"consul\" is not supported"},
    {"storage \"raft\" { node_id = \"a\" }\nlistener \"tcp\" { tls_disable = true }\n", 1,
     "needs a path"},
    {"storage \"raft\" {\n path = 5\n}\n", 2, "path must be a string"},
    {"storage \"raft\" {\n path = \"/x\"\n snapshot_threshold = 0\n}\n", 3,
     "snapshot_threshold must be a whole number from 1 to 1073741824"},
    {"storage \"raft\" {\n path = \"/x\"\n snapshot_threshold = -5\n}\n", 3,
     "snapshot_threshold must be a whole number"},
    {"storage \"raft\" {\n path = \"/x\"\n snapshot_threshold = \"8k\"\n}\n", 3,
     "snapshot_threshold must be a whole number"},
    {"storage \"raft\" {\n path = \"/x\"\n snapshot_threshold = 1.5\n}\n", 3,
     "snapshot_threshold must be a whole number"},
    {"storage \"raft\" {\n path = \"/x\"\n trailing_logs = 2000000000\n}\n", 3,
     "trailing_logs must be a whole number"},
    {"storage \"raft\" {\n path = \"/x\"\n trailing_logs = true\n}\n", 3,
     "trailing_logs must be a whole number"},
    {"storage \"raft\" { path = \"/x\" }\nlistener \"tcp\" {\n address = \"nocolon\"\n "
     "tls_disable = true\n}\n",
     3, "must be host:port"},
    {"storage \"raft\" { path = \"/x\" }\nlistener \"tcp\" {\n address = \"127.0.0.1:1\"\n}\n", 2,
     "tls_cert_file"},
    {"storage \"raft\" { path = \"/x\" }\nlistener \"tcp\" { tls_disable = true }\nseal "
     "\"awskms\" {}\n",
     3, "seal type \"awskms\""},
    {"storage \"raft\" { path = \"/x\" }\nlistener \"tcp\" {\n tls_disable = true\n "
     "tls_min_version = \"tls10\"\n}\n",
     4, "tls_min_version"},
    {"storage \"raft\" { path = \"/x\" }\nlistener \"tcp\" { tls_disable = true }\nlog_level = "
     "\"loud\"\n",
     3, "log_level"},
    {"storage \"raft\" { path = \"/x\" }\nlistener \"tcp\" { tls_disable = \"maybe\" }\n", 2,
     "tls_disable must be a boolean"},
    {"listener \"tcp\" { tls_disable = true }\n", 0, "storage \"raft\" block is required"},
    {"storage \"raft\" { path = \"/x\" }\n", 0, "listener"},
    {"storage \"raft\" { path = \"/x\" }\nlistener \"tcp\" {\n tls_disable = true\n "
     "http_idle_timeout = \"soon\"\n}\n",
     4, "http_idle_timeout"},
    {"storage \"raft\" { path = \"/x\" }\nlistener \"tcp\" { tls_disable = true }\nseal "
     "\"static\" {\n provider = \"file\"\n provider = \"manual\"\n}\n",
     5, "provider is given twice"},
    {"storage \"raft\" { path = \"/x\" }\nlistener \"tcp\" { tls_disable = true }\nseal "
     "\"static\" {\n provider = [\"file\"]\n}\n",
     4, "must be a string, not a list"},
    {"storage \"raft\" { path = \"/x\" }\nlistener \"tcp\" { tls_disable = true }\nseal "
     "\"static\" { provider = \"file\" }\nseal \"pkcs11\" { lib = \"x\" }\n",
     0, "exactly one must have disabled"},
    {"storage \"raft\" { path = \"/x\" }\nlistener \"tcp\" { tls_disable = true }\nseal "
     "\"static\" { disabled = \"sometimes\" }\n",
     3, "disabled must be a boolean"},
};

static void test_seal_blocks(void **state)
{
    (void)state;
    struct node_config cfg;
    char errmsg[CF_ERRMSG_SIZE] = "";
    const char *text =
        "storage \"raft\" { path = \"/x\" }\n"
        "listener \"tcp\" { tls_disable = true }\n"
        "seal \"shamir\" { disabled = \"true\" }\n"
        "seal \"pkcs11\" {\n lib = \"/usr/lib/x.so\"\n slot = 5\n"
        " generate_key = true\n pin = \"1234\"\n}\n";
    assert_int_equal(load(text, &cfg, errmsg), CF_OK);
    assert_int_equal(cfg.n_seals, 2);
    assert_string_equal(cfg.seals[0].type, "shamir");
    assert_true(cfg.seals[0].disabled);
    assert_int_equal(cfg.seals[0].n_params, 0);
    assert_string_equal(cfg.seals[1].type, "pkcs11");
    assert_false(cfg.seals[1].disabled);
    assert_int_equal(cfg.seals[1].line, 4);
    assert_string_equal(node_seal_param(&cfg.seals[1], "lib"), "/usr/lib/x.so");
    assert_string_equal(node_seal_param(&cfg.seals[1], "slot"), "5");
    assert_string_equal(node_seal_param(&cfg.seals[1], "generate_key"), "true");
    assert_null(node_seal_param(&cfg.seals[1], "key_label"));
    node_config_close(&cfg);

    /* No seal block: Shamir, unless SEAL_UNSEAL_PROVIDER selects the static seal. */
    const char *plain =
        "storage \"raft\" { path = \"/x\" }\n"
        "listener \"tcp\" { tls_disable = true }\n";
    setenv("SEAL_UNSEAL_PROVIDER", "environment", 1);
    assert_int_equal(load(plain, &cfg, errmsg), CF_OK);
    assert_string_equal(cfg.seals[0].type, "static");
    node_config_close(&cfg);
    unsetenv("SEAL_UNSEAL_PROVIDER");
    assert_int_equal(load(plain, &cfg, errmsg), CF_OK);
    assert_string_equal(cfg.seals[0].type, "shamir");
    node_config_close(&cfg);
}

static void test_bad_configs(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        struct node_config cfg;
        char errmsg[CF_ERRMSG_SIZE] = "";
        long live = cf_mem_live();
        int rv = load(bad_cases[i].text, &cfg, errmsg);
        if (rv == CF_OK) {
            fail_msg("case %zu accepted", i);
        }
        /* The message names the file, and the line when one applies. */
        if (strstr(errmsg, path) != errmsg) {
            fail_msg("case %zu: message does not start with the file: %s", i, errmsg);
        }
        if (bad_cases[i].line > 0) {
            char want[96];
            snprintf(want, sizeof(want), "%s:%d:", path, bad_cases[i].line);
            if (strstr(errmsg, want) == NULL) {
                fail_msg("case %zu: want %s in: %s", i, want, errmsg);
            }
        }
        if (strstr(errmsg, bad_cases[i].contains) == NULL) {
            fail_msg("case %zu: want '%s' in: %s", i, bad_cases[i].contains, errmsg);
        }
        assert_int_equal(cf_mem_live(), live);
        assert_null(cfg.storage_path);
    }
}

static void test_missing_file(void **state)
{
    (void)state;
    struct node_config cfg;
    char errmsg[CF_ERRMSG_SIZE] = "";
    assert_int_equal(node_config_load("/nonexistent/coffer.hcl", &cfg, errmsg), CF_EIO);
    assert_non_null(strstr(errmsg, "/nonexistent/coffer.hcl"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_config),
        cmocka_unit_test(test_bad_configs),
        cmocka_unit_test(test_missing_file),
        cmocka_unit_test(test_seal_blocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
