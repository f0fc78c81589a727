/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-net, virtio 1.2 §5.1: receiveq1 and transmitq1 (no control queue, no
 * multiqueue) served on the device's IoThread, which is also the backend's.
 * Transmitted frames are handed to the backend as they are taken; a received
 * frame is copied into the driver's buffers when the backend delivers it, or
 * refused (the backend holds it) until the driver adds buffers. With a
 * vnet_hdr backend (tap) the checksum and segmentation offloads pass through
 * in the header; with a bare one (slirp) none is offered.
 */
#include "virtio/net.h"
#include "util/error.h"
#include "util/iov.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* §5.1.3 */
#define VIRTIO_NET_F_CSUM       0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MAC        5
#define VIRTIO_NET_F_GUEST_TSO4 7
#define VIRTIO_NET_F_GUEST_TSO6 8
#define VIRTIO_NET_F_GUEST_ECN  9
#define VIRTIO_NET_F_HOST_TSO4  11
#define VIRTIO_NET_F_HOST_TSO6  12
#define VIRTIO_NET_F_HOST_ECN   13
#define VIRTIO_NET_F_MRG_RXBUF  15
#define VIRTIO_NET_F_STATUS     16

/* §5.1.4 */
#define VIRTIO_NET_S_LINK_UP 1

/* §5.1.6 header flags and GSO types */
#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_F_DATA_VALID 2
#define VIRTIO_NET_HDR_GSO_NONE     0
#define VIRTIO_NET_HDR_GSO_TCPV4    1
#define VIRTIO_NET_HDR_GSO_TCPV6    4
#define VIRTIO_NET_HDR_GSO_ECN      0x80

/* §5.1.2 */
#define NET_RXQ 0
#define NET_TXQ 1

#define NET_QUEUE_SIZE 256
/* Frames sent per turn of the IoThread's loop: a flooding driver leaves room for receive. */
#define NET_TX_BURST 128
/* Anything shorter is not an Ethernet frame. */
#define NET_ETH_HLEN 14

/*
 * §5.1.4, little-endian. max_virtqueue_pairs and every later field exist only
 * with features not offered here (MQ, RSS, MTU, SPEED_DUPLEX, ...), so the
 * config space ends after status.
 */
typedef struct __attribute__((packed)) {
    uint8_t mac[6];
    uint16_t status;
} VirtioNetConfigSpace;
G_STATIC_ASSERT(sizeof(VirtioNetConfigSpace) == 8);

/* The features that let a header ask for each offload, in one direction. */
typedef struct {
    unsigned csum, tso4, tso6, ecn;
} NetHdrFeatures;

static const NetHdrFeatures net_tx_hdr_features = {VIRTIO_NET_F_CSUM, VIRTIO_NET_F_HOST_TSO4,
                                                   VIRTIO_NET_F_HOST_TSO6, VIRTIO_NET_F_HOST_ECN};
static const NetHdrFeatures net_rx_hdr_features = {VIRTIO_NET_F_GUEST_CSUM, VIRTIO_NET_F_GUEST_TSO4,
                                                   VIRTIO_NET_F_GUEST_TSO6, VIRTIO_NET_F_GUEST_ECN};

typedef struct VirtioNet {
    VirtioDevice vdev; /* first: the core hands back a VirtioDevice * */
    NetBackend *backend;
    VirtioNetConfigSpace config;
    GSource *tx_again;    /* the rest of a transmit burst is due (IoThread) */
    VirtioNetStats stats; /* IoThread */
} VirtioNet;
G_STATIC_ASSERT(offsetof(VirtioNet, vdev) == 0);

typedef enum {
    NET_RX_OK,   /* chains taken for the whole frame */
    NET_RX_WAIT, /* too few buffers for now: all given back, a kick asked for */
    NET_RX_DROP, /* the frame can never fit, or the driver broke the rules */
} NetRxTake;

/* ---- frame parsing ---- */

/*
 * §5.1.6.2.1 (driver) and §5.1.6.4.1 (device): a header asks only for the
 * offloads negotiated for its direction; anything else could not be honoured.
 */
static bool net_hdr_allowed(VirtioDevice *vdev, const NetVnetHdr *hdr, const NetHdrFeatures *f)
{
    if ((hdr->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) && !virtio_has_feature(vdev, f->csum)) {
        return false;
    }
    if ((hdr->gso_type & VIRTIO_NET_HDR_GSO_ECN) && !virtio_has_feature(vdev, f->ecn)) {
        return false;
    }
    switch (hdr->gso_type & ~VIRTIO_NET_HDR_GSO_ECN) {
    case VIRTIO_NET_HDR_GSO_NONE:
        return true;
    case VIRTIO_NET_HDR_GSO_TCPV4:
        return virtio_has_feature(vdev, f->tso4);
    case VIRTIO_NET_HDR_GSO_TCPV6:
        return virtio_has_feature(vdev, f->tso6);
    default:
        return false; /* UDP fragmentation and segmentation are not offered */
    }
}

/* ---- transmit (§5.1.6.2) ---- */

/* The backend takes the frame before returning: nothing points into guest RAM afterwards. */
static bool net_tx_send(VirtioNet *n, const VirtQueueElement *elem, NetVnetHdr *hdr)
{
    g_autofree struct iovec *iov = g_new(struct iovec, elem->out_num + 1);
    unsigned cnt = 0;
    if (n->backend->vnet_hdr) {
        hdr->num_buffers = 0;
        iov[cnt++] = (struct iovec){.iov_base = hdr, .iov_len = sizeof(*hdr)};
    }
    cnt += iov_slice(elem->out_sg, elem->out_num, sizeof(*hdr), SIZE_MAX, iov + cnt);
    return net_backend_send(n->backend, iov, cnt);
}

/*
 * One chain: header then frame, all device-readable. A chain of another shape
 * is malformed (NEEDS_RESET); a well-formed one carrying a frame that cannot
 * go out (runt, oversized, asking for an offload not negotiated) is dropped.
 * Returns false when the device stopped.
 */
static bool net_tx_one(VirtioNet *n, VirtQueue *vq, VirtQueueElement *elem)
{
    const char *fault = elem->in_num                         ? "has device-writable buffers"
                        : elem->out_len < sizeof(NetVnetHdr) ? "is shorter than the header"
                                                             : NULL;
    if (fault) {
        virtio_error(&n->vdev, "transmit chain %u %s", elem->head, fault);
        virtqueue_detach(vq, elem);
        return false;
    }
    NetVnetHdr hdr;
    iov_to_buf(elem->out_sg, elem->out_num, 0, &hdr, sizeof(hdr));
    uint64_t len = elem->out_len - sizeof(hdr);
    if (len >= NET_ETH_HLEN && len <= NET_MAX_FRAME &&
        net_hdr_allowed(&n->vdev, &hdr, &net_tx_hdr_features) && net_tx_send(n, elem, &hdr)) {
        n->stats.tx_frames++;
        n->stats.tx_bytes += len;
    } else {
        n->stats.tx_dropped++;
    }
    virtqueue_push(vq, elem, 0);
    return true;
}

/* Sends until the ring is empty or *budget is spent; false when the device stopped. */
static bool net_tx_burst(VirtioNet *n, VirtQueue *vq, unsigned *budget, bool *pushed)
{
    while (*budget > 0) {
        if (!n->vdev.active) {
            return false;
        }
        g_autoptr(GError) err = NULL;
        VirtQueueElement *elem;
        int rc = virtqueue_pop(vq, &elem, &err);
        if (rc < 0) {
            virtio_error(&n->vdev, "transmit queue: %s", err->message);
            return false;
        }
        if (rc == 0) {
            return true;
        }
        (*budget)--;
        if (!net_tx_one(n, vq, elem)) {
            return false;
        }
        *pushed = true;
    }
    return true;
}

static void net_tx_run(VirtioNet *n);

static gboolean net_tx_again(gpointer opaque)
{
    VirtioNet *n = opaque;
    g_clear_pointer(&n->tx_again, g_source_unref);
    net_tx_run(n);
    return G_SOURCE_REMOVE;
}

static void net_tx_cancel(VirtioNet *n)
{
    if (n->tx_again) {
        g_source_destroy(n->tx_again);
        g_clear_pointer(&n->tx_again, g_source_unref);
    }
}

/*
 * Kicks stay off while a burst is running or due; the driver's used-buffer
 * interrupt comes once per burst (virtio_notify applies EVENT_IDX).
 */
static void net_tx_run(VirtioNet *n)
{
    VirtQueue *vq = &n->vdev.queues[NET_TXQ];
    unsigned budget = NET_TX_BURST;
    bool pushed = false;
    bool ok;
    do {
        virtqueue_set_notification(vq, false);
        ok = net_tx_burst(n, vq, &budget, &pushed);
        if (ok && budget == 0) {
            /* Default priority, not idle: taken in turn with the backend's fd. */
            n->tx_again = g_idle_source_new();
            g_source_set_priority(n->tx_again, G_PRIORITY_DEFAULT);
            g_source_set_callback(n->tx_again, net_tx_again, n, NULL);
            g_source_attach(n->tx_again, iothread_context(n->vdev.iothread));
            break;
        }
        virtqueue_set_notification(vq, true);
    } while (ok && !virtqueue_empty(vq));
    if (pushed) {
        virtio_notify(&n->vdev, vq);
    }
}

/* ---- receive (§5.1.6.3, §5.1.6.4) ---- */

/* The header the driver gets: the backend's, limited to what the driver accepted (§5.1.6.4.1). */
static bool net_rx_hdr(VirtioNet *n, const struct iovec *iov, unsigned iovcnt, NetVnetHdr *hdr)
{
    memset(hdr, 0, sizeof(*hdr));
    if (!n->backend->vnet_hdr) {
        return true;
    }
    iov_to_buf(iov, iovcnt, 0, hdr, sizeof(*hdr));
    if (!net_hdr_allowed(&n->vdev, hdr, &net_rx_hdr_features)) {
        return false;
    }
    /* DATA_VALID needs GUEST_CSUM too; RSC_INFO and unknown bits are never negotiated. */
    hdr->flags &= virtio_has_feature(&n->vdev, VIRTIO_NET_F_GUEST_CSUM)
                      ? VIRTIO_NET_HDR_F_NEEDS_CSUM | VIRTIO_NET_HDR_F_DATA_VALID
                      : 0;
    return true;
}

static void net_rx_give_back(VirtQueue *vq, VirtQueueElement **elems, unsigned count)
{
    while (count > 0) {
        virtqueue_unpop(vq, elems[--count]);
    }
}

static void net_rx_abandon(VirtQueue *vq, VirtQueueElement **elems, unsigned count)
{
    for (unsigned i = 0; i < count; i++) {
        virtqueue_detach(vq, elems[i]);
    }
}

/*
 * Takes chains holding need bytes into elems: one chain without MRG_RXBUF,
 * as many as it takes with it (§5.1.6.3.2). Chains are device-writable and
 * hold at least a header (§5.1.6.3.1), or the driver broke the rules.
 */
static NetRxTake net_rx_take(VirtioNet *n, VirtQueue *vq, size_t need, VirtQueueElement **elems,
                             unsigned *count)
{
    bool mergeable = virtio_has_feature(&n->vdev, VIRTIO_NET_F_MRG_RXBUF);
    bool kick_asked = false;
    size_t room = 0;
    unsigned k = 0;
    while (room < need) {
        if (k == vq->size) {
            /* The driver handed over the whole ring and the frame still does not fit. */
            net_rx_give_back(vq, elems, k);
            return NET_RX_DROP;
        }
        g_autoptr(GError) err = NULL;
        int rc = virtqueue_pop(vq, &elems[k], &err);
        if (rc < 0) {
            virtio_error(&n->vdev, "receive queue: %s", err->message);
            net_rx_abandon(vq, elems, k);
            return NET_RX_DROP;
        }
        if (rc == 0) {
            if (kick_asked) {
                net_rx_give_back(vq, elems, k);
                return NET_RX_WAIT;
            }
            /*
             * Ask for a kick, then look once more so buffers added meanwhile
             * are not missed. The chains are still taken here, so with
             * EVENT_IDX avail_event lands past them (§2.7.10): the driver
             * kicks on its next buffer, not only after those are used.
             */
            virtqueue_set_notification(vq, true);
            kick_asked = true;
            continue;
        }
        VirtQueueElement *e = elems[k++];
        const char *fault = e->out_num                       ? "has device-readable buffers"
                            : e->in_len < sizeof(NetVnetHdr) ? "is shorter than the header"
                                                             : NULL;
        if (fault) {
            virtio_error(&n->vdev, "receive chain %u %s", e->head, fault);
            net_rx_abandon(vq, elems, k);
            return NET_RX_DROP;
        }
        room += e->in_len;
        if (!mergeable && room < need) {
            /* §5.1.6.3.2: one chain per frame; the next, smaller frame may fit it. */
            net_rx_give_back(vq, elems, k);
            return NET_RX_DROP;
        }
    }
    *count = k;
    return NET_RX_OK;
}

/*
 * §5.1.6.4: the header at the start of the first chain, the frame flowing on
 * through the others, each but the last filled completely; all published at
 * once so the driver never sees part of a frame.
 */
static void net_rx_fill(VirtQueue *vq, NetVnetHdr *hdr, const struct iovec *iov, unsigned iovcnt,
                        size_t skip, size_t len, VirtQueueElement **elems, unsigned count)
{
    uint32_t used[NET_QUEUE_SIZE];
    hdr->num_buffers = GUINT16_TO_LE(count);
    size_t done = 0;
    for (unsigned i = 0; i < count; i++) {
        VirtQueueElement *e = elems[i];
        size_t off = 0;
        if (i == 0) {
            off = iov_from_buf(e->in_sg, e->in_num, 0, hdr, sizeof(*hdr));
        }
        size_t chunk = MIN(e->in_len - off, len - done);
        iov_copy_iov(e->in_sg, e->in_num, off, iov, iovcnt, skip + done, chunk);
        done += chunk;
        used[i] = (uint32_t)(off + chunk);
    }
    virtqueue_push_many(vq, elems, used, count);
}

/* NetReceiveFn, on the IoThread. */
static bool net_receive(void *opaque, const struct iovec *iov, unsigned iovcnt)
{
    VirtioNet *n = opaque;
    VirtioDevice *vdev = &n->vdev;
    /* Not live, or the VM is paused: guest memory stays untouched, the backend keeps the frame. */
    if (!vdev->active || vdev->paused) {
        return false;
    }
    size_t skip = n->backend->vnet_hdr ? sizeof(NetVnetHdr) : 0;
    size_t total = iov_size(iov, iovcnt);
    NetVnetHdr hdr;
    if (total < skip + NET_ETH_HLEN || total - skip > NET_MAX_FRAME ||
        !net_rx_hdr(n, iov, iovcnt, &hdr)) {
        n->stats.rx_dropped++;
        return true;
    }
    size_t len = total - skip;
    VirtQueue *vq = &vdev->queues[NET_RXQ];
    VirtQueueElement *elems[NET_QUEUE_SIZE];
    unsigned count = 0;
    switch (net_rx_take(n, vq, sizeof(hdr) + len, elems, &count)) {
    case NET_RX_WAIT:
        return false;
    case NET_RX_DROP:
        n->stats.rx_dropped++;
        return true;
    case NET_RX_OK:
        break;
    }
    net_rx_fill(vq, &hdr, iov, iovcnt, skip, len, elems, count);
    virtio_notify(vdev, vq);
    n->stats.rx_frames++;
    n->stats.rx_bytes += len;
    return true;
}

/* ---- ops table ---- */

static void net_queue_notify(VirtioDevice *vdev, VirtQueue *vq)
{
    VirtioNet *n = (VirtioNet *)vdev;
    if (vq == &vdev->queues[NET_RXQ]) {
        /* New buffers: no more kicks wanted until the ring runs short again. */
        virtqueue_set_notification(vq, false);
        net_backend_rx_ready(n->backend);
    } else if (!n->tx_again) {
        net_tx_run(n);
    }
}

/* Tells the backend which offloads the driver takes, dependencies included (§5.1.3.1). */
static void net_activate(VirtioDevice *vdev)
{
    VirtioNet *n = (VirtioNet *)vdev;
    NetOffloads o = {.csum = virtio_has_feature(vdev, VIRTIO_NET_F_GUEST_CSUM)};
    o.tso4 = o.csum && virtio_has_feature(vdev, VIRTIO_NET_F_GUEST_TSO4);
    o.tso6 = o.csum && virtio_has_feature(vdev, VIRTIO_NET_F_GUEST_TSO6);
    o.ecn = (o.tso4 || o.tso6) && virtio_has_feature(vdev, VIRTIO_NET_F_GUEST_ECN);
    net_backend_set_offloads(n->backend, &o);
}

/*
 * Nothing is ever in flight (frames are copied both ways before the call
 * that carries them returns): a pending transmit burst is all there is to
 * stop. Resume and DRIVER_OK re-kick both queues.
 */
static void net_drain(VirtioDevice *vdev)
{
    net_tx_cancel((VirtioNet *)vdev);
}

static void net_reset(VirtioDevice *vdev)
{
    VirtioNet *n = (VirtioNet *)vdev;
    const VirtioNetStats *s = &n->stats;
    net_tx_cancel(n);
    g_debug("%s '%s' reset; so far rx %" PRIu64 " frames %" PRIu64 " bytes %" PRIu64
            " dropped, tx %" PRIu64 " frames %" PRIu64 " bytes %" PRIu64 " dropped",
            vdev->name, vdev->id, s->rx_frames, s->rx_bytes, s->rx_dropped, s->tx_frames,
            s->tx_bytes, s->tx_dropped);
}

static void net_config_read(VirtioDevice *vdev, uint32_t offset, uint8_t *data, unsigned len)
{
    VirtioNet *n = (VirtioNet *)vdev;
    memcpy(data, (const uint8_t *)&n->config + offset, len);
}

static void net_config_write(VirtioDevice *vdev, uint32_t offset, const uint8_t *data, unsigned len)
{
    /* §5.1.4: read-only for the driver; only legacy drivers wrote mac. */
}

static void net_free(VirtioDevice *vdev)
{
    VirtioNet *n = (VirtioNet *)vdev;
    net_backend_free(n->backend);
    g_free(n);
}

static const VirtioDeviceOps net_ops = {
    .reset = net_reset,
    .drain = net_drain,
    .activate = net_activate,
    .queue_notify = net_queue_notify,
    .config_read = net_config_read,
    .config_write = net_config_write,
    .free = net_free,
};

/* ---- lifecycle ---- */

typedef struct {
    VirtioNet *n;
    NetBackend *backend;
    bool ok;
    GError *error;
} NetAttach;

static void net_attach_on_thread(void *opaque)
{
    NetAttach *a = opaque;
    GMainContext *ctx = iothread_context(a->n->vdev.iothread);
    a->ok = net_backend_attach(a->backend, ctx, net_receive, a->n, &a->error);
    if (a->ok) {
        a->n->backend = a->backend;
    }
}

VirtioDevice *virtio_net_new(const VirtioNetConfig *cfg, NetBackend *backend, GuestMem *mem,
                             GError **error)
{
    uint64_t features = (1ULL << VIRTIO_F_VERSION_1) | (1ULL << VIRTIO_F_INDIRECT_DESC) |
                        (1ULL << VIRTIO_F_EVENT_IDX) | (1ULL << VIRTIO_NET_F_MAC) |
                        (1ULL << VIRTIO_NET_F_STATUS) | (1ULL << VIRTIO_NET_F_MRG_RXBUF);
    if (backend->vnet_hdr) {
        features |= (1ULL << VIRTIO_NET_F_CSUM) | (1ULL << VIRTIO_NET_F_HOST_TSO4) |
                    (1ULL << VIRTIO_NET_F_HOST_TSO6) | (1ULL << VIRTIO_NET_F_HOST_ECN) |
                    (1ULL << VIRTIO_NET_F_GUEST_CSUM) | (1ULL << VIRTIO_NET_F_GUEST_TSO4) |
                    (1ULL << VIRTIO_NET_F_GUEST_TSO6) | (1ULL << VIRTIO_NET_F_GUEST_ECN);
    }

    VirtioNet *n = g_new0(VirtioNet, 1);
    memcpy(n->config.mac, cfg->mac, sizeof(n->config.mac));
    n->config.status = GUINT16_TO_LE(VIRTIO_NET_S_LINK_UP);
    if (!virtio_device_init(&n->vdev, "virtio-net", cfg->id ? cfg->id : "virtio-net", VIRTIO_ID_NET,
                            &net_ops, mem, features, 2, NET_QUEUE_SIZE,
                            sizeof(VirtioNetConfigSpace), error)) {
        g_free(n);
        return NULL;
    }
    NetAttach a = {.n = n, .backend = backend};
    iothread_run_sync(n->vdev.iothread, net_attach_on_thread, &a);
    if (!a.ok) {
        g_propagate_error(error, a.error);
        virtio_device_free(&n->vdev); /* n->backend is still NULL: the caller keeps it */
        return NULL;
    }
    return &n->vdev;
}

typedef struct {
    VirtioNet *n;
    VirtioNetStats *out;
} NetStatsCall;

static void net_stats_on_thread(void *opaque)
{
    NetStatsCall *c = opaque;
    *c->out = c->n->stats;
}

void virtio_net_get_stats(VirtioDevice *vdev, VirtioNetStats *stats)
{
    g_assert(vdev->device_id == VIRTIO_ID_NET);
    NetStatsCall c = {.n = (VirtioNet *)vdev, .out = stats};
    iothread_run_sync(vdev->iothread, net_stats_on_thread, &c);
}

/* ---- MAC addresses ---- */

bool virtio_net_parse_mac(const char *text, uint8_t mac[6], GError **error)
{
    uint8_t m[6];
    const char *p = text;
    for (unsigned i = 0; i < 6; i++, p += 3) {
        if (!g_ascii_isxdigit(p[0]) || !g_ascii_isxdigit(p[1]) || p[2] != (i < 5 ? ':' : '\0')) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "invalid mac '%s' (expected six hex bytes such as 52:54:00:12:34:56)",
                        text);
            return false;
        }
        m[i] = (uint8_t)(g_ascii_xdigit_value(p[0]) << 4 | g_ascii_xdigit_value(p[1]));
    }
    /* IEEE 802: the low bit of the first byte marks a group address. */
    if (m[0] & 1) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "mac '%s' is a multicast address; a NIC needs a unicast one", text);
        return false;
    }
    static const uint8_t zero[6];
    if (!memcmp(m, zero, sizeof(m))) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "mac '%s' is all zeroes", text);
        return false;
    }
    memcpy(mac, m, sizeof(m));
    return true;
}

void virtio_net_default_mac(unsigned index, uint8_t mac[6])
{
    uint32_t low = 0x123456 + index;
    mac[0] = 0x52;
    mac[1] = 0x54;
    mac[2] = 0x00;
    mac[3] = (uint8_t)(low >> 16);
    mac[4] = (uint8_t)(low >> 8);
    mac[5] = (uint8_t)low;
}
