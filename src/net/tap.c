/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * -netdev tap: frames to and from a Linux tap device (Documentation/
 * networking/tuntap.rst). With IFF_VNET_HDR every frame starts with a
 * struct virtio_net_hdr_v1 (TUNSETVNETHDRSZ 12), which is what
 * NetBackend.vnet_hdr promises.
 */
#include "net/backends.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/uio.h>
#include <unistd.h>

/* Frames read per dispatch, so one busy tap does not starve the context's other sources. */
#define NET_TAP_RX_BUDGET 64

typedef struct NetTap NetTap;

typedef struct NetTapSource {
    GSource source;
    NetTap *tap;
} NetTapSource;

struct NetTap {
    NetBackend nb;
    int fd;
    char ifname[IFNAMSIZ];
    NetTapSource *src; /* NULL until attached */
    gpointer fd_tag;   /* the fd in src; its events are 0 while the frontend is full */
    uint8_t *buf;      /* NET_VNET_HDR_LEN + NET_MAX_FRAME */
    size_t held;       /* length of the frame in buf the frontend refused, or 0 */
    bool read_failed;  /* the tap returned an error; it is not read again */
};

/* ---- receive ---- */

/* Delivers buf[0..len); false when the frontend is full and keeps it. */
static bool net_tap_deliver(NetTap *tap, size_t len)
{
    struct iovec iov = {.iov_base = tap->buf, .iov_len = len};
    if (tap->nb.receive(tap->nb.receive_opaque, &iov, 1)) {
        tap->held = 0;
        return true;
    }
    tap->held = len;
    g_source_modify_unix_fd(&tap->src->source, tap->fd_tag, 0);
    return false;
}

static gboolean net_tap_source_dispatch(GSource *source, GSourceFunc cb, gpointer data)
{
    NetTap *tap = ((NetTapSource *)source)->tap;
    g_source_set_ready_time(source, -1);
    if (tap->held && !net_tap_deliver(tap, tap->held)) {
        return G_SOURCE_CONTINUE;
    }
    for (unsigned i = 0; i < NET_TAP_RX_BUDGET; i++) {
        ssize_t n = read(tap->fd, tap->buf, NET_VNET_HDR_LEN + NET_MAX_FRAME);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            break;
        }
        if (n <= 0) {
            g_warning("netdev '%s': reading tap '%s' failed: %s; receiving stops", tap->nb.id,
                      tap->ifname, n < 0 ? g_strerror(errno) : "end of file");
            tap->read_failed = true;
            g_source_modify_unix_fd(source, tap->fd_tag, 0);
            break;
        }
        if (!net_tap_deliver(tap, (size_t)n)) {
            break;
        }
    }
    return G_SOURCE_CONTINUE;
}

static GSourceFuncs net_tap_source_funcs = {
    .dispatch = net_tap_source_dispatch,
};

/* ---- NetBackendOps ---- */

static bool net_tap_attach(NetBackend *nb, GMainContext *ctx, GError **error)
{
    NetTap *tap = (NetTap *)nb;
    tap->src = (NetTapSource *)g_source_new(&net_tap_source_funcs, sizeof(NetTapSource));
    tap->src->tap = tap;
    g_source_set_name(&tap->src->source, "tap");
    tap->fd_tag = g_source_add_unix_fd(&tap->src->source, tap->fd, G_IO_IN);
    g_source_attach(&tap->src->source, ctx);
    return true;
}

/* A frame the tap does not take (queue full, interface down) is dropped, as on a wire. */
static bool net_tap_send(NetBackend *nb, const struct iovec *iov, unsigned iovcnt)
{
    NetTap *tap = (NetTap *)nb;
    ssize_t n;
    do {
        n = writev(tap->fd, iov, (int)iovcnt);
    } while (n < 0 && errno == EINTR);
    return n >= 0;
}

/* Reading resumes from the source, which first hands over the frame it kept. */
static void net_tap_rx_ready(NetBackend *nb)
{
    NetTap *tap = (NetTap *)nb;
    if (tap->read_failed) {
        return;
    }
    g_source_modify_unix_fd(&tap->src->source, tap->fd_tag, G_IO_IN);
    if (tap->held) {
        g_source_set_ready_time(&tap->src->source, 0);
    }
}

static void net_tap_set_offloads(NetBackend *nb, const NetOffloads *o)
{
    NetTap *tap = (NetTap *)nb;
    unsigned flags = (o->csum ? TUN_F_CSUM : 0) | (o->tso4 ? TUN_F_TSO4 : 0) |
                     (o->tso6 ? TUN_F_TSO6 : 0) | (o->ecn ? TUN_F_TSO_ECN : 0) |
                     (o->ufo ? TUN_F_UFO : 0);
    if (ioctl(tap->fd, TUNSETOFFLOAD, flags) == 0) {
        return;
    }
    /* Kernels from 4.14 to 4.19 refuse UFO; the rest still helps. */
    if ((flags & TUN_F_UFO) && ioctl(tap->fd, TUNSETOFFLOAD, flags & ~TUN_F_UFO) == 0) {
        return;
    }
    g_warning("netdev '%s': TUNSETOFFLOAD 0x%x on tap '%s' failed: %s", tap->nb.id, flags,
              tap->ifname, g_strerror(errno));
}

static void net_tap_free(NetBackend *nb)
{
    NetTap *tap = (NetTap *)nb;
    if (tap->src) {
        g_source_destroy(&tap->src->source);
        g_source_unref(&tap->src->source);
    }
    if (tap->fd >= 0) {
        close(tap->fd);
    }
    g_free(tap->buf);
    g_free(tap->nb.id);
    g_free(tap);
}

static const NetBackendOps net_tap_ops = {
    .type = "tap",
    .attach = net_tap_attach,
    .send = net_tap_send,
    .rx_ready = net_tap_rx_ready,
    .set_offloads = net_tap_set_offloads,
    .free = net_tap_free,
};

/* ---- creation ---- */

/* ifname= (or a name the kernel picks): a new queue on /dev/net/tun. */
static bool net_tap_open(NetTap *tap, const NetdevConfig *cfg, GError **error)
{
    tap->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (tap->fd < 0) {
        qlite_error_errno(error, errno, "could not open /dev/net/tun");
        return false;
    }
    unsigned features = 0;
    if (ioctl(tap->fd, TUNGETFEATURES, &features) < 0) {
        qlite_error_errno(error, errno, "TUNGETFEATURES on /dev/net/tun");
        return false;
    }
    if (cfg->vnet_hdr_required && !(features & IFF_VNET_HDR)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_MISSING,
                    "vnet_hdr=on: the kernel's tap driver has no IFF_VNET_HDR");
        return false;
    }
    struct ifreq ifr = {0};
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    if (cfg->vnet_hdr && (features & IFF_VNET_HDR)) {
        ifr.ifr_flags |= IFF_VNET_HDR;
    }
    if (cfg->ifname) {
        g_strlcpy(ifr.ifr_name, cfg->ifname, sizeof(ifr.ifr_name));
    }
    if (ioctl(tap->fd, TUNSETIFF, &ifr) < 0) {
        if (cfg->ifname) {
            qlite_error_errno(error, errno, "could not configure tap '%s'", cfg->ifname);
        } else {
            qlite_error_errno(error, errno, "could not create a tap device");
        }
        return false;
    }
    g_strlcpy(tap->ifname, ifr.ifr_name, sizeof(tap->ifname));
    tap->nb.vnet_hdr = ifr.ifr_flags & IFF_VNET_HDR;
    return true;
}

/*
 * fd=N: a tap someone else set up; it brings its own IFF_VNET_HDR choice. It
 * must have IFF_NO_PI, as for QEMU: that cannot be checked, TUNGETIFF reports
 * IFF_NOFILTER in the same bit.
 */
static bool net_tap_adopt(NetTap *tap, int fd, GError **error)
{
    /* A copy, so the descriptor handed in stays valid for whoever passed it. */
    tap->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
    if (tap->fd < 0) {
        qlite_error_errno(error, errno, "fd=%d", fd);
        return false;
    }
    struct ifreq ifr = {0};
    if (ioctl(tap->fd, TUNGETIFF, &ifr) < 0) {
        qlite_error_errno(error, errno, "fd=%d is not a tap device", fd);
        return false;
    }
    if ((ifr.ifr_flags & (IFF_TAP | IFF_TUN)) != IFF_TAP) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "fd=%d is a tun device ('%.*s'), not a tap", fd, IFNAMSIZ, ifr.ifr_name);
        return false;
    }
    int flags = fcntl(tap->fd, F_GETFL);
    if (flags < 0 || fcntl(tap->fd, F_SETFL, flags | O_NONBLOCK) < 0) {
        qlite_error_errno(error, errno, "fd=%d: cannot make it non-blocking", fd);
        return false;
    }
    g_strlcpy(tap->ifname, ifr.ifr_name, sizeof(tap->ifname));
    tap->nb.vnet_hdr = ifr.ifr_flags & IFF_VNET_HDR;
    return true;
}

NetBackend *net_tap_new(const NetdevConfig *cfg, GError **error)
{
    g_autoptr(NetBackend) nb = NULL;
    NetTap *tap = g_new0(NetTap, 1);
    nb = &tap->nb;
    nb->ops = &net_tap_ops;
    nb->id = g_strdup(cfg->id);
    tap->fd = -1;
    if (cfg->fd >= 0 ? !net_tap_adopt(tap, cfg->fd, error) : !net_tap_open(tap, cfg, error)) {
        return NULL;
    }
    /* The v1 header: virtio_net_hdr plus num_buffers, as virtio 1.x frontends use it. */
    int hdr_len = NET_VNET_HDR_LEN;
    if (nb->vnet_hdr && ioctl(tap->fd, TUNSETVNETHDRSZ, &hdr_len) < 0) {
        qlite_error_errno(error, errno, "could not set the vnet header size of tap '%s'",
                          tap->ifname);
        return NULL;
    }
    tap->buf = g_malloc(NET_VNET_HDR_LEN + NET_MAX_FRAME);
    return g_steal_pointer(&nb);
}
