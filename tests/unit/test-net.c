/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * -netdev parsing and the backends, without a VM: the test plays the guest,
 * building its Ethernet frames by hand (ARP, RFC 826; DHCP, RFC 2131; IPv4,
 * UDP and TCP headers, RFC 791/768/793) and iterating the context the
 * backend is attached to.
 */
#include "net/net.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/ethtool.h>
#include <linux/if_packet.h>
#include <linux/if_tun.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <poll.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#define WAIT_MS 5000

#define ETH_HLEN   14
#define ETH_P_IP   0x0800
#define ETH_P_ARP  0x0806
#define ETH_P_TEST 0x88b5 /* IEEE 802 local experimental */
#define IP_HLEN    20
#define UDP_HLEN   8
#define TCP_HLEN   20
#define BOOTP_LEN  300 /* the fixed part, the magic cookie and options, padded as clients do */
#define BOOTP_OPTS 240 /* offset of the options in a BOOTP message */
#define TCP_SYN    0x02
#define TCP_RST    0x04
#define TCP_ACK    0x10

static const uint8_t guest_mac[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
static const uint8_t broadcast_mac[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};

static uint32_t ip4(unsigned a, unsigned b, unsigned c, unsigned d)
{
    return a << 24 | b << 16 | c << 8 | d;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = v >> 8;
    p[1] = v & 0xff;
}

static void put32(uint8_t *p, uint32_t v)
{
    put16(p, v >> 16);
    put16(p + 2, v & 0xffff);
}

/* ---- hostfwd= ---- */

static void check_hostfwd(const char *rule, bool udp, uint32_t host, uint16_t host_port,
                          uint32_t guest, uint16_t guest_port)
{
    g_autoptr(GError) err = NULL;
    HostFwd f;
    g_assert_true(hostfwd_parse(rule, &f, &err));
    g_assert_no_error(err);
    g_assert_cmpint(f.udp, ==, udp);
    g_assert_cmphex(ntohl(f.host_addr.s_addr), ==, host);
    g_assert_cmpuint(f.host_port, ==, host_port);
    g_assert_cmphex(ntohl(f.guest_addr.s_addr), ==, guest);
    g_assert_cmpuint(f.guest_port, ==, guest_port);
}

static void test_hostfwd_good(void)
{
    check_hostfwd("tcp::5555-:22", false, 0, 5555, 0, 22);
    check_hostfwd("::5555-:22", false, 0, 5555, 0, 22);
    check_hostfwd("udp::5353-:53", true, 0, 5353, 0, 53);
    check_hostfwd("udp:127.0.0.1:6000-10.0.2.20:53", true, ip4(127, 0, 0, 1), 6000,
                  ip4(10, 0, 2, 20), 53);
    check_hostfwd("tcp:0.0.0.0:65535-:1", false, 0, 65535, 0, 1);
}

static void check_hostfwd_error(const char *rule, const char *why)
{
    g_autoptr(GError) err = NULL;
    HostFwd f;
    g_assert_false(hostfwd_parse(rule, &f, &err));
    g_autofree char *msg = g_strdup_printf("invalid host forwarding rule '%s': %s", rule, why);
    g_assert_cmpstr(err->message, ==, msg);
}

static void test_hostfwd_bad(void)
{
    check_hostfwd_error("tcp", "expected [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT");
    check_hostfwd_error("sctp::1-:2", "protocol 'sctp' is not tcp or udp");
    check_hostfwd_error("5555-:22", "protocol '5555-' is not tcp or udp");
    check_hostfwd_error("tcp::5555", "no '-' between the host and the guest side");
    check_hostfwd_error("tcp:5555-:22", "the host side '5555' is not [ADDR]:PORT");
    check_hostfwd_error("tcp::5555-22", "the guest side '22' is not [ADDR]:PORT");
    check_hostfwd_error("tcp:1.2.3:5555-:22", "'1.2.3' is not a valid host IPv4 address");
    check_hostfwd_error("tcp::5555-10.0.2.300:22",
                        "'10.0.2.300' is not a valid guest IPv4 address");
    check_hostfwd_error("tcp::0-:22", "host port '0' is not a number from 1 to 65535");
    check_hostfwd_error("tcp::65536-:22", "host port '65536' is not a number from 1 to 65535");
    check_hostfwd_error("tcp::x-:22", "host port 'x' is not a number from 1 to 65535");
    check_hostfwd_error("tcp::+22-:22", "host port '+22' is not a number from 1 to 65535");
    check_hostfwd_error("tcp::22-:0", "guest port '0' is not a number from 1 to 65535");
    check_hostfwd_error("tcp::22-:", "guest port '' is not a number from 1 to 65535");
}

/* ---- -netdev ---- */

static NetdevConfig *parse_ok(const char *spec)
{
    g_autoptr(GError) err = NULL;
    NetdevConfig *cfg = netdev_config_parse(spec, &err);
    g_assert_no_error(err);
    g_assert_nonnull(cfg);
    return cfg;
}

static void check_net(const char *spec, uint32_t net, uint32_t mask)
{
    g_autoptr(NetdevConfig) cfg = parse_ok(spec);
    g_assert_cmphex(ntohl(cfg->net.s_addr), ==, net);
    g_assert_cmphex(ntohl(cfg->netmask.s_addr), ==, mask);
}

static void test_config_user(void)
{
    g_autoptr(NetdevConfig) cfg = parse_ok("user,id=n0");
    g_assert_cmpint(cfg->type, ==, NETDEV_USER);
    g_assert_cmpstr(cfg->id, ==, "n0");
    g_assert_cmphex(ntohl(cfg->net.s_addr), ==, ip4(10, 0, 2, 0));
    g_assert_cmphex(ntohl(cfg->netmask.s_addr), ==, ip4(255, 255, 255, 0));
    g_assert_false(cfg->restrict_);
    g_assert_cmpuint(cfg->hostfwd->len, ==, 0);

    check_net("user,id=n0,net=192.168.76.0/24", ip4(192, 168, 76, 0), ip4(255, 255, 255, 0));
    check_net("user,id=n0,net=10.0.0.0/255.255.0.0", ip4(10, 0, 0, 0), ip4(255, 255, 0, 0));
    check_net("user,id=n0,net=172.16.5.7/20", ip4(172, 16, 0, 0), ip4(255, 255, 240, 0));
    check_net("user,id=n0,net=10.0.2.0/27", ip4(10, 0, 2, 0), ip4(255, 255, 255, 224));
    /* A bare address takes its class's mask. */
    check_net("user,id=n0,net=10.1.0.0", ip4(10, 0, 0, 0), ip4(255, 0, 0, 0));
    check_net("user,id=n0,net=172.20.0.0", ip4(172, 20, 0, 0), ip4(255, 255, 0, 0));
    check_net("user,id=n0,net=192.168.1.0", ip4(192, 168, 1, 0), ip4(255, 255, 255, 0));

    g_autoptr(NetdevConfig) r = parse_ok("id=n1,type=user,restrict=on");
    g_assert_cmpstr(r->id, ==, "n1");
    g_assert_true(r->restrict_);
    g_autoptr(NetdevConfig) r2 = parse_ok("user,id=n1,restrict=off");
    g_assert_false(r2->restrict_);

    g_autoptr(NetdevConfig) f =
        parse_ok("user,id=n0,hostfwd=tcp::2222-:22,restrict=yes,hostfwd=udp:127.0.0.1:5353-:53,"
                 "hostfwd=::8080-10.0.2.20:80");
    g_assert_true(f->restrict_);
    g_assert_cmpuint(f->hostfwd->len, ==, 3);
    HostFwd *h = &g_array_index(f->hostfwd, HostFwd, 0);
    g_assert_false(h->udp);
    g_assert_cmpuint(h->host_port, ==, 2222);
    g_assert_cmpuint(h->guest_port, ==, 22);
    h = &g_array_index(f->hostfwd, HostFwd, 1);
    g_assert_true(h->udp);
    g_assert_cmphex(ntohl(h->host_addr.s_addr), ==, ip4(127, 0, 0, 1));
    g_assert_cmpuint(h->host_port, ==, 5353);
    h = &g_array_index(f->hostfwd, HostFwd, 2);
    g_assert_false(h->udp);
    g_assert_cmphex(ntohl(h->guest_addr.s_addr), ==, ip4(10, 0, 2, 20));
    g_assert_cmpuint(h->guest_port, ==, 80);
}

static void test_config_tap(void)
{
    g_autoptr(NetdevConfig) cfg = parse_ok("tap,id=t0,ifname=tap0,script=no,downscript=no");
    g_assert_cmpint(cfg->type, ==, NETDEV_TAP);
    g_assert_cmpstr(cfg->id, ==, "t0");
    g_assert_cmpstr(cfg->ifname, ==, "tap0");
    g_assert_cmpint(cfg->fd, ==, -1);
    g_assert_true(cfg->vnet_hdr);
    g_assert_false(cfg->vnet_hdr_required);

    g_autoptr(NetdevConfig) any = parse_ok("tap,id=t0");
    g_assert_null(any->ifname);
    g_assert_true(any->vnet_hdr);

    g_autoptr(NetdevConfig) off = parse_ok("tap,id=t0,vnet_hdr=off");
    g_assert_false(off->vnet_hdr);
    g_assert_false(off->vnet_hdr_required);
    g_autoptr(NetdevConfig) on = parse_ok("tap,id=t0,vnet_hdr=on");
    g_assert_true(on->vnet_hdr);
    g_assert_true(on->vnet_hdr_required);

    int p[2];
    g_assert_cmpint(pipe(p), ==, 0);
    g_autofree char *spec = g_strdup_printf("tap,id=t0,fd=%d", p[0]);
    g_autoptr(NetdevConfig) fd = parse_ok(spec);
    g_assert_cmpint(fd->fd, ==, p[0]);
    g_assert_null(fd->ifname);
    close(p[0]);
    close(p[1]);
}

static void check_config_error(const char *spec, const char *message)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(NetdevConfig) cfg = netdev_config_parse(spec, &err);
    g_assert_null(cfg);
    g_assert_nonnull(err);
    g_assert_cmpstr(err->message, ==, message);
}

static void test_config_errors(void)
{
    check_config_error("", "Parameter 'type' is missing");
    check_config_error("id=n0", "Parameter 'type' is missing");
    check_config_error("socket,id=n0", "'socket' is not a valid netdev backend type (user, tap)");
    check_config_error("user", "Parameter 'id' is missing");
    check_config_error("user,id=0n", "Parameter 'id' expects an identifier, not '0n'");
    check_config_error("user,id=n0,=x", "empty parameter name in 'user,id=n0,=x'");
    check_config_error("user,id=n0,bogus=1", "Invalid parameter 'bogus'");
    check_config_error("user,id=n0,ifname=tap0", "Invalid parameter 'ifname'");
    check_config_error("tap,id=t0,hostfwd=tcp::1-:2", "Invalid parameter 'hostfwd'");
    check_config_error("tap,id=t0,restrict=on", "Invalid parameter 'restrict'");

    check_config_error("user,id=n0,net=", "net=: '' is not a valid IPv4 address");
    check_config_error("user,id=n0,net=/24", "net=/24: '' is not a valid IPv4 address");
    check_config_error("user,id=n0,net=10.0.2/24",
                       "net=10.0.2/24: '10.0.2' is not a valid IPv4 address");
    check_config_error("user,id=n0,net=10.0.2.0/28",
                       "net=10.0.2.0/28: the prefix length must be from 4 to 27");
    check_config_error("user,id=n0,net=10.0.2.0/3",
                       "net=10.0.2.0/3: the prefix length must be from 4 to 27");
    check_config_error("user,id=n0,net=10.0.2.0/255.255.255.255",
                       "net=10.0.2.0/255.255.255.255: the prefix length must be from 4 to 27");
    check_config_error("user,id=n0,net=10.0.2.0/33",
                       "net=10.0.2.0/33: '33' is not a prefix length or a netmask");
    check_config_error("user,id=n0,net=10.0.2.0/x",
                       "net=10.0.2.0/x: 'x' is not a prefix length or a netmask");
    check_config_error("user,id=n0,net=10.0.2.0/255.0.255.0",
                       "net=10.0.2.0/255.0.255.0: netmask '255.0.255.0' is not contiguous");
    check_config_error("user,id=n0,net=10.0.2.0/255.255.255.300",
                       "net=10.0.2.0/255.255.255.300: '255.255.255.300' is not a valid netmask");
    check_config_error("user,id=n0,net=224.0.0.0",
                       "net=224.0.0.0: not a class A, B or C address; give a prefix length");
    check_config_error("user,id=n0,restrict=maybe",
                       "Parameter 'restrict' expects 'on' or 'off', not 'maybe'");
    check_config_error("user,id=n0,hostfwd=tcp::22-:22,hostfwd=tcp::0-:22",
                       "invalid host forwarding rule 'tcp::0-:22': host port '0' is not a number "
                       "from 1 to 65535");

    check_config_error("tap,id=t0,script=/etc/qemu-ifup",
                       "script=/etc/qemu-ifup: qlite does not run network scripts; set the tap up "
                       "beforehand and use script=no");
    check_config_error("tap,id=t0,script=no,downscript=/etc/qemu-ifdown",
                       "downscript=/etc/qemu-ifdown: qlite does not run network scripts; set the "
                       "tap up beforehand and use downscript=no");
    check_config_error("tap,id=t0,vnet_hdr=maybe",
                       "Parameter 'vnet_hdr' expects 'on' or 'off', not 'maybe'");
    check_config_error("tap,id=t0,ifname=", "ifname=: an interface name has 1 to 15 characters");
    check_config_error("tap,id=t0,ifname=abcdefghijklmnop",
                       "ifname=abcdefghijklmnop: an interface name has 1 to 15 characters");
    check_config_error("tap,id=t0,fd=0,ifname=tap0",
                       "ifname=, script=, downscript= and vnet_hdr= are invalid with fd=");
    check_config_error("tap,id=t0,fd=0,script=no",
                       "ifname=, script=, downscript= and vnet_hdr= are invalid with fd=");
    check_config_error("tap,id=t0,vnet_hdr=on,fd=0",
                       "ifname=, script=, downscript= and vnet_hdr= are invalid with fd=");
    check_config_error("tap,id=t0,fd=x", "fd=x is not an open file descriptor");
    check_config_error("tap,id=t0,fd=-1", "fd=-1 is not an open file descriptor");
    int p[2];
    g_assert_cmpint(pipe(p), ==, 0);
    close(p[0]);
    close(p[1]);
    g_autofree char *closed = g_strdup_printf("tap,id=t0,fd=%d", p[0]);
    g_autofree char *msg = g_strdup_printf("fd=%d is not an open file descriptor", p[0]);
    check_config_error(closed, msg);
}

/* ---- the guest side of a backend ---- */

typedef struct Guest {
    GMainContext *ctx;
    NetBackend *nb;
    GQueue frames;  /* GBytes, as received */
    unsigned calls; /* receive calls, refused ones included */
    bool refuse;
    bool in_send;
} Guest;

static bool guest_receive(void *opaque, const struct iovec *iov, unsigned iovcnt)
{
    Guest *g = opaque;
    g_assert_false(g->in_send); /* never called from inside net_backend_send */
    g->calls++;
    if (g->refuse) {
        return false;
    }
    GByteArray *a = g_byte_array_new();
    for (unsigned i = 0; i < iovcnt; i++) {
        g_byte_array_append(a, iov[i].iov_base, (guint)iov[i].iov_len);
    }
    g_queue_push_tail(&g->frames, g_byte_array_free_to_bytes(a));
    return true;
}

/* False with *err set when net_backend_new fails. */
static bool guest_start(Guest *g, const char *spec, GError **err)
{
    memset(g, 0, sizeof(*g));
    g_queue_init(&g->frames);
    g_autoptr(NetdevConfig) cfg = netdev_config_parse(spec, err);
    g_assert_nonnull(cfg);
    g->nb = net_backend_new(cfg, err);
    if (!g->nb) {
        return false;
    }
    g_assert_cmpstr(g->nb->id, ==, cfg->id);
    g->ctx = g_main_context_new();
    g_assert_true(net_backend_attach(g->nb, g->ctx, guest_receive, g, err));
    /* One frontend per backend. */
    g_autoptr(GError) again = NULL;
    g_assert_false(net_backend_attach(g->nb, g->ctx, guest_receive, g, &again));
    g_autofree char *msg =
        g_strdup_printf("netdev '%s' is already used by another device", g->nb->id);
    g_assert_cmpstr(again->message, ==, msg);
    return true;
}

static void guest_stop(Guest *g)
{
    net_backend_free(g->nb);
    g_main_context_unref(g->ctx);
    g_queue_clear_full(&g->frames, (GDestroyNotify)g_bytes_unref);
}

/* Sends in two pieces, so the backend has to join them. */
static void guest_send(Guest *g, const uint8_t *frame, size_t len)
{
    struct iovec iov[2] = {
        {.iov_base = (void *)frame, .iov_len = 10},
        {.iov_base = (void *)(frame + 10), .iov_len = len - 10},
    };
    g->in_send = true;
    g_assert_true(net_backend_send(g->nb, iov, 2));
    g->in_send = false;
}

static gboolean set_flag(gpointer data)
{
    *(bool *)data = true;
    return G_SOURCE_REMOVE;
}

/* A timer on the guest's context, so that waiting for a frame ends. */
static GSource *guest_timer(Guest *g, unsigned ms, bool *expired)
{
    *expired = false;
    GSource *t = g_timeout_source_new(ms);
    g_source_set_callback(t, set_flag, expired, NULL);
    g_source_attach(t, g->ctx);
    return t;
}

static void guest_run(Guest *g, unsigned ms)
{
    bool expired;
    GSource *t = guest_timer(g, ms, &expired);
    while (!expired) {
        g_main_context_iteration(g->ctx, TRUE);
    }
    g_source_unref(t);
}

typedef bool (*FrameMatch)(const uint8_t *f, size_t len, const void *arg);

/* The first received frame that matches; the ones before it are dropped. */
static GBytes *guest_wait(Guest *g, FrameMatch match, const void *arg)
{
    bool expired;
    GSource *t = guest_timer(g, WAIT_MS, &expired);
    for (;;) {
        while (!g_queue_is_empty(&g->frames)) {
            GBytes *b = g_queue_pop_head(&g->frames);
            gsize len;
            const uint8_t *f = g_bytes_get_data(b, &len);
            if (match(f, len, arg)) {
                g_source_destroy(t);
                g_source_unref(t);
                return b;
            }
            g_bytes_unref(b);
        }
        if (expired) {
            g_error("no matching frame within %d ms", WAIT_MS);
        }
        g_main_context_iteration(g->ctx, TRUE);
    }
}

/* ---- frames ---- */

static size_t put_eth(uint8_t *f, const uint8_t *dst, const uint8_t *src, uint16_t type)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    put16(f + 12, type);
    return ETH_HLEN;
}

static uint32_t csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
    for (size_t i = 0; i + 1 < len; i += 2) {
        sum += get16(p + i);
    }
    if (len & 1) {
        sum += (uint32_t)p[len - 1] << 8;
    }
    return sum;
}

static uint16_t csum_fold(uint32_t sum)
{
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return (uint16_t)~sum;
}

/* An IPv4 header without options at f, for payload_len bytes after it. */
static size_t put_ip(uint8_t *f, uint8_t proto, uint32_t src, uint32_t dst, size_t payload_len)
{
    memset(f, 0, IP_HLEN);
    f[0] = 0x45;
    put16(f + 2, (uint16_t)(IP_HLEN + payload_len));
    f[8] = 64;
    f[9] = proto;
    put32(f + 12, src);
    put32(f + 16, dst);
    put16(f + 10, csum_fold(csum_add(0, f, IP_HLEN)));
    return IP_HLEN;
}

static size_t arp_request(uint8_t *f, uint32_t sender, uint32_t target)
{
    size_t n = put_eth(f, broadcast_mac, guest_mac, ETH_P_ARP);
    uint8_t *a = f + n;
    put16(a, 1); /* Ethernet */
    put16(a + 2, ETH_P_IP);
    a[4] = 6;
    a[5] = 4;
    put16(a + 6, 1); /* request */
    memcpy(a + 8, guest_mac, 6);
    put32(a + 14, sender);
    memset(a + 18, 0, 6);
    put32(a + 24, target);
    return n + 28;
}

/* arg: the address the reply is for (its sender). */
static bool is_arp_reply(const uint8_t *f, size_t len, const void *arg)
{
    return len >= ETH_HLEN + 28 && get16(f + 12) == ETH_P_ARP && get16(f + ETH_HLEN + 6) == 2 &&
           get32(f + ETH_HLEN + 14) == *(const uint32_t *)arg;
}

/* Teaches slirp that guest_mac has this address, as a booted guest would. */
static void guest_announce(Guest *g, uint32_t addr, uint32_t gateway)
{
    uint8_t f[64];
    guest_send(g, f, arp_request(f, addr, gateway));
    g_bytes_unref(guest_wait(g, is_arp_reply, &gateway));
}

static size_t dhcp_discover(uint8_t *f, uint32_t xid)
{
    memset(f, 0, ETH_HLEN + IP_HLEN + UDP_HLEN + BOOTP_LEN);
    size_t n = put_eth(f, broadcast_mac, guest_mac, ETH_P_IP);
    n += put_ip(f + n, IPPROTO_UDP, 0, 0xffffffff, UDP_HLEN + BOOTP_LEN);
    put16(f + n, 68);
    put16(f + n + 2, 67);
    put16(f + n + 4, UDP_HLEN + BOOTP_LEN); /* checksum 0: none */
    n += UDP_HLEN;
    uint8_t *b = f + n;
    b[0] = 1; /* BOOTREQUEST */
    b[1] = 1;
    b[2] = 6;
    put32(b + 4, xid);
    memcpy(b + 28, guest_mac, 6);
    put32(b + 236, 0x63825363); /* magic cookie */
    uint8_t *o = b + BOOTP_OPTS;
    o[0] = 53; /* DHCP message type: DISCOVER */
    o[1] = 1;
    o[2] = 1;
    o[3] = 255;
    return n + BOOTP_LEN;
}

/* The BOOTP message of a UDP frame from port 67 to 68, or NULL. */
static const uint8_t *bootp_reply(const uint8_t *f, size_t len)
{
    if (len < ETH_HLEN + IP_HLEN || get16(f + 12) != ETH_P_IP || f[ETH_HLEN + 9] != IPPROTO_UDP) {
        return NULL;
    }
    const uint8_t *udp = f + ETH_HLEN + (f[ETH_HLEN] & 0xf) * 4;
    if ((size_t)(udp - f) + UDP_HLEN + BOOTP_OPTS > len || get16(udp) != 67 ||
        get16(udp + 2) != 68) {
        return NULL;
    }
    return udp + UDP_HLEN;
}

static bool is_dhcp_reply(const uint8_t *f, size_t len, const void *arg)
{
    const uint8_t *b = bootp_reply(f, len);
    return b && b[0] == 2 && get32(b + 4) == *(const uint32_t *)arg;
}

/* The value of a DHCP option in a reply of total frame length len, or NULL. */
static const uint8_t *dhcp_option(const uint8_t *f, size_t len, uint8_t code, size_t want)
{
    const uint8_t *b = bootp_reply(f, len);
    const uint8_t *end = f + len;
    g_assert_cmphex(get32(b + 236), ==, 0x63825363);
    for (const uint8_t *o = b + BOOTP_OPTS; o < end && o[0] != 255;) {
        if (o[0] == 0) {
            o++;
            continue;
        }
        g_assert_true(o + 2 <= end && o + 2 + o[1] <= end);
        if (o[0] == code) {
            g_assert_cmpuint(o[1], ==, want);
            return o + 2;
        }
        o += 2 + o[1];
    }
    return NULL;
}

static size_t tcp_segment(uint8_t *f, uint32_t src, uint16_t sport, uint32_t dst, uint16_t dport,
                          uint32_t seq, uint8_t flags)
{
    size_t n = put_eth(f, broadcast_mac, guest_mac, ETH_P_IP);
    n += put_ip(f + n, IPPROTO_TCP, src, dst, TCP_HLEN);
    uint8_t *t = f + n;
    memset(t, 0, TCP_HLEN);
    put16(t, sport);
    put16(t + 2, dport);
    put32(t + 4, seq);
    t[12] = (TCP_HLEN / 4) << 4;
    t[13] = flags;
    put16(t + 14, 65535);
    uint8_t pseudo[12];
    put32(pseudo, src);
    put32(pseudo + 4, dst);
    pseudo[8] = 0;
    pseudo[9] = IPPROTO_TCP;
    put16(pseudo + 10, TCP_HLEN);
    put16(t + 16, csum_fold(csum_add(csum_add(0, pseudo, sizeof(pseudo)), t, TCP_HLEN)));
    return n + TCP_HLEN;
}

typedef struct TcpWant {
    uint32_t dst;
    uint16_t dport;
} TcpWant;

static bool is_tcp_to(const uint8_t *f, size_t len, const void *arg)
{
    const TcpWant *w = arg;
    if (len < ETH_HLEN + IP_HLEN + TCP_HLEN || get16(f + 12) != ETH_P_IP ||
        f[ETH_HLEN + 9] != IPPROTO_TCP) {
        return false;
    }
    const uint8_t *t = f + ETH_HLEN + (f[ETH_HLEN] & 0xf) * 4;
    return get32(f + ETH_HLEN + 16) == w->dst && get16(t + 2) == w->dport;
}

static uint8_t tcp_flags(GBytes *frame)
{
    const uint8_t *f = g_bytes_get_data(frame, NULL);
    return f[ETH_HLEN + (f[ETH_HLEN] & 0xf) * 4 + 13];
}

/* ---- user (slirp) ---- */

static void test_slirp_arp(void)
{
    Guest g;
    g_assert_true(guest_start(&g, "user,id=n0", NULL));
    g_assert_cmpstr(g.nb->ops->type, ==, "user");
    g_assert_false(g.nb->vnet_hdr);
    uint8_t f[64];
    guest_send(&g, f, arp_request(f, ip4(10, 0, 2, 15), ip4(10, 0, 2, 2)));
    uint32_t gw = ip4(10, 0, 2, 2);
    g_autoptr(GBytes) b = guest_wait(&g, is_arp_reply, &gw);
    gsize len;
    const uint8_t *r = g_bytes_get_data(b, &len);
    /* slirp's MAC for an address in its network: 52:55 then the address. */
    static const uint8_t gw_mac[6] = {0x52, 0x55, 10, 0, 2, 2};
    g_assert_cmpmem(r, 6, guest_mac, 6);
    g_assert_cmpmem(r + 6, 6, gw_mac, 6);
    const uint8_t *a = r + ETH_HLEN;
    g_assert_cmphex(get16(a), ==, 1);
    g_assert_cmphex(get16(a + 2), ==, ETH_P_IP);
    g_assert_cmpmem(a + 8, 6, gw_mac, 6);
    g_assert_cmpmem(a + 18, 6, guest_mac, 6);
    g_assert_cmphex(get32(a + 24), ==, ip4(10, 0, 2, 15));

    /* The DNS address answers too; an address nobody has does not. */
    guest_send(&g, f, arp_request(f, ip4(10, 0, 2, 15), ip4(10, 0, 2, 99)));
    uint32_t dns = ip4(10, 0, 2, 3);
    guest_send(&g, f, arp_request(f, ip4(10, 0, 2, 15), dns));
    g_autoptr(GBytes) d = guest_wait(&g, is_arp_reply, &dns);
    g_assert_nonnull(d);
    g_assert_cmpuint(g_queue_get_length(&g.frames), ==, 0);
    g_assert_cmpuint(g.calls, ==, 2);
    guest_stop(&g);
}

/* DISCOVER on a network; the OFFER must carry these addresses. */
static void check_dhcp(const char *spec, uint32_t lease, uint32_t router, uint32_t dns,
                       uint32_t mask)
{
    Guest g;
    g_assert_true(guest_start(&g, spec, NULL));
    uint8_t f[ETH_HLEN + IP_HLEN + UDP_HLEN + BOOTP_LEN];
    uint32_t xid = 0x5a17c0de;
    guest_send(&g, f, dhcp_discover(f, xid));
    g_autoptr(GBytes) b = guest_wait(&g, is_dhcp_reply, &xid);
    gsize len;
    const uint8_t *r = g_bytes_get_data(b, &len);
    /* slirp broadcasts its replies; the client knows its own by xid and chaddr. */
    g_assert_cmpmem(r, 6, broadcast_mac, 6);
    const uint8_t *bootp = bootp_reply(r, len);
    g_assert_cmphex(get32(bootp + 16), ==, lease); /* yiaddr */
    g_assert_cmpmem(bootp + 28, 6, guest_mac, 6);
    const uint8_t *type = dhcp_option(r, len, 53, 1);
    g_assert_nonnull(type);
    g_assert_cmpuint(type[0], ==, 2); /* OFFER */
    const uint8_t *opt = dhcp_option(r, len, 3, 4);
    g_assert_nonnull(opt);
    g_assert_cmphex(get32(opt), ==, router);
    opt = dhcp_option(r, len, 6, 4);
    g_assert_nonnull(opt);
    g_assert_cmphex(get32(opt), ==, dns);
    opt = dhcp_option(r, len, 1, 4);
    g_assert_nonnull(opt);
    g_assert_cmphex(get32(opt), ==, mask);
    guest_stop(&g);
}

static void test_slirp_dhcp(void)
{
    check_dhcp("user,id=n0", ip4(10, 0, 2, 15), ip4(10, 0, 2, 2), ip4(10, 0, 2, 3),
               ip4(255, 255, 255, 0));
    check_dhcp("user,id=n0,net=192.168.76.0/24", ip4(192, 168, 76, 15), ip4(192, 168, 76, 2),
               ip4(192, 168, 76, 3), ip4(255, 255, 255, 0));
    /* In a wider network the addresses keep their place at x.x.2.y, as in QEMU. */
    check_dhcp("user,id=n0,net=10.0.0.0/8", ip4(10, 0, 2, 15), ip4(10, 0, 2, 2), ip4(10, 0, 2, 3),
               ip4(255, 0, 0, 0));
    check_dhcp("user,id=n0,net=10.9.8.32/27", ip4(10, 9, 8, 47), ip4(10, 9, 8, 34),
               ip4(10, 9, 8, 35), ip4(255, 255, 255, 224));
}

/* The frontend refuses: frames wait, at most 256 of them, until rx_ready. */
static void test_slirp_rx_queue(void)
{
    Guest g;
    g_assert_true(guest_start(&g, "user,id=n0", NULL));
    g.refuse = true;
    uint8_t f[64];
    for (unsigned i = 0; i < 300; i++) {
        guest_send(&g, f, arp_request(f, ip4(10, 0, 2, 15), ip4(10, 0, 2, 2 + i % 2)));
    }
    guest_run(&g, 200);
    g_assert_cmpuint(g.calls, ==, 1); /* refused once, then nothing until rx_ready */
    guest_run(&g, 100);
    g_assert_cmpuint(g.calls, ==, 1);

    g.refuse = false;
    net_backend_rx_ready(g.nb);
    g_assert_cmpuint(g.calls, ==, 1); /* delivered from the loop, not from rx_ready */
    /* By the next iteration, not after slirp's poll timeout (up to a second). */
    gint64 start = g_get_monotonic_time();
    g_main_context_iteration(g.ctx, TRUE);
    g_assert_cmpint(g_get_monotonic_time() - start, <, G_USEC_PER_SEC / 2);
    g_assert_cmpuint(g.calls, ==, 1 + 256);
    g_assert_cmpuint(g_queue_get_length(&g.frames), ==, 256);
    for (unsigned i = 0; i < 256; i++) {
        GBytes *b = g_queue_pop_head(&g.frames);
        uint32_t sender = ip4(10, 0, 2, 2 + i % 2);
        g_assert_true(is_arp_reply(g_bytes_get_data(b, NULL), g_bytes_get_size(b), &sender));
        g_bytes_unref(b);
    }
    /* Direct delivery again once the queue is empty. */
    guest_send(&g, f, arp_request(f, ip4(10, 0, 2, 15), ip4(10, 0, 2, 2)));
    uint32_t gw = ip4(10, 0, 2, 2);
    g_autoptr(GBytes) b = guest_wait(&g, is_arp_reply, &gw);
    g_assert_nonnull(b);
    guest_stop(&g);
}

static int listen_tcp(uint16_t *port)
{
    int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    g_assert_cmpint(s, >=, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    g_assert_cmpint(bind(s, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    g_assert_cmpint(listen(s, 4), ==, 0);
    socklen_t sl = sizeof(sa);
    g_assert_cmpint(getsockname(s, (struct sockaddr *)&sa, &sl), ==, 0);
    *port = ntohs(sa.sin_port);
    return s;
}

/* The guest connects to the gateway's port, which slirp maps to the host's 127.0.0.1. */
static void check_restrict(bool restrict_)
{
    uint16_t port;
    int ls = listen_tcp(&port);
    Guest g;
    g_assert_true(guest_start(&g, restrict_ ? "user,id=n0,restrict=on" : "user,id=n0", NULL));
    guest_announce(&g, ip4(10, 0, 2, 15), ip4(10, 0, 2, 2));
    uint8_t f[ETH_HLEN + IP_HLEN + TCP_HLEN];
    guest_send(&g, f,
               tcp_segment(f, ip4(10, 0, 2, 15), 40000, ip4(10, 0, 2, 2), port, 1000, TCP_SYN));
    TcpWant want = {ip4(10, 0, 2, 15), 40000};
    g_autoptr(GBytes) b = guest_wait(&g, is_tcp_to, &want);
    const uint8_t *r = g_bytes_get_data(b, NULL);
    const uint8_t *t = r + ETH_HLEN + (r[ETH_HLEN] & 0xf) * 4;
    g_assert_cmphex(get32(r + ETH_HLEN + 12), ==, ip4(10, 0, 2, 2));
    g_assert_cmpuint(get16(t), ==, port);
    g_assert_cmpuint(get32(t + 8), ==, 1001); /* acknowledges the SYN */
    int c = accept(ls, NULL, NULL);
    if (restrict_) {
        g_assert_cmphex(tcp_flags(b) & (TCP_RST | TCP_SYN), ==, TCP_RST);
        g_assert_cmpint(c, ==, -1);
        g_assert_cmpint(errno, ==, EAGAIN);
    } else {
        g_assert_cmphex(tcp_flags(b) & (TCP_RST | TCP_SYN | TCP_ACK), ==, TCP_SYN | TCP_ACK);
        g_assert_cmpint(c, >=, 0);
        close(c);
    }
    guest_stop(&g);
    close(ls);
}

static void test_slirp_restrict(void)
{
    check_restrict(false);
    check_restrict(true);
}

static uint16_t free_tcp_port(void)
{
    uint16_t port;
    close(listen_tcp(&port));
    return port;
}

static void test_slirp_hostfwd(void)
{
    uint16_t p1 = free_tcp_port(), p2 = free_tcp_port();
    g_autofree char *spec = g_strdup_printf(
        "user,id=n0,hostfwd=tcp:127.0.0.1:%u-:2222,hostfwd=tcp::%u-10.0.2.20:8080", p1, p2);
    Guest g;
    g_assert_true(guest_start(&g, spec, NULL));
    guest_announce(&g, ip4(10, 0, 2, 15), ip4(10, 0, 2, 2));
    guest_announce(&g, ip4(10, 0, 2, 20), ip4(10, 0, 2, 2));

    const struct {
        uint16_t host_port;
        TcpWant want;
    } cases[] = {
        {p1, {ip4(10, 0, 2, 15), 2222}},
        {p2, {ip4(10, 0, 2, 20), 8080}},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        struct sockaddr_in sa = {
            .sin_family = AF_INET,
            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
            .sin_port = htons(cases[i].host_port),
        };
        int rc = connect(c, (struct sockaddr *)&sa, sizeof(sa));
        g_assert_true(rc == 0 || errno == EINPROGRESS);
        g_autoptr(GBytes) b = guest_wait(&g, is_tcp_to, &cases[i].want);
        const uint8_t *r = g_bytes_get_data(b, NULL);
        g_assert_cmpmem(r, 6, guest_mac, 6);
        g_assert_cmphex(get32(r + ETH_HLEN + 12), ==, ip4(10, 0, 2, 2)); /* from the gateway */
        g_assert_cmphex(tcp_flags(b) & (TCP_SYN | TCP_ACK | TCP_RST), ==, TCP_SYN);
        close(c);
    }
    guest_stop(&g);
}

static void check_hostfwd_busy(const char *spec, const char *rule)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(NetdevConfig) cfg = netdev_config_parse(spec, &err);
    g_assert_no_error(err);
    g_autoptr(NetBackend) nb = net_backend_new(cfg, &err);
    g_assert_null(nb);
    g_autofree char *msg =
        g_strdup_printf("Could not set up host forwarding rule '%s': Address already in use", rule);
    g_assert_cmpstr(err->message, ==, msg);
}

static void test_slirp_hostfwd_busy(void)
{
    uint16_t port;
    int ls = listen_tcp(&port);
    g_autofree char *spec = g_strdup_printf("user,id=n0,hostfwd=::%u-:22", port);
    g_autofree char *rule = g_strdup_printf("tcp::%u-:22", port);
    check_hostfwd_busy(spec, rule);
    close(ls);

    int us = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    g_assert_cmpint(bind(us, (struct sockaddr *)&sa, sizeof(sa)), ==, 0);
    socklen_t sl = sizeof(sa);
    g_assert_cmpint(getsockname(us, (struct sockaddr *)&sa, &sl), ==, 0);
    port = ntohs(sa.sin_port);
    /* The rule that fails is named, not the first one. */
    g_autofree char *uspec =
        g_strdup_printf("user,id=n0,hostfwd=tcp::%u-:22,hostfwd=udp:127.0.0.1:%u-10.0.2.9:53",
                        free_tcp_port(), port);
    g_autofree char *urule = g_strdup_printf("udp:127.0.0.1:%u-10.0.2.9:53", port);
    check_hostfwd_busy(uspec, urule);
    close(us);
}

/* ---- tap ---- */

/* An error that means this host cannot make taps for us, not that the backend is wrong. */
static bool tap_unavailable(const GError *err)
{
    return g_str_has_prefix(err->message, "could not open /dev/net/tun") ||
           g_str_has_suffix(err->message, g_strerror(EPERM));
}

static void if_up(const char *name)
{
    /* No IPv6 on it: no router solicitations among the test's frames. */
    g_autofree char *sysctl = g_strdup_printf("/proc/sys/net/ipv6/conf/%s/disable_ipv6", name);
    int fd = open(sysctl, O_WRONLY | O_CLOEXEC);
    if (fd >= 0) {
        g_assert_cmpint(write(fd, "1", 1), ==, 1);
        close(fd);
    }
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr = {0};
    g_strlcpy(ifr.ifr_name, name, sizeof(ifr.ifr_name));
    g_assert_cmpint(ioctl(s, SIOCGIFFLAGS, &ifr), ==, 0);
    ifr.ifr_flags |= IFF_UP;
    g_assert_cmpint(ioctl(s, SIOCSIFFLAGS, &ifr), ==, 0);
    close(s);
}

static bool ethtool_flag(const char *name, uint32_t cmd)
{
    int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ethtool_value v = {.cmd = cmd};
    struct ifreq ifr = {0};
    g_strlcpy(ifr.ifr_name, name, sizeof(ifr.ifr_name));
    ifr.ifr_data = (void *)&v;
    g_assert_cmpint(ioctl(s, SIOCETHTOOL, &ifr), ==, 0);
    close(s);
    return v.data;
}

/* A packet socket on the tap's host side, for frames of ETH_P_TEST only. */
static int packet_socket(const char *name, struct sockaddr_ll *sll)
{
    int s = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, htons(ETH_P_TEST));
    g_assert_cmpint(s, >=, 0);
    *sll = (struct sockaddr_ll){
        .sll_family = AF_PACKET,
        .sll_protocol = htons(ETH_P_TEST),
        .sll_ifindex = (int)if_nametoindex(name),
        .sll_halen = 6,
    };
    memcpy(sll->sll_addr, guest_mac, 6);
    g_assert_cmpint(bind(s, (struct sockaddr *)sll, sizeof(*sll)), ==, 0);
    return s;
}

static size_t test_frame(uint8_t *f, const uint8_t *dst, unsigned seq)
{
    size_t n = put_eth(f, dst, guest_mac, ETH_P_TEST);
    n += (size_t)g_snprintf((char *)f + n, 32, "qlite tap frame %u", seq);
    return n;
}

static bool is_test_frame(const uint8_t *f, size_t len, const void *arg)
{
    size_t off = *(const size_t *)arg;
    return len >= off + ETH_HLEN && get16(f + off + 12) == ETH_P_TEST;
}

/* Host to guest: a frame sent on the host side comes out of the backend. */
static void check_tap_rx(Guest *g, int ps, const struct sockaddr_ll *sll, unsigned seq)
{
    uint8_t f[64];
    size_t n = test_frame(f, guest_mac, seq);
    g_assert_cmpint(sendto(ps, f, n, 0, (const struct sockaddr *)sll, sizeof(*sll)), ==, n);
    size_t off = g->nb->vnet_hdr ? NET_VNET_HDR_LEN : 0;
    g_autoptr(GBytes) b = guest_wait(g, is_test_frame, &off);
    const uint8_t *r = g_bytes_get_data(b, NULL);
    g_assert_cmpuint(g_bytes_get_size(b), >=, off + n);
    if (off) {
        g_assert_cmpuint(r[1], ==, 0); /* gso_type NONE */
    }
    g_assert_cmpmem(r + off, n, f, n);
}

/* Guest to host: a frame the backend sends arrives at the host side. */
static void check_tap_tx(Guest *g, int ps, unsigned seq)
{
    uint8_t f[NET_VNET_HDR_LEN + 64] = {0};
    size_t off = g->nb->vnet_hdr ? NET_VNET_HDR_LEN : 0;
    size_t n = test_frame(f + off, broadcast_mac, seq);
    struct iovec iov[2] = {{f, off + 6}, {f + off + 6, n - 6}};
    g_assert_true(net_backend_send(g->nb, iov, 2));
    struct pollfd pfd = {.fd = ps, .events = POLLIN};
    g_assert_cmpint(poll(&pfd, 1, WAIT_MS), ==, 1);
    uint8_t r[128];
    g_assert_cmpint(recv(ps, r, sizeof(r), 0), ==, n);
    g_assert_cmpmem(r, n, f + off, n);
}

static unsigned tun_features(void)
{
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    g_assert_cmpint(fd, >=, 0);
    unsigned features = 0;
    g_assert_cmpint(ioctl(fd, TUNGETFEATURES, &features), ==, 0);
    close(fd);
    return features;
}

static void test_tap(void)
{
    g_autofree char *name = g_strdup_printf("qlt%u", (unsigned)getpid());
    g_autofree char *spec = g_strdup_printf("tap,id=t0,ifname=%s,script=no,downscript=no", name);
    g_autoptr(GError) err = NULL;
    Guest g;
    if (!guest_start(&g, spec, &err)) {
        g_assert_nonnull(err);
        if (tap_unavailable(err)) {
            g_test_skip(err->message);
            return;
        }
        g_assert_no_error(err);
    }
    g_assert_cmpstr(g.nb->ops->type, ==, "tap");
    g_assert_cmpint(g.nb->vnet_hdr, ==, (tun_features() & IFF_VNET_HDR) != 0);
    if_up(name);
    struct sockaddr_ll sll;
    int ps = packet_socket(name, &sll);
    check_tap_tx(&g, ps, 1);
    check_tap_rx(&g, ps, &sll, 2);

    /*
     * Refused: the tap keeps that frame and reads no more until rx_ready.
     * Then the kept frame comes first, from the backend, and the next from
     * the tap; or the kept frame alone when the tap has nothing more.
     */
    size_t off = g.nb->vnet_hdr ? NET_VNET_HDR_LEN : 0;
    for (unsigned last = 4; last <= 5; last++) {
        unsigned first = last == 4 ? 3 : 5;
        g.refuse = true;
        for (unsigned i = first; i <= last; i++) {
            uint8_t f[64];
            size_t n = test_frame(f, guest_mac, i);
            g_assert_cmpint(sendto(ps, f, n, 0, (struct sockaddr *)&sll, sizeof(sll)), ==, n);
        }
        unsigned calls = g.calls;
        guest_run(&g, 200);
        g_assert_cmpuint(g.calls, ==, calls + 1);
        g.refuse = false;
        net_backend_rx_ready(g.nb);
        g_assert_cmpuint(g.calls, ==, calls + 1);
        for (unsigned i = first; i <= last; i++) {
            g_autoptr(GBytes) b = guest_wait(&g, is_test_frame, &off);
            uint8_t f[64];
            size_t n = test_frame(f, guest_mac, i);
            g_assert_cmpmem((const uint8_t *)g_bytes_get_data(b, NULL) + off, n, f, n);
        }
    }

    if (g.nb->vnet_hdr) {
        net_backend_set_offloads(g.nb, &(NetOffloads){.csum = true, .tso4 = true});
        g_assert_true(ethtool_flag(name, ETHTOOL_GTXCSUM));
        g_assert_true(ethtool_flag(name, ETHTOOL_GTSO));
        net_backend_set_offloads(g.nb, &(NetOffloads){0});
        g_assert_false(ethtool_flag(name, ETHTOOL_GTXCSUM));
        g_assert_false(ethtool_flag(name, ETHTOOL_GTSO));
    }
    close(ps);
    guest_stop(&g);

    /* vnet_hdr=off: bare frames both ways. */
    g_autofree char *off_spec = g_strdup_printf("tap,id=t1,ifname=%s,vnet_hdr=off", name);
    g_assert_true(guest_start(&g, off_spec, NULL));
    g_assert_false(g.nb->vnet_hdr);
    if_up(name);
    ps = packet_socket(name, &sll);
    check_tap_tx(&g, ps, 6);
    check_tap_rx(&g, ps, &sll, 7);
    close(ps);
    guest_stop(&g);
}

static void check_backend_error(const char *spec, const char *message)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(NetdevConfig) cfg = netdev_config_parse(spec, &err);
    g_assert_no_error(err);
    g_autoptr(NetBackend) nb = net_backend_new(cfg, &err);
    g_assert_null(nb);
    g_assert_cmpstr(err->message, ==, message);
}

/* A descriptor from /dev/net/tun set up with these flags, or -1 with the test skipped. */
static int tun_fd(const char *name, short flags)
{
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) {
        g_test_skip("cannot open /dev/net/tun");
        return -1;
    }
    struct ifreq ifr = {.ifr_flags = flags};
    g_strlcpy(ifr.ifr_name, name, sizeof(ifr.ifr_name));
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        g_autofree char *why =
            g_strdup_printf("cannot create tap '%s': %s", name, g_strerror(errno));
        g_test_skip(why);
        close(fd);
        return -1;
    }
    return fd;
}

static void test_tap_fd(void)
{
    int p[2];
    g_assert_cmpint(pipe(p), ==, 0);
    g_autofree char *pipe_spec = g_strdup_printf("tap,id=t0,fd=%d", p[0]);
    g_autofree char *pipe_msg =
        g_strdup_printf("fd=%d is not a tap device: %s", p[0], g_strerror(ENOTTY));
    check_backend_error(pipe_spec, pipe_msg);
    close(p[0]);
    close(p[1]);

    g_autofree char *name = g_strdup_printf("qlf%u", (unsigned)getpid());
    int fd = tun_fd(name, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR);
    if (fd < 0) {
        return;
    }
    g_autofree char *spec = g_strdup_printf("tap,id=t0,fd=%d", fd);
    Guest g;
    g_assert_true(guest_start(&g, spec, NULL));
    g_assert_true(g.nb->vnet_hdr); /* from the descriptor's flags */
    if_up(name);
    struct sockaddr_ll sll;
    int ps = packet_socket(name, &sll);
    check_tap_tx(&g, ps, 1);
    check_tap_rx(&g, ps, &sll, 2);
    close(ps);
    guest_stop(&g);
    g_assert_cmpint(fcntl(fd, F_GETFD), >=, 0); /* still the caller's */
    close(fd);

    fd = tun_fd(name, IFF_TAP | IFF_NO_PI);
    g_assert_cmpint(fd, >=, 0);
    g_free(spec);
    spec = g_strdup_printf("tap,id=t0,fd=%d", fd);
    g_assert_true(guest_start(&g, spec, NULL));
    g_assert_false(g.nb->vnet_hdr);
    guest_stop(&g);
    close(fd);

    fd = tun_fd(name, IFF_TUN | IFF_NO_PI);
    g_assert_cmpint(fd, >=, 0);
    g_free(spec);
    spec = g_strdup_printf("tap,id=t0,fd=%d", fd);
    g_autofree char *tun_msg = g_strdup_printf("fd=%d is a tun device ('%s'), not a tap", fd, name);
    check_backend_error(spec, tun_msg);
    close(fd);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/net/hostfwd/good", test_hostfwd_good);
    g_test_add_func("/net/hostfwd/bad", test_hostfwd_bad);
    g_test_add_func("/net/config/user", test_config_user);
    g_test_add_func("/net/config/tap", test_config_tap);
    g_test_add_func("/net/config/errors", test_config_errors);
    g_test_add_func("/net/slirp/arp", test_slirp_arp);
    g_test_add_func("/net/slirp/dhcp", test_slirp_dhcp);
    g_test_add_func("/net/slirp/rx-queue", test_slirp_rx_queue);
    g_test_add_func("/net/slirp/restrict", test_slirp_restrict);
    g_test_add_func("/net/slirp/hostfwd", test_slirp_hostfwd);
    g_test_add_func("/net/slirp/hostfwd-busy", test_slirp_hostfwd_busy);
    g_test_add_func("/net/tap/create", test_tap);
    g_test_add_func("/net/tap/fd", test_tap_fd);
    return g_test_run();
}
