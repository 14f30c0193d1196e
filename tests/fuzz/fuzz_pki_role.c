/*
 * libFuzzer target for the role and name-policy code of engines/pki: the input is a JSON request
 * body as a client sends it to roles/:name, applied with pki_role_apply (every field's parser,
 * the role checks and warnings), then, when the role is accepted, its JSON form is applied
 * again to a fresh role (what storage does) and must give the same JSON; the strings of the
 * body's "names" array go through the name policy (CN, DNS, email, IP, URI, user id and serial
 * number checks, the hostname and glob helpers). Sanitizers and the allocation counter catch
 * crashes, overflows and leaks; a stored form that does not round-trip aborts.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "engines/pki/role.h"
#include "engines/pki/x509.h"
#include "lib/err.h"
#include "lib/json.h"
#include "lib/mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void names(const struct pki_role *r, const json_t *list)
{
    char errmsg[CF_ERRMSG_SIZE];
    struct pki_x509_strs l = {0};
    size_t i;
    const json_t *v;
    json_array_foreach(list, i, v)
    {
        const char *s = json_string_value(v);
        if (s == NULL || pki_x509_strs_add(&l, s) != CF_OK) {
            continue;
        }
        (void)pki_names_allowed(r, s);
        (void)pki_names_check_cn(r, s, errmsg);
        char *ascii = NULL;
        if (pki_names_hostname_ascii(s, &ascii)) {
            cf_free(ascii);
        }
        (void)pki_names_glob(s, "www.example.com");
        (void)pki_names_check_serial_number(r, s, errmsg);
        char *oid = NULL;
        char *value = NULL;
        if (pki_names_parse_other_san(s, &oid, &value, errmsg) == CF_OK) {
            cf_free(oid);
            cf_free(value);
        }
    }
    (void)pki_names_check_dns(r, &l, errmsg);
    (void)pki_names_check_email(r, &l, errmsg);
    (void)pki_names_check_ips(r, &l, false, errmsg);
    (void)pki_names_check_uris(r, &l, true, errmsg);
    (void)pki_names_check_user_ids(r, &l, errmsg);
    pki_x509_strs_close(&l);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int once;
    if (!once) {
        json_set_alloc_funcs(cf_malloc, cf_free);
        once = 1;
    }
    long live = cf_mem_live();
    json_t *body = json_loadb((const char *)data, size, 0, NULL);
    if (json_is_object(body)) {
        char errmsg[CF_ERRMSG_SIZE];
        json_t *warnings = json_array();
        struct pki_role r;
        pki_role_init(&r);
        if (pki_role_apply(&r, body, warnings, errmsg) == CF_OK) {
            json_t *stored = pki_role_to_json(&r);
            struct pki_role again;
            pki_role_init(&again);
            if (stored == NULL || pki_role_apply(&again, stored, NULL, errmsg) != CF_OK) {
                abort(); /* a role we accepted must load back from its stored form */
            }
            json_t *back = pki_role_to_json(&again);
            char *a = cf_json_dumps(stored, NULL);
            char *b = back != NULL ? cf_json_dumps(back, NULL) : NULL;
            if (a == NULL || b == NULL || strcmp(a, b) != 0) {
                abort(); /* and give the same role */
            }
            cf_free(a);
            cf_free(b);
            json_decref(back);
            json_decref(stored);
            pki_role_close(&again);
            names(&r, json_object_get(body, "names"));
        }
        pki_role_close(&r);
        json_decref(warnings);
    }
    json_decref(body);
    if (cf_mem_live() != live) {
        abort(); /* a leak */
    }
    return 0;
}
