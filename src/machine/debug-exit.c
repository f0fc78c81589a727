/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "machine/debug-exit.h"

int debug_exit_status(uint64_t value)
{
    /* As QEMU: the value of the whole access, shifted; the OS keeps the low 8 bits. */
    return (int)(((value << 1) | 1) & 0xff);
}

static void debug_exit_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned len)
{
    DebugExit *d = opaque;
    d->exit(d->opaque, debug_exit_status(bus_data_get(data, len)));
}

const BusOps debug_exit_bus_ops = {
    .write = debug_exit_write,
};
