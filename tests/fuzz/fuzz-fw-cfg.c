/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fw_cfg as a hostile guest drives it: the input's first 4 KiB are guest
 * RAM (where DMA control blocks are read from), the rest a sequence of
 * port accesses, 5 bytes each (an operation, a 32-bit value): selects,
 * data reads, both halves of a DMA address (so any control block, any
 * destination and length), and a save and load in between. Every access
 * must stay inside RAM and the items; a loaded state must save the same.
 */
#include "machine/fw-cfg.h"

#include <stdint.h>
#include <string.h>

#define RAM_SIZE (1 << 20)
#define RAM_SEED 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static FwCfg *fw_cfg_setup(GuestMem *mem, Bus *pio)
{
    FwCfg *f = fw_cfg_new(mem);
    static uint8_t big[70000];
    memset(big, 0x5a, sizeof(big));
    fw_cfg_add_i64(f, FW_CFG_RAM_SIZE, RAM_SIZE);
    fw_cfg_add_i16(f, FW_CFG_NB_CPUS, 2);
    g_assert(fw_cfg_add_file(f, "etc/small", "x", 1, NULL));
    g_assert(fw_cfg_add_file(f, "etc/empty", "", 0, NULL));
    g_assert(fw_cfg_add_file(f, "etc/big", big, sizeof(big), NULL));
    g_assert(fw_cfg_register(f, pio, NULL));
    return f;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static GuestMem *mem;
    static Bus *pio;
    static FwCfg *f;
    if (!f) {
        mem = guest_mem_new(RAM_SIZE, RAM_SIZE, NULL);
        pio = bus_new("pio");
        g_assert(mem && pio);
        f = fw_cfg_setup(mem, pio);
    }
    fw_cfg_reset(f);
    size_t seed = MIN(size, (size_t)RAM_SEED);
    guest_mem_write(mem, 0, data, seed);
    for (size_t at = seed; at + 5 <= size; at += 5) {
        uint32_t v;
        memcpy(&v, data + at + 1, 4);
        uint8_t buf[8];
        switch (data[at] % 6) {
        case 0:
            bus_data_set(buf, 2, v);
            bus_write(pio, FW_CFG_PORT_SEL, buf, 2);
            break;
        case 1:
            for (unsigned i = 0; i < v % 64; i++) {
                bus_read(pio, FW_CFG_PORT_SEL + 1, buf, 1);
            }
            break;
        case 2:
        case 3:
            /* The device takes the halves as big-endian; the value is the guest's bytes. */
            memcpy(buf, &v, 4);
            bus_write(pio, FW_CFG_PORT_DMA + (data[at] % 6 == 2 ? 0 : 4), buf, 4);
            break;
        case 4:
            bus_read(pio, FW_CFG_PORT_DMA + v % 8, buf, 1 + v % 4);
            break;
        case 5: {
            g_autoptr(GByteArray) st = g_byte_array_new();
            fw_cfg_save(f, st);
            StateIn in;
            state_in_init(&in, st->data, st->len);
            fw_cfg_load(f, &in);
            g_assert(state_in_finish(&in, "fw_cfg", NULL));
            g_autoptr(GByteArray) again = g_byte_array_new();
            fw_cfg_save(f, again);
            g_assert(again->len == st->len && !memcmp(again->data, st->data, st->len));
            break;
        }
        }
    }
    return 0;
}
