/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "machine/serial.h"

#include <string.h>

typedef struct {
    GString *out;
    bool irq;
    int irq_changes;
    int accepts;
} FakeBackend;

static void fb_write(void *opaque, const uint8_t *buf, size_t len)
{
    FakeBackend *f = opaque;
    g_string_append_len(f->out, (const char *)buf, (gssize)len);
}

static void fb_accept(void *opaque)
{
    ((FakeBackend *)opaque)->accepts++;
}

static void fb_irq(void *opaque, bool level)
{
    FakeBackend *f = opaque;
    f->irq = level;
    f->irq_changes++;
}

static Serial *make(FakeBackend *f)
{
    memset(f, 0, sizeof(*f));
    f->out = g_string_new(NULL);
    SerialBackend be = {.write = fb_write, .accept_input = fb_accept, .opaque = f,
                        .set_irq = fb_irq, .irq_opaque = f};
    return serial_new(&be);
}

static void wr(Serial *s, unsigned reg, uint8_t v)
{
    serial_bus_ops.write(s, reg, &v, 1);
}

static uint8_t rd(Serial *s, unsigned reg)
{
    uint8_t v;
    serial_bus_ops.read(s, reg, &v, 1);
    return v;
}

static void test_divisor_latch(void)
{
    FakeBackend f;
    g_autoptr(Serial) s = make(&f);
    wr(s, 3, 0x80); /* DLAB */
    wr(s, 0, 0x01);
    wr(s, 1, 0x02);
    g_assert_cmphex(rd(s, 0), ==, 0x01);
    g_assert_cmphex(rd(s, 1), ==, 0x02);
    wr(s, 3, 0x03); /* 8N1, DLAB off */
    g_assert_cmphex(rd(s, 1), ==, 0x00); /* IER, not DLM */
    wr(s, 0, 'A');
    g_assert_cmpstr(f.out->str, ==, "A"); /* THR, not DLL */
    wr(s, 3, 0x83);
    g_assert_cmphex(rd(s, 0), ==, 0x01); /* the latch kept its value */
    g_string_free(f.out, TRUE);
}

static void test_lsr_iir_tx(void)
{
    FakeBackend f;
    g_autoptr(Serial) s = make(&f);
    g_assert_cmphex(rd(s, 5), ==, 0x60); /* THRE | TEMT */
    g_assert_cmphex(rd(s, 2) & 0x0f, ==, 0x01); /* no interrupt */
    g_assert_false(f.irq);

    /* Enabling THRI with an empty THR interrupts at once; reading IIR clears it. */
    wr(s, 1, 0x02);
    g_assert_true(f.irq);
    g_assert_cmphex(rd(s, 2) & 0x0f, ==, 0x02);
    g_assert_false(f.irq);
    g_assert_cmphex(rd(s, 2) & 0x0f, ==, 0x01);

    wr(s, 0, 'x');
    g_assert_true(f.irq);
    g_assert_cmpstr(f.out->str, ==, "x");
    g_assert_cmphex(rd(s, 5) & 0x60, ==, 0x60);
    wr(s, 1, 0x00);
    g_assert_false(f.irq);
    g_string_free(f.out, TRUE);
}

static void test_rx_fifo(void)
{
    FakeBackend f;
    g_autoptr(Serial) s = make(&f);
    /* 16450 mode: one byte of room. */
    g_assert_cmpuint(serial_can_receive(s), ==, 1);
    wr(s, 2, 0x07); /* enable and clear FIFOs */
    g_assert_cmphex(rd(s, 2) & 0xc0, ==, 0xc0); /* 16550A FIFO bits */
    g_assert_cmpuint(serial_can_receive(s), ==, 16);

    wr(s, 1, 0x01); /* RDI */
    serial_receive(s, (const uint8_t *)"hello", 5);
    g_assert_true(f.irq);
    g_assert_cmphex(rd(s, 2) & 0x0f, ==, 0x04);
    g_assert_cmphex(rd(s, 5) & 0x01, ==, 0x01);
    g_assert_cmpuint(serial_can_receive(s), ==, 11);
    char got[6] = {0};
    for (int i = 0; i < 5; i++) {
        got[i] = (char)rd(s, 0);
    }
    g_assert_cmpstr(got, ==, "hello");
    g_assert_cmphex(rd(s, 5) & 0x01, ==, 0);
    g_assert_false(f.irq);
    g_assert_cmpint(f.accepts, ==, 5);

    /* Overrun: more than 16 bytes sets OE, which a LSR read clears. */
    uint8_t many[20];
    memset(many, 'z', sizeof(many));
    serial_receive(s, many, sizeof(many));
    g_assert_cmpuint(serial_can_receive(s), ==, 0);
    g_assert_cmphex(rd(s, 5) & 0x02, ==, 0x02);
    g_assert_cmphex(rd(s, 5) & 0x02, ==, 0);
    /* FCR bit 1 empties the receive FIFO. */
    wr(s, 2, 0x03);
    g_assert_cmphex(rd(s, 5) & 0x01, ==, 0);
    g_assert_cmpuint(serial_can_receive(s), ==, 16);
    g_string_free(f.out, TRUE);
}

static void test_loopback(void)
{
    FakeBackend f;
    g_autoptr(Serial) s = make(&f);
    /* What Linux's 8250 autoconfig checks: MSR follows MCR in loopback. */
    wr(s, 4, 0x10 | 0x0a); /* LOOP | RTS | OUT2 */
    g_assert_cmphex(rd(s, 6) & 0xf0, ==, 0x90); /* CTS | DCD */
    wr(s, 4, 0x10 | 0x05); /* LOOP | DTR | OUT1 */
    g_assert_cmphex(rd(s, 6) & 0xf0, ==, 0x60); /* DSR | RI */
    wr(s, 0, 'q');
    g_assert_cmpstr(f.out->str, ==, ""); /* nothing leaves the chip */
    g_assert_cmphex(rd(s, 5) & 0x01, ==, 0x01);
    g_assert_cmphex(rd(s, 0), ==, 'q');
    wr(s, 4, 0x00);
    g_assert_cmphex(rd(s, 6) & 0xf0, ==, 0xb0); /* no modem: DCD, DSR, CTS */
    g_string_free(f.out, TRUE);
}

static void test_scratch_and_reset(void)
{
    FakeBackend f;
    g_autoptr(Serial) s = make(&f);
    wr(s, 7, 0xa5);
    g_assert_cmphex(rd(s, 7), ==, 0xa5);
    wr(s, 1, 0x0f);
    serial_reset(s);
    g_assert_cmphex(rd(s, 7), ==, 0);
    g_assert_cmphex(rd(s, 1), ==, 0);
    g_assert_false(f.irq);
    g_string_free(f.out, TRUE);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/serial/divisor-latch", test_divisor_latch);
    g_test_add_func("/serial/lsr-iir-tx", test_lsr_iir_tx);
    g_test_add_func("/serial/rx-fifo", test_rx_fifo);
    g_test_add_func("/serial/loopback", test_loopback);
    g_test_add_func("/serial/scratch-reset", test_scratch_and_reset);
    return g_test_run();
}
