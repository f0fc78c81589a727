/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The small PC devices: CMOS RTC, 8042, ACPI PM1, isa-debug-exit. */
#include "machine/acpi-pm.h"
#include "machine/debug-exit.h"
#include "machine/i8042.h"
#include "machine/rtc.h"

#include <string.h>

/* 2026-11-24 13:45:07 UTC, a Tuesday. */
#define FIXED_TIME 1795527907

static time_t fixed_now(void)
{
    return FIXED_TIME;
}

static void port_write(const BusOps *ops, void *dev, uint64_t off, uint8_t v)
{
    ops->write(dev, off, &v, 1);
}

static uint8_t port_read(const BusOps *ops, void *dev, uint64_t off)
{
    uint8_t v;
    ops->read(dev, off, &v, 1);
    return v;
}

static uint8_t cmos(Rtc *rtc, uint8_t reg)
{
    port_write(&rtc_bus_ops, rtc, 0, reg | 0x80); /* with the NMI-mask bit set */
    return port_read(&rtc_bus_ops, rtc, 1);
}

static void cmos_set(Rtc *rtc, uint8_t reg, uint8_t v)
{
    port_write(&rtc_bus_ops, rtc, 0, reg);
    port_write(&rtc_bus_ops, rtc, 1, v);
}

static void test_rtc_time(void)
{
    g_autoptr(Rtc) rtc = rtc_new(fixed_now);
    g_assert_cmphex(cmos(rtc, 0x00), ==, 0x07);
    g_assert_cmphex(cmos(rtc, 0x02), ==, 0x45);
    g_assert_cmphex(cmos(rtc, 0x04), ==, 0x13);
    g_assert_cmphex(cmos(rtc, 0x06), ==, 0x03); /* Tuesday = 3 */
    g_assert_cmphex(cmos(rtc, 0x07), ==, 0x24);
    g_assert_cmphex(cmos(rtc, 0x08), ==, 0x11);
    g_assert_cmphex(cmos(rtc, 0x09), ==, 0x26);
    g_assert_cmphex(cmos(rtc, 0x32), ==, 0x20);
    g_assert_cmphex(cmos(rtc, 0x0a) & 0x80, ==, 0);  /* never in an update cycle */
    g_assert_cmphex(cmos(rtc, 0x0d), ==, 0x80);      /* valid RAM and time */

    /* Binary, 12-hour mode. */
    cmos_set(rtc, 0x0b, 0x04);
    g_assert_cmpuint(cmos(rtc, 0x02), ==, 45);
    g_assert_cmphex(cmos(rtc, 0x04), ==, 0x80 | 1); /* 1 PM */
}

static void test_rtc_set(void)
{
    g_autoptr(Rtc) rtc = rtc_new(fixed_now);
    /* The guest sets the clock one year ahead through a SET cycle. */
    cmos_set(rtc, 0x0b, 0x82);
    cmos_set(rtc, 0x09, 0x27);
    g_assert_cmphex(cmos(rtc, 0x09), ==, 0x27); /* frozen while SET */
    cmos_set(rtc, 0x0b, 0x02);
    g_assert_cmphex(cmos(rtc, 0x09), ==, 0x27);
    g_assert_cmphex(cmos(rtc, 0x08), ==, 0x11);
    g_assert_cmpint(rtc->r.offset, ==, 365 * 86400);
}

/* Year 0005 (century 0x00): a year before 1900 reads back as set, in BCD. */
static void test_rtc_early_year(void)
{
    g_autoptr(Rtc) rtc = rtc_new(fixed_now);
    cmos_set(rtc, 0x0b, 0x82);
    cmos_set(rtc, 0x32, 0x00);
    cmos_set(rtc, 0x09, 0x05);
    cmos_set(rtc, 0x0b, 0x02);
    g_assert_cmphex(cmos(rtc, 0x09), ==, 0x05);
    g_assert_cmphex(cmos(rtc, 0x32), ==, 0x00);
    g_assert_cmphex(cmos(rtc, 0x08), ==, 0x11);
}

/* rtc_save's stream with its offset (the last 8 bytes, little-endian) replaced. */
static GByteArray *state_with_offset(Rtc *rtc, int64_t offset)
{
    GByteArray *st = g_byte_array_new();
    rtc_save(rtc, st);
    for (int i = 0; i < 8; i++) {
        st->data[st->len - 8 + i] = (uint8_t)((uint64_t)offset >> (8 * i));
    }
    return st;
}

/* A saved offset no guest can set is refused at load; one it can set is kept. */
static void test_rtc_load_offset(void)
{
    static const int64_t refused[] = {INT64_MAX, INT64_MIN, (int64_t)1 << 50, -((int64_t)1 << 50)};
    g_autoptr(Rtc) a = rtc_new(fixed_now);
    g_autoptr(Rtc) b = rtc_new(fixed_now);
    for (unsigned i = 0; i < G_N_ELEMENTS(refused); i++) {
        g_autoptr(GByteArray) st = state_with_offset(a, refused[i]);
        StateIn in;
        state_in_init(&in, st->data, st->len);
        rtc_load(b, &in);
        g_assert_true(in.bad);
        g_assert_cmpint(b->r.offset, ==, 0);
        g_assert_cmphex(cmos(b, 0x09), ==, 0x26);
    }
    /* Back to year 0005 (-2021 years, give or take a day), as a guest can set it. */
    g_autoptr(GByteArray) st = state_with_offset(a, -(int64_t)2021 * 31556952);
    StateIn in;
    state_in_init(&in, st->data, st->len);
    rtc_load(b, &in);
    g_assert_false(in.bad);
    g_assert_cmphex(cmos(b, 0x09), ==, 0x05);
    g_assert_cmphex(cmos(b, 0x32), ==, 0x00);
}

static void test_rtc_nvram(void)
{
    g_autoptr(Rtc) rtc = rtc_new(fixed_now);
    cmos_set(rtc, 0x7f, 0x5a);
    cmos_set(rtc, 0x0b, 0x06);
    g_assert_cmphex(cmos(rtc, 0x7f), ==, 0x5a);
    rtc_reset(rtc);
    /* The battery-backed NVRAM survives a reset; the control registers do not. */
    g_assert_cmphex(cmos(rtc, 0x7f), ==, 0x5a);
    g_assert_cmphex(cmos(rtc, 0x0b), ==, 0x02);
}

static int resets;

static void count_reset(void *opaque)
{
    resets++;
}

static void test_i8042(void)
{
    g_autoptr(I8042) kbd = i8042_new(count_reset, NULL);
    resets = 0;
    g_assert_cmphex(port_read(&i8042_bus_ops, kbd, 4) & 0x03, ==, 0); /* buffers empty */
    port_write(&i8042_bus_ops, kbd, 4, 0xaa);
    g_assert_cmphex(port_read(&i8042_bus_ops, kbd, 4) & 0x01, ==, 1);
    g_assert_cmphex(port_read(&i8042_bus_ops, kbd, 0), ==, 0x55);
    g_assert_cmphex(port_read(&i8042_bus_ops, kbd, 4) & 0x01, ==, 0);

    port_write(&i8042_bus_ops, kbd, 4, 0x60);
    port_write(&i8042_bus_ops, kbd, 0, 0x31);
    port_write(&i8042_bus_ops, kbd, 4, 0x20);
    g_assert_cmphex(port_read(&i8042_bus_ops, kbd, 0), ==, 0x31);
    g_assert_cmpint(resets, ==, 0);

    port_write(&i8042_bus_ops, kbd, 4, 0xfe); /* pulse reset */
    g_assert_cmpint(resets, ==, 1);
    port_write(&i8042_bus_ops, kbd, 4, 0xff); /* pulse nothing */
    g_assert_cmpint(resets, ==, 1);
    port_write(&i8042_bus_ops, kbd, 4, 0xd1); /* write output port, reset line low */
    port_write(&i8042_bus_ops, kbd, 0, 0xfe);
    g_assert_cmpint(resets, ==, 2);
}

static int poweroffs;

static void count_poweroff(void *opaque)
{
    poweroffs++;
}

static int sci_level;

static void record_sci(void *opaque, bool level)
{
    sci_level = level;
}

static const AcpiPmOps test_pm_ops = {.poweroff = count_poweroff, .set_sci = record_sci};

static void pm_write16(AcpiPm *pm, uint64_t off, uint16_t v)
{
    uint8_t b[2] = {(uint8_t)v, (uint8_t)(v >> 8)};
    acpi_pm_bus_ops.write(pm, off, b, 2);
}

static uint16_t pm_read16(AcpiPm *pm, uint64_t off)
{
    uint8_t b[2];
    acpi_pm_bus_ops.read(pm, off, b, 2);
    return (uint16_t)(b[0] | (b[1] << 8));
}

static void test_acpi_pm(void)
{
    g_autoptr(AcpiPm) pm = acpi_pm_new(&test_pm_ops, NULL);
    poweroffs = 0;
    g_assert_cmphex(pm_read16(pm, 4) & 1, ==, 1); /* SCI_EN: always in ACPI mode */
    pm_write16(pm, 2, 0x0100);
    g_assert_cmphex(pm_read16(pm, 2), ==, 0x0100);
    pm->r.pm1_sts = 0x8100;
    pm_write16(pm, 0, 0x0100); /* write one to clear */
    g_assert_cmphex(pm_read16(pm, 0), ==, 0x8000);

    pm_write16(pm, 4, (3 << 10) | 0x2000); /* S3 request: not supported, ignored */
    g_assert_cmpint(poweroffs, ==, 0);
    pm_write16(pm, 4, (5 << 10));          /* SLP_TYP without SLP_EN */
    g_assert_cmpint(poweroffs, ==, 0);
    pm_write16(pm, 4, (5 << 10) | 0x2000); /* S5 */
    g_assert_cmpint(poweroffs, ==, 1);
    g_assert_cmphex(pm_read16(pm, 4) & 0x2000, ==, 0); /* SLP_EN reads as 0 */
}

/* ACPI 6.4 §4.8.3.1: the power button raises the SCI only while enabled; writing 1 clears it. */
static void test_power_button(void)
{
    g_autoptr(AcpiPm) pm = acpi_pm_new(&test_pm_ops, NULL);
    sci_level = 0;
    acpi_pm_power_button(pm);
    g_assert_cmphex(pm_read16(pm, 0) & ACPI_PM1_PWRBTN, ==, ACPI_PM1_PWRBTN);
    g_assert_cmpint(sci_level, ==, 0); /* not enabled yet */
    pm_write16(pm, 2, ACPI_PM1_PWRBTN); /* PWRBTN_EN */
    g_assert_cmpint(sci_level, ==, 1);
    pm_write16(pm, 0, ACPI_PM1_PWRBTN); /* the guest acknowledges */
    g_assert_cmpint(sci_level, ==, 0);
    g_assert_cmphex(pm_read16(pm, 0) & ACPI_PM1_PWRBTN, ==, 0);
    acpi_pm_power_button(pm);
    g_assert_cmpint(sci_level, ==, 1);
    acpi_pm_reset(pm); /* power-on: nothing enabled, nothing pending */
    g_assert_cmpint(sci_level, ==, 0);
}

static void test_debug_exit(void)
{
    g_assert_cmpint(debug_exit_status(0x10), ==, 33);
    g_assert_cmpint(debug_exit_status(0x11), ==, 35);
    g_assert_cmpint(debug_exit_status(0), ==, 1);
    g_assert_cmpint(debug_exit_status(0x7f), ==, 255);
    g_assert_cmpint(debug_exit_status(0x80), ==, 1); /* the OS keeps 8 bits */
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/rtc/time", test_rtc_time);
    g_test_add_func("/rtc/set", test_rtc_set);
    g_test_add_func("/rtc/nvram", test_rtc_nvram);
    g_test_add_func("/rtc/early-year", test_rtc_early_year);
    g_test_add_func("/rtc/load-offset", test_rtc_load_offset);
    g_test_add_func("/i8042/commands", test_i8042);
    g_test_add_func("/acpi-pm/sleep", test_acpi_pm);
    g_test_add_func("/acpi-pm/power-button", test_power_button);
    g_test_add_func("/debug-exit/status", test_debug_exit);
    return g_test_run();
}
