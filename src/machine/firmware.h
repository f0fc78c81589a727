/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Firmware boot (no -kernel): a PC BIOS image, SeaBIOS by default, mapped
 * read-only just below 4 GiB with its last 256 KiB (at most) copied into RAM
 * below 1 MiB, where a PC's chipset would shadow it, and the fw_cfg files the
 * firmware reads: the memory map, the CPUs, the ACPI tables with the loader
 * commands that place them, the boot order.
 */
#include "cpu/kvm.h"
#include "machine/acpi.h"
#include "machine/fw-cfg.h"
#include "mem/guest-mem.h"

#include <glib.h>

#define FIRMWARE_DEFAULT "/usr/share/seabios/bios-256k.bin"
#define FIRMWARE_MAX     (16 * 1024 * 1024)

typedef struct Firmware Firmware;

typedef struct FirmwareConfig {
    unsigned ncpus;
    uint64_t ram_size;
    const uint8_t *acpi; /* tables built for guest address 0 */
    size_t acpi_size;
    const AcpiLinks *acpi_links;
    /* PCI slots of the disks with a bootindex=, in its order, for "bootorder". */
    const unsigned *boot_slots;
    unsigned nboot_slots;
    bool boot_strict;      /* boot only those */
    bool boot_menu;        /* offer the boot menu */
    int64_t boot_retry_ms; /* wait before retrying when nothing boots; -1: the firmware's */
} FirmwareConfig;

/*
 * The CMOS bytes 0x3d and 0x38 through which a PC BIOS learns its boot
 * order (QEMU's set_boot_dev): up to three drive letters, floppy signature
 * check off. False for a letter that is not a PC's (a, b, c, d, n).
 */
bool firmware_boot_cmos(const char *order, uint8_t *reg3d, uint8_t *reg38);

/* Reads and checks the image (a multiple of 64 KiB, at most FIRMWARE_MAX). */
Firmware *firmware_new(const char *path, GError **error);
void firmware_free(Firmware *fw);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(Firmware, firmware_free)

/*
 * Maps the image below 4 GiB and fills the fw_cfg device (registered on pio)
 * that the firmware reads.
 */
bool firmware_setup(Firmware *fw, Kvm *kvm, GuestMem *mem, Bus *pio, const FirmwareConfig *cfg,
                    GError **error);
/* At power-on and every reset: the shadow copy below 1 MiB, fw_cfg's state. */
bool firmware_reset(Firmware *fw, GuestMem *mem, GError **error);
FwCfg *firmware_fw_cfg(Firmware *fw);
/* The image's size and SHA-256, which a migration's two sides must share. */
char *firmware_describe(Firmware *fw);
