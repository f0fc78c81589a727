/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fw_cfg: items through the ports and by DMA, the file directory, hostile
 * DMA, save and load; the firmware image's checks and the CMOS boot order.
 */
#include "machine/firmware.h"
#include "machine/fw-cfg.h"

#include <glib/gstdio.h>

#include <endian.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define RAM_SIZE (4 * 1024 * 1024)
#define DMA_CTL  0x1000 /* where the tests put a DMA control block */
#define DMA_BUF  0x2000

typedef struct {
    GuestMem *mem;
    Bus *pio;
    FwCfg *f;
} Fixture;

static void fixture_setup(Fixture *x, gconstpointer unused)
{
    x->mem = guest_mem_new(RAM_SIZE, 0xc0000000, NULL);
    g_assert_nonnull(x->mem);
    x->pio = bus_new("pio");
    x->f = fw_cfg_new(x->mem);
    g_assert_true(fw_cfg_register(x->f, x->pio, NULL));
}

static void fixture_teardown(Fixture *x, gconstpointer unused)
{
    fw_cfg_free(x->f);
    bus_free(x->pio);
    guest_mem_free(x->mem);
}

static void select_item(Fixture *x, uint16_t key)
{
    uint8_t v[2];
    bus_data_set(v, 2, key);
    g_assert_true(bus_write(x->pio, FW_CFG_PORT_SEL, v, 2));
}

static void read_data(Fixture *x, void *out, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        g_assert_true(bus_read(x->pio, FW_CFG_PORT_SEL + 1, (uint8_t *)out + i, 1));
    }
}

/* One DMA request; returns the control word the device wrote back. */
static uint32_t dma(Fixture *x, uint32_t control, uint32_t length, uint64_t address,
                    uint64_t ctl_addr)
{
    struct __attribute__((packed)) {
        uint32_t control, length;
        uint64_t address;
    } d = {htobe32(control), htobe32(length), htobe64(address)};
    guest_mem_write(x->mem, ctl_addr, &d, sizeof(d));
    uint32_t hi = htobe32((uint32_t)(ctl_addr >> 32)), lo = htobe32((uint32_t)ctl_addr);
    g_assert_true(bus_write(x->pio, FW_CFG_PORT_DMA, (uint8_t *)&hi, 4));
    g_assert_true(bus_write(x->pio, FW_CFG_PORT_DMA + 4, (uint8_t *)&lo, 4));
    uint32_t back = 0xdeadbeef;
    guest_mem_read(x->mem, ctl_addr, &back, sizeof(back));
    return be32toh(back);
}

static void test_signature(Fixture *x, gconstpointer unused)
{
    char sig[5] = {0};
    select_item(x, FW_CFG_SIGNATURE);
    read_data(x, sig, 4);
    g_assert_cmpstr(sig, ==, "QEMU");
    uint32_t id;
    select_item(x, FW_CFG_ID);
    read_data(x, &id, 4);
    g_assert_cmphex(le32toh(id), ==, 3); /* traditional and DMA */
    uint8_t past;
    read_data(x, &past, 1);
    g_assert_cmphex(past, ==, 0); /* past the end of an item */
    uint8_t dsig[8];
    for (int i = 0; i < 8; i++) {
        bus_read(x->pio, FW_CFG_PORT_DMA + i, &dsig[i], 1);
    }
    g_assert_cmpmem(dsig, 8, "QEMU CFG", 8);
    /* An unknown key is empty; reselecting starts over. */
    select_item(x, 0x1234);
    read_data(x, &past, 1);
    g_assert_cmphex(past, ==, 0);
}

static void test_files(Fixture *x, gconstpointer unused)
{
    g_assert_true(fw_cfg_add_file(x->f, "etc/zeta", "zz", 2, NULL));
    g_assert_true(fw_cfg_add_file(x->f, "etc/alpha", "hello", 5, NULL));
    g_autoptr(GError) err = NULL;
    g_assert_false(fw_cfg_add_file(x->f, "etc/alpha", "x", 1, &err));
    g_assert_nonnull(strstr(err->message, "twice"));
    fw_cfg_add_i64(x->f, FW_CFG_RAM_SIZE, 0x123456789);

    uint32_t count;
    select_item(x, FW_CFG_FILE_DIR);
    read_data(x, &count, 4);
    g_assert_cmpuint(be32toh(count), ==, 2);
    struct __attribute__((packed)) {
        uint32_t size;
        uint16_t select, reserved;
        char name[56];
    } e[2];
    read_data(x, e, sizeof(e));
    g_assert_cmpstr(e[0].name, ==, "etc/alpha"); /* sorted by name */
    g_assert_cmpuint(be32toh(e[0].size), ==, 5);
    g_assert_cmpstr(e[1].name, ==, "etc/zeta");

    char buf[6] = {0};
    select_item(x, be16toh(e[0].select));
    read_data(x, buf, 5);
    g_assert_cmpstr(buf, ==, "hello");

    /* The same by DMA: select and read in one request, the rest of the length zeroed. */
    memset(guest_mem_ptr(x->mem, DMA_BUF, 16), 0xee, 16);
    uint32_t ctl = (uint32_t)be16toh(e[1].select) << 16 | 0x08 | 0x02;
    g_assert_cmphex(dma(x, ctl, 8, DMA_BUF, DMA_CTL), ==, 0);
    uint8_t *got = guest_mem_ptr(x->mem, DMA_BUF, 16);
    g_assert_cmpmem(got, 8, "zz\0\0\0\0\0\0", 8);
    g_assert_cmphex(got[8], ==, 0xee);

    /* Skip, then read. */
    select_item(x, be16toh(e[0].select));
    g_assert_cmphex(dma(x, 0x04, 3, 0, DMA_CTL), ==, 0);
    read_data(x, buf, 2);
    g_assert_cmpmem(buf, 2, "lo", 2);

    uint64_t ram;
    select_item(x, FW_CFG_RAM_SIZE);
    read_data(x, &ram, 8);
    g_assert_cmphex(le64toh(ram), ==, 0x123456789);
}

/* A guest's bad requests: error bit, nothing written outside RAM, no crash. */
static void test_dma_hostile(Fixture *x, gconstpointer unused)
{
    g_assert_true(fw_cfg_add_file(x->f, "etc/data", "abcdefgh", 8, NULL));
    /* Destination past RAM, or across its end. */
    g_assert_cmphex(dma(x, 0x20 << 16 | 0x0a, 8, RAM_SIZE + 0x1000, DMA_CTL), ==, 1);
    g_assert_cmphex(dma(x, 0x20 << 16 | 0x0a, 0x2000, RAM_SIZE - 0x1000, DMA_CTL), ==, 1);
    g_assert_cmphex(dma(x, 0x20 << 16 | 0x0a, 0xffffffff, DMA_BUF, DMA_CTL), ==, 1);
    /* Writes are refused: every item is read-only. */
    g_assert_cmphex(dma(x, 0x20 << 16 | 0x08 | 0x10, 4, DMA_BUF, DMA_CTL), ==, 1);
    char buf[8];
    select_item(x, 0x20);
    read_data(x, buf, 8);
    g_assert_cmpmem(buf, 8, "abcdefgh", 8);
    /* A skip past the end, then a read: zeroes. */
    g_assert_cmphex(dma(x, 0x20 << 16 | 0x08 | 0x04, 0xffffffff, 0, DMA_CTL), ==, 0);
    g_assert_cmphex(dma(x, 0x02, 4, DMA_BUF, DMA_CTL), ==, 0);
    g_assert_cmpmem(guest_mem_ptr(x->mem, DMA_BUF, 4), 4, "\0\0\0\0", 4);
    /* A control block outside RAM: ignored (there is nowhere to answer). */
    uint32_t hi = 0, lo = htobe32(0xfffffff0);
    bus_write(x->pio, FW_CFG_PORT_DMA, (uint8_t *)&hi, 4);
    bus_write(x->pio, FW_CFG_PORT_DMA + 4, (uint8_t *)&lo, 4);
    /* Odd widths and offsets on the DMA and data ports are ignored. */
    uint8_t b = 1;
    bus_write(x->pio, FW_CFG_PORT_DMA + 2, &b, 1);
    bus_write(x->pio, FW_CFG_PORT_SEL + 1, &b, 1);
    bus_write(x->pio, FW_CFG_PORT_SEL, &b, 1);
}

static void test_save_load(Fixture *x, gconstpointer unused)
{
    g_assert_true(fw_cfg_add_file(x->f, "etc/data", "abcdefgh", 8, NULL));
    select_item(x, 0x20);
    char buf[8];
    read_data(x, buf, 3);
    uint32_t hi = htobe32(0x12);
    bus_write(x->pio, FW_CFG_PORT_DMA, (uint8_t *)&hi, 4);
    g_autoptr(GByteArray) st = g_byte_array_new();
    fw_cfg_save(x->f, st);

    g_autoptr(FwCfg) g = fw_cfg_new(x->mem);
    g_assert_true(fw_cfg_add_file(g, "etc/data", "abcdefgh", 8, NULL));
    StateIn in;
    state_in_init(&in, st->data, st->len);
    fw_cfg_load(g, &in);
    g_assert_true(state_in_finish(&in, "fw_cfg", NULL));
    g_autoptr(GByteArray) again = g_byte_array_new();
    fw_cfg_save(g, again);
    g_assert_cmpmem(again->data, again->len, st->data, st->len);

    /* A truncated state is refused and changes nothing. */
    state_in_init(&in, st->data, st->len - 1);
    fw_cfg_load(x->f, &in);
    g_assert_false(state_in_finish(&in, "fw_cfg", NULL));
    read_data(x, buf, 1);
    g_assert_cmphex(buf[0], ==, 'd');
}

static void expect_bios_error(const char *path, const char *want)
{
    g_autoptr(GError) err = NULL;
    g_assert_null(firmware_new(path, &err));
    g_assert_nonnull(err);
    if (!strstr(err->message, want)) {
        g_error("'%s' lacks '%s'", err->message, want);
    }
}

static void test_bios_file(void)
{
    g_autofree char *dir = g_dir_make_tmp("qlite-bios-XXXXXX", NULL);
    g_autofree char *odd = g_build_filename(dir, "odd.bin", NULL);
    g_autofree char *good = g_build_filename(dir, "good.bin", NULL);
    g_autofree char *big = g_build_filename(dir, "big.bin", NULL);
    g_autofree uint8_t *buf = g_malloc0(128 * 1024);
    g_assert_true(g_file_set_contents(odd, (char *)buf, 1000, NULL));
    g_assert_true(g_file_set_contents(good, (char *)buf, 128 * 1024, NULL));
    FILE *f = fopen(big, "w");
    g_assert_nonnull(f);
    g_assert_cmpint(ftruncate(fileno(f), FIRMWARE_MAX + 65536), ==, 0);
    fclose(f);
    expect_bios_error("/nonexistent/bios.bin", "could not load PC BIOS '/nonexistent/bios.bin'");
    expect_bios_error(odd, "not a multiple of 64 KiB");
    expect_bios_error(big, "at most 16 MiB");
    expect_bios_error("/dev/zero", "not a regular file");
    expect_bios_error(dir, "not a regular file");
    g_autoptr(GError) err = NULL;
    g_autoptr(Firmware) fw = firmware_new(good, &err);
    g_assert_no_error(err);
    g_autofree char *id = firmware_describe(fw);
    g_assert_nonnull(strstr(id, "131072 bytes sha256 "));
    g_unlink(odd);
    g_unlink(good);
    g_unlink(big);
    g_rmdir(dir);
}

/* QEMU's CMOS encoding: the first two devices in 0x3d, the third in 0x38's high nibble. */
static void test_boot_cmos(void)
{
    uint8_t r3d, r38;
    g_assert_true(firmware_boot_cmos("c", &r3d, &r38));
    g_assert_cmphex(r3d, ==, 0x02);
    g_assert_cmphex(r38, ==, 0x01);
    g_assert_true(firmware_boot_cmos("ncd", &r3d, &r38));
    g_assert_cmphex(r3d, ==, 0x24);
    g_assert_cmphex(r38, ==, 0x31);
    g_assert_true(firmware_boot_cmos("", &r3d, &r38));
    g_assert_cmphex(r3d, ==, 0);
    g_assert_false(firmware_boot_cmos("cx", &r3d, &r38));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
#define ADD(path, fn) g_test_add(path, Fixture, NULL, fixture_setup, fn, fixture_teardown)
    ADD("/fw-cfg/signature", test_signature);
    ADD("/fw-cfg/files", test_files);
    ADD("/fw-cfg/dma-hostile", test_dma_hostile);
    ADD("/fw-cfg/save-load", test_save_load);
#undef ADD
    g_test_add_func("/firmware/bios-file", test_bios_file);
    g_test_add_func("/firmware/boot-cmos", test_boot_cmos);
    return g_test_run();
}
