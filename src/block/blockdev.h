/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * -blockdev: QEMU's block graph as a manager writes it (libvirt always
 * does): a protocol node (driver=file) under a format node (driver=raw or
 * qcow2, file=NODE or an inline file.driver=file,...), named by node-name
 * and used by -device virtio-blk-pci,drive=NODE. Each pair becomes one
 * DriveConfig, qlite's whole disk.
 */
#include "block/block.h"

#include <glib.h>

typedef struct BlockdevTable BlockdevTable;

BlockdevTable *blockdev_table_new(void);
void blockdev_table_free(BlockdevTable *t);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(BlockdevTable, blockdev_table_free)

/* One -blockdev (key=value or JSON). */
bool blockdev_parse(BlockdevTable *t, const char *arg, GError **error);

/* Whether a node of that name was given. */
bool blockdev_has(BlockdevTable *t, const char *node);

/*
 * The disk a device's drive=NODE means: the format node and the file node
 * under it (or a file node alone: raw). Each node serves one device.
 * NULL with the reason otherwise.
 */
DriveConfig *blockdev_take_drive(BlockdevTable *t, const char *node, GError **error);
