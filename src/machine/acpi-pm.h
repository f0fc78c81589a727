/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * ACPI fixed-hardware PM1a event and control blocks (ACPI 6.4 §4.8.3):
 * power-off through \_S5 and SLP_EN, and the fixed power button (§4.8.3.1:
 * PWRBTN_STS raises the SCI while the guest enabled it), which is how
 * system_powerdown asks an ACPI guest to shut down.
 */
#include "mem/bus.h"

#include "util/state.h"

#include <glib.h>
#include <stdbool.h>
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

#define ACPI_PM1_PWRBTN 0x0100 /* PWRBTN_STS / PWRBTN_EN */

typedef struct AcpiPmOps {
    void (*poweroff)(void *opaque);
    void (*set_sci)(void *opaque, bool level); /* the SCI line, level-triggered */
} AcpiPmOps;

typedef struct AcpiPm {
    GMutex lock;
    AcpiPmRegs r;
    bool sci;
    const AcpiPmOps *ops;
    void *opaque;
} AcpiPm;

extern const BusOps acpi_pm_bus_ops;

AcpiPm *acpi_pm_new(const AcpiPmOps *ops, void *opaque);
void acpi_pm_free(AcpiPm *pm);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(AcpiPm, acpi_pm_free)
void acpi_pm_reset(AcpiPm *pm);
/* The power button was pressed (QMP system_powerdown). */
void acpi_pm_power_button(AcpiPm *pm);

/* Save/restore: PM1 status, enable and control; load re-drives the SCI. */
void acpi_pm_save(AcpiPm *pm, GByteArray *out);
void acpi_pm_load(AcpiPm *pm, StateIn *in);
