/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* A minimal 8042 keyboard controller: enough for Linux to probe it and to reset the PC. */
#include "mem/bus.h"

#include "util/state.h"

#include <glib.h>
#include <stdint.h>

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT  0x64

typedef struct I8042Regs {
    uint8_t status;
    uint8_t ctr;         /* controller configuration byte */
    uint8_t pending_cmd; /* a command waiting for its data byte, or 0 */
    uint8_t out[4];      /* bytes the guest will read from port 0x60 */
    uint8_t out_head, out_count;
} I8042Regs;

typedef struct I8042 {
    GMutex lock;
    I8042Regs r;
    void (*reset)(void *opaque); /* the guest pulsed the CPU reset line */
    void *opaque;
} I8042;

/* Port 0x60 and 0x64 share one handler; offsets are relative to 0x60. */
extern const BusOps i8042_bus_ops;

I8042 *i8042_new(void (*reset)(void *opaque), void *opaque);
void i8042_free(I8042 *kbd);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(I8042, i8042_free)
void i8042_reset(I8042 *kbd);

/* Save/restore: status, configuration byte, a pending command, the output queue. */
void i8042_save(I8042 *kbd, GByteArray *out);
void i8042_load(I8042 *kbd, StateIn *in);
