/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * 16550A UART. Register-level only: the vCPU thread that touches a register
 * does the work under the device lock; output goes straight to the backend
 * (a console byte is one port write, so this path stays short).
 */
#include "machine/serial.h"

#include <string.h>

enum {
    UART_RBR_THR = 0, /* DLL when LCR.DLAB */
    UART_IER = 1,     /* DLM when LCR.DLAB */
    UART_IIR_FCR = 2,
    UART_LCR = 3,
    UART_MCR = 4,
    UART_LSR = 5,
    UART_MSR = 6,
    UART_SCR = 7,
};

#define IER_RDI   0x01 /* received data available */
#define IER_THRI  0x02 /* transmitter holding register empty */
#define IER_RLSI  0x04 /* receiver line status */
#define IER_MSI   0x08 /* modem status */
#define IIR_NO_INT 0x01
#define IIR_MSI   0x00
#define IIR_THRI  0x02
#define IIR_RDI   0x04
#define IIR_RLSI  0x06
#define IIR_FIFO  0xc0
#define FCR_ENABLE 0x01
#define FCR_CLEAR_RX 0x02
#define LCR_DLAB  0x80
#define MCR_DTR   0x01
#define MCR_RTS   0x02
#define MCR_OUT1  0x04
#define MCR_OUT2  0x08
#define MCR_LOOP  0x10
#define LSR_DR    0x01
#define LSR_OE    0x02
#define LSR_ERRORS 0x1e
#define LSR_THRE  0x20
#define LSR_TEMT  0x40
#define MSR_CTS   0x10
#define MSR_DSR   0x20
#define MSR_RI    0x40
#define MSR_DCD   0x80

static uint8_t serial_iir_locked(const Serial *s)
{
    const SerialRegs *r = &s->r;
    uint8_t fifo = (r->fcr & FCR_ENABLE) ? IIR_FIFO : 0;
    if ((r->ier & IER_RLSI) && (r->lsr & LSR_ERRORS)) {
        return fifo | IIR_RLSI;
    }
    if ((r->ier & IER_RDI) && (r->lsr & LSR_DR)) {
        return fifo | IIR_RDI;
    }
    if ((r->ier & IER_THRI) && r->thr_ipending) {
        return fifo | IIR_THRI;
    }
    if ((r->ier & IER_MSI) && (r->msr & 0x0f)) {
        return fifo | IIR_MSI;
    }
    return fifo | IIR_NO_INT;
}

static void serial_update_irq_locked(Serial *s)
{
    bool level = !(serial_iir_locked(s) & IIR_NO_INT);
    if (level != s->irq_level) {
        s->irq_level = level;
        if (s->be.set_irq) {
            s->be.set_irq(s->be.irq_opaque, level);
        }
    }
}

static unsigned serial_rx_capacity(const SerialRegs *r)
{
    return (r->fcr & FCR_ENABLE) ? SERIAL_FIFO_SIZE : 1;
}

static void serial_push_rx_locked(Serial *s, uint8_t c)
{
    SerialRegs *r = &s->r;
    if (r->rx_count >= serial_rx_capacity(r)) {
        r->lsr |= LSR_OE;
        return;
    }
    r->rx_fifo[(r->rx_head + r->rx_count) % SERIAL_FIFO_SIZE] = c;
    r->rx_count++;
    r->lsr |= LSR_DR;
}

static uint8_t serial_pop_rx_locked(Serial *s)
{
    SerialRegs *r = &s->r;
    if (!r->rx_count) {
        return 0;
    }
    uint8_t c = r->rx_fifo[r->rx_head];
    r->rx_head = (r->rx_head + 1) % SERIAL_FIFO_SIZE;
    r->rx_count--;
    if (!r->rx_count) {
        r->lsr &= ~LSR_DR;
    }
    return c;
}

/* In loopback the modem inputs are wired to the modem outputs (16550D, MCR bit 4). */
static uint8_t serial_msr_locked(const SerialRegs *r)
{
    if (r->mcr & MCR_LOOP) {
        uint8_t m = 0;
        m |= (r->mcr & MCR_RTS) ? MSR_CTS : 0;
        m |= (r->mcr & MCR_DTR) ? MSR_DSR : 0;
        m |= (r->mcr & MCR_OUT1) ? MSR_RI : 0;
        m |= (r->mcr & MCR_OUT2) ? MSR_DCD : 0;
        return m | (r->msr & 0x0f);
    }
    return r->msr;
}

static void serial_read(void *opaque, uint64_t offset, uint8_t *data, unsigned len)
{
    Serial *s = opaque;
    SerialRegs *r = &s->r;
    uint8_t v = 0xff;
    bool drained = false;

    g_mutex_lock(&s->lock);
    switch (offset) {
    case UART_RBR_THR:
        if (r->lcr & LCR_DLAB) {
            v = r->dll;
        } else {
            v = serial_pop_rx_locked(s);
            drained = true;
        }
        break;
    case UART_IER:
        v = (r->lcr & LCR_DLAB) ? r->dlm : r->ier;
        break;
    case UART_IIR_FCR:
        v = serial_iir_locked(s);
        if ((v & 0x0f) == IIR_THRI) {
            r->thr_ipending = 0;
        }
        break;
    case UART_LCR:
        v = r->lcr;
        break;
    case UART_MCR:
        v = r->mcr;
        break;
    case UART_LSR:
        v = r->lsr;
        r->lsr &= ~LSR_ERRORS;
        break;
    case UART_MSR:
        v = serial_msr_locked(r);
        r->msr &= 0xf0; /* reading clears the delta bits */
        break;
    case UART_SCR:
        v = r->scr;
        break;
    }
    serial_update_irq_locked(s);
    g_mutex_unlock(&s->lock);

    memset(data, 0, len);
    data[0] = v;
    if (drained && s->be.accept_input) {
        s->be.accept_input(s->be.opaque);
    }
}

static void serial_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned len)
{
    Serial *s = opaque;
    SerialRegs *r = &s->r;
    uint8_t v = data[0];

    g_mutex_lock(&s->lock);
    switch (offset) {
    case UART_RBR_THR:
        if (r->lcr & LCR_DLAB) {
            r->dll = v;
            break;
        }
        /* The byte leaves at once: THR and the shifter are empty again. */
        r->lsr |= LSR_THRE | LSR_TEMT;
        r->thr_ipending = 1;
        if (r->mcr & MCR_LOOP) {
            serial_push_rx_locked(s, v);
        } else if (s->be.write) {
            s->be.write(s->be.opaque, &v, 1);
        }
        break;
    case UART_IER:
        if (r->lcr & LCR_DLAB) {
            r->dlm = v;
            break;
        }
        /* Enabling THRI with an empty THR raises the interrupt (Linux relies on it). */
        if ((v & IER_THRI) && !(r->ier & IER_THRI) && (r->lsr & LSR_THRE)) {
            r->thr_ipending = 1;
        }
        r->ier = v & 0x0f;
        break;
    case UART_IIR_FCR:
        if (v & FCR_CLEAR_RX) {
            r->rx_head = r->rx_count = 0;
            r->lsr &= ~LSR_DR;
        }
        r->fcr = v & 0xc9;
        break;
    case UART_LCR:
        r->lcr = v;
        break;
    case UART_MCR:
        r->mcr = v & 0x1f;
        break;
    case UART_LSR:
    case UART_MSR:
        break; /* read-only (factory test registers on a real part) */
    case UART_SCR:
        r->scr = v;
        break;
    }
    serial_update_irq_locked(s);
    g_mutex_unlock(&s->lock);
}

const BusOps serial_bus_ops = {
    .read = serial_read,
    .write = serial_write,
};

static void serial_reset_locked(Serial *s)
{
    memset(&s->r, 0, sizeof(s->r));
    s->r.lsr = LSR_THRE | LSR_TEMT;
    /* No modem: carrier, DSR and CTS always asserted, as QEMU reports. */
    s->r.msr = MSR_DCD | MSR_DSR | MSR_CTS;
    s->r.dll = 0x0c; /* 9600 baud */
    serial_update_irq_locked(s);
}

Serial *serial_new(const SerialBackend *be)
{
    Serial *s = g_new0(Serial, 1);
    g_mutex_init(&s->lock);
    s->be = *be;
    serial_reset_locked(s);
    return s;
}

void serial_reset(Serial *s)
{
    g_mutex_lock(&s->lock);
    serial_reset_locked(s);
    g_mutex_unlock(&s->lock);
}

void serial_free(Serial *s)
{
    if (!s) {
        return;
    }
    g_mutex_clear(&s->lock);
    g_free(s);
}

size_t serial_can_receive(Serial *s)
{
    g_mutex_lock(&s->lock);
    size_t room = serial_rx_capacity(&s->r) - MIN(s->r.rx_count, serial_rx_capacity(&s->r));
    if (s->r.mcr & MCR_LOOP) {
        room = 0; /* in loopback the line is disconnected from the outside */
    }
    g_mutex_unlock(&s->lock);
    return room;
}

void serial_receive(Serial *s, const uint8_t *buf, size_t len)
{
    g_mutex_lock(&s->lock);
    for (size_t i = 0; i < len; i++) {
        serial_push_rx_locked(s, buf[i]);
    }
    serial_update_irq_locked(s);
    g_mutex_unlock(&s->lock);
}

void serial_save(Serial *s, GByteArray *out)
{
    g_mutex_lock(&s->lock);
    const SerialRegs *r = &s->r;
    const uint8_t regs[] = {r->ier, r->lcr, r->mcr, r->lsr, r->msr, r->scr, r->dll, r->dlm, r->fcr,
                            r->thr_ipending, r->rx_head, r->rx_count};
    state_put_bytes(out, regs, sizeof(regs));
    state_put_bytes(out, r->rx_fifo, sizeof(r->rx_fifo));
    g_mutex_unlock(&s->lock);
}

void serial_load(Serial *s, StateIn *in)
{
    SerialRegs r;
    uint8_t regs[12];
    state_get_bytes(in, regs, sizeof(regs));
    state_get_bytes(in, r.rx_fifo, sizeof(r.rx_fifo));
    r.ier = regs[0], r.lcr = regs[1], r.mcr = regs[2], r.lsr = regs[3], r.msr = regs[4];
    r.scr = regs[5], r.dll = regs[6], r.dlm = regs[7], r.fcr = regs[8];
    r.thr_ipending = regs[9], r.rx_head = regs[10], r.rx_count = regs[11];
    state_in_check(in, r.rx_head < SERIAL_FIFO_SIZE && r.rx_count <= SERIAL_FIFO_SIZE);
    if (in->bad) {
        return;
    }
    g_mutex_lock(&s->lock);
    s->r = r;
    serial_update_irq_locked(s);
    g_mutex_unlock(&s->lock);
}
