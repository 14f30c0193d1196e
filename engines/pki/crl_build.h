/*
 * Building, storing and serving the mount's CRLs (pki.md 4.3, 4.4).
 *
 * CRL sets: issuers that share a key and a subject share one CRL (Vault's equivalence set),
 * named by the hex SHA-256 of "key id/subject DER" (first 32 digits), so a set keeps its name
 * and its CRL Number sequence while its members come and go. The set's CRL is signed by a
 * member with crl-signing usage, the default issuer first.
 *
 * Storage (cluster-local class):
 *   crls/config            {"sets":{"<set>":{number, complete_number, chunks, len, this_update,
 *                           next_update, delta_number, delta_chunks, delta_len,
 *                           delta_this_update}}, "last_modified", "delta_last_modified"}
 *   crls/<set>/<n>/<i>     piece i (PKI_CRL_CHUNK_SIZE bytes, the last one shorter) of the CRL
 *                           whose CRL Number is n; the CRL is the concatenation of its pieces
 *   delta-wal/<serial>     {"revocation_time","issuer_id"}: revocations since the last complete
 *                           build, written with the revocation when delta CRLs are enabled
 * Every piece is committed in its own batch (so no Raft entry is larger than about 1 MiB
 * whatever the CRL's size), and crls/config is switched to the new numbers only after every
 * piece of the new CRLs is committed; the pieces of the CRLs it replaces are deleted in that
 * same batch. A reader therefore always sees a whole CRL, the old or the new.
 *
 * A build reads revoked/ (or delta-wal/) on the loop in slices of PKI_CRL_SLICE entries, one
 * slice per loop turn, so a 1,000,000-entry build never stalls other requests; it encodes and
 * signs on the worker pool. One build runs at a time per mount; requests that arrive while one
 * runs are served together by the next build (revocations in a burst share one rebuild).
 */
#ifndef CF_ENGINES_PKI_CRL_BUILD_H_
#define CF_ENGINES_PKI_CRL_BUILD_H_

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "engines/pki/issuer.h"

struct pki_engine;
struct pki_issuer;
struct node_write;

#define PKI_CRL_SLICE 1000
#define PKI_CRL_SET_ID_SIZE PKI_SET_ID_SIZE

/* status CF_OK once the requested CRLs are committed; else the error and its text. warnings
 * (borrowed, may be NULL) are Vault's texts for sets that were skipped. */
typedef void (*pki_crl_done_cb)(void *arg, int status, const char *errmsg, const json_t *warnings);

/* Asks for a rebuild: complete (every set's complete CRL, then an empty delta when delta CRLs
 * are enabled) or delta only (a delta CRL per set from delta-wal/). cb (may be NULL) fires once,
 * never inside this call (except with CF_ENOMEM when it cannot even be queued), when a build that
 * started after this call has finished. */
void pki_crl_rebuild(struct pki_engine *e, bool complete, pki_crl_done_cb cb, void *arg);

/* Starts the auto-rebuild scheduler of the mount (a check every PKI_CRL_TICK_MS: with
 * auto_rebuild, a complete rebuild when a CRL is within auto_rebuild_grace_period of its
 * nextUpdate; with enable_delta, a delta rebuild every delta_rebuild_interval when revocations
 * are waiting). CF_ENOMEM. */
#define PKI_CRL_TICK_MS 1000
int pki_crl_start(struct pki_engine *e);
/* Stops the scheduler; a build under way is abandoned and its waiters get CF_ECANCELED. */
void pki_crl_stop(struct pki_engine *e);

/* The CRL set of an issuer (computed once in the snapshot) into out; false without a key. */
bool pki_crl_set_id(const struct pki_issuer *is, char out[PKI_CRL_SET_ID_SIZE]);

/* Reads the current complete or delta CRL of an issuer's set: *der cf_malloc'd, *len 0 when
 * the set has no delta CRL. CF_ENOTFOUND when no CRL was built for the set yet (the caller
 * asks for a build), *modified (optional) the RFC 3339 time it was built. */
int pki_crl_load(struct pki_engine *e,
                 const struct pki_issuer *is,
                 bool delta,
                 uint8_t **der,
                 size_t *len,
                 int64_t *built_at);

struct node_request;
/* Commits w (NULL = OOM while building it), then, when rebuild, rebuilds the CRLs (complete),
 * then answers req with data (owned; warnings "Warning %d during CRL rebuild: ..." added); a
 * failed commit answers 500, a failed rebuild 500 "error encountered during CRL building". */
void pki_crl_commit_reply(struct pki_engine *e,
                          struct node_request *req,
                          struct node_write *w,
                          json_t *data,
                          bool rebuild);

/* Adds the delta-wal/ entry of a revocation to w. */
int pki_crl_wal_put(struct node_write *w,
                    const char *serial,
                    int64_t revoked_at,
                    const char *issuer_id);

/* The two fields a CRL needs from a revoked/ entry (revocation_time, issuer_id into iid of cap
 * bytes), read without parsing the whole JSON: most of an entry's bytes are the certificate's
 * base64 DER, which jansson would walk character by character. Quotes inside JSON strings are
 * always escaped, so "\"issuer_id\":\"" can only match a key, and entries are flat objects.
 * False when either field is missing or not in its plain form (an escaped or too long id, a
 * time that is not a plain integer): the caller then parses the JSON. */
bool pki_crl_entry_fields(const char *s, size_t n, int64_t *when, char *iid, size_t cap);

#endif
