/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * QEMU's isa-debug-exit: a guest write of V ends qlite with exit status (V << 1) | 1,
 * so a test guest can turn its verdict into the VMM's exit code.
 */
#include "mem/bus.h"

#include <glib.h>
#include <stdint.h>

#define DEBUG_EXIT_DEFAULT_BASE 0x501 /* QEMU's defaults */
#define DEBUG_EXIT_DEFAULT_SIZE 0x02

typedef struct DebugExit {
    void (*exit)(void *opaque, int status);
    void *opaque;
} DebugExit;

extern const BusOps debug_exit_bus_ops;

int debug_exit_status(uint64_t value);
