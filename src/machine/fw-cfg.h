/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * QEMU's firmware configuration device (fw_cfg) at its x86 ports: what the
 * firmware (SeaBIOS) reads about the machine. Items are numbered (a few
 * fixed keys, then named files listed in a directory); the guest selects
 * one at 0x510 and reads it byte by byte at 0x511, or by DMA: the guest
 * address of a control block written big-endian to 0x514 (high half) and
 * 0x518 (low half, which starts the transfer). Every item is read-only.
 */
#include "mem/bus.h"
#include "mem/guest-mem.h"
#include "util/state.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

#define FW_CFG_PORT_SEL 0x510 /* 16-bit selector; 0x511 is the data byte */
#define FW_CFG_PORT_DMA 0x514 /* 64-bit DMA address, two 32-bit big-endian halves */

/* Fixed keys (QEMU's docs/specs/fw_cfg.txt). */
#define FW_CFG_SIGNATURE  0x00
#define FW_CFG_ID         0x01
#define FW_CFG_RAM_SIZE   0x03
#define FW_CFG_NOGRAPHIC  0x04
#define FW_CFG_NB_CPUS    0x05
#define FW_CFG_BOOT_MENU  0x0e
#define FW_CFG_MAX_CPUS   0x0f
#define FW_CFG_FILE_DIR   0x19
#define FW_CFG_FILE_FIRST 0x20
#define FW_CFG_FILE_MAX   64 /* files this device holds */
#define FW_CFG_NAME_MAX   56 /* a file name, with its NUL */

typedef struct FwCfg FwCfg;

FwCfg *fw_cfg_new(GuestMem *mem);
void fw_cfg_free(FwCfg *f);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(FwCfg, fw_cfg_free)

/* A fixed key's value (copied), little-endian integers as QEMU stores them. */
void fw_cfg_add_bytes(FwCfg *f, uint16_t key, const void *data, size_t len);
void fw_cfg_add_i16(FwCfg *f, uint16_t key, uint16_t value);
void fw_cfg_add_i64(FwCfg *f, uint16_t key, uint64_t value);
/* A named file (copied); names are unique and shorter than FW_CFG_NAME_MAX. */
bool fw_cfg_add_file(FwCfg *f, const char *name, const void *data, size_t len, GError **error);

/* The data port, the selector and the DMA registers. */
bool fw_cfg_register(FwCfg *f, Bus *pio, GError **error);

void fw_cfg_reset(FwCfg *f);
/* The guest's state: the selected item, the offset in it, a DMA address half written. */
void fw_cfg_save(FwCfg *f, GByteArray *out);
void fw_cfg_load(FwCfg *f, StateIn *in);
