/*
 * The PKI secrets engine (pki.md). This file is the engine's entry point and the state its
 * parts share; each concern lives in its own file (config.c: config/crl, config/urls,
 * config/cluster; field.c: Vault's request field typing). Issuers, keys, roles, issuance,
 * revocation, CRLs, OCSP and tidy arrive as their own files (issue 4).
 */
#ifndef CF_ENGINES_PKI_PKI_H_
#define CF_ENGINES_PKI_PKI_H_

#include <jansson.h>

#include "node/engine.h"

extern const struct node_engine_ops pki_engine_ops;

struct pki_role_ref;

/* One mount's engine instance. */
struct pki_engine
{
    struct node_view *view;     /* borrowed: the mount's storage view */
    struct pki_snap *snap;      /* owned reference: the cached issuer/key snapshot (issuer.h) */
    struct pki_role_ref *roles; /* issue.c's role cache */
    struct pki_crl_sched *crl;  /* crl_build.c's build queue and scheduler */
    struct pki_tidy *tidy;      /* tidy.c's run state and auto-tidy timer */
    /* config.c's decoded config/urls and config/cluster for issuance, and config/crl for the
     * OCSP responder, by FSM version. */
    struct pki_config_cache
    {
        json_t *j;        /* read-only once cached; NULL = not cached */
        uint64_t version; /* 0 = the key was absent (defaults) */
    } urls_cache, cluster_cache, crl_cache;
};

/* issue.c: issue/sign/sign-verbatim and their issuer/:ref forms; false for other paths. */
bool pki_issue_handle(struct pki_engine *e, struct node_request *req);
/* Frees issue.c's role cache (engine destroy). */
void pki_issue_drop_cache(struct pki_engine *e);

/* crl_api.c: crl..., issuer/:ref/crl..., cert/crl, cert/delta-crl, crl/rotate(-delta). */
bool pki_crl_handle(struct pki_engine *e, struct node_request *req);
/* crl_sign.c: issuer/:ref/resign-crls and issuer/:ref/sign-revocation-list. */
bool pki_crl_sign_handle(struct pki_engine *e, struct node_request *req);
/* ocsp.c: ocsp (POST) and ocsp/<base64> (GET). */
bool pki_ocsp_handle(struct pki_engine *e, struct node_request *req);

/* tidy.c: tidy, tidy-status, tidy-cancel, config/auto-tidy; the auto-tidy timer. */
bool pki_tidy_handle(struct pki_engine *e, struct node_request *req);
int pki_tidy_start(struct pki_engine *e);
void pki_tidy_stop(struct pki_engine *e);

/* Storage keys inside the mount's view. */
#define PKI_KEY_CONFIG_CRL "config/crl"
#define PKI_KEY_CONFIG_URLS "config/urls"
#define PKI_KEY_CONFIG_CLUSTER "config/cluster" /* cluster-local class */

/* config.c: config/crl, config/urls, config/cluster. False when rel_path is not one of them. */
bool pki_config_handle(struct pki_engine *e, struct node_request *req);

/* The effective config/crl (stored fields over the defaults); a new object, NULL on OOM or
 * unreadable storage. */
json_t *pki_config_crl_get(struct pki_engine *e);
/* The same, shared and read-only (a new reference; the caller must not change it), decoded
 * again only when config/crl's FSM version changes. For the OCSP responder's every request. */
json_t *pki_config_crl_shared(struct pki_engine *e);

/* A duration field of config/crl ("72h") in seconds; 0 when absent or unreadable. */
int64_t pki_config_secs(const json_t *cfg, const char *name);

struct pki_x509_template;
/* Fills the AIA fields of t (issuing_certificates, crl_distribution_points, ocsp_servers) for
 * a certificate issued by issuer_id: the issuer entry's own URLs when it has any (pki.md 1.4),
 * else config/urls; templated when enabled. issuer_entry may be NULL. */
int pki_config_aia(struct pki_engine *e,
                   const json_t *issuer_entry,
                   const char *issuer_id,
                   struct pki_x509_template *t,
                   char *errmsg);

/* Reads the JSON value stored at key into *out (a new reference). CF_ENOTFOUND when absent,
 * CF_ECORRUPT when it is not JSON, else node_view_get's errors. */
int pki_read_json(struct pki_engine *e, const char *key, json_t **out);

/* Adds a put of j's compact JSON at key to w (the text is wiped after). */
int pki_write_json(struct node_write *w, const char *key, const json_t *j);

/* Commits w, then answers req with data (owned; NULL and no warnings = 204) and warnings
 * (owned array or NULL); 500 when the commit fails. w NULL (OOM while building) answers 500. */
void pki_commit_reply(struct node_request *req,
                      struct node_write *w,
                      json_t *data,
                      json_t *warnings);

/* fetch.c: a raw (non-JSON) 200 response with body, or 204 when len is 0; NULL on OOM. */
struct node_response *pki_raw_response(const char *content_type, const void *body, size_t len);

/* Dates a CA or CRL fetch answer r (owned) with Last-Modified lm, or replaces it with 304 Not
 * Modified when the request's If-Modified-Since is at or after lm, as Vault's caching of these
 * paths does. r is returned unchanged when it is NULL or an error, or lm is unknown (0). */
struct node_response *pki_dated(const struct node_request *req,
                                struct node_response *r,
                                int64_t lm);

/* Finishes req with resp after setting mount_type "pki". */
void pki_done(struct node_request *req, struct node_response *resp);

#endif
