/*
 * sys/tools/seal-key: a new static seal key (24-word phrase and validation hash) for
 * bootstrapping another node, as `coffer operator generate-seal-key` prints it. A dev server
 * answers any token its policies allow on the path; otherwise the token needs sudo on it, since
 * the answer is key material.
 */
#include <string.h>

#include "node/internal.h"
#include "node/seal.h"

bool node__seal_api_handle(struct node_core *core, struct node_request *req, bool sudo)
{
    if (strcmp(req->path, "sys/tools/seal-key") != 0) {
        return false;
    }
    if (req->op != NODE_OP_READ && req->op != NODE_OP_UPDATE && req->op != NODE_OP_CREATE) {
        node_request_done(req, node_response_error(405, "unsupported operation"));
        return true;
    }
    if (!core->cfg.dev && !sudo) {
        node_request_done(req, node_response_error(403,
                                                   "permission denied: sys/tools/seal-key needs "
                                                   "sudo outside dev mode"));
        return true;
    }
    char phrase[CF_BIP39_PHRASE_MAX];
    char hash[65];
    struct node_response *resp = NULL;
    if (node_seal_static_generate(phrase, hash) == CF_OK) {
        resp = node_response_new();
    }
    if (resp != NULL) {
        resp->data = json_pack("{s:s,s:s}", "key", phrase, "validation_hash", hash);
        if (resp->data == NULL) {
            node_response_free(resp);
            resp = NULL;
        }
    }
    cf_cleanse(phrase, sizeof(phrase));
    node_request_done(req, resp);
    return true;
}
