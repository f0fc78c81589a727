/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The QMP server as a client meets it: the input is what one client sends
 * (framing, JSON, negotiation, every command and its arguments), over a
 * real socket to a server whose machine does nothing. It must answer or
 * refuse whatever arrives and close the connection when the client's side
 * ends, never crash, hang or recurse without bound.
 */
#include "monitor/qmp.h"

#include <errno.h>
#include <linux/kvm.h>
#include <poll.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *status(void *opaque)
{
    return "prelaunch";
}
static void nothing(void *opaque)
{
}
static bool refuse(void *opaque, GError **error)
{
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "not in this harness");
    return false;
}
static const char *no_name(void *opaque)
{
    return NULL;
}
static unsigned one_cpu(void *opaque, QmpCpuInfo *out, unsigned max)
{
    if (max > 0) {
        out[0] = (QmpCpuInfo){.index = 0, .thread_id = 1};
    }
    return 1;
}
static unsigned no_blocks(void *opaque, QmpBlockInfo *out, unsigned max)
{
    return 0;
}
static unsigned no_chardevs(void *opaque, QmpChardevInfo *out, unsigned max)
{
    return 0;
}
static unsigned no_peripherals(void *opaque, QmpPeripheral *out, unsigned max)
{
    if (max > 0) {
        out[0] = (QmpPeripheral){.id = "disk0", .driver = "virtio-blk-pci"};
    }
    return 1;
}
static const char *machine_type(void *opaque)
{
    return "pc-i440fx-7.2-machine";
}
static bool no_migration(void *opaque, const char *uri, int fd, GError **error)
{
    if (fd >= 0) {
        close(fd);
    }
    return refuse(opaque, error);
}
static void no_info(void *opaque, QmpMigrateInfo *info)
{
}

/* A few statistics of each kind of value: a counter, a histogram, a boolean. */
static uint64_t *some_kvm_stats(void *opaque, int vcpu, const KvmStats **stats, GError **error)
{
    static KvmStatsDesc desc[] = {
        {"exits", KVM_STATS_TYPE_CUMULATIVE, 0, 1, 0, 0},
        {"halt_wait_hist", KVM_STATS_TYPE_LOG_HIST | KVM_STATS_UNIT_SECONDS, -9, 4, 8, 0},
        {"guest_mode", KVM_STATS_TYPE_INSTANT | KVM_STATS_UNIT_BOOLEAN, 0, 1, 40, 0},
        {"pages", KVM_STATS_TYPE_LINEAR_HIST | KVM_STATS_BASE_POW2, 12, 2, 48, 16},
    };
    static const KvmStats s = {.fd = -1, .words = 8, .n = G_N_ELEMENTS(desc), .desc = desc};
    if (vcpu > 0) {
        return NULL;
    }
    *stats = &s;
    uint64_t *data = g_new0(uint64_t, s.words);
    for (size_t i = 0; i < s.words; i++) {
        data[i] = i * 7 + (vcpu < 0);
    }
    return data;
}

static const QmpMachineOps ops = {
    .status = status,
    .stop = nothing,
    .cont = refuse,
    .system_reset = nothing,
    .system_powerdown = nothing,
    .quit = nothing,
    .name = no_name,
    .cpus = one_cpu,
    .blocks = no_blocks,
    .kvm_stats = some_kvm_stats,
    .chardevs = no_chardevs,
    .peripherals = no_peripherals,
    .machine_type = machine_type,
    .migrate = no_migration,
    .migrate_incoming = no_migration,
    .migrate_cancel = nothing,
    .query_migrate = no_info,
};

/* A library's critical (json-glib refusing a NULL object, say) is a bug found: crash on it. */
static void abort_on_critical(const gchar *domain, GLogLevelFlags level, const gchar *message,
                              gpointer unused)
{
    g_log_default_handler(domain, level, message, NULL);
    if (level & (G_LOG_LEVEL_CRITICAL | G_LOG_LEVEL_ERROR)) {
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static QmpServer *server;
    static struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (!server) {
        g_log_set_default_handler(abort_on_critical, NULL);
        g_autoptr(GError) err = NULL;
        server = qmp_server_new(&ops, NULL, &err);
        g_assert_no_error(err);
        g_autofree char *dir = g_dir_make_tmp("qlite-fuzz-qmp-XXXXXX", NULL);
        g_snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/qmp.sock", dir);
        g_autofree char *spec = g_strdup_printf("unix:%s,server=on,wait=off", addr.sun_path);
        g_assert(qmp_server_listen(server, spec, &err));
        qmp_server_start(server);
    }
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    g_assert(fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0);
    /*
     * Send it all while reading what comes back (a server whose replies go
     * unread stops reading), then end our side: the server answers the rest
     * and closes. A server that neither reads nor closes is a hang: abort.
     */
    size_t done = 0;
    bool ended = false;
    for (;;) {
        if (done == size && !ended) {
            shutdown(fd, SHUT_WR);
            ended = true;
        }
        struct pollfd pfd = {.fd = fd, .events = POLLIN | (ended ? 0 : POLLOUT)};
        g_assert(poll(&pfd, 1, 10000) == 1);
        if (pfd.revents & POLLOUT) {
            ssize_t n = send(fd, data + done, size - done, MSG_NOSIGNAL);
            if (n < 0 && errno != EAGAIN) {
                break; /* dropped */
            }
            done += n > 0 ? (size_t)n : 0;
        }
        if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
            char buf[65536];
            ssize_t n = recv(fd, buf, sizeof(buf), 0);
            if (n == 0 || (n < 0 && errno != EAGAIN)) {
                break;
            }
        }
    }
    close(fd);
    return 0;
}
