/*
 * The cluster's private certificate authority: an EC P-256 CA that sys/init creates, and the
 * node certificates it signs for the mutual-TLS cluster port (raft/net.h). A node's identity is
 * the certificate's subject CN, which is its node id. Everything is PEM text in and out.
 */
#ifndef CF_LIB_TLSCA_H_
#define CF_LIB_TLSCA_H_

#include "lib/err.h"

/* A new self-signed CA valid for `days`; *cert_pem and *key_pem are cf_malloc'd. */
int cf_tlsca_new_ca(const char *cn,
                    unsigned days,
                    char **cert_pem,
                    char **key_pem,
                    char errmsg[CF_ERRMSG_SIZE]);

/* A new P-256 key and a CSR for it with subject CN = cn (both cf_malloc'd PEM). */
int cf_tlsca_new_csr(const char *cn, char **key_pem, char **csr_pem, char errmsg[CF_ERRMSG_SIZE]);

/* Signs a node certificate: subject CN = cn (the CSR's subject is ignored; its signature must
 * verify), SAN DNS:cn, serverAuth and clientAuth, valid for `days` (capped at the CA's end).
 * CF_EMALFORMED for a bad CSR, CF_EAUTH when its signature does not verify, CF_EINVAL when the
 * issuing certificate is not a CA, CF_ECORRUPT when the CA pair does not parse. */
int cf_tlsca_sign(const char *ca_cert_pem,
                  const char *ca_key_pem,
                  const char *csr_pem,
                  const char *cn,
                  unsigned days,
                  char **cert_pem,
                  char errmsg[CF_ERRMSG_SIZE]);

/* The subject CN of a PEM certificate (cf_malloc'd). */
int cf_tlsca_cert_cn(const char *cert_pem, char **cn, char errmsg[CF_ERRMSG_SIZE]);

#endif
