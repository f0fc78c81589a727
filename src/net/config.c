/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The -netdev argument: "user,..." and "tap,..." into a NetdevConfig. */
#include "net/net.h"
#include "util/error.h"
#include "util/opts.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>

/* QEMU's user network: 10.0.2.0/24. */
#define NETDEV_USER_NET    0x0a000200u
#define NETDEV_USER_PREFIX 24
/*
 * The gateway is x.x.x.2, the DNS server x.x.x.3 and slirp hands out 16 DHCP
 * leases from x.x.x.15, so the network needs at least 32 addresses.
 */
#define NETDEV_USER_MIN_PREFIX 4
#define NETDEV_USER_MAX_PREFIX 27

void netdev_config_free(NetdevConfig *cfg)
{
    if (!cfg) {
        return;
    }
    g_free(cfg->id);
    g_free(cfg->ifname);
    if (cfg->hostfwd) {
        g_array_unref(cfg->hostfwd);
    }
    g_free(cfg);
}

/* ---- hostfwd=[tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT ---- */

static bool hostfwd_error(GError **error, const char *rule, const char *fmt, ...)
    G_GNUC_PRINTF(3, 4);
static bool hostfwd_error(GError **error, const char *rule, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    g_autofree char *why = g_strdup_vprintf(fmt, ap);
    va_end(ap);
    g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "invalid host forwarding rule '%s': %s",
                rule, why);
    return false;
}

/* 1..65535, decimal digits only. */
static bool parse_port(const char *text, uint16_t *port)
{
    size_t len = strlen(text);
    if (len == 0 || len > 5 || strspn(text, "0123456789") != len) {
        return false;
    }
    unsigned long v = strtoul(text, NULL, 10);
    if (v == 0 || v > 65535) {
        return false;
    }
    *port = (uint16_t)v;
    return true;
}

/* One side of a rule, "[ADDR]:PORT"; an empty ADDR is 0.0.0.0. */
static bool hostfwd_side(const char *rule, const char *text, const char *side, struct in_addr *addr,
                         uint16_t *port, GError **error)
{
    const char *colon = strrchr(text, ':');
    if (!colon) {
        return hostfwd_error(error, rule, "the %s side '%s' is not [ADDR]:PORT", side, text);
    }
    g_autofree char *addr_text = g_strndup(text, colon - text);
    addr->s_addr = htonl(INADDR_ANY);
    if (*addr_text && inet_pton(AF_INET, addr_text, addr) != 1) {
        return hostfwd_error(error, rule, "'%s' is not a valid %s IPv4 address", addr_text, side);
    }
    if (!parse_port(colon + 1, port)) {
        return hostfwd_error(error, rule, "%s port '%s' is not a number from 1 to 65535", side,
                             colon + 1);
    }
    return true;
}

/*
 * Host port 0 is refused: the kernel would pick a free port, and qlite has
 * no monitor command that tells which.
 */
bool hostfwd_parse(const char *rule, HostFwd *out, GError **error)
{
    const char *colon = strchr(rule, ':');
    if (!colon) {
        return hostfwd_error(error, rule,
                             "expected [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT");
    }
    HostFwd fwd = {0};
    g_autofree char *proto = g_strndup(rule, colon - rule);
    if (strcmp(proto, "udp") == 0) {
        fwd.udp = true;
    } else if (*proto && strcmp(proto, "tcp") != 0) {
        return hostfwd_error(error, rule, "protocol '%s' is not tcp or udp", proto);
    }
    const char *host = colon + 1;
    const char *dash = strchr(host, '-');
    if (!dash) {
        return hostfwd_error(error, rule, "no '-' between the host and the guest side");
    }
    g_autofree char *host_text = g_strndup(host, dash - host);
    if (!hostfwd_side(rule, host_text, "host", &fwd.host_addr, &fwd.host_port, error) ||
        !hostfwd_side(rule, dash + 1, "guest", &fwd.guest_addr, &fwd.guest_port, error)) {
        return false;
    }
    *out = fwd;
    return true;
}

/* ---- user ---- */

static uint32_t prefix_to_mask(unsigned prefix)
{
    return prefix ? ~0u << (32 - prefix) : 0;
}

/*
 * net=ADDR/PREFIX, ADDR/NETMASK or a bare ADDR, which takes the mask of its
 * address class (A /8, B /16, C /24). Host bits in ADDR are dropped.
 */
static bool parse_user_net(const char *text, NetdevConfig *cfg, GError **error)
{
    g_auto(GStrv) parts = g_strsplit(text, "/", 2);
    struct in_addr addr;
    /* An empty net= splits into no parts at all. */
    if (!parts[0] || inet_pton(AF_INET, parts[0], &addr) != 1) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "net=%s: '%s' is not a valid IPv4 address", text, parts[0] ? parts[0] : "");
        return false;
    }
    uint32_t a = ntohl(addr.s_addr);
    unsigned prefix;
    if (!parts[1]) {
        if ((a & 0x80000000u) == 0) {
            prefix = 8;
        } else if ((a & 0xc0000000u) == 0x80000000u) {
            prefix = 16;
        } else if ((a & 0xe0000000u) == 0xc0000000u) {
            prefix = 24;
        } else {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "net=%s: not a class A, B or C address; give a prefix length", text);
            return false;
        }
    } else if (strchr(parts[1], '.')) {
        struct in_addr mask;
        if (inet_pton(AF_INET, parts[1], &mask) != 1) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "net=%s: '%s' is not a valid netmask", text, parts[1]);
            return false;
        }
        uint32_t m = ntohl(mask.s_addr);
        prefix = (unsigned)__builtin_popcount(m);
        if (m != prefix_to_mask(prefix)) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "net=%s: netmask '%s' is not contiguous", text, parts[1]);
            return false;
        }
    } else {
        uint64_t v;
        if (!parse_u64(parts[1], &v) || v > 32) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "net=%s: '%s' is not a prefix length or a netmask", text, parts[1]);
            return false;
        }
        prefix = (unsigned)v;
    }
    if (prefix < NETDEV_USER_MIN_PREFIX || prefix > NETDEV_USER_MAX_PREFIX) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "net=%s: the prefix length must be from %d to %d", text, NETDEV_USER_MIN_PREFIX,
                    NETDEV_USER_MAX_PREFIX);
        return false;
    }
    uint32_t m = prefix_to_mask(prefix);
    cfg->netmask.s_addr = htonl(m);
    cfg->net.s_addr = htonl(a & m);
    return true;
}

static bool parse_user(Opts *o, NetdevConfig *cfg, GError **error)
{
    cfg->net.s_addr = htonl(NETDEV_USER_NET);
    cfg->netmask.s_addr = htonl(prefix_to_mask(NETDEV_USER_PREFIX));
    const char *net = opts_get(o, "net");
    if (net && !parse_user_net(net, cfg, error)) {
        return false;
    }
    if (!opts_get_bool(o, "restrict", false, &cfg->restrict_, error)) {
        return false;
    }
    g_autoptr(GPtrArray) rules = opts_get_all(o, "hostfwd");
    for (guint i = 0; i < rules->len; i++) {
        HostFwd fwd;
        if (!hostfwd_parse(g_ptr_array_index(rules, i), &fwd, error)) {
            return false;
        }
        g_array_append_val(cfg->hostfwd, fwd);
    }
    return true;
}

/* ---- tap ---- */

/* qlite never runs network scripts: an absent script= means the same as "no". */
static bool check_no_script(Opts *o, const char *key, GError **error)
{
    const char *v = opts_get(o, key);
    if (v && strcmp(v, "no") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "%s=%s: qlite does not run network scripts; set the tap up beforehand and "
                    "use %s=no",
                    key, v, key);
        return false;
    }
    return true;
}

static bool parse_tap(Opts *o, NetdevConfig *cfg, GError **error)
{
    const char *fd = opts_get(o, "fd");
    const char *ifname = opts_get(o, "ifname");
    const char *script = opts_get(o, "script");
    const char *downscript = opts_get(o, "downscript");
    const char *vnet_hdr = opts_get(o, "vnet_hdr");
    if (fd) {
        /* The tap is set up already: its name and vnet header come with it. */
        if (ifname || script || downscript || vnet_hdr) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "ifname=, script=, downscript= and vnet_hdr= are invalid with fd=");
            return false;
        }
        uint64_t n;
        if (!parse_u64(fd, &n) || n > G_MAXINT || fcntl((int)n, F_GETFD) < 0) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "fd=%s is not an open file descriptor", fd);
            return false;
        }
        cfg->fd = (int)n;
        return true;
    }
    if (ifname && (!*ifname || strlen(ifname) >= IFNAMSIZ)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "ifname=%s: an interface name has 1 to %d characters", ifname, IFNAMSIZ - 1);
        return false;
    }
    cfg->ifname = g_strdup(ifname);
    cfg->vnet_hdr = true;
    if (!check_no_script(o, "script", error) || !check_no_script(o, "downscript", error)) {
        return false;
    }
    if (vnet_hdr && !parse_bool(vnet_hdr, &cfg->vnet_hdr)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "Parameter 'vnet_hdr' expects 'on' or 'off', not '%s'", vnet_hdr);
        return false;
    }
    cfg->vnet_hdr_required = vnet_hdr && cfg->vnet_hdr;
    return true;
}

/* QEMU's identifiers: a letter, then letters, digits, '-', '.' and '_'. */
static bool id_valid(const char *id)
{
    if (!g_ascii_isalpha(id[0])) {
        return false;
    }
    for (const char *p = id + 1; *p; p++) {
        if (!g_ascii_isalnum(*p) && !strchr("-._", *p)) {
            return false;
        }
    }
    return true;
}

NetdevConfig *netdev_config_parse(const char *spec, GError **error)
{
    g_autoptr(Opts) o = opts_parse(spec, "type", error);
    if (!o) {
        return NULL;
    }
    g_autoptr(NetdevConfig) cfg = g_new0(NetdevConfig, 1);
    cfg->fd = -1;
    cfg->hostfwd = g_array_new(FALSE, TRUE, sizeof(HostFwd));

    const char *type = opts_get(o, "type");
    if (!type) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "Parameter 'type' is missing");
        return NULL;
    }
    if (strcmp(type, "user") == 0) {
        cfg->type = NETDEV_USER;
    } else if (strcmp(type, "tap") == 0) {
        cfg->type = NETDEV_TAP;
    } else {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "'%s' is not a valid netdev backend type (user, tap)", type);
        return NULL;
    }
    const char *id = opts_get(o, "id");
    if (!id) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "Parameter 'id' is missing");
        return NULL;
    }
    if (!id_valid(id)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "Parameter 'id' expects an identifier, not '%s'", id);
        return NULL;
    }
    cfg->id = g_strdup(id);
    bool ok = cfg->type == NETDEV_USER ? parse_user(o, cfg, error) : parse_tap(o, cfg, error);
    if (!ok || !opts_check_unused(o, error)) {
        return NULL;
    }
    return g_steal_pointer(&cfg);
}
