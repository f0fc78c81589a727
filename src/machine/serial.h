/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/* 16550A UART (National Semiconductor PC16550D data sheet), as COM1 on the PC. */
#include "mem/bus.h"

#include "util/state.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define SERIAL_COM1_BASE 0x3f8
#define SERIAL_COM1_IRQ  4
#define SERIAL_NR_REGS   8
#define SERIAL_FIFO_SIZE 16

/* Where the UART's bytes go, and how it tells the source it has room again. */
typedef struct SerialBackend {
    void (*write)(void *opaque, const uint8_t *buf, size_t len);
    void (*accept_input)(void *opaque);
    void *opaque;
    void (*set_irq)(void *irq_opaque, bool level);
    void *irq_opaque;
} SerialBackend;

/* Everything the guest can observe: the saved state of the device. */
typedef struct SerialRegs {
    uint8_t ier, lcr, mcr, lsr, msr, scr, dll, dlm, fcr;
    uint8_t thr_ipending; /* THR-empty interrupt pending until IIR read or THR write */
    uint8_t rx_fifo[SERIAL_FIFO_SIZE];
    uint8_t rx_head, rx_count;
} SerialRegs;

typedef struct Serial {
    GMutex lock;
    SerialRegs r;
    bool irq_level;
    SerialBackend be;
} Serial;

extern const BusOps serial_bus_ops;

Serial *serial_new(const SerialBackend *be);
void serial_free(Serial *s);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Serial, serial_free)
void serial_reset(Serial *s);

/* Input side, from the backend's thread. */
size_t serial_can_receive(Serial *s);
void serial_receive(Serial *s, const uint8_t *buf, size_t len);

/* Save/restore: the registers and the receive FIFO; load re-drives the interrupt line. */
void serial_save(Serial *s, GByteArray *out);
void serial_load(Serial *s, StateIn *in);
