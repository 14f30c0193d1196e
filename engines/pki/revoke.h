/*
 * Stored certificates and revocations of a PKI mount (pki.md 4.1, Appendix A), cluster-local:
 * certs/<hyphen-serial> = DER, revoked/<hyphen-serial> = {"certificate_bytes","revocation_time",
 * "revocation_time_utc","issuer_id"}; one key per certificate and per revocation, so nothing
 * grows into a single large value. revoke.c also serves revoke, revoke-with-key and
 * issuer/:ref/revoke.
 */
#ifndef CF_ENGINES_PKI_REVOKE_H_
#define CF_ENGINES_PKI_REVOKE_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "engines/pki/issuer.h"
#include "node/engine.h"

struct pki_engine;
struct node_request;
struct node_write;

/* The storage key of a serial (colon hex): "<prefix><hyphen-serial>" into out. */
void pki_serial_key(const char *prefix, const char *serial, char *out, size_t n);

/* Reads certs/<serial>; *der cf_malloc'd. CF_ENOTFOUND when not stored. */
int pki_cert_load(struct pki_engine *e, const char *serial, uint8_t **der, size_t *len);

struct pki_revocation
{
    int64_t time;
    char issuer_id[PKI_ID_SIZE];
};

/* Reads revoked/<serial>. CF_ENOTFOUND when not revoked. */
int pki_revocation_load(struct pki_engine *e, const char *serial, struct pki_revocation *out);

/* revoke.c: revoke, revoke-with-key, issuer/:ref/revoke. False for other paths. */
bool pki_revoke_handle(struct pki_engine *e, struct node_request *req);

/* node_engine_ops.revoke_secret: revokes the certificate of a lease's secret
 * {"serial_number"} as the revoke endpoint does (an expired one only loses its lease). */
void pki_revoke_secret(void *state, const json_t *secret, node_write_cb cb, void *arg);

#endif
