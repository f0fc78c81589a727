/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* QEMU's command-line syntax, for the options qlite implements. */
#include "machine/pc.h"

#include <glib.h>

typedef enum {
    CMDLINE_RUN,
    CMDLINE_HELP,
    CMDLINE_VERSION,
} CmdlineAction;

#define CMDLINE_DEFAULT_RAM  (128ULL << 20) /* QEMU's default -m */
#define CMDLINE_MIN_RAM      (8ULL << 20)
#define CMDLINE_MAX_RAM      (1ULL << 40)
#define CMDLINE_MAX_CPUS     PC_MAX_CPUS

/* Fills cfg (cleared first); the error names the option and the value. */
bool cmdline_parse(int argc, char **argv, MachineConfig *cfg, CmdlineAction *action,
                   GError **error);
void cmdline_print_help(void);
