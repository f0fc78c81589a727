/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "machine/acpi.h"

#include <string.h>

#define BASE 0xe0000

static uint8_t sum(const uint8_t *p, size_t len)
{
    uint8_t s = 0;
    for (size_t i = 0; i < len; i++) {
        s += p[i];
    }
    return s;
}

static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint64_t rd64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* A table at guest address gpa inside buf, checked for bounds and checksum. */
static const uint8_t *table_at(const uint8_t *buf, size_t used, uint64_t gpa, const char *sig)
{
    g_assert_cmpuint(gpa, >=, BASE);
    g_assert_cmpuint(gpa - BASE + 36, <=, used);
    const uint8_t *t = buf + (gpa - BASE);
    g_assert_cmpmem(t, 4, sig, 4);
    uint32_t len = rd32(t + 4);
    g_assert_cmpuint(gpa - BASE + len, <=, used);
    g_assert_cmpuint(sum(t, len), ==, 0);
    return t;
}

static void check_tables(unsigned ncpus)
{
    static uint8_t buf[ACPI_TABLES_MAX];
    AcpiConfig cfg = {.ncpus = ncpus, .pm1a_evt_blk = 0x600, .pm1a_cnt_blk = 0x604,
                      .sci_irq = 9};
    uint64_t rsdp_gpa = 0;
    size_t used = acpi_build(buf, sizeof(buf), BASE, &cfg, &rsdp_gpa);
    g_assert_cmpuint(used, >, 0);
    g_assert_cmphex(rsdp_gpa & 15, ==, 0);

    const uint8_t *rsdp = buf + (rsdp_gpa - BASE);
    g_assert_cmpmem(rsdp, 8, "RSD PTR ", 8);
    g_assert_cmpuint(sum(rsdp, 20), ==, 0);
    g_assert_cmpuint(sum(rsdp, 36), ==, 0);
    g_assert_cmpuint(rsdp[15], ==, 2);

    const uint8_t *xsdt = table_at(buf, used, rd64(rsdp + 24), "XSDT");
    uint32_t nent = (rd32(xsdt + 4) - 36) / 8;
    g_assert_cmpuint(nent, ==, 2);
    const uint8_t *fadt = table_at(buf, used, rd64(xsdt + 36), "FACP");
    const uint8_t *madt = table_at(buf, used, rd64(xsdt + 44), "APIC");

    g_assert_cmpuint(rd32(fadt + 4), ==, 276);
    g_assert_cmpuint(fadt[46], ==, 9);              /* SCI_INT */
    g_assert_cmphex(rd32(fadt + 56), ==, 0x600);    /* PM1a_EVT_BLK */
    g_assert_cmphex(rd32(fadt + 64), ==, 0x604);    /* PM1a_CNT_BLK */
    const uint8_t *dsdt = table_at(buf, used, rd64(fadt + 140), "DSDT");
    g_assert_cmpuint(rd32(fadt + 40), ==, rd64(fadt + 140));
    /* The DSDT carries \_S5 for power-off. */
    g_assert_nonnull(memmem(dsdt + 36, rd32(dsdt + 4) - 36, "_S5_", 4));
    uint64_t facs = rd64(fadt + 132);
    g_assert_cmphex(facs & 63, ==, 0);
    g_assert_cmpmem(buf + (facs - BASE), 4, "FACS", 4);

    /* MADT: one enabled local APIC per vCPU, APIC IDs 0..n-1, one IOAPIC. */
    uint32_t mlen = rd32(madt + 4);
    unsigned lapics = 0, ioapics = 0;
    for (uint32_t off = 44; off < mlen;) {
        uint8_t type = madt[off], len = madt[off + 1];
        g_assert_cmpuint(len, >=, 2);
        g_assert_cmpuint(off + len, <=, mlen);
        if (type == 0) {
            g_assert_cmpuint(madt[off + 3], ==, lapics);
            g_assert_cmpuint(rd32(madt + off + 4) & 1, ==, 1);
            lapics++;
        } else if (type == 1) {
            g_assert_cmphex(rd32(madt + off + 4), ==, 0xfec00000);
            ioapics++;
        }
        off += len;
    }
    g_assert_cmpuint(lapics, ==, ncpus);
    g_assert_cmpuint(ioapics, ==, 1);

    /* A buffer too small fails instead of overflowing. */
    g_assert_cmpuint(acpi_build(buf, 100, BASE, &cfg, &rsdp_gpa), ==, 0);
}

static void test_one_cpu(void)
{
    check_tables(1);
}

static void test_many_cpus(void)
{
    check_tables(64);
}

static void test_checksum(void)
{
    uint8_t b[5] = {1, 2, 3, 4, 0};
    b[4] = acpi_checksum(b, 4);
    g_assert_cmpuint(sum(b, 5), ==, 0);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/acpi/checksum", test_checksum);
    g_test_add_func("/acpi/tables/1cpu", test_one_cpu);
    g_test_add_func("/acpi/tables/64cpus", test_many_cpus);
    return g_test_run();
}
