/* SPDX-License-Identifier: GPL-2.0-or-later */
/* qlite: parse the command line, build the PC, run it. */
#include "cmdline.h"
#include "machine/pc.h"
#include "util/daemon.h"

#include <signal.h>
#include <stdio.h>

/* -msg timestamp=on: QEMU's prefix, the UTC time in ISO 8601 with microseconds. */
static void printerr_with_time(const gchar *text)
{
    g_autoptr(GDateTime) now = g_date_time_new_now_utc();
    g_autofree char *stamp = g_date_time_format_iso8601(now);
    fprintf(stderr, "%s %s", stamp, text);
}

int main(int argc, char **argv)
{
    MachineConfig cfg;
    CmdlineAction action;
    g_autoptr(GError) err = NULL;

    /* stdout may be the guest's serial console: every log message goes to stderr. */
    g_log_writer_default_set_use_stderr(TRUE);
    /* A migration peer or monitor client that goes away is an error to handle, not our end. */
    signal(SIGPIPE, SIG_IGN);
    if (!cmdline_parse(argc, argv, &cfg, &action, &err)) {
        g_printerr("qlite: %s\n", err->message);
        machine_config_clear(&cfg);
        return QLITE_EXIT_ERROR;
    }
    if (cfg.msg_timestamp) {
        g_set_printerr_handler(printerr_with_time);
    }
    if (action == CMDLINE_HELP) {
        cmdline_print_help();
        machine_config_clear(&cfg);
        return QLITE_EXIT_OK;
    }
    if (action == CMDLINE_VERSION) {
        printf("qlite version " QLITE_VERSION "\n");
        machine_config_clear(&cfg);
        return QLITE_EXIT_OK;
    }

    /* Before any thread exists: fork, and let the parent wait for the set-up. */
    if (cfg.daemonize && !daemon_start(&err)) {
        g_printerr("qlite: %s\n", err->message);
        machine_config_clear(&cfg);
        return QLITE_EXIT_ERROR;
    }
    g_autofree char *pidfile = g_strdup(cfg.pidfile);
    if (pidfile && !pidfile_create(pidfile, &err)) {
        g_printerr("qlite: %s\n", err->message);
        machine_config_clear(&cfg);
        return QLITE_EXIT_ERROR;
    }
    machine_hold_signals();
    /* Before any thread: the filters' violation handler and the command helper. */
    if (!sandbox_init(&cfg.sandbox, &err)) {
        g_printerr("qlite: %s\n", err->message);
        machine_config_clear(&cfg);
        if (pidfile) {
            pidfile_remove(pidfile);
        }
        return QLITE_EXIT_ERROR;
    }
    if (cfg.machine_none) {
        int status = machine_none_run(&cfg);
        machine_config_clear(&cfg);
        if (pidfile) {
            pidfile_remove(pidfile);
        }
        return status;
    }
    bool daemonize = cfg.daemonize;
    Machine *m = machine_new(&cfg, &err);
    machine_config_clear(&cfg);
    if (!m) {
        g_printerr("qlite: %s\n", err->message);
        if (pidfile) {
            pidfile_remove(pidfile);
        }
        return QLITE_EXIT_ERROR;
    }
    if (daemonize) {
        daemon_ready(); /* the monitors listen: the parent may go */
    }
    int status = machine_run(m);
    machine_free(m);
    if (pidfile) {
        pidfile_remove(pidfile);
    }
    return status;
}
