/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * ACPI tables (ACPI 6.4): RSDP, XSDT, FADT, FACS, DSDT, MADT, MCFG.
 * Deliberately small: the DSDT holds \_S5 and the PCI host bridge with its
 * resources and interrupt routing, so a guest interprets little AML.
 */
#include <glib.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ACPI_TABLES_BASE 0xe0000 /* inside the BIOS area where the RSDP is searched */
#define ACPI_TABLES_MAX  0x10000

typedef struct AcpiConfig {
    unsigned ncpus;
    uint16_t pm1a_evt_blk;
    uint16_t pm1a_cnt_blk;
    uint8_t sci_irq;
    unsigned pci_slots; /* _PRT covers slots 1 .. pci_slots-1 */
} AcpiConfig;

#define ACPI_LINKS_MAX 16

/*
 * What firmware must patch to move the tables (fw_cfg's table loader): each
 * pointer holds base + the offset of its target in buf, each checksum covers
 * a range of buf. Checksums are listed in the order they must be redone.
 */
typedef struct AcpiLinks {
    size_t rsdp, rsdp_len; /* the RSDP's place in buf */
    struct {
        uint32_t offset;
        uint8_t size;
    } pointers[ACPI_LINKS_MAX];
    unsigned npointers;
    struct {
        uint32_t start, length, field;
    } checksums[ACPI_LINKS_MAX];
    unsigned nchecksums;
} AcpiLinks;

/*
 * Builds the tables into buf (to be copied to guest address base). Returns the
 * bytes used, or 0 if cap is too small; *rsdp gets the RSDP's guest address;
 * links (if not NULL) gets what a mover must patch.
 */
size_t acpi_build(uint8_t *buf, size_t cap, uint64_t base, const AcpiConfig *cfg,
                  uint64_t *rsdp, AcpiLinks *links);
/* The value that makes the bytes sum to zero. */
uint8_t acpi_checksum(const void *data, size_t len);
