/* The PKI engine's entry point: instance life cycle and routing to the concern files. */
#include "engines/pki/pki.h"

#include "lib/mem.h"

static int pki_create(struct node_view *view,
                      const json_t *options,
                      void **state,
                      char errmsg[CF_ERRMSG_SIZE])
{
    (void)options;
    struct pki_engine *e = cf_calloc(1, sizeof(*e));
    if (e == NULL) {
        cf_errmsg_printf(errmsg, "out of memory");
        return CF_ENOMEM;
    }
    e->view = view;
    *state = e;
    return CF_OK;
}

static void pki_destroy(void *state)
{
    cf_free(state);
}

void pki_done(struct node_request *req, struct node_response *resp)
{
    if (resp != NULL) {
        resp->mount_type = "pki";
    }
    node_request_done(req, resp);
}

static void pki_handle(void *state, struct node_request *req)
{
    struct pki_engine *e = state;
    if (pki_config_handle(e, req)) {
        return;
    }
    pki_done(req, node_response_error(404, "unsupported path"));
}

const struct node_engine_ops pki_engine_ops = {
    .type = "pki",
    .create = pki_create,
    .destroy = pki_destroy,
    .handle = pki_handle,
};
