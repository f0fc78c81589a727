/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * 8042 controller with no keyboard or mouse behind it. Commands follow the
 * IBM PC/AT technical reference; devices behind the ports answer nothing, so
 * a probing guest finds an empty controller. The reset line (command 0xfe,
 * or output-port bit 0 cleared) resets the machine.
 */
#include "machine/i8042.h"

#include <string.h>

#define STATUS_OBF   0x01
#define STATUS_SYS   0x04
#define STATUS_CMD   0x08
#define CTR_DEFAULT  0x45 /* IRQ1 on, system flag, translation */

enum {
    CMD_READ_CTR = 0x20,
    CMD_WRITE_CTR = 0x60,
    CMD_DISABLE_AUX = 0xa7,
    CMD_ENABLE_AUX = 0xa8,
    CMD_TEST_AUX = 0xa9,
    CMD_SELF_TEST = 0xaa,
    CMD_TEST_KBD = 0xab,
    CMD_DISABLE_KBD = 0xad,
    CMD_ENABLE_KBD = 0xae,
    CMD_READ_OUTPORT = 0xd0,
    CMD_WRITE_OUTPORT = 0xd1,
    CMD_WRITE_AUX = 0xd4,
    CMD_PULSE_RESET = 0xfe,
};

static void i8042_push_locked(I8042 *kbd, uint8_t v)
{
    I8042Regs *r = &kbd->r;
    if (r->out_count < sizeof(r->out)) {
        r->out[(r->out_head + r->out_count) % sizeof(r->out)] = v;
        r->out_count++;
    }
    r->status |= STATUS_OBF;
}

static uint8_t i8042_pop_locked(I8042 *kbd)
{
    I8042Regs *r = &kbd->r;
    if (!r->out_count) {
        return 0;
    }
    uint8_t v = r->out[r->out_head];
    r->out_head = (r->out_head + 1) % sizeof(r->out);
    if (!--r->out_count) {
        r->status &= ~STATUS_OBF;
    }
    return v;
}

/* Returns true when the command pulls the reset line. */
static bool i8042_command_locked(I8042 *kbd, uint8_t cmd)
{
    I8042Regs *r = &kbd->r;
    switch (cmd) {
    case CMD_READ_CTR:
        i8042_push_locked(kbd, r->ctr);
        break;
    case CMD_WRITE_CTR:
    case CMD_WRITE_OUTPORT:
    case CMD_WRITE_AUX:
        r->pending_cmd = cmd;
        break;
    case CMD_SELF_TEST:
        r->status |= STATUS_SYS;
        i8042_push_locked(kbd, 0x55);
        break;
    case CMD_TEST_KBD:
    case CMD_TEST_AUX:
        i8042_push_locked(kbd, 0x00);
        break;
    case CMD_READ_OUTPORT:
        i8042_push_locked(kbd, 0x01); /* reset line high: running */
        break;
    case CMD_DISABLE_KBD:
    case CMD_ENABLE_KBD:
    case CMD_DISABLE_AUX:
    case CMD_ENABLE_AUX:
        break;
    default:
        /* 0xf0-0xff pulse output lines for 6 us; bit 0 low pulses CPU reset. */
        if ((cmd & 0xf0) == 0xf0 && !(cmd & 0x01)) {
            return true;
        }
        break;
    }
    return false;
}

static void i8042_read(void *opaque, uint64_t offset, uint8_t *data, unsigned len)
{
    I8042 *kbd = opaque;
    uint8_t v = 0xff;
    g_mutex_lock(&kbd->lock);
    if (offset == 0) {
        v = i8042_pop_locked(kbd);
    } else if (offset == 4) {
        v = kbd->r.status;
    }
    g_mutex_unlock(&kbd->lock);
    memset(data, 0, len);
    data[0] = v;
}

static void i8042_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned len)
{
    I8042 *kbd = opaque;
    I8042Regs *r = &kbd->r;
    uint8_t v = data[0];
    bool reset = false;

    g_mutex_lock(&kbd->lock);
    if (offset == 4) {
        r->status |= STATUS_CMD;
        reset = i8042_command_locked(kbd, v);
    } else if (offset == 0) {
        r->status &= ~STATUS_CMD;
        switch (r->pending_cmd) {
        case CMD_WRITE_CTR:
            r->ctr = v;
            break;
        case CMD_WRITE_OUTPORT:
            reset = !(v & 0x01);
            break;
        case CMD_WRITE_AUX:
            break; /* no mouse: nothing answers */
        default:
            /* A keyboard command with no keyboard: nothing answers, the guest times out. */
            break;
        }
        r->pending_cmd = 0;
    }
    g_mutex_unlock(&kbd->lock);
    if (reset && kbd->reset) {
        kbd->reset(kbd->opaque);
    }
}

const BusOps i8042_bus_ops = {
    .read = i8042_read,
    .write = i8042_write,
};

void i8042_reset(I8042 *kbd)
{
    g_mutex_lock(&kbd->lock);
    memset(&kbd->r, 0, sizeof(kbd->r));
    kbd->r.ctr = CTR_DEFAULT;
    kbd->r.status = STATUS_SYS;
    g_mutex_unlock(&kbd->lock);
}

I8042 *i8042_new(void (*reset)(void *opaque), void *opaque)
{
    I8042 *kbd = g_new0(I8042, 1);
    g_mutex_init(&kbd->lock);
    kbd->reset = reset;
    kbd->opaque = opaque;
    i8042_reset(kbd);
    return kbd;
}

void i8042_free(I8042 *kbd)
{
    if (!kbd) {
        return;
    }
    g_mutex_clear(&kbd->lock);
    g_free(kbd);
}

void i8042_save(I8042 *kbd, GByteArray *out)
{
    g_mutex_lock(&kbd->lock);
    const I8042Regs *r = &kbd->r;
    const uint8_t regs[] = {r->status, r->ctr, r->pending_cmd, r->out_head, r->out_count};
    state_put_bytes(out, regs, sizeof(regs));
    state_put_bytes(out, r->out, sizeof(r->out));
    g_mutex_unlock(&kbd->lock);
}

void i8042_load(I8042 *kbd, StateIn *in)
{
    I8042Regs r;
    uint8_t regs[5];
    state_get_bytes(in, regs, sizeof(regs));
    state_get_bytes(in, r.out, sizeof(r.out));
    r.status = regs[0], r.ctr = regs[1], r.pending_cmd = regs[2];
    r.out_head = regs[3], r.out_count = regs[4];
    state_in_check(in, r.out_head < sizeof(r.out) && r.out_count <= sizeof(r.out));
    if (in->bad) {
        return;
    }
    g_mutex_lock(&kbd->lock);
    kbd->r = r;
    g_mutex_unlock(&kbd->lock);
}
