/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "machine/boot.h"
#include "machine/pci-host.h"
#include "util/error.h"

#include <asm/bootparam.h>
#include <elf.h>
#include <string.h>

#define BZ_SETUP_HEADER_OFFSET 0x1f1
#define BZ_BOOT_FLAG           0xaa55
#define BZ_HDRS_MAGIC          0x53726448 /* "HdrS" */
#define BZ_MIN_VERSION         0x020c     /* xloadflags, hence XLF_KERNEL_64 */
#define BZ_LOADER_UNDEFINED    0xff
#define BZ_64BIT_ENTRY_OFFSET  0x200

#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC          0x336ec578
#define HVM_MEMMAP_TYPE_RAM      1

/* struct hvm_start_info, version 1 (Xen public/arch-x86/hvm/start_info.h). */
typedef struct __attribute__((packed)) {
    uint32_t magic;
    uint32_t version;
    uint32_t flags;
    uint32_t nr_modules;
    uint64_t modlist_paddr;
    uint64_t cmdline_paddr;
    uint64_t rsdp_paddr;
    uint64_t memmap_paddr;
    uint32_t memmap_entries;
    uint32_t reserved;
} HvmStartInfo;

typedef struct __attribute__((packed)) {
    uint64_t paddr;
    uint64_t size;
    uint64_t cmdline_paddr;
    uint64_t reserved;
} HvmModlistEntry;

typedef struct __attribute__((packed)) {
    uint64_t addr;
    uint64_t size;
    uint32_t type;
    uint32_t reserved;
} HvmMemmapEntry;

static bool kernel_invalid(GError **error, const char *why)
{
    g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "%s", why);
    return false;
}

bool bzimage_parse(const uint8_t *data, size_t size, BootKernel *k, GError **error)
{
    struct setup_header hdr;
    if (size < BZ_SETUP_HEADER_OFFSET + sizeof(hdr)) {
        return kernel_invalid(error, "file too short for a bzImage setup header");
    }
    memcpy(&hdr, data + BZ_SETUP_HEADER_OFFSET, sizeof(hdr));
    if (hdr.boot_flag != BZ_BOOT_FLAG || hdr.header != BZ_HDRS_MAGIC) {
        return kernel_invalid(error, "no Linux boot protocol header (HdrS) found");
    }
    if (hdr.version < BZ_MIN_VERSION) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "boot protocol %u.%02u is too old (qlite needs 2.12 or later)",
                    hdr.version >> 8, hdr.version & 0xff);
        return false;
    }
    if (!(hdr.loadflags & LOADED_HIGH) || !(hdr.xloadflags & XLF_KERNEL_64)) {
        return kernel_invalid(error, "not a 64-bit bzImage (no 64-bit entry point)");
    }
    unsigned setup_sects = hdr.setup_sects ? hdr.setup_sects : 4;
    size_t setup_size = (size_t)(setup_sects + 1) * 512;
    if (setup_size >= size) {
        return kernel_invalid(error, "bzImage truncated: no protected-mode kernel after setup");
    }
    size_t payload = size - setup_size;
    if (hdr.syssize && (uint64_t)hdr.syssize * 16 > payload) {
        return kernel_invalid(error, "bzImage truncated: shorter than its header's syssize");
    }
    memset(k, 0, sizeof(*k));
    k->kind = KERNEL_BZIMAGE;
    k->data = data;
    k->size = size;
    k->setup_size = setup_size;
    k->version = hdr.version;
    k->initrd_addr_max = hdr.initrd_addr_max;
    k->cmdline_size = hdr.cmdline_size;
    k->init_size = hdr.init_size;
    k->pref_address = hdr.pref_address;
    /* The kernel decompresses itself to pref_address and needs init_size there. */
    k->end = MAX(BOOT_BZIMAGE_ADDR + payload, hdr.pref_address + hdr.init_size);
    return true;
}

/* Looks for XEN_ELFNOTE_PHYS32_ENTRY in one PT_NOTE segment. */
static bool elf_find_pvh_note(const uint8_t *p, uint64_t len, uint32_t *entry)
{
    uint64_t off = 0;
    while (len - off >= sizeof(Elf64_Nhdr)) {
        Elf64_Nhdr n;
        memcpy(&n, p + off, sizeof(n));
        uint64_t name_off = off + sizeof(n);
        uint64_t desc_off = name_off + (((uint64_t)n.n_namesz + 3) & ~3ULL);
        uint64_t next = desc_off + (((uint64_t)n.n_descsz + 3) & ~3ULL);
        if (next > len || desc_off > len) {
            return false;
        }
        if (n.n_type == XEN_ELFNOTE_PHYS32_ENTRY && n.n_namesz == 4 &&
            memcmp(p + name_off, "Xen", 4) == 0 && n.n_descsz >= 4) {
            memcpy(entry, p + desc_off, 4);
            return true;
        }
        off = next;
    }
    return false;
}

bool elf_pvh_parse(const uint8_t *data, size_t size, BootKernel *k, GError **error)
{
    Elf64_Ehdr eh;
    if (size < sizeof(eh)) {
        return kernel_invalid(error, "file too short for an ELF header");
    }
    memcpy(&eh, data, sizeof(eh));
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0) {
        return kernel_invalid(error, "not an ELF file");
    }
    if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_ident[EI_DATA] != ELFDATA2LSB ||
        eh.e_machine != EM_X86_64) {
        return kernel_invalid(error, "not a 64-bit little-endian x86-64 ELF file");
    }
    if (eh.e_phentsize != sizeof(Elf64_Phdr) || eh.e_phnum == 0 || eh.e_phoff > size ||
        (uint64_t)eh.e_phnum * sizeof(Elf64_Phdr) > size - eh.e_phoff) {
        return kernel_invalid(error, "ELF program headers missing or outside the file");
    }
    memset(k, 0, sizeof(*k));
    k->kind = KERNEL_ELF_PVH;
    k->data = data;
    k->size = size;
    bool have_entry = false;
    for (unsigned i = 0; i < eh.e_phnum; i++) {
        Elf64_Phdr ph;
        memcpy(&ph, data + eh.e_phoff + (uint64_t)i * sizeof(ph), sizeof(ph));
        if (ph.p_type != PT_LOAD && ph.p_type != PT_NOTE) {
            continue;
        }
        if (ph.p_offset > size || ph.p_filesz > size - ph.p_offset) {
            return kernel_invalid(error, "ELF segment extends past the end of the file");
        }
        if (ph.p_type == PT_NOTE) {
            have_entry = have_entry || elf_find_pvh_note(data + ph.p_offset, ph.p_filesz,
                                                         &k->pvh_entry);
            continue;
        }
        if (ph.p_memsz < ph.p_filesz || ph.p_paddr + ph.p_memsz < ph.p_paddr) {
            return kernel_invalid(error, "ELF segment with an invalid size");
        }
        if (k->nsegs == BOOT_ELF_MAX_SEGMENTS) {
            return kernel_invalid(error, "too many ELF load segments");
        }
        k->segs[k->nsegs++] = (ElfSegment){.paddr = ph.p_paddr, .offset = ph.p_offset,
                                           .filesz = ph.p_filesz, .memsz = ph.p_memsz};
        k->end = MAX(k->end, ph.p_paddr + ph.p_memsz);
    }
    if (!k->nsegs) {
        return kernel_invalid(error, "ELF file has no loadable segment");
    }
    if (!have_entry) {
        return kernel_invalid(error, "ELF kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY); "
                                     "build it with CONFIG_PVH=y or use the bzImage");
    }
    return true;
}

bool boot_parse_kernel(const uint8_t *data, size_t size, BootKernel *k, GError **error)
{
    if (size >= SELFMAG && memcmp(data, ELFMAG, SELFMAG) == 0) {
        return elf_pvh_parse(data, size, k, error);
    }
    if (size >= 0x206 && memcmp(data + 0x202, "HdrS", 4) == 0) {
        return bzimage_parse(data, size, k, error);
    }
    return kernel_invalid(error, "not a Linux kernel (neither a bzImage nor an ELF vmlinux)");
}

unsigned boot_e820(uint64_t low_end, uint64_t high_size, E820Entry *out, unsigned max)
{
    unsigned n = 0;
#define E820_ADD(a, s, t)                                                                          \
    do {                                                                                           \
        if (n < max && (s) > 0) {                                                                  \
            out[n++] = (E820Entry){.addr = (a), .size = (s), .type = (t)};                         \
        }                                                                                          \
    } while (0)
    E820_ADD(0, MIN(low_end, BOOT_EBDA_START), E820_RAM);
    E820_ADD(BOOT_EBDA_START, 0xa0000 - BOOT_EBDA_START, E820_RESERVED);
    /* The BIOS area: ACPI tables live here. */
    E820_ADD(BOOT_BIOS_START, BOOT_HIGH_MEM - BOOT_BIOS_START, E820_RESERVED);
    if (low_end > BOOT_HIGH_MEM) {
        E820_ADD(BOOT_HIGH_MEM, low_end - BOOT_HIGH_MEM, E820_RAM);
    }
    /* Linux uses the MCFG's ECAM window only if the firmware reserved it. */
    E820_ADD(PCI_ECAM_BASE, PCI_ECAM_SIZE, E820_RESERVED);
    E820_ADD(GUEST_MEM_HIGH_BASE, high_size, E820_RAM);
#undef E820_ADD
    return n;
}

uint64_t boot_initrd_addr(const BootKernel *k, uint64_t low_end, size_t initrd_size)
{
    uint64_t limit = low_end;
    if (k->kind == KERNEL_BZIMAGE && k->initrd_addr_max) {
        limit = MIN(limit, (uint64_t)k->initrd_addr_max + 1);
    }
    if (initrd_size > limit) {
        return 0;
    }
    uint64_t addr = (limit - initrd_size) & ~0xfffULL;
    return addr >= k->end ? addr : 0;
}

static void boot_write_gdt(GuestMem *mem, BootEntry *entry)
{
    const uint64_t gdt[BOOT_GDT_ENTRIES] = {
        0,
        0x00af9b000000ffffULL, /* 0x08: 64-bit code */
        0x00cf9b000000ffffULL, /* 0x10: 32-bit code, flat */
        0x00cf93000000ffffULL, /* 0x18: data, flat */
        0x00008b0000000067ULL, /* 0x20: busy TSS at 0 (KVM wants a valid TR) */
        0,
    };
    guest_mem_write(mem, BOOT_GDT_ADDR, gdt, sizeof(gdt));
    entry->gdt = BOOT_GDT_ADDR;
    entry->gdt_limit = sizeof(gdt) - 1;
}

/* Identity map of the first 4 GiB with 2 MiB pages, for the 64-bit entry. */
static void boot_write_page_tables(GuestMem *mem, BootEntry *entry)
{
    uint64_t *pml4 = guest_mem_ptr(mem, BOOT_PML4_ADDR, 4096);
    uint64_t *pdpt = guest_mem_ptr(mem, BOOT_PDPT_ADDR, 4096);
    uint64_t *pd = guest_mem_ptr(mem, BOOT_PD_ADDR, 4 * 4096);
    memset(pml4, 0, 4096);
    memset(pdpt, 0, 4096);
    pml4[0] = BOOT_PDPT_ADDR | 0x3; /* present, writable */
    for (uint64_t i = 0; i < 4; i++) {
        pdpt[i] = (BOOT_PD_ADDR + i * 4096) | 0x3;
    }
    for (uint64_t i = 0; i < 4 * 512; i++) {
        pd[i] = (i << 21) | 0x83; /* present, writable, 2 MiB page */
    }
    entry->cr3 = BOOT_PML4_ADDR;
}

static bool boot_place_initrd(GuestMem *mem, const BootSetup *in, uint64_t *addr, GError **error)
{
    *addr = 0;
    if (!in->initrd) {
        return true;
    }
    uint64_t low_end = guest_mem_low_end(mem);
    *addr = boot_initrd_addr(in->kernel, low_end, in->initrd_size);
    if (!*addr) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "initrd %s (%zu bytes) does not fit in guest RAM between the kernel's end "
                    "(0x%" G_GINT64_MODIFIER "x) and 0x%" G_GINT64_MODIFIER "x; give more -m",
                    in->initrd_name ? in->initrd_name : "", in->initrd_size, in->kernel->end,
                    low_end);
        return false;
    }
    guest_mem_write(mem, *addr, in->initrd, in->initrd_size);
    return true;
}

static bool boot_check_kernel_fits(GuestMem *mem, const BootKernel *k, GError **error)
{
    if (k->end > guest_mem_low_end(mem)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "the kernel needs guest RAM up to 0x%" G_GINT64_MODIFIER
                    "x, but RAM below 4 GiB ends at 0x%" G_GINT64_MODIFIER "x; give more -m",
                    k->end, guest_mem_low_end(mem));
        return false;
    }
    return true;
}

static bool boot_load_bzimage(GuestMem *mem, const BootSetup *in, size_t cmdline_len,
                              E820Entry *e820, unsigned ne820, BootEntry *entry, GError **error)
{
    const BootKernel *k = in->kernel;
    if (k->cmdline_size && cmdline_len > k->cmdline_size) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "kernel command line is %zu bytes, this kernel takes at most %u",
                    cmdline_len, k->cmdline_size);
        return false;
    }
    uint64_t initrd_addr;
    if (!boot_place_initrd(mem, in, &initrd_addr, error)) {
        return false;
    }
    guest_mem_write(mem, BOOT_BZIMAGE_ADDR, k->data + k->setup_size, k->size - k->setup_size);

    struct boot_params bp;
    memset(&bp, 0, sizeof(bp));
    /* The header runs from 0x1f1 to the end its jump instruction skips to (boot.rst). */
    size_t hdr_end = 0x202 + k->data[0x201];
    size_t hdr_len = MIN(hdr_end - BZ_SETUP_HEADER_OFFSET, sizeof(bp.hdr));
    memcpy(&bp.hdr, k->data + BZ_SETUP_HEADER_OFFSET, hdr_len);
    bp.hdr.type_of_loader = BZ_LOADER_UNDEFINED;
    bp.hdr.loadflags |= CAN_USE_HEAP;
    bp.hdr.heap_end_ptr = 0xfe00;
    bp.hdr.vid_mode = 0xffff; /* "normal" */
    bp.hdr.code32_start = BOOT_BZIMAGE_ADDR;
    bp.hdr.cmd_line_ptr = BOOT_CMDLINE_ADDR;
    bp.hdr.ramdisk_image = (uint32_t)initrd_addr;
    bp.hdr.ramdisk_size = (uint32_t)in->initrd_size;
    bp.acpi_rsdp_addr = in->rsdp;
    bp.e820_entries = (uint8_t)ne820;
    for (unsigned i = 0; i < ne820; i++) {
        bp.e820_table[i] = (struct boot_e820_entry){
            .addr = e820[i].addr, .size = e820[i].size, .type = e820[i].type};
    }
    guest_mem_write(mem, BOOT_PARAMS_ADDR, &bp, sizeof(bp));

    boot_write_page_tables(mem, entry);
    entry->mode = BOOT_MODE_LONG64;
    entry->rip = BOOT_BZIMAGE_ADDR + BZ_64BIT_ENTRY_OFFSET;
    entry->rsi = BOOT_PARAMS_ADDR;
    return true;
}

static bool boot_load_pvh(GuestMem *mem, const BootSetup *in, E820Entry *e820, unsigned ne820,
                          BootEntry *entry, GError **error)
{
    const BootKernel *k = in->kernel;
    for (unsigned i = 0; i < k->nsegs; i++) {
        const ElfSegment *s = &k->segs[i];
        uint8_t *dst = guest_mem_ptr(mem, s->paddr, s->memsz);
        if (!dst || s->paddr < BOOT_HIGH_MEM) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "ELF segment at 0x%" G_GINT64_MODIFIER "x (+0x%" G_GINT64_MODIFIER
                        "x) is outside guest RAM above 1 MiB",
                        s->paddr, s->memsz);
            return false;
        }
        memcpy(dst, k->data + s->offset, s->filesz);
        memset(dst + s->filesz, 0, s->memsz - s->filesz);
    }
    uint64_t initrd_addr;
    if (!boot_place_initrd(mem, in, &initrd_addr, error)) {
        return false;
    }

    uint8_t page[4096] = {0};
    HvmStartInfo *si = (HvmStartInfo *)page;
    HvmModlistEntry *mod = (HvmModlistEntry *)(page + 64);
    HvmMemmapEntry *map = (HvmMemmapEntry *)(page + 128);
    G_STATIC_ASSERT(sizeof(HvmStartInfo) <= 64);
    si->magic = HVM_START_MAGIC;
    si->version = 1;
    si->cmdline_paddr = BOOT_CMDLINE_ADDR;
    si->rsdp_paddr = in->rsdp;
    if (in->initrd) {
        si->nr_modules = 1;
        si->modlist_paddr = BOOT_START_INFO_ADDR + 64;
        mod->paddr = initrd_addr;
        mod->size = in->initrd_size;
    }
    si->memmap_paddr = BOOT_START_INFO_ADDR + 128;
    si->memmap_entries = ne820;
    for (unsigned i = 0; i < ne820; i++) {
        map[i] = (HvmMemmapEntry){.addr = e820[i].addr, .size = e820[i].size,
                                  .type = e820[i].type};
    }
    guest_mem_write(mem, BOOT_START_INFO_ADDR, page, sizeof(page));

    entry->mode = BOOT_MODE_PROT32;
    entry->rip = k->pvh_entry;
    entry->rbx = BOOT_START_INFO_ADDR;
    return true;
}

bool boot_load(GuestMem *mem, const BootSetup *in, BootEntry *entry, GError **error)
{
    memset(entry, 0, sizeof(*entry));
    if (!boot_check_kernel_fits(mem, in->kernel, error)) {
        return false;
    }
    const char *cmdline = in->cmdline ? in->cmdline : "";
    size_t cmdline_len = strlen(cmdline);
    if (cmdline_len >= BOOT_CMDLINE_MAX) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "kernel command line is %zu bytes, at most %u fit", cmdline_len,
                    BOOT_CMDLINE_MAX - 1);
        return false;
    }
    guest_mem_write(mem, BOOT_CMDLINE_ADDR, cmdline, cmdline_len + 1);

    E820Entry e820[BOOT_E820_MAX];
    uint64_t low_end = guest_mem_low_end(mem);
    unsigned ne820 = boot_e820(low_end, mem->size - low_end, e820, BOOT_E820_MAX);
    boot_write_gdt(mem, entry);
    if (in->kernel->kind == KERNEL_BZIMAGE) {
        return boot_load_bzimage(mem, in, cmdline_len, e820, ne820, entry, error);
    }
    return boot_load_pvh(mem, in, e820, ne820, entry, error);
}
