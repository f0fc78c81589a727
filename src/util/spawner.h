/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Commands run for qlite (exec: migration URIs) by a helper process forked
 * before any thread exists and before any seccomp filter: a filter is
 * inherited across fork and exec, and qlite's would kill the shell. The
 * helper only runs "/bin/sh -c COMMAND" with a descriptor qlite hands it as
 * the command's stdin or stdout, and waits for it; it dies with qlite.
 * Without the sandbox there is no helper: commands are spawned directly.
 */
#include <glib.h>
#include <stdbool.h>

/*
 * Before any thread exists, with the sandbox on: forks the helper when
 * commands are allowed, else makes every later spawner_run fail.
 */
bool spawner_start(bool allowed, GError **error);
/* /bin/sh -c command with fd as its stdin (as_stdin) or stdout; fd stays the caller's. */
bool spawner_run(const char *command, int fd, bool as_stdin, GPid *child, GError **error);
/* Waits for a command spawner_run started; false with error when it did not exit with 0. */
bool spawner_wait(GPid child, GError **error);
