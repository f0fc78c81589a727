/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "machine/mptable.h"
#include "machine/acpi.h"

#include <string.h>

/* MP spec 1.4, chapter 4. */
#define MP_SPEC_REV      4
#define MP_LAPIC_ADDR    0xfee00000
#define MP_IOAPIC_ADDR   0xfec00000
#define MP_IOAPIC_ID     0 /* as in the MADT */
#define MP_APIC_VERSION  0x14
#define MP_IOAPIC_VERSION 0x11
#define MP_ISA_IRQS      16

enum { MP_PROCESSOR, MP_BUS, MP_IOAPIC, MP_IOINTR, MP_LINTR };
#define MP_CPU_ENABLED   1
#define MP_CPU_BSP       2
#define MP_INT           0
#define MP_NMI           1
#define MP_EXTINT        3
#define MP_LEVEL_HIGH    0x000d /* active high, level triggered */
#define MP_ALL_LAPICS    0xff

typedef struct __attribute__((packed)) {
    char signature[4];
    uint32_t physptr;
    uint8_t length; /* 16-byte units */
    uint8_t spec_rev;
    uint8_t checksum;
    uint8_t feature[5];
} MpFloating;

typedef struct __attribute__((packed)) {
    char signature[4];
    uint16_t length;
    uint8_t spec_rev;
    uint8_t checksum;
    char oem_id[8];
    char product_id[12];
    uint32_t oem_table;
    uint16_t oem_table_size;
    uint16_t entries;
    uint32_t lapic_addr;
    uint16_t ext_length;
    uint8_t ext_checksum;
    uint8_t reserved;
} MpConfig;

typedef struct __attribute__((packed)) {
    uint8_t type;
    uint8_t apic_id;
    uint8_t apic_version;
    uint8_t flags;
    uint32_t signature;
    uint32_t features;
    uint32_t reserved[2];
} MpProcessor;

typedef struct __attribute__((packed)) {
    uint8_t type;
    uint8_t bus_id;
    char bus_type[6];
} MpBus;

typedef struct __attribute__((packed)) {
    uint8_t type;
    uint8_t apic_id;
    uint8_t version;
    uint8_t flags;
    uint32_t addr;
} MpIoapic;

typedef struct __attribute__((packed)) {
    uint8_t type;
    uint8_t irq_type;
    uint16_t flags;
    uint8_t src_bus;
    uint8_t src_irq;
    uint8_t dst_apic;
    uint8_t dst_pin;
} MpIntr;

G_STATIC_ASSERT(sizeof(MpFloating) == 16);
G_STATIC_ASSERT(sizeof(MpConfig) == 44);
G_STATIC_ASSERT(sizeof(MpProcessor) == 20);
G_STATIC_ASSERT(sizeof(MpBus) == 8 && sizeof(MpIoapic) == 8 && sizeof(MpIntr) == 8);

size_t mptable_build(uint8_t *buf, size_t cap, uint64_t base, unsigned ncpus, uint8_t sci_irq,
                     uint8_t mpf[MPTABLE_MPF_SIZE])
{
    unsigned nentries = ncpus + 1 + 1 + MP_ISA_IRQS + 2;
    size_t len = sizeof(MpConfig) + ncpus * sizeof(MpProcessor) + sizeof(MpBus) +
                 sizeof(MpIoapic) + (MP_ISA_IRQS + 2) * sizeof(MpIntr);
    if (len > cap || len > UINT16_MAX) {
        return 0;
    }
    memset(buf, 0, len);
    MpConfig *c = (MpConfig *)buf;
    memcpy(c->signature, "PCMP", 4);
    c->length = (uint16_t)len;
    c->spec_rev = MP_SPEC_REV;
    memcpy(c->oem_id, "QLITE   ", 8);
    memcpy(c->product_id, "PC          ", 12);
    c->entries = (uint16_t)nentries;
    c->lapic_addr = MP_LAPIC_ADDR;

    uint8_t *p = buf + sizeof(*c);
    for (unsigned i = 0; i < ncpus; i++) {
        MpProcessor cpu = {.type = MP_PROCESSOR, .apic_id = (uint8_t)i,
                           .apic_version = MP_APIC_VERSION,
                           .flags = MP_CPU_ENABLED | (i == 0 ? MP_CPU_BSP : 0)};
        memcpy(p, &cpu, sizeof(cpu));
        p += sizeof(cpu);
    }
    MpBus isa = {.type = MP_BUS, .bus_id = 0};
    memcpy(isa.bus_type, "ISA   ", 6);
    memcpy(p, &isa, sizeof(isa));
    p += sizeof(isa);
    MpIoapic io = {.type = MP_IOAPIC, .apic_id = MP_IOAPIC_ID, .version = MP_IOAPIC_VERSION,
                   .flags = 1, .addr = MP_IOAPIC_ADDR};
    memcpy(p, &io, sizeof(io));
    p += sizeof(io);
    /* ISA IRQ n on IOAPIC pin n, as the MADT says (no IRQ 0 override); the SCI is level. */
    for (unsigned irq = 0; irq < MP_ISA_IRQS; irq++) {
        MpIntr in = {.type = MP_IOINTR, .irq_type = MP_INT,
                     .flags = irq == sci_irq ? MP_LEVEL_HIGH : 0, .src_bus = 0,
                     .src_irq = (uint8_t)irq, .dst_apic = MP_IOAPIC_ID, .dst_pin = (uint8_t)irq};
        memcpy(p, &in, sizeof(in));
        p += sizeof(in);
    }
    /* Virtual wire, as the vCPUs are set up: LINT0 ExtINT, LINT1 NMI on every LAPIC. */
    const MpIntr lint[2] = {
        {.type = MP_LINTR, .irq_type = MP_EXTINT, .dst_apic = MP_ALL_LAPICS, .dst_pin = 0},
        {.type = MP_LINTR, .irq_type = MP_NMI, .dst_apic = MP_ALL_LAPICS, .dst_pin = 1},
    };
    memcpy(p, lint, sizeof(lint));
    c->checksum = acpi_checksum(buf, len);

    MpFloating f = {.physptr = (uint32_t)base, .length = 1, .spec_rev = MP_SPEC_REV};
    memcpy(f.signature, "_MP_", 4);
    f.checksum = acpi_checksum(&f, sizeof(f));
    memcpy(mpf, &f, sizeof(f));
    return len;
}
