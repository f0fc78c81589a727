/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * The Intel MultiProcessor Specification 1.4 tables: a floating pointer in
 * the first KiB of the EBDA and a configuration table (processors, ISA bus,
 * IOAPIC, ISA interrupts, LINT0/LINT1), as PC firmware provides beside ACPI.
 * Linux uses the MADT when ACPI is on; it still looks for the floating pointer
 * first, and without one it probes the whole BIOS area 16 bytes at a time,
 * which costs seconds where guest kernel code is emulated. With acpi=off the
 * table is how the guest finds its CPUs and IOAPIC.
 */
#include <stddef.h>
#include <stdint.h>

#define MPTABLE_MPF_ADDR 0x9fc00 /* first KiB of the EBDA: scanned second, after 0-1 KiB */
#define MPTABLE_MPF_SIZE 16

/*
 * Builds the configuration table into buf (for guest address base) and the
 * floating pointer pointing at it into mpf. Returns the table's size, or 0 if
 * cap is too small.
 */
size_t mptable_build(uint8_t *buf, size_t cap, uint64_t base, unsigned ncpus, uint8_t sci_irq,
                     uint8_t mpf[MPTABLE_MPF_SIZE]);
