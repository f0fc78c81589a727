/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The kernel loaders: the input is a kernel image (bzImage or PVH ELF, by
 * its magic numbers). A parsed kernel is then loaded with a command line and
 * an initrd into a small guest: headers that lie about sizes, offsets or
 * addresses must be refused, never followed outside the image or RAM.
 */
#include "machine/boot.h"

#include <stdint.h>

#define RAM_SIZE (64 << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static GuestMem *mem;
    if (!mem) {
        mem = guest_mem_new(RAM_SIZE, RAM_SIZE, NULL);
        g_assert(mem);
    }
    BootKernel k;
    g_autoptr(GError) err = NULL;
    if (!boot_parse_kernel(data, size, &k, &err)) {
        g_assert(err);
        return 0;
    }
    static const uint8_t initrd[4096];
    BootSetup setup = {.kernel = &k,
                       .initrd = initrd,
                       .initrd_size = sizeof(initrd),
                       .initrd_name = "initrd",
                       .cmdline = "console=ttyS0",
                       .rsdp = 0xe0000};
    BootEntry entry;
    if (!boot_load(mem, &setup, &entry, &err)) {
        g_assert(err);
    }
    return 0;
}
