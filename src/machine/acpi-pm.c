/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "machine/acpi-pm.h"

#include <string.h>

#define PM1_CNT_SCI_EN  0x0001
#define PM1_CNT_SLP_EN  0x2000 /* write-only */
#define PM1_CNT_SLP_TYP(v) (((v) >> 10) & 7)

/* The register file as bytes: STS (2), EN (2), CNT (2), little-endian. */
static uint16_t *acpi_pm_reg(AcpiPm *pm, uint64_t offset)
{
    switch (offset / 2) {
    case 0:
        return &pm->r.pm1_sts;
    case 1:
        return &pm->r.pm1_en;
    default:
        return &pm->r.pm1_cnt;
    }
}

static void acpi_pm_read(void *opaque, uint64_t offset, uint8_t *data, unsigned len)
{
    AcpiPm *pm = opaque;
    g_mutex_lock(&pm->lock);
    for (unsigned i = 0; i < len; i++) {
        uint64_t off = offset + i;
        data[i] = off < ACPI_PM_LEN ? (uint8_t)(*acpi_pm_reg(pm, off) >> (8 * (off & 1))) : 0xff;
    }
    g_mutex_unlock(&pm->lock);
}

/* The SCI follows the enabled status bits (only the power button is implemented). */
static void acpi_pm_update_sci_locked(AcpiPm *pm)
{
    bool level = (pm->r.pm1_sts & pm->r.pm1_en & ACPI_PM1_PWRBTN) != 0;
    if (level != pm->sci) {
        pm->sci = level;
        if (pm->ops->set_sci) {
            pm->ops->set_sci(pm->opaque, level);
        }
    }
}

static void acpi_pm_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned len)
{
    AcpiPm *pm = opaque;
    bool off = false;
    g_mutex_lock(&pm->lock);
    for (unsigned i = 0; i < len; i++) {
        uint64_t o = offset + i;
        if (o >= ACPI_PM_LEN) {
            break;
        }
        uint16_t *reg = acpi_pm_reg(pm, o);
        uint16_t v = (uint16_t)(data[i] << (8 * (o & 1)));
        uint16_t mask = (uint16_t)(0xff << (8 * (o & 1)));
        if (reg == &pm->r.pm1_sts) {
            *reg &= ~v; /* write one to clear */
        } else if (reg == &pm->r.pm1_cnt) {
            uint16_t nv = (*reg & ~mask) | v;
            if ((nv & PM1_CNT_SLP_EN) && PM1_CNT_SLP_TYP(nv) == ACPI_SLP_TYP_S5) {
                off = true;
            }
            *reg = (nv & ~PM1_CNT_SLP_EN) | PM1_CNT_SCI_EN;
        } else {
            *reg = (*reg & ~mask) | v;
        }
    }
    acpi_pm_update_sci_locked(pm);
    g_mutex_unlock(&pm->lock);
    if (off && pm->ops->poweroff) {
        pm->ops->poweroff(pm->opaque);
    }
}

const BusOps acpi_pm_bus_ops = {
    .read = acpi_pm_read,
    .write = acpi_pm_write,
};

void acpi_pm_reset(AcpiPm *pm)
{
    g_mutex_lock(&pm->lock);
    memset(&pm->r, 0, sizeof(pm->r));
    pm->r.pm1_cnt = PM1_CNT_SCI_EN; /* no SMM: the machine is always in ACPI mode */
    acpi_pm_update_sci_locked(pm);
    g_mutex_unlock(&pm->lock);
}

void acpi_pm_power_button(AcpiPm *pm)
{
    g_mutex_lock(&pm->lock);
    pm->r.pm1_sts |= ACPI_PM1_PWRBTN;
    acpi_pm_update_sci_locked(pm);
    g_mutex_unlock(&pm->lock);
}

AcpiPm *acpi_pm_new(const AcpiPmOps *ops, void *opaque)
{
    AcpiPm *pm = g_new0(AcpiPm, 1);
    g_mutex_init(&pm->lock);
    pm->ops = ops;
    pm->opaque = opaque;
    acpi_pm_reset(pm);
    return pm;
}

void acpi_pm_free(AcpiPm *pm)
{
    if (!pm) {
        return;
    }
    g_mutex_clear(&pm->lock);
    g_free(pm);
}

void acpi_pm_save(AcpiPm *pm, GByteArray *out)
{
    g_mutex_lock(&pm->lock);
    state_put_u16(out, pm->r.pm1_sts);
    state_put_u16(out, pm->r.pm1_en);
    state_put_u16(out, pm->r.pm1_cnt);
    g_mutex_unlock(&pm->lock);
}

void acpi_pm_load(AcpiPm *pm, StateIn *in)
{
    AcpiPmRegs r;
    r.pm1_sts = state_get_u16(in);
    r.pm1_en = state_get_u16(in);
    r.pm1_cnt = state_get_u16(in);
    if (in->bad) {
        return;
    }
    g_mutex_lock(&pm->lock);
    pm->r = r;
    acpi_pm_update_sci_locked(pm);
    g_mutex_unlock(&pm->lock);
}
