/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "machine/fw-cfg.h"
#include "util/error.h"

#include <endian.h>
#include <string.h>

#define FW_CFG_ITEMS (FW_CFG_FILE_FIRST + FW_CFG_FILE_MAX)

/* FW_CFG_ID: the traditional interface and DMA. */
#define FW_CFG_VERSION     0x01
#define FW_CFG_VERSION_DMA 0x02

/* The DMA control word. */
#define FW_CFG_DMA_ERROR  0x01
#define FW_CFG_DMA_READ   0x02
#define FW_CFG_DMA_SKIP   0x04
#define FW_CFG_DMA_SELECT 0x08
#define FW_CFG_DMA_WRITE  0x10

/* What a read of the DMA address register returns: "QEMU CFG". */
static const uint8_t dma_signature[8] = {'Q', 'E', 'M', 'U', ' ', 'C', 'F', 'G'};

typedef struct __attribute__((packed)) {
    uint32_t size; /* big-endian, as the whole directory */
    uint16_t select;
    uint16_t reserved;
    char name[FW_CFG_NAME_MAX];
} FwCfgFile;

typedef struct __attribute__((packed)) {
    uint32_t control;
    uint32_t length;
    uint64_t address;
} FwCfgDmaAccess;

struct FwCfg {
    GuestMem *mem;
    GBytes *items[FW_CFG_ITEMS];
    unsigned nfiles;
    FwCfgFile dir[FW_CFG_FILE_MAX];

    GMutex lock; /* the state below, touched by every vCPU */
    uint16_t selector;
    uint32_t offset;
    uint32_t dma_high;
};

static void fw_cfg_set_item(FwCfg *f, uint16_t key, const void *data, size_t len)
{
    if (f->items[key]) {
        g_bytes_unref(f->items[key]);
    }
    f->items[key] = g_bytes_new(data, len);
}

static void fw_cfg_update_dir(FwCfg *f)
{
    uint32_t count = htobe32(f->nfiles);
    g_autoptr(GByteArray) dir = g_byte_array_new();
    g_byte_array_append(dir, (const uint8_t *)&count, sizeof(count));
    g_byte_array_append(dir, (const uint8_t *)f->dir, f->nfiles * sizeof(FwCfgFile));
    fw_cfg_set_item(f, FW_CFG_FILE_DIR, dir->data, dir->len);
}

FwCfg *fw_cfg_new(GuestMem *mem)
{
    FwCfg *f = g_new0(FwCfg, 1);
    f->mem = mem;
    g_mutex_init(&f->lock);
    fw_cfg_add_bytes(f, FW_CFG_SIGNATURE, "QEMU", 4);
    uint32_t id = htole32(FW_CFG_VERSION | FW_CFG_VERSION_DMA);
    fw_cfg_add_bytes(f, FW_CFG_ID, &id, sizeof(id));
    fw_cfg_update_dir(f);
    return f;
}

void fw_cfg_free(FwCfg *f)
{
    if (!f) {
        return;
    }
    for (unsigned i = 0; i < FW_CFG_ITEMS; i++) {
        if (f->items[i]) {
            g_bytes_unref(f->items[i]);
        }
    }
    g_mutex_clear(&f->lock);
    g_free(f);
}

void fw_cfg_add_bytes(FwCfg *f, uint16_t key, const void *data, size_t len)
{
    g_assert(key < FW_CFG_FILE_FIRST && key != FW_CFG_FILE_DIR);
    fw_cfg_set_item(f, key, data, len);
}

void fw_cfg_add_i16(FwCfg *f, uint16_t key, uint16_t value)
{
    uint16_t le = htole16(value);
    fw_cfg_add_bytes(f, key, &le, sizeof(le));
}

void fw_cfg_add_i64(FwCfg *f, uint16_t key, uint64_t value)
{
    uint64_t le = htole64(value);
    fw_cfg_add_bytes(f, key, &le, sizeof(le));
}

bool fw_cfg_add_file(FwCfg *f, const char *name, const void *data, size_t len, GError **error)
{
    if (f->nfiles == FW_CFG_FILE_MAX || strlen(name) >= FW_CFG_NAME_MAX || len > UINT32_MAX) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "fw_cfg: no room for file '%s'", name);
        return false;
    }
    for (unsigned i = 0; i < f->nfiles; i++) {
        if (!strcmp(f->dir[i].name, name)) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "fw_cfg: file '%s' twice", name);
            return false;
        }
    }
    /* The directory is sorted by name, as QEMU keeps it; keys follow the order of adding. */
    uint16_t key = (uint16_t)(FW_CFG_FILE_FIRST + f->nfiles);
    unsigned at = 0;
    while (at < f->nfiles && strcmp(f->dir[at].name, name) < 0) {
        at++;
    }
    memmove(&f->dir[at + 1], &f->dir[at], (f->nfiles - at) * sizeof(FwCfgFile));
    FwCfgFile *e = &f->dir[at];
    memset(e, 0, sizeof(*e));
    e->size = htobe32((uint32_t)len);
    e->select = htobe16(key);
    g_strlcpy(e->name, name, sizeof(e->name));
    f->nfiles++;
    fw_cfg_set_item(f, key, data, len);
    fw_cfg_update_dir(f);
    return true;
}

/* ---- the guest's side ---- */

static void fw_cfg_select(FwCfg *f, uint16_t selector)
{
    f->selector = selector;
    f->offset = 0;
}

/* The selected item's bytes; an unknown key is an empty item. */
static const uint8_t *fw_cfg_item(FwCfg *f, size_t *len)
{
    /* Bit 14 asked for writing once and bit 15 picked an architecture's keys: not here. */
    GBytes *b = f->selector < FW_CFG_ITEMS ? f->items[f->selector] : NULL;
    if (!b) {
        *len = 0;
        return NULL;
    }
    return g_bytes_get_data(b, len);
}

static uint8_t fw_cfg_read_byte(FwCfg *f)
{
    size_t len;
    const uint8_t *data = fw_cfg_item(f, &len);
    if (f->offset >= len) {
        return 0;
    }
    return data[f->offset++];
}

/*
 * One DMA request: select, then read or skip (write is refused: every item
 * is read-only). The control word goes back as 0, or with the error bit.
 */
static void fw_cfg_dma(FwCfg *f, uint64_t addr)
{
    FwCfgDmaAccess d;
    if (!guest_mem_read(f->mem, addr, &d, sizeof(d))) {
        return; /* no RAM there: nowhere to report anything */
    }
    uint32_t control = be32toh(d.control);
    uint32_t length = be32toh(d.length);
    uint64_t dst = be64toh(d.address);
    bool error = false;
    if (control & FW_CFG_DMA_SELECT) {
        fw_cfg_select(f, (uint16_t)(control >> 16));
    }
    if (control & FW_CFG_DMA_READ) {
        uint8_t *to = length ? guest_mem_ptr(f->mem, dst, length) : NULL;
        if (length && !to) {
            error = true;
        } else if (length) {
            size_t len;
            const uint8_t *data = fw_cfg_item(f, &len);
            size_t avail = f->offset < len ? len - f->offset : 0;
            size_t n = MIN(avail, (size_t)length);
            if (n) {
                memcpy(to, data + f->offset, n);
            }
            memset(to + n, 0, length - n); /* past the item's end: zeroes, as QEMU */
            guest_mem_mark_dirty(f->mem, to, length);
            f->offset += (uint32_t)n;
        }
    } else if (control & FW_CFG_DMA_WRITE) {
        error = true;
    } else if (control & FW_CFG_DMA_SKIP) {
        size_t len;
        fw_cfg_item(f, &len);
        uint64_t to = (uint64_t)f->offset + length;
        f->offset = (uint32_t)MIN(to, (uint64_t)len);
    }
    uint32_t done = htobe32(error ? FW_CFG_DMA_ERROR : 0);
    guest_mem_write(f->mem, addr, &done, sizeof(done));
}

/* 0x510: the selector (16-bit); 0x511: the data byte (wider reads take more bytes). */
static void fw_cfg_io_read(void *opaque, uint64_t offset, uint8_t *data, unsigned len)
{
    FwCfg *f = opaque;
    g_mutex_lock(&f->lock);
    for (unsigned i = 0; i < len; i++) {
        data[i] = offset == 1 ? fw_cfg_read_byte(f) : 0;
    }
    g_mutex_unlock(&f->lock);
}

static void fw_cfg_io_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned len)
{
    FwCfg *f = opaque;
    if (offset != 0 || len != 2) {
        return; /* writes of the data port are ignored, as in QEMU since 2.4 */
    }
    g_mutex_lock(&f->lock);
    fw_cfg_select(f, (uint16_t)bus_data_get(data, 2));
    g_mutex_unlock(&f->lock);
}

static const BusOps fw_cfg_io_ops = {.read = fw_cfg_io_read, .write = fw_cfg_io_write};

static void fw_cfg_dma_read(void *opaque, uint64_t offset, uint8_t *data, unsigned len)
{
    for (unsigned i = 0; i < len; i++) {
        data[i] = offset + i < sizeof(dma_signature) ? dma_signature[offset + i] : 0xff;
    }
}

static void fw_cfg_dma_write(void *opaque, uint64_t offset, const uint8_t *data, unsigned len)
{
    FwCfg *f = opaque;
    if (len != 4 || (offset != 0 && offset != 4)) {
        return;
    }
    uint32_t half;
    memcpy(&half, data, 4);
    g_mutex_lock(&f->lock);
    if (offset == 0) {
        f->dma_high = be32toh(half);
    } else {
        fw_cfg_dma(f, (uint64_t)f->dma_high << 32 | be32toh(half));
        f->dma_high = 0;
    }
    g_mutex_unlock(&f->lock);
}

static const BusOps fw_cfg_dma_ops = {.read = fw_cfg_dma_read, .write = fw_cfg_dma_write};

bool fw_cfg_register(FwCfg *f, Bus *pio, GError **error)
{
    return bus_register(pio, FW_CFG_PORT_SEL, 2, &fw_cfg_io_ops, f, "fw_cfg", error) &&
           bus_register(pio, FW_CFG_PORT_DMA, 8, &fw_cfg_dma_ops, f, "fw_cfg-dma", error);
}

void fw_cfg_reset(FwCfg *f)
{
    g_mutex_lock(&f->lock);
    fw_cfg_select(f, 0);
    f->dma_high = 0;
    g_mutex_unlock(&f->lock);
}

void fw_cfg_save(FwCfg *f, GByteArray *out)
{
    g_mutex_lock(&f->lock);
    state_put_u16(out, f->selector);
    state_put_u32(out, f->offset);
    state_put_u32(out, f->dma_high);
    g_mutex_unlock(&f->lock);
}

void fw_cfg_load(FwCfg *f, StateIn *in)
{
    /* Any value is safe: an unknown selector reads as empty, an offset past the end as 0. */
    uint16_t selector = state_get_u16(in);
    uint32_t offset = state_get_u32(in);
    uint32_t dma_high = state_get_u32(in);
    if (in->bad) {
        return;
    }
    g_mutex_lock(&f->lock);
    f->selector = selector;
    f->offset = offset;
    f->dma_high = dma_high;
    g_mutex_unlock(&f->lock);
}
