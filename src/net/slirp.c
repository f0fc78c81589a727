/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * -netdev user: libslirp's user-mode TCP/IP stack, IPv4 only.
 *
 * libslirp has no thread or loop of its own: it asks for its sockets to be
 * polled (slirp_pollfds_fill / slirp_pollfds_poll) and for timers. Both are
 * GSources on the attached context, so slirp runs only on that thread. The
 * poll source re-collects slirp's sockets in every prepare; slirp caps the
 * poll timeout at one second, its TCP timers at 2 ms while it has delayed
 * ACKs pending.
 *
 * With IPv6 off, libslirp 4.7 makes no timers (its one timer sends IPv6
 * router advertisements) and reports no guest errors (all are DHCPv6 and
 * NDP ones); both callbacks are here because SlirpCb requires them.
 */
#include "net/backends.h"
#include "util/error.h"
#include "util/iov.h"

#include <arpa/inet.h>
#include <errno.h>
#include <slirp/libslirp.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/*
 * Frames kept for a frontend that has no receive buffers; more are dropped.
 * slirp's frames are at most 1514 bytes (its default MTU), so under 400 KiB.
 */
#define NET_SLIRP_RXQ_FRAMES 256
/* At most one guest-error warning per interval. */
#define NET_SLIRP_ERROR_LOG_INTERVAL_US (5 * G_USEC_PER_SEC)
/*
 * Addresses inside the user network, as offsets below the netmask (QEMU's
 * layout): gateway x.x.2.2, DNS x.x.2.3, first DHCP lease x.x.2.15. In a /24
 * the "2" falls under the mask.
 */
#define NET_SLIRP_HOST_OFFSET 0x0202
#define NET_SLIRP_DNS_OFFSET  0x0203
#define NET_SLIRP_DHCP_OFFSET 0x020f

typedef struct NetSlirpSource NetSlirpSource;

typedef struct NetSlirp {
    NetBackend nb;
    Slirp *slirp;
    GMainContext *ctx;   /* NULL until attached */
    NetSlirpSource *src; /* polls slirp's sockets, delivers queued frames */
    GList *timers;       /* NetSlirpTimer */
    GQueue rxq;          /* GBytes: frames the frontend has not taken yet */
    bool rx_blocked;     /* the frontend refused a frame; wait for rx_ready */
    bool in_input;       /* inside slirp_input: replies wait in rxq */
    uint8_t *tx_buf;     /* NET_MAX_FRAME: slirp_input takes a flat frame */
    gint64 last_error_log;
} NetSlirp;

struct NetSlirpSource {
    GSource source;
    NetSlirp *ns;
    GArray *pollfds; /* GPollFD added to the source; index = slirp's poll index */
    gint64 deadline; /* monotonic µs when slirp's timers want a poll call, or -1 */
};

typedef struct NetSlirpTimer {
    GSource source;
    NetSlirp *ns;
    SlirpTimerId id;
    void *cb_opaque;
} NetSlirpTimer;

static struct in_addr net_slirp_addr(const NetdevConfig *cfg, uint32_t offset)
{
    return (struct in_addr){cfg->net.s_addr | (htonl(offset) & ~cfg->netmask.s_addr)};
}

/* ---- frames to the frontend ---- */

static bool net_slirp_rx_pending(NetSlirp *ns)
{
    return !ns->rx_blocked && !g_queue_is_empty(&ns->rxq);
}

static void net_slirp_flush_rx(NetSlirp *ns)
{
    while (net_slirp_rx_pending(ns)) {
        GBytes *frame = g_queue_peek_head(&ns->rxq);
        gsize len;
        struct iovec iov = {.iov_base = (void *)g_bytes_get_data(frame, &len)};
        iov.iov_len = len;
        if (!ns->nb.receive(ns->nb.receive_opaque, &iov, 1)) {
            ns->rx_blocked = true;
            return;
        }
        g_bytes_unref(g_queue_pop_head(&ns->rxq));
    }
}

static void net_slirp_queue_frame(NetSlirp *ns, const void *buf, size_t len)
{
    if (g_queue_get_length(&ns->rxq) >= NET_SLIRP_RXQ_FRAMES) {
        return; /* TCP retransmits; the rest is datagrams */
    }
    g_queue_push_tail(&ns->rxq, g_bytes_new(buf, len));
}

/* ---- SlirpCb ---- */

static ssize_t net_slirp_cb_send_packet(const void *buf, size_t len, void *opaque)
{
    NetSlirp *ns = opaque;
    if (!ns->in_input && !ns->rx_blocked && g_queue_is_empty(&ns->rxq)) {
        struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
        if (ns->nb.receive(ns->nb.receive_opaque, &iov, 1)) {
            return (ssize_t)len;
        }
        ns->rx_blocked = true;
    }
    net_slirp_queue_frame(ns, buf, len);
    return (ssize_t)len;
}

static void net_slirp_cb_guest_error(const char *msg, void *opaque)
{
    NetSlirp *ns = opaque;
    gint64 now = g_get_monotonic_time();
    if (ns->last_error_log && now - ns->last_error_log < NET_SLIRP_ERROR_LOG_INTERVAL_US) {
        return;
    }
    ns->last_error_log = now;
    g_warning("netdev '%s': %s", ns->nb.id, msg);
}

/* Timer expiries from slirp are in ms on this clock, which is glib's monotonic one. */
static int64_t net_slirp_cb_clock_get_ns(void *opaque)
{
    return g_get_monotonic_time() * 1000;
}

static gboolean net_slirp_timer_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    NetSlirpTimer *t = (NetSlirpTimer *)source;
    g_source_set_ready_time(source, -1);
    slirp_handle_timer(t->ns->slirp, t->id, t->cb_opaque);
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs net_slirp_timer_funcs = {
    .dispatch = net_slirp_timer_dispatch,
};

/* A timer made before attach waits, unattached, for net_slirp_attach. */
static void *net_slirp_cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque, void *opaque)
{
    NetSlirp *ns = opaque;
    NetSlirpTimer *t = (NetSlirpTimer *)g_source_new(&net_slirp_timer_funcs, sizeof(NetSlirpTimer));
    t->ns = ns;
    t->id = id;
    t->cb_opaque = cb_opaque;
    g_source_set_name(&t->source, "slirp-timer");
    ns->timers = g_list_prepend(ns->timers, t);
    if (ns->ctx) {
        g_source_attach(&t->source, ns->ctx);
    }
    return t;
}

static void net_slirp_cb_timer_free(void *timer, void *opaque)
{
    NetSlirp *ns = opaque;
    NetSlirpTimer *t = timer;
    ns->timers = g_list_remove(ns->timers, t);
    g_source_destroy(&t->source);
    g_source_unref(&t->source);
}

static void net_slirp_cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
    NetSlirpTimer *t = timer;
    g_source_set_ready_time(&t->source, expire_ms * 1000);
}

/*
 * slirp announces its sockets here too, but the poll source asks for the
 * current set, with the events each needs, before every poll.
 */
static void net_slirp_cb_register_poll_fd(int fd, void *opaque)
{
}

static void net_slirp_cb_unregister_poll_fd(int fd, void *opaque)
{
}

/*
 * slirp can take more data from a socket. It only says so while running on
 * the attached context, which prepares the poll source again before it
 * sleeps, so there is nothing to wake.
 */
static void net_slirp_cb_notify(void *opaque)
{
}

static const SlirpCb net_slirp_callbacks = {
    .send_packet = net_slirp_cb_send_packet,
    .guest_error = net_slirp_cb_guest_error,
    .clock_get_ns = net_slirp_cb_clock_get_ns,
    .timer_free = net_slirp_cb_timer_free,
    .timer_mod = net_slirp_cb_timer_mod,
    .register_poll_fd = net_slirp_cb_register_poll_fd,
    .unregister_poll_fd = net_slirp_cb_unregister_poll_fd,
    .notify = net_slirp_cb_notify,
    .timer_new_opaque = net_slirp_cb_timer_new_opaque,
};

/* ---- the poll source ---- */

static int net_slirp_add_poll(int fd, int events, void *opaque)
{
    NetSlirpSource *s = opaque;
    GPollFD pfd = {.fd = fd};
    pfd.events = (events & SLIRP_POLL_IN ? G_IO_IN : 0) | (events & SLIRP_POLL_OUT ? G_IO_OUT : 0) |
                 (events & SLIRP_POLL_PRI ? G_IO_PRI : 0) |
                 (events & SLIRP_POLL_ERR ? G_IO_ERR : 0) |
                 (events & SLIRP_POLL_HUP ? G_IO_HUP : 0);
    g_array_append_val(s->pollfds, pfd);
    return (int)s->pollfds->len - 1;
}

static int net_slirp_get_revents(int idx, void *opaque)
{
    NetSlirpSource *s = opaque;
    gushort r = g_array_index(s->pollfds, GPollFD, idx).revents;
    return (r & G_IO_IN ? SLIRP_POLL_IN : 0) | (r & G_IO_OUT ? SLIRP_POLL_OUT : 0) |
           (r & G_IO_PRI ? SLIRP_POLL_PRI : 0) | (r & G_IO_ERR ? SLIRP_POLL_ERR : 0) |
           (r & G_IO_HUP ? SLIRP_POLL_HUP : 0);
}

static gboolean net_slirp_source_prepare(GSource *source, gint *timeout)
{
    NetSlirpSource *s = (NetSlirpSource *)source;
    for (guint i = 0; i < s->pollfds->len; i++) {
        g_source_remove_poll(source, &g_array_index(s->pollfds, GPollFD, i));
    }
    g_array_set_size(s->pollfds, 0);
    uint32_t t = UINT32_MAX;
    slirp_pollfds_fill(s->ns->slirp, &t, net_slirp_add_poll, s);
    /* Only now: g_source_add_poll keeps pointers into the array. */
    for (guint i = 0; i < s->pollfds->len; i++) {
        g_source_add_poll(source, &g_array_index(s->pollfds, GPollFD, i));
    }
    if (t == UINT32_MAX) {
        s->deadline = -1;
        *timeout = -1;
    } else {
        s->deadline = g_get_monotonic_time() + (gint64)t * 1000;
        *timeout = (gint)t;
    }
    return net_slirp_rx_pending(s->ns);
}

static gboolean net_slirp_source_check(GSource *source)
{
    NetSlirpSource *s = (NetSlirpSource *)source;
    if (net_slirp_rx_pending(s->ns)) {
        return TRUE;
    }
    for (guint i = 0; i < s->pollfds->len; i++) {
        if (g_array_index(s->pollfds, GPollFD, i).revents) {
            return TRUE;
        }
    }
    return s->deadline >= 0 && g_get_monotonic_time() >= s->deadline;
}

static gboolean net_slirp_source_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    NetSlirpSource *s = (NetSlirpSource *)source;
    net_slirp_flush_rx(s->ns);
    slirp_pollfds_poll(s->ns->slirp, 0, net_slirp_get_revents, s);
    return G_SOURCE_CONTINUE;
}

static void net_slirp_source_finalize(GSource *source)
{
    NetSlirpSource *s = (NetSlirpSource *)source;
    g_array_unref(s->pollfds);
}

static GSourceFuncs net_slirp_source_funcs = {
    .prepare = net_slirp_source_prepare,
    .check = net_slirp_source_check,
    .dispatch = net_slirp_source_dispatch,
    .finalize = net_slirp_source_finalize,
};

/* ---- NetBackendOps ---- */

static bool net_slirp_attach(NetBackend *nb, GMainContext *ctx, GError **error)
{
    NetSlirp *ns = (NetSlirp *)nb;
    ns->ctx = g_main_context_ref(ctx);
    ns->src = (NetSlirpSource *)g_source_new(&net_slirp_source_funcs, sizeof(NetSlirpSource));
    ns->src->ns = ns;
    ns->src->pollfds = g_array_new(FALSE, FALSE, sizeof(GPollFD));
    ns->src->deadline = -1;
    g_source_set_name(&ns->src->source, "slirp");
    g_source_attach(&ns->src->source, ctx);
    for (GList *l = ns->timers; l; l = l->next) {
        g_source_attach(l->data, ctx);
    }
    return true;
}

static bool net_slirp_send(NetBackend *nb, const struct iovec *iov, unsigned iovcnt)
{
    NetSlirp *ns = (NetSlirp *)nb;
    size_t len = iov_size(iov, iovcnt);
    if (len > NET_MAX_FRAME) {
        return false;
    }
    iov_to_buf(iov, iovcnt, 0, ns->tx_buf, len);
    ns->in_input = true;
    slirp_input(ns->slirp, ns->tx_buf, (int)len);
    ns->in_input = false;
    return true;
}

/* The source delivers what waits in rxq: its prepare sees the frontend ready. */
static void net_slirp_rx_ready(NetBackend *nb)
{
    NetSlirp *ns = (NetSlirp *)nb;
    ns->rx_blocked = false;
}

static void net_slirp_free(NetBackend *nb)
{
    NetSlirp *ns = (NetSlirp *)nb;
    if (ns->src) {
        g_source_destroy(&ns->src->source);
        g_source_unref(&ns->src->source);
    }
    if (ns->slirp) {
        slirp_cleanup(ns->slirp); /* frees its timers */
    }
    g_warn_if_fail(ns->timers == NULL);
    g_queue_clear_full(&ns->rxq, (GDestroyNotify)g_bytes_unref);
    if (ns->ctx) {
        g_main_context_unref(ns->ctx);
    }
    g_free(ns->tx_buf);
    g_free(ns->nb.id);
    g_free(ns);
}

static const NetBackendOps net_slirp_ops = {
    .type = "user",
    .attach = net_slirp_attach,
    .send = net_slirp_send,
    .rx_ready = net_slirp_rx_ready,
    .free = net_slirp_free,
};

/* ---- creation ---- */

/* The rule as hostfwd= would spell it, for messages. */
static char *net_slirp_hostfwd_text(const HostFwd *fwd)
{
    char host[INET_ADDRSTRLEN] = "", guest[INET_ADDRSTRLEN] = "";
    if (fwd->host_addr.s_addr != htonl(INADDR_ANY)) {
        inet_ntop(AF_INET, &fwd->host_addr, host, sizeof(host));
    }
    if (fwd->guest_addr.s_addr) {
        inet_ntop(AF_INET, &fwd->guest_addr, guest, sizeof(guest));
    }
    return g_strdup_printf("%s:%s:%u-%s:%u", fwd->udp ? "udp" : "tcp", host, fwd->host_port, guest,
                           fwd->guest_port);
}

/*
 * slirp_add_hostfwd does not say why it failed: bind a socket the way slirp
 * does (SO_REUSEADDR for TCP) to find out. 0 when that works.
 */
static int net_slirp_hostfwd_bind_errno(const HostFwd *fwd)
{
    int s = socket(AF_INET, (fwd->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_CLOEXEC, 0);
    if (s < 0) {
        return errno;
    }
    int on = 1;
    if (!fwd->udp) {
        setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    }
    struct sockaddr_in sa = {
        .sin_family = AF_INET,
        .sin_addr = fwd->host_addr,
        .sin_port = htons(fwd->host_port),
    };
    int err = bind(s, (struct sockaddr *)&sa, sizeof(sa)) < 0 ? errno : 0;
    close(s);
    return err;
}

static bool net_slirp_add_hostfwd(NetSlirp *ns, const HostFwd *fwd, struct in_addr dhcp_start,
                                  GError **error)
{
    struct in_addr guest = fwd->guest_addr.s_addr ? fwd->guest_addr : dhcp_start;
    if (slirp_add_hostfwd(ns->slirp, fwd->udp, fwd->host_addr, fwd->host_port, guest,
                          fwd->guest_port) == 0) {
        return true;
    }
    g_autofree char *rule = net_slirp_hostfwd_text(fwd);
    int err = net_slirp_hostfwd_bind_errno(fwd);
    if (err) {
        qlite_error_errno(error, err, "Could not set up host forwarding rule '%s'", rule);
    } else {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_FAILED,
                    "Could not set up host forwarding rule '%s'", rule);
    }
    return false;
}

NetBackend *net_slirp_new(const NetdevConfig *cfg, GError **error)
{
    g_autoptr(NetBackend) nb = NULL;
    NetSlirp *ns = g_new0(NetSlirp, 1);
    nb = &ns->nb;
    nb->ops = &net_slirp_ops;
    nb->id = g_strdup(cfg->id);
    g_queue_init(&ns->rxq);
    ns->tx_buf = g_malloc(NET_MAX_FRAME);

    struct in_addr dhcp_start = net_slirp_addr(cfg, NET_SLIRP_DHCP_OFFSET);
    SlirpConfig sc = {
        .version = 4, /* the first with timer_new_opaque */
        .restricted = cfg->restrict_,
        .in_enabled = true,
        .vnetwork = cfg->net,
        .vnetmask = cfg->netmask,
        .vhost = net_slirp_addr(cfg, NET_SLIRP_HOST_OFFSET),
        .vdhcp_start = dhcp_start,
        .vnameserver = net_slirp_addr(cfg, NET_SLIRP_DNS_OFFSET),
    };
    ns->slirp = slirp_new(&sc, &net_slirp_callbacks, ns);
    if (!ns->slirp) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_FAILED,
                    "netdev '%s': libslirp refused the configuration", cfg->id);
        return NULL;
    }
    for (guint i = 0; i < cfg->hostfwd->len; i++) {
        if (!net_slirp_add_hostfwd(ns, &g_array_index(cfg->hostfwd, HostFwd, i), dhcp_start,
                                   error)) {
            return NULL;
        }
    }
    return g_steal_pointer(&nb);
}
