/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "machine/acpi.h"
#include "machine/aml.h"
#include "machine/pci-host.h"

#include <string.h>

#define ACPI_OEM_ID       "QLITE "
#define ACPI_OEM_TABLE_ID "QLITEPC "
#define ACPI_CREATOR_ID   "QLIT"

typedef struct __attribute__((packed)) {
    char signature[8];
    uint8_t checksum;
    char oem_id[6];
    uint8_t revision;
    uint32_t rsdt_address;
    uint32_t length;
    uint64_t xsdt_address;
    uint8_t extended_checksum;
    uint8_t reserved[3];
} AcpiRsdp;

typedef struct __attribute__((packed)) {
    char signature[4];
    uint32_t length;
    uint8_t revision;
    uint8_t checksum;
    char oem_id[6];
    char oem_table_id[8];
    uint32_t oem_revision;
    char creator_id[4];
    uint32_t creator_revision;
} AcpiHeader;

typedef struct __attribute__((packed)) {
    uint8_t space_id; /* 1 = system I/O */
    uint8_t bit_width;
    uint8_t bit_offset;
    uint8_t access_size;
    uint64_t address;
} AcpiGas;

/* FADT, ACPI 6.4 §5.2.9, table 5.9. */
typedef struct __attribute__((packed)) {
    AcpiHeader h;
    uint32_t firmware_ctrl;
    uint32_t dsdt;
    uint8_t reserved0;
    uint8_t preferred_pm_profile;
    uint16_t sci_int;
    uint32_t smi_cmd;
    uint8_t acpi_enable;
    uint8_t acpi_disable;
    uint8_t s4bios_req;
    uint8_t pstate_cnt;
    uint32_t pm1a_evt_blk;
    uint32_t pm1b_evt_blk;
    uint32_t pm1a_cnt_blk;
    uint32_t pm1b_cnt_blk;
    uint32_t pm2_cnt_blk;
    uint32_t pm_tmr_blk;
    uint32_t gpe0_blk;
    uint32_t gpe1_blk;
    uint8_t pm1_evt_len;
    uint8_t pm1_cnt_len;
    uint8_t pm2_cnt_len;
    uint8_t pm_tmr_len;
    uint8_t gpe0_blk_len;
    uint8_t gpe1_blk_len;
    uint8_t gpe1_base;
    uint8_t cst_cnt;
    uint16_t p_lvl2_lat;
    uint16_t p_lvl3_lat;
    uint16_t flush_size;
    uint16_t flush_stride;
    uint8_t duty_offset;
    uint8_t duty_width;
    uint8_t day_alrm;
    uint8_t mon_alrm;
    uint8_t century;
    uint16_t iapc_boot_arch;
    uint8_t reserved1;
    uint32_t flags;
    AcpiGas reset_reg;
    uint8_t reset_value;
    uint16_t arm_boot_arch;
    uint8_t minor_version;
    uint64_t x_firmware_ctrl;
    uint64_t x_dsdt;
    AcpiGas x_pm1a_evt_blk;
    AcpiGas x_pm1b_evt_blk;
    AcpiGas x_pm1a_cnt_blk;
    AcpiGas x_pm1b_cnt_blk;
    AcpiGas x_pm2_cnt_blk;
    AcpiGas x_pm_tmr_blk;
    AcpiGas x_gpe0_blk;
    AcpiGas x_gpe1_blk;
    AcpiGas sleep_control_reg;
    AcpiGas sleep_status_reg;
    uint64_t hypervisor_vendor_id;
} AcpiFadt;

typedef struct __attribute__((packed)) {
    char signature[4];
    uint32_t length;
    uint32_t hardware_signature;
    uint32_t firmware_waking_vector;
    uint32_t global_lock;
    uint32_t flags;
    uint64_t x_firmware_waking_vector;
    uint8_t version;
    uint8_t reserved[3];
    uint32_t ospm_flags;
    uint8_t reserved2[24];
} AcpiFacs;

G_STATIC_ASSERT(sizeof(AcpiRsdp) == 36);
G_STATIC_ASSERT(sizeof(AcpiHeader) == 36);
G_STATIC_ASSERT(sizeof(AcpiFadt) == 276);
G_STATIC_ASSERT(sizeof(AcpiFacs) == 64);

#define FADT_F_WBINVD        (1U << 0)
#define FADT_F_PROC_C1       (1U << 2)
#define FADT_F_SLP_BUTTON    (1U << 5) /* no fixed-feature sleep button */
#define FADT_BOOT_VGA_NOT_PRESENT (1U << 2)
/* Not setting IAPC_BOOT_ARCH 8042 tells Linux not to probe a keyboard controller. */

#define MADT_PCAT_COMPAT     1
#define MADT_LAPIC           0
#define MADT_IOAPIC          1
#define MADT_ISO             2
#define MADT_LAPIC_NMI       4
#define IOAPIC_ADDR          0xfec00000
#define LAPIC_ADDR           0xfee00000

/*
 * Name (_S5, Package () { 5, 5, 0, 0 }) (ACPI 6.4 §7.4.2). SLP_TYP 5 is what
 * acpi-pm.c takes as "power off".
 */
static void dsdt_s5(GByteArray *out)
{
    GByteArray *el = g_byte_array_new();
    for (int i = 0; i < 4; i++) {
        aml_integer(el, i < 2 ? 5 : 0);
    }
    aml_name_decl(out, "_S5", aml_package(4, el));
}

/* Resource descriptors, ACPI 6.4 §6.4. */
#define RES_IO           0x47
#define RES_END          0x79
#define RES_DWORD_ADDR   0x87
#define RES_WORD_ADDR    0x88
#define RES_TYPE_MEM     0
#define RES_TYPE_IO      1
#define RES_TYPE_BUS     2
#define RES_MIN_MAX_FIXED 0x0c /* _MIF | _MAF, producer */

static void res_word_addr(GByteArray *b, uint8_t type, uint8_t tflags, uint16_t min, uint16_t max)
{
    uint16_t v[5] = {0, min, max, 0, (uint16_t)(max - min + 1)};
    uint8_t hdr[] = {RES_WORD_ADDR, 13, 0, type, RES_MIN_MAX_FIXED, tflags};
    g_byte_array_append(b, hdr, sizeof(hdr));
    g_byte_array_append(b, (const uint8_t *)v, sizeof(v));
}

static void res_dword_mem(GByteArray *b, uint32_t min, uint32_t len)
{
    uint32_t v[5] = {0, min, min + len - 1, 0, len};
    /* Read-write, non-cacheable. */
    uint8_t hdr[] = {RES_DWORD_ADDR, 23, 0, RES_TYPE_MEM, RES_MIN_MAX_FIXED, 0x01};
    g_byte_array_append(b, hdr, sizeof(hdr));
    g_byte_array_append(b, (const uint8_t *)v, sizeof(v));
}

/*
 * \_SB.PCI0: the host bridge (PCI Firmware 3.2 §4.1): bus 0 only, the config
 * ports, the I/O space around them and the 32-bit memory windows the BARs live
 * in; _PRT sends slot S pin P to GSI 16 + (S + P) % 8 (pci-host.h).
 */
static void dsdt_pci0(GByteArray *out, const AcpiConfig *cfg)
{
    GByteArray *dev = g_byte_array_new();
    GByteArray *v = g_byte_array_new();
    aml_eisaid(v, "PNP0A08");
    aml_name_decl(dev, "_HID", v);
    v = g_byte_array_new();
    aml_eisaid(v, "PNP0A03");
    aml_name_decl(dev, "_CID", v);
    v = g_byte_array_new();
    aml_integer(v, 0);
    aml_name_decl(dev, "_SEG", v);
    v = g_byte_array_new();
    aml_integer(v, 0);
    aml_name_decl(dev, "_BBN", v);
    v = g_byte_array_new();
    aml_integer(v, 0);
    aml_name_decl(dev, "_UID", v);

    GByteArray *res = g_byte_array_new();
    res_word_addr(res, RES_TYPE_BUS, 0, 0, 0);
    const uint8_t cf8[] = {RES_IO, 0x01, 0xf8, 0x0c, 0xf8, 0x0c, 0x01, 0x08};
    g_byte_array_append(res, cf8, sizeof(cf8));
    res_word_addr(res, RES_TYPE_IO, 0x03, 0x0000, 0x0cf7);
    res_word_addr(res, RES_TYPE_IO, 0x03, 0x0d00, 0xffff);
    res_dword_mem(res, (uint32_t)PCI_MMIO32_BASE, (uint32_t)PCI_MMIO32_SIZE);
    /* Between the ECAM window and the I/O APIC: where firmware (SeaBIOS) puts the BARs. */
    res_dword_mem(res, (uint32_t)PCI_MMIO32_HIGH_BASE, (uint32_t)PCI_MMIO32_HIGH_SIZE);
    const uint8_t end[] = {RES_END, 0};
    g_byte_array_append(res, end, sizeof(end));
    aml_name_decl(dev, "_CRS", aml_buffer(res->data, res->len));
    g_byte_array_unref(res);

    GByteArray *prt = g_byte_array_new();
    unsigned n = 0;
    for (unsigned slot = 1; slot < cfg->pci_slots; slot++) {
        for (unsigned pin = 0; pin < 4; pin++) {
            GByteArray *e = g_byte_array_new();
            aml_integer(e, (uint64_t)slot << 16 | 0xffff);
            aml_integer(e, pin);
            aml_integer(e, 0); /* no link device: the last element is the GSI */
            aml_integer(e, pci_host_intx_gsi(slot, pin));
            GByteArray *p = aml_package(4, e);
            g_byte_array_append(prt, p->data, p->len);
            g_byte_array_unref(p);
            n++;
        }
    }
    aml_name_decl(dev, "_PRT", aml_package(n, prt));

    GByteArray *sb = g_byte_array_new();
    aml_device(sb, "PCI0", dev);
    aml_scope(out, "\\_SB", sb);
}

uint8_t acpi_checksum(const void *data, size_t len)
{
    const uint8_t *p = data;
    uint8_t sum = 0;
    for (size_t i = 0; i < len; i++) {
        sum += p[i];
    }
    return (uint8_t)-sum;
}

typedef struct {
    uint8_t *buf;
    size_t cap;
    size_t used;
    uint64_t base;
    AcpiLinks links;
} AcpiWriter;

/* Records a pointer field of buf. */
static void acpi_link_pointer(AcpiWriter *w, const void *field, uint8_t size)
{
    g_assert(w->links.npointers < ACPI_LINKS_MAX);
    w->links.pointers[w->links.npointers].offset = (uint32_t)((const uint8_t *)field - w->buf);
    w->links.pointers[w->links.npointers++].size = size;
}

/* Records a checksum byte over [start, start + len) of buf. */
static void acpi_link_checksum(AcpiWriter *w, const void *start, size_t len, const void *field)
{
    g_assert(w->links.nchecksums < ACPI_LINKS_MAX);
    unsigned i = w->links.nchecksums++;
    w->links.checksums[i].start = (uint32_t)((const uint8_t *)start - w->buf);
    w->links.checksums[i].length = (uint32_t)len;
    w->links.checksums[i].field = (uint32_t)((const uint8_t *)field - w->buf);
}

/* Reserves len bytes at the given alignment; NULL when out of room. */
static void *acpi_alloc(AcpiWriter *w, size_t len, size_t align, uint64_t *gpa)
{
    size_t off = (w->used + align - 1) & ~(align - 1);
    if (off + len > w->cap) {
        return NULL;
    }
    w->used = off + len;
    memset(w->buf + off, 0, len);
    *gpa = w->base + off;
    return w->buf + off;
}

static void acpi_header(AcpiHeader *h, const char *sig, uint32_t len, uint8_t rev)
{
    memcpy(h->signature, sig, 4);
    h->length = len;
    h->revision = rev;
    memcpy(h->oem_id, ACPI_OEM_ID, 6);
    memcpy(h->oem_table_id, ACPI_OEM_TABLE_ID, 8);
    h->oem_revision = 1;
    memcpy(h->creator_id, ACPI_CREATOR_ID, 4);
    h->creator_revision = 1;
}

static void acpi_finish(AcpiWriter *w, AcpiHeader *h)
{
    h->checksum = 0;
    h->checksum = acpi_checksum(h, h->length);
    acpi_link_checksum(w, h, h->length, &h->checksum);
}

static AcpiGas acpi_gas_io(uint16_t port, uint8_t len)
{
    return (AcpiGas){.space_id = 1, .bit_width = (uint8_t)(len * 8), .access_size = 0,
                     .address = port};
}

static size_t madt_size(unsigned ncpus)
{
    return sizeof(AcpiHeader) + 8 + ncpus * 8 + 12 + 10 + 6;
}

static bool acpi_build_madt(AcpiWriter *w, const AcpiConfig *cfg, uint64_t *gpa)
{
    size_t len = madt_size(cfg->ncpus);
    uint8_t *t = acpi_alloc(w, len, 8, gpa);
    if (!t) {
        return false;
    }
    acpi_header((AcpiHeader *)t, "APIC", (uint32_t)len, 5);
    uint8_t *p = t + sizeof(AcpiHeader);
    uint32_t lapic = LAPIC_ADDR, flags = MADT_PCAT_COMPAT;
    memcpy(p, &lapic, 4);
    memcpy(p + 4, &flags, 4);
    p += 8;
    for (unsigned i = 0; i < cfg->ncpus; i++) {
        uint32_t enabled = 1;
        p[0] = MADT_LAPIC;
        p[1] = 8;
        p[2] = (uint8_t)i; /* ACPI processor UID */
        p[3] = (uint8_t)i; /* APIC ID */
        memcpy(p + 4, &enabled, 4);
        p += 8;
    }
    uint32_t ioapic = IOAPIC_ADDR, gsi_base = 0;
    p[0] = MADT_IOAPIC;
    p[1] = 12;
    p[2] = 0; /* IOAPIC ID */
    memcpy(p + 4, &ioapic, 4);
    memcpy(p + 8, &gsi_base, 4);
    p += 12;
    /* SCI: level-triggered, active high (what KVM's IOAPIC pin sees from us). */
    uint32_t sci_gsi = cfg->sci_irq;
    uint16_t iso_flags = 0x000d;
    p[0] = MADT_ISO;
    p[1] = 10;
    p[2] = 0; /* ISA bus */
    p[3] = cfg->sci_irq;
    memcpy(p + 4, &sci_gsi, 4);
    memcpy(p + 8, &iso_flags, 2);
    p += 10;
    /* LINT1 of every local APIC is NMI, as the vCPUs are set up. */
    uint16_t nmi_flags = 0;
    p[0] = MADT_LAPIC_NMI;
    p[1] = 6;
    p[2] = 0xff; /* all processors */
    memcpy(p + 3, &nmi_flags, 2);
    p[5] = 1; /* LINT1 */
    acpi_finish(w, (AcpiHeader *)t);
    return true;
}

static bool acpi_build_fadt(AcpiWriter *w, const AcpiConfig *cfg, uint64_t facs, uint64_t dsdt,
                            uint64_t *gpa)
{
    AcpiFadt *f = acpi_alloc(w, sizeof(*f), 8, gpa);
    if (!f) {
        return false;
    }
    acpi_header(&f->h, "FACP", sizeof(*f), 6);
    /* Only the 64-bit FACS pointer: ACPI 6.4 §5.2.9 wants FIRMWARE_CTRL zero then. */
    f->dsdt = (uint32_t)dsdt;
    f->x_firmware_ctrl = facs;
    f->x_dsdt = dsdt;
    acpi_link_pointer(w, &f->dsdt, sizeof(f->dsdt));
    acpi_link_pointer(w, &f->x_firmware_ctrl, sizeof(f->x_firmware_ctrl));
    acpi_link_pointer(w, &f->x_dsdt, sizeof(f->x_dsdt));
    f->sci_int = cfg->sci_irq;
    f->smi_cmd = 0; /* no SMM: ACPI mode is always on */
    f->pm1a_evt_blk = cfg->pm1a_evt_blk;
    f->pm1a_cnt_blk = cfg->pm1a_cnt_blk;
    f->pm1_evt_len = 4;
    f->pm1_cnt_len = 2;
    f->x_pm1a_evt_blk = acpi_gas_io(cfg->pm1a_evt_blk, 4);
    f->x_pm1a_cnt_blk = acpi_gas_io(cfg->pm1a_cnt_blk, 2);
    /* No PM timer: the guest has kvmclock and the TSC, and each timer read would be an exit. */
    f->p_lvl2_lat = 101; /* > 100: C2 not supported */
    f->p_lvl3_lat = 1001; /* > 1000: C3 not supported */
    f->century = 0x32;
    f->iapc_boot_arch = FADT_BOOT_VGA_NOT_PRESENT;
    f->flags = FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON;
    f->minor_version = 4;
    acpi_finish(w, &f->h);
    return true;
}

/* MCFG (PCI Firmware 3.2 §4.1.2): the ECAM window of segment 0, bus 0. */
static bool acpi_build_mcfg(AcpiWriter *w, uint64_t *gpa)
{
    typedef struct __attribute__((packed)) {
        uint64_t base;
        uint16_t segment;
        uint8_t start_bus;
        uint8_t end_bus;
        uint32_t reserved;
    } McfgEntry;
    size_t len = sizeof(AcpiHeader) + 8 + sizeof(McfgEntry);
    uint8_t *t = acpi_alloc(w, len, 8, gpa);
    if (!t) {
        return false;
    }
    acpi_header((AcpiHeader *)t, "MCFG", (uint32_t)len, 1);
    McfgEntry e = {.base = PCI_ECAM_BASE, .segment = 0, .start_bus = 0,
                   .end_bus = (uint8_t)(PCI_ECAM_SIZE / 0x100000 - 1)};
    memcpy(t + sizeof(AcpiHeader) + 8, &e, sizeof(e));
    acpi_finish(w, (AcpiHeader *)t);
    return true;
}

size_t acpi_build(uint8_t *buf, size_t cap, uint64_t base, const AcpiConfig *cfg,
                  uint64_t *rsdp_gpa, AcpiLinks *links)
{
    AcpiWriter w = {.buf = buf, .cap = cap, .base = base};
    uint64_t rsdp_addr, xsdt_addr, facs_addr, dsdt_addr, fadt_addr, madt_addr, mcfg_addr;

    /* The RSDP first: 16-byte aligned at the start of the searched area. */
    AcpiRsdp *rsdp = acpi_alloc(&w, sizeof(*rsdp), 16, &rsdp_addr);
    AcpiFacs *facs = rsdp ? acpi_alloc(&w, sizeof(*facs), 64, &facs_addr) : NULL;
    if (!facs) {
        return 0;
    }
    memcpy(facs->signature, "FACS", 4);
    facs->length = sizeof(*facs);
    facs->version = 2;

    g_autoptr(GByteArray) aml = g_byte_array_new();
    dsdt_s5(aml);
    dsdt_pci0(aml, cfg);
    size_t dsdt_len = sizeof(AcpiHeader) + aml->len;
    uint8_t *dsdt = acpi_alloc(&w, dsdt_len, 8, &dsdt_addr);
    if (!dsdt) {
        return 0;
    }
    acpi_header((AcpiHeader *)dsdt, "DSDT", (uint32_t)dsdt_len, 2);
    memcpy(dsdt + sizeof(AcpiHeader), aml->data, aml->len);
    acpi_finish(&w, (AcpiHeader *)dsdt);

    if (!acpi_build_fadt(&w, cfg, facs_addr, dsdt_addr, &fadt_addr) ||
        !acpi_build_madt(&w, cfg, &madt_addr) || !acpi_build_mcfg(&w, &mcfg_addr)) {
        return 0;
    }

    const uint64_t entries[] = {fadt_addr, madt_addr, mcfg_addr};
    size_t xsdt_len = sizeof(AcpiHeader) + sizeof(entries);
    uint8_t *xsdt = acpi_alloc(&w, xsdt_len, 8, &xsdt_addr);
    if (!xsdt) {
        return 0;
    }
    acpi_header((AcpiHeader *)xsdt, "XSDT", (uint32_t)xsdt_len, 1);
    memcpy(xsdt + sizeof(AcpiHeader), entries, sizeof(entries));
    for (size_t i = 0; i < G_N_ELEMENTS(entries); i++) {
        acpi_link_pointer(&w, xsdt + sizeof(AcpiHeader) + 8 * i, 8);
    }
    acpi_finish(&w, (AcpiHeader *)xsdt);

    memcpy(rsdp->signature, "RSD PTR ", 8);
    memcpy(rsdp->oem_id, ACPI_OEM_ID, 6);
    rsdp->revision = 2;
    rsdp->length = sizeof(*rsdp);
    rsdp->xsdt_address = xsdt_addr;
    acpi_link_pointer(&w, &rsdp->xsdt_address, sizeof(rsdp->xsdt_address));
    rsdp->checksum = acpi_checksum(rsdp, 20);
    acpi_link_checksum(&w, rsdp, 20, &rsdp->checksum);
    rsdp->extended_checksum = acpi_checksum(rsdp, sizeof(*rsdp));
    acpi_link_checksum(&w, rsdp, sizeof(*rsdp), &rsdp->extended_checksum);

    *rsdp_gpa = rsdp_addr;
    if (links) {
        *links = w.links;
        links->rsdp = (size_t)((uint8_t *)rsdp - buf);
        links->rsdp_len = sizeof(*rsdp);
    }
    return w.used;
}
