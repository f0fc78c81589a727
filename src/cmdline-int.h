/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Inside the command line: the state one parse keeps from option to option,
 * and what the cmdline files call in one another:
 *   cmdline.c          the option table, help, each option's dispatch, the
 *                      defaults and final checks; -m, -smp, -boot, -name,
 *                      -accel, -machine, -add-fd, -msg, -overcommit, -rtc,
 *                      -audiodev
 *   cmdline-devices.c  -device (each driver, PCI addr=, peripheral ids),
 *                      -drive, -netdev, -nic, -object
 *   cmdline-chardev.c  -chardev, -mon, the monitor list -qmp adds to
 */
#include "cmdline.h"
#include "block/blockdev.h"

#include <glib.h>
#include <stdbool.h>

typedef struct {
    bool nodefaults;
    bool serial_set;
    bool nographic;
    bool net_set; /* -netdev or -nic given: no default NIC */
    unsigned ndrives;
    unsigned ndefault_macs;
    GHashTable *pending_drives;  /* if=none drives by id, until a -device takes them */
    BlockdevTable *blockdevs;    /* -blockdev nodes, until a -device takes them */
    GHashTable *pending_netdevs; /* -netdev configs by id, until a -device takes them */
    GHashTable *netdev_ids;      /* every netdev id seen */
    GHashTable *chardevs;        /* -chardev id -> spec, until a -mon or isa-serial takes it */
    GHashTable *chardev_append;  /* the file chardevs with append=on */
    GHashTable *rng_objects;     /* -object rng-random/rng-builtin ids */
    const char *pci_slots[32];   /* the driver given each slot with addr= */
} CmdlineState;

/* cmdline-devices.c */
void drive_free(gpointer p);  /* a DriveConfig */
void netdev_free(gpointer p); /* a NetdevConfig */
bool parse_device(const char *arg, MachineConfig *cfg, CmdlineState *st, GError **error);
bool parse_drive(const char *arg, MachineConfig *cfg, GHashTable *pending, unsigned *ndrives,
                 GError **error);
bool parse_netdev(const char *arg, CmdlineState *st, GError **error);
bool parse_nic(const char *arg, MachineConfig *cfg, CmdlineState *st, GError **error);
bool parse_object(const char *arg, CmdlineState *st, GError **error);

/* cmdline-chardev.c */
void add_monitor(MachineConfig *cfg, char *spec, const char *label);
bool parse_chardev(const char *arg, CmdlineState *st, GError **error);
bool parse_mon(const char *arg, MachineConfig *cfg, GHashTable *chardevs, GError **error);
