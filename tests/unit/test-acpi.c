/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "machine/acpi.h"
#include "machine/aml.h"
#include "machine/mptable.h"
#include "machine/pci-host.h"

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
                      .sci_irq = 9, .pci_slots = 3};
    uint64_t rsdp_gpa = 0;
    size_t used = acpi_build(buf, sizeof(buf), BASE, &cfg, &rsdp_gpa, NULL);
    g_assert_cmpuint(used, >, 0);
    g_assert_cmphex(rsdp_gpa & 15, ==, 0);

    const uint8_t *rsdp = buf + (rsdp_gpa - BASE);
    g_assert_cmpmem(rsdp, 8, "RSD PTR ", 8);
    g_assert_cmpuint(sum(rsdp, 20), ==, 0);
    g_assert_cmpuint(sum(rsdp, 36), ==, 0);
    g_assert_cmpuint(rsdp[15], ==, 2);

    const uint8_t *xsdt = table_at(buf, used, rd64(rsdp + 24), "XSDT");
    uint32_t nent = (rd32(xsdt + 4) - 36) / 8;
    g_assert_cmpuint(nent, ==, 3);
    const uint8_t *fadt = table_at(buf, used, rd64(xsdt + 36), "FACP");
    const uint8_t *madt = table_at(buf, used, rd64(xsdt + 44), "APIC");
    const uint8_t *mcfg = table_at(buf, used, rd64(xsdt + 52), "MCFG");
    /* One ECAM allocation: segment 0, bus 0 at the host bridge's window. */
    g_assert_cmpuint(rd32(mcfg + 4), ==, 36 + 8 + 16);
    g_assert_cmphex(rd64(mcfg + 44), ==, PCI_ECAM_BASE);
    g_assert_cmpuint(mcfg[54], ==, 0);
    g_assert_cmpuint(mcfg[55], ==, 0);

    g_assert_cmpuint(rd32(fadt + 4), ==, 276);
    g_assert_cmpuint(fadt[46], ==, 9);              /* SCI_INT */
    g_assert_cmphex(rd32(fadt + 56), ==, 0x600);    /* PM1a_EVT_BLK */
    g_assert_cmphex(rd32(fadt + 64), ==, 0x604);    /* PM1a_CNT_BLK */
    const uint8_t *dsdt = table_at(buf, used, rd64(fadt + 140), "DSDT");
    g_assert_cmpuint(rd32(fadt + 40), ==, rd64(fadt + 140));
    /* The DSDT carries \_S5 for power-off. */
    g_assert_nonnull(memmem(dsdt + 36, rd32(dsdt + 4) - 36, "_S5_", 4));
    /* ... and the PCI host bridge: Device (PCI0) inside \_SB with _HID PNP0A08. */
    const uint8_t *pci0 = memmem(dsdt + 36, rd32(dsdt + 4) - 36, "PCI0", 4);
    g_assert_nonnull(pci0);
    g_assert_cmphex(pci0[-4], ==, 0x5b); /* ExtOpPrefix */
    g_assert_cmphex(pci0[-3], ==, 0x82); /* DeviceOp, then a two-byte PkgLength */
    static const uint8_t hid[] = {0x08, '_', 'H', 'I', 'D', 0x0c, 0x41, 0xd0, 0x0a, 0x08};
    g_assert_nonnull(memmem(dsdt + 36, rd32(dsdt + 4) - 36, hid, sizeof(hid)));
    /* _PRT: slots 1 and 2, four pins each; slot 1 INTA -> GSI 17. */
    const uint8_t *prt = memmem(dsdt + 36, rd32(dsdt + 4) - 36, "_PRT", 4);
    g_assert_nonnull(prt);
    g_assert_cmphex(prt[4], ==, 0x12); /* PackageOp */
    static const uint8_t slot1_inta[] = {0x12, 0x0b, 0x04, 0x0c, 0xff, 0xff, 0x01, 0x00,
                                         0x00, 0x00, 0x0a, 0x11};
    g_assert_nonnull(memmem(prt, rd32(dsdt + 4) - (size_t)(prt - dsdt), slot1_inta,
                            sizeof(slot1_inta)));
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
    g_assert_cmpuint(acpi_build(buf, 100, BASE, &cfg, &rsdp_gpa, NULL), ==, 0);
}

static void test_one_cpu(void)
{
    check_tables(1);
}

static void test_many_cpus(void)
{
    check_tables(64);
}

/*
 * The links let firmware move the tables: tables built for address 0,
 * patched as fw_cfg's loader does (each pointer plus the base, each checksum
 * byte minus the sum of its range), equal the tables built for that base.
 */
static void test_links(void)
{
    static uint8_t at0[ACPI_TABLES_MAX], atb[ACPI_TABLES_MAX];
    AcpiConfig cfg = {.ncpus = 4, .pm1a_evt_blk = 0x600, .pm1a_cnt_blk = 0x604, .sci_irq = 9,
                      .pci_slots = 3};
    const uint64_t base = 0x7ffe0000;
    uint64_t rsdp0, rsdpb;
    AcpiLinks links;
    size_t used = acpi_build(at0, sizeof(at0), 0, &cfg, &rsdp0, &links);
    g_assert_cmpuint(acpi_build(atb, sizeof(atb), base, &cfg, &rsdpb, NULL), ==, used);
    g_assert_cmpuint(links.rsdp, ==, rsdp0);
    g_assert_cmpuint(links.rsdp_len, ==, 36);
    g_assert_cmpuint(links.npointers, >=, 7); /* FADT x3, XSDT x3, RSDP */
    for (unsigned i = 0; i < links.npointers; i++) {
        uint64_t v = 0;
        g_assert_cmpuint(links.pointers[i].offset + links.pointers[i].size, <=, used);
        memcpy(&v, at0 + links.pointers[i].offset, links.pointers[i].size);
        g_assert_cmpuint(v, <, used); /* an offset into the tables */
        v += base;
        memcpy(at0 + links.pointers[i].offset, &v, links.pointers[i].size);
    }
    for (unsigned i = 0; i < links.nchecksums; i++) {
        g_assert_cmpuint(links.checksums[i].start + links.checksums[i].length, <=, used);
        at0[links.checksums[i].field] -= sum(at0 + links.checksums[i].start,
                                             links.checksums[i].length);
    }
    g_assert_cmpmem(at0, used, atb, used);
}

/* PkgLength (ACPI 6.4 §20.2.4) counts its own bytes; check each encoding size. */
static void test_aml_pkglength(void)
{
    static const struct {
        unsigned body;
        unsigned hdr;
    } cases[] = {{0, 1}, {58, 1}, {59, 2}, {200, 2}, {4089, 2}, {4090, 3}, {70000, 3}};
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        g_autofree uint8_t *bytes = g_malloc0(cases[i].body);
        g_autoptr(GByteArray) b = g_byte_array_new();
        GByteArray *body = g_byte_array_new();
        g_byte_array_append(body, bytes, cases[i].body);
        aml_scope(b, "X", body);
        /* ScopeOp, PkgLength, NameSeg(4), body */
        g_assert_cmpuint(b->len, ==, 1 + cases[i].hdr + 4 + cases[i].body);
        unsigned lead = b->data[1];
        unsigned follow = lead >> 6;
        g_assert_cmpuint(1 + follow, ==, cases[i].hdr);
        unsigned len = follow ? (lead & 0xf) : (lead & 0x3f);
        for (unsigned k = 0; k < follow; k++) {
            len |= (unsigned)b->data[2 + k] << (4 + 8 * k);
        }
        g_assert_cmpuint(len, ==, cases[i].hdr + 4 + cases[i].body);
    }
}

static void test_aml_integers(void)
{
    g_autoptr(GByteArray) b = g_byte_array_new();
    aml_integer(b, 0);
    aml_integer(b, 1);
    aml_integer(b, 0x80);
    aml_integer(b, 0x1234);
    aml_integer(b, 0x12345678);
    aml_integer(b, 0x100000000ULL);
    static const uint8_t want[] = {0x00, 0x01, 0x0a, 0x80, 0x0b, 0x34, 0x12, 0x0c, 0x78,
                                   0x56, 0x34, 0x12, 0x0e, 0, 0, 0, 0, 1, 0, 0, 0};
    g_assert_cmpmem(b->data, b->len, want, sizeof(want));
    g_byte_array_set_size(b, 0);
    aml_eisaid(b, "PNP0A03");
    static const uint8_t pnp0a03[] = {0x0c, 0x41, 0xd0, 0x0a, 0x03};
    g_assert_cmpmem(b->data, b->len, pnp0a03, sizeof(pnp0a03));
}

/* MP spec 1.4: the floating pointer finds a table whose entries match the machine. */
static void test_mptable(void)
{
    static uint8_t buf[8192];
    uint8_t mpf[MPTABLE_MPF_SIZE];
    size_t len = mptable_build(buf, sizeof(buf), 0xe1000, 4, 9, mpf);
    g_assert_cmpuint(len, >, 44);
    g_assert_cmpmem(mpf, 4, "_MP_", 4);
    g_assert_cmpuint(sum(mpf, 16), ==, 0);
    g_assert_cmphex(rd32(mpf + 4), ==, 0xe1000);
    g_assert_cmpuint(mpf[8], ==, 1);  /* length in 16-byte units */
    g_assert_cmpuint(mpf[11], ==, 0); /* feature1 0: a table follows, no default config */
    g_assert_cmpmem(buf, 4, "PCMP", 4);
    g_assert_cmpuint(buf[4] | buf[5] << 8, ==, len);
    g_assert_cmpuint(sum(buf, len), ==, 0);
    g_assert_cmphex(rd32(buf + 36), ==, 0xfee00000);
    unsigned entries = buf[34] | buf[35] << 8, cpus = 0, bsp = 0, ioapics = 0, irqs = 0;
    size_t off = 44;
    for (unsigned i = 0; i < entries; i++) {
        g_assert_cmpuint(off, <, len);
        switch (buf[off]) {
        case 0: /* processor */
            g_assert_cmpuint(buf[off + 1], ==, cpus);
            g_assert_cmpuint(buf[off + 3] & 1, ==, 1);
            bsp += (buf[off + 3] & 2) ? 1 : 0;
            cpus++;
            off += 20;
            break;
        case 2: /* IOAPIC */
            g_assert_cmphex(rd32(buf + off + 4), ==, 0xfec00000);
            ioapics++;
            off += 8;
            break;
        case 3: /* I/O interrupt: ISA IRQ n on pin n, the SCI level/high */
            g_assert_cmpuint(buf[off + 5], ==, buf[off + 7]);
            g_assert_cmphex(buf[off + 2], ==, buf[off + 5] == 9 ? 0x0d : 0);
            irqs++;
            off += 8;
            break;
        default:
            off += 8;
            break;
        }
    }
    g_assert_cmpuint(off, ==, len);
    g_assert_cmpuint(cpus, ==, 4);
    g_assert_cmpuint(bsp, ==, 1);
    g_assert_cmpuint(ioapics, ==, 1);
    g_assert_cmpuint(irqs, ==, 16);
    /* Too small a buffer fails instead of overflowing. */
    g_assert_cmpuint(mptable_build(buf, 100, 0xe1000, 4, 9, mpf), ==, 0);
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
    g_test_add_func("/acpi/links", test_links);
    g_test_add_func("/acpi/checksum", test_checksum);
    g_test_add_func("/acpi/aml/pkglength", test_aml_pkglength);
    g_test_add_func("/acpi/aml/integers", test_aml_integers);
    g_test_add_func("/acpi/mptable", test_mptable);
    g_test_add_func("/acpi/tables/1cpu", test_one_cpu);
    g_test_add_func("/acpi/tables/64cpus", test_many_cpus);
    return g_test_run();
}
