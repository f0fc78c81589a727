/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Network backends (-netdev): where a NIC's frames go. A backend moves whole
 * Ethernet frames between a frontend (virtio-net) and the outside world:
 * libslirp user networking, or a tap device.
 *
 * Threads: a backend has no thread of its own. net_backend_attach hands it
 * the frontend's GMainContext (the device's IoThread); from then on every
 * backend call and every callback into the frontend happens on that thread,
 * so neither side needs a lock.
 *
 * Frames with vnet_hdr: when NetBackend.vnet_hdr is true, every frame in both
 * directions starts with a struct virtio_net_hdr_v1 (NET_VNET_HDR_LEN bytes,
 * little-endian, num_buffers ignored), the tap IFF_VNET_HDR format, so
 * checksum and segmentation offloads pass through. Otherwise frames are bare
 * Ethernet, fully checksummed, at most NET_MAX_FRAME bytes.
 */
#include <glib.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/uio.h>

#define NET_VNET_HDR_LEN 12
#define NET_MAX_FRAME    65536 /* an offloaded (GSO) frame, without the vnet header */

typedef struct NetBackend NetBackend;

/* struct virtio_net_hdr_v1 (virtio 1.2 §5.1.6), little-endian: the vnet header above. */
typedef struct {
    uint8_t flags;
    uint8_t gso_type;
    uint16_t hdr_len;
    uint16_t gso_size;
    uint16_t csum_start;
    uint16_t csum_offset;
    uint16_t num_buffers;
} NetVnetHdr;
G_STATIC_ASSERT(sizeof(NetVnetHdr) == NET_VNET_HDR_LEN);

/* A host forwarding rule: hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT */
typedef struct HostFwd {
    bool udp;
    struct in_addr host_addr; /* INADDR_ANY when empty */
    uint16_t host_port;
    struct in_addr guest_addr; /* 0 when empty: the first DHCP address (x.x.x.15) */
    uint16_t guest_port;
} HostFwd;

typedef enum { NETDEV_USER, NETDEV_TAP } NetdevType;

/* One -netdev (or the netdev half of a -nic). */
typedef struct NetdevConfig {
    NetdevType type;
    char *id;
    /* user */
    struct in_addr net;     /* default 10.0.2.0 */
    struct in_addr netmask; /* default 255.255.255.0 */
    bool restrict_;         /* restrict=on: the guest cannot reach beyond the host */
    GArray *hostfwd;        /* HostFwd */
    /* tap */
    char *ifname;           /* NULL: the kernel picks tapN */
    int fd;                 /* fd=N handed in, or -1 */
    bool vnet_hdr;          /* vnet_hdr=on|off, default on when the tap supports it */
    bool vnet_hdr_required; /* vnet_hdr=on given explicitly */
} NetdevConfig;

/*
 * Parses "user,id=n0,..." or "tap,id=n0,...", the -netdev argument. Errors
 * name the option and the value, as QEMU's do.
 */
NetdevConfig *netdev_config_parse(const char *spec, GError **error);
void netdev_config_free(NetdevConfig *cfg);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NetdevConfig, netdev_config_free)
/* "tcp::5555-:22" and the other forms above. */
bool hostfwd_parse(const char *rule, HostFwd *out, GError **error);

/*
 * The frontend's side: called on the attached context with one received
 * frame (vnet header first when vnet_hdr). Returns false when the frontend
 * has no room now: the backend keeps the frame (and stops reading its
 * source, or queues a bounded number of frames) until net_backend_rx_ready.
 * Only the backend's own sources call it, never net_backend_send or
 * net_backend_rx_ready, so it does not re-enter the frontend's own calls.
 */
typedef bool (*NetReceiveFn)(void *opaque, const struct iovec *iov, unsigned iovcnt);

/* Offloads the guest accepted for frames it receives (tap: TUNSETOFFLOAD). */
typedef struct NetOffloads {
    bool csum, tso4, tso6, ecn, ufo;
} NetOffloads;

typedef struct NetBackendOps {
    const char *type; /* "user", "tap" */
    /* Start delivering frames through nb->receive on ctx. */
    bool (*attach)(NetBackend *nb, GMainContext *ctx, GError **error);
    /* Send one frame to the outside; false when it was dropped. */
    bool (*send)(NetBackend *nb, const struct iovec *iov, unsigned iovcnt);
    /* The frontend has receive buffers again. */
    void (*rx_ready)(NetBackend *nb);
    /* Optional: offloads the guest can take (only called when vnet_hdr). */
    void (*set_offloads)(NetBackend *nb, const NetOffloads *o);
    /* Detach from the context and free everything. */
    void (*free)(NetBackend *nb);
} NetBackendOps;

struct NetBackend {
    const NetBackendOps *ops;
    char *id;
    bool vnet_hdr; /* frames carry the vnet header, both ways */
    bool attached; /* a frontend took it (one frontend per backend) */
    NetReceiveFn receive;
    void *receive_opaque;
};

/*
 * Creates the backend a -netdev describes: slirp is set up and its host
 * forwarding ports bound here (a port in use fails now, naming the rule);
 * a tap is opened here. Runs no I/O until attached.
 */
NetBackend *net_backend_new(const NetdevConfig *cfg, GError **error);
/* Frontend side; on the thread that owns ctx after attach. */
bool net_backend_attach(NetBackend *nb, GMainContext *ctx, NetReceiveFn receive, void *opaque,
                        GError **error);
bool net_backend_send(NetBackend *nb, const struct iovec *iov, unsigned iovcnt);
void net_backend_rx_ready(NetBackend *nb);
void net_backend_set_offloads(NetBackend *nb, const NetOffloads *o);
/* After the frontend stopped using it (its IoThread ended or stopped). */
void net_backend_free(NetBackend *nb);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(NetBackend, net_backend_free)
