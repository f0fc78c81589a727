/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * ACPI fixed-hardware PM1a event and control blocks (ACPI 6.4 §4.8.3):
 * just enough for a guest to power off through \_S5 and SLP_EN.
 */
#include "mem/bus.h"

#include <glib.h>
#include <stdint.h>

#define ACPI_PM_BASE      0x600
#define ACPI_PM1_EVT_LEN  4
#define ACPI_PM1_CNT_LEN  2
#define ACPI_PM1_EVT_BLK  ACPI_PM_BASE
#define ACPI_PM1_CNT_BLK  (ACPI_PM_BASE + ACPI_PM1_EVT_LEN)
#define ACPI_PM_LEN       (ACPI_PM1_EVT_LEN + ACPI_PM1_CNT_LEN)
#define ACPI_SCI_IRQ      9
#define ACPI_SLP_TYP_S5   5 /* the value \_S5 in our DSDT hands the guest */

typedef struct AcpiPmRegs {
    uint16_t pm1_sts;
    uint16_t pm1_en;
    uint16_t pm1_cnt;
} AcpiPmRegs;

typedef struct AcpiPm {
    GMutex lock;
    AcpiPmRegs r;
    void (*poweroff)(void *opaque);
    void *opaque;
} AcpiPm;

extern const BusOps acpi_pm_bus_ops;

AcpiPm *acpi_pm_new(void (*poweroff)(void *opaque), void *opaque);
void acpi_pm_free(AcpiPm *pm);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AcpiPm, acpi_pm_free)
void acpi_pm_reset(AcpiPm *pm);
