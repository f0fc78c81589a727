/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * -daemonize and -pidfile as QEMU has them: the process forks before any
 * thread exists; the parent waits until the child is set up (monitors
 * listening) and exits with 0, or with the child's status if set-up failed.
 */
#include <glib.h>
#include <stdbool.h>

/* Forks; returns in the child only. The parent exits from inside. */
bool daemon_start(GError **error);
/* Child: set-up succeeded. Detaches from the terminal and releases the parent. */
void daemon_ready(void);

/* Creates path with our pid, locked so a second qlite cannot take it. */
bool pidfile_create(const char *path, GError **error);
void pidfile_remove(const char *path);
