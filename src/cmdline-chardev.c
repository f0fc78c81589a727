/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The command line's chardevs and monitors: -chardev (a listening socket
 * for -mon, a file for isa-serial), -mon, and the monitor list -qmp adds to.
 */
#include "cmdline-int.h"
#include "util/error.h"
#include "util/opts.h"

#include <string.h>

/* A monitor and its chardev label (QEMU's: the -chardev id, or compat_monitorN for -qmp). */
void add_monitor(MachineConfig *cfg, char *spec, const char *label)
{
    if (!cfg->monitors) {
        cfg->monitors = g_ptr_array_new_with_free_func(g_free);
        cfg->monitor_labels = g_ptr_array_new_with_free_func(g_free);
    }
    g_ptr_array_add(cfg->monitors, spec);
    g_ptr_array_add(cfg->monitor_labels,
                    label ? g_strdup(label)
                          : g_strdup_printf("compat_monitor%u", cfg->monitors->len - 1));
}

/* -chardev file,id=ID,path=PATH[,append=on]: for isa-serial (PATH may be /dev/fdset/N). */
static bool parse_chardev_file(Opts *o, const char *id, CmdlineState *st, GError **error)
{
    const char *path = opts_get(o, "path");
    bool append;
    if (!opts_get_bool(o, "append", false, &append, error) || !opts_check_unused(o, error)) {
        return false;
    }
    if (!path || !*path) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "chardev: file: path= is required");
        return false;
    }
    g_hash_table_insert(st->chardevs, g_strdup(id), g_strdup_printf("file:%s", path));
    if (append) {
        g_hash_table_add(st->chardev_append, g_strdup(id));
    }
    return true;
}

/* -chardev socket,...: kept as a monitor spec for a later -mon chardev=ID; file: above. */
bool parse_chardev(const char *arg, CmdlineState *st, GError **error)
{
    GHashTable *chardevs = st->chardevs;
    g_autoptr(Opts) o = opts_parse(arg, "backend", error);
    if (!o) {
        return false;
    }
    const char *backend = opts_get(o, "backend");
    const char *id = opts_get(o, "id");
    if (!id) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "chardev: no id given");
        return false;
    }
    if (g_hash_table_contains(chardevs, id)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "duplicate chardev id '%s'", id);
        return false;
    }
    if (backend && strcmp(backend, "file") == 0) {
        return parse_chardev_file(o, id, st, error);
    }
    const char *path = opts_get(o, "path");
    const char *host = opts_get(o, "host");
    const char *port = opts_get(o, "port");
    const char *fd = opts_get(o, "fd");
    bool server, wait;
    if (!opts_get_bool(o, "server", false, &server, error) ||
        !opts_get_bool(o, "wait", true, &wait, error) || !opts_check_unused(o, error)) {
        return false;
    }
    if (!backend || strcmp(backend, "socket") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "chardev backend '%s' is not supported (socket, file)", backend ? backend : "");
        return false;
    }
    if (!fd && (!server || wait)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "only listening sockets are supported: server=on,wait=off");
        return false;
    }
    char *spec;
    if (fd) {
        uint64_t n;
        if (!parse_u64(fd, &n) || n > G_MAXINT) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "fd=%s is not a descriptor", fd);
            return false;
        }
        spec = g_strdup_printf("fd:%" G_GUINT64_FORMAT, n);
    } else if (path) {
        spec = g_strdup_printf("unix:%s,server=on,wait=off", path);
    } else if (port) {
        spec = g_strdup_printf("tcp:%s:%s,server=on,wait=off", host ? host : "0.0.0.0", port);
    } else {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "chardev: path=, port= or fd= needed");
        return false;
    }
    g_hash_table_insert(chardevs, g_strdup(id), spec);
    return true;
}

bool parse_mon(const char *arg, MachineConfig *cfg, GHashTable *chardevs, GError **error)
{
    g_autoptr(Opts) o = opts_parse(arg, "chardev", error);
    if (!o) {
        return false;
    }
    const char *id = opts_get(o, "chardev");
    const char *mode = opts_get(o, "mode");
    opts_get(o, "id"); /* names the monitor; nothing refers to it */
    bool pretty;
    if (!opts_get_bool(o, "pretty", false, &pretty, error) || !opts_check_unused(o, error)) {
        return false;
    }
    if (!mode || strcmp(mode, "control") != 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "mode=%s is not supported: qlite's monitors are QMP (mode=control)",
                    mode ? mode : "readline");
        return false;
    }
    gpointer key, spec;
    if (!id || !g_hash_table_lookup_extended(chardevs, id, &key, &spec)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "chardev '%s' not found",
                    id ? id : "");
        return false;
    }
    if (g_str_has_prefix(spec, "file:")) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "chardev '%s' is a file: a monitor needs a socket", id);
        return false;
    }
    g_hash_table_steal(chardevs, id);
    add_monitor(cfg, spec, key);
    g_free(key);
    return true;
}
