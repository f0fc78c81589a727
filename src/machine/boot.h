/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Loading Linux: a bzImage through the x86 boot protocol's 64-bit entry
 * (Documentation/arch/x86/boot.rst), or an ELF vmlinux through its PVH entry
 * (XEN_ELFNOTE_PHYS32_ENTRY and struct hvm_start_info, as in Xen's
 * public/arch-x86/hvm/start_info.h).
 */
#include "cpu/vcpu.h"
#include "mem/guest-mem.h"

#include <glib.h>
#include <stdbool.h>
#include <stdint.h>

/* Guest-physical layout of what the loader writes below 1 MiB. */
#define BOOT_GDT_ADDR        0x500
#define BOOT_START_INFO_ADDR 0x6000 /* PVH start info, module list, memory map */
#define BOOT_PARAMS_ADDR     0x7000 /* bzImage zero page */
#define BOOT_PML4_ADDR       0x9000
#define BOOT_PDPT_ADDR       0xa000
#define BOOT_PD_ADDR         0xb000 /* four pages: 4 GiB of 2 MiB mappings */
#define BOOT_CMDLINE_ADDR    0x20000
#define BOOT_CMDLINE_MAX     0x10000
#define BOOT_EBDA_START      0x9fc00
#define BOOT_BIOS_START      0xe0000
#define BOOT_HIGH_MEM        0x100000
#define BOOT_BZIMAGE_ADDR    0x100000 /* protected-mode kernel, as every boot loader */
#define BOOT_E820_MAX        8

#define E820_RAM      1
#define E820_RESERVED 2

typedef struct E820Entry {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
} E820Entry;

typedef enum {
    KERNEL_BZIMAGE,
    KERNEL_ELF_PVH,
} KernelKind;

typedef struct ElfSegment {
    uint64_t paddr;
    uint64_t offset;
    uint64_t filesz;
    uint64_t memsz;
} ElfSegment;

#define BOOT_ELF_MAX_SEGMENTS 16

/* A parsed kernel; points into the caller's file contents. */
typedef struct BootKernel {
    KernelKind kind;
    const uint8_t *data;
    size_t size;
    /* bzImage */
    size_t setup_size;
    uint16_t version;
    uint32_t initrd_addr_max;
    uint32_t cmdline_size;
    uint32_t init_size;
    uint64_t pref_address;
    /* ELF */
    ElfSegment segs[BOOT_ELF_MAX_SEGMENTS];
    unsigned nsegs;
    uint32_t pvh_entry;
    /* both: the highest guest address the kernel occupies while it starts */
    uint64_t end;
} BootKernel;

typedef struct BootSetup {
    const BootKernel *kernel;
    const uint8_t *initrd;
    size_t initrd_size;
    const char *initrd_name; /* for error messages */
    const char *cmdline;
    uint64_t rsdp;
} BootSetup;

bool bzimage_parse(const uint8_t *data, size_t size, BootKernel *k, GError **error);
bool elf_pvh_parse(const uint8_t *data, size_t size, BootKernel *k, GError **error);
/* Either format, chosen by its magic numbers. */
bool boot_parse_kernel(const uint8_t *data, size_t size, BootKernel *k, GError **error);

/* The PC memory map for RAM [0, low_end) and [4 GiB, 4 GiB + high_size). */
unsigned boot_e820(uint64_t low_end, uint64_t high_size, E820Entry *out, unsigned max);

/* Where the initrd goes: the top of low RAM under the kernel's limit, or 0 if it does not fit. */
uint64_t boot_initrd_addr(const BootKernel *k, uint64_t low_end, size_t initrd_size);

/* Writes kernel, initrd, command line and boot structures; fills the BSP's entry state. */
bool boot_load(GuestMem *mem, const BootSetup *in, BootEntry *entry, GError **error);
