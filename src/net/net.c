/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The backend-independent part of -netdev: dispatch to the backend's ops. */
#include "net/backends.h"
#include "util/error.h"

NetBackend *net_backend_new(const NetdevConfig *cfg, GError **error)
{
    switch (cfg->type) {
    case NETDEV_USER:
        return net_slirp_new(cfg, error);
    case NETDEV_TAP:
        return net_tap_new(cfg, error);
    }
    g_assert_not_reached();
}

bool net_backend_attach(NetBackend *nb, GMainContext *ctx, NetReceiveFn receive, void *opaque,
                        GError **error)
{
    if (nb->attached) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "netdev '%s' is already used by another device", nb->id);
        return false;
    }
    nb->receive = receive;
    nb->receive_opaque = opaque;
    if (!nb->ops->attach(nb, ctx, error)) {
        return false;
    }
    nb->attached = true;
    return true;
}

bool net_backend_send(NetBackend *nb, const struct iovec *iov, unsigned iovcnt)
{
    return nb->ops->send(nb, iov, iovcnt);
}

void net_backend_rx_ready(NetBackend *nb)
{
    nb->ops->rx_ready(nb);
}

void net_backend_set_offloads(NetBackend *nb, const NetOffloads *o)
{
    if (nb->vnet_hdr && nb->ops->set_offloads) {
        nb->ops->set_offloads(nb, o);
    }
}

void net_backend_free(NetBackend *nb)
{
    if (nb) {
        nb->ops->free(nb);
    }
}
