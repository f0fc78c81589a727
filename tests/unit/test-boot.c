/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "machine/boot.h"
#include "machine/pci-host.h"
#include "mem/guest-mem.h"

#include <asm/bootparam.h>
#include <elf.h>
#include <string.h>

#define BZ_SIZE  (64 * 1024)
#define RAM_SIZE (64ULL << 20)

/* A minimal image with a valid 2.15 boot protocol header and a fake payload. */
static uint8_t *make_bzimage(size_t size)
{
    uint8_t *img = g_malloc0(size);
    struct setup_header h = {0};
    h.setup_sects = 4;
    h.syssize = (uint32_t)((size - 5 * 512) / 16);
    h.boot_flag = 0xaa55;
    h.jump = 0x66eb; /* jmp to 0x268: the header's end */
    h.header = 0x53726448;
    h.version = 0x020f;
    h.loadflags = LOADED_HIGH;
    h.initrd_addr_max = 0x7fffffff;
    h.kernel_alignment = 0x200000;
    h.relocatable_kernel = 1;
    h.xloadflags = XLF_KERNEL_64 | XLF_CAN_BE_LOADED_ABOVE_4G;
    h.cmdline_size = 2047;
    h.pref_address = 0x1000000;
    h.init_size = 0x800000;
    memcpy(img + 0x1f1, &h, sizeof(h));
    memset(img + 5 * 512, 0xcc, size - 5 * 512);
    return img;
}

static void test_bzimage_parse(void)
{
    g_autofree uint8_t *img = make_bzimage(BZ_SIZE);
    BootKernel k;
    g_autoptr(GError) err = NULL;
    g_assert_true(boot_parse_kernel(img, BZ_SIZE, &k, &err));
    g_assert_no_error(err);
    g_assert_cmpint(k.kind, ==, KERNEL_BZIMAGE);
    g_assert_cmpuint(k.setup_size, ==, 5 * 512);
    g_assert_cmphex(k.version, ==, 0x020f);
    g_assert_cmpuint(k.cmdline_size, ==, 2047);
    g_assert_cmphex(k.end, ==, 0x1800000); /* pref_address + init_size */
}

static void expect_bz_error(uint8_t *img, size_t size, const char *what)
{
    BootKernel k;
    g_autoptr(GError) err = NULL;
    g_assert_false(boot_parse_kernel(img, size, &k, &err));
    g_assert_nonnull(err);
    if (!strstr(err->message, what)) {
        g_error("expected '%s' in '%s'", what, err->message);
    }
}

static void test_bzimage_bad(void)
{
    g_autofree uint8_t *img = make_bzimage(BZ_SIZE);
    /* Truncated inside the header, right after it, and short of syssize. */
    expect_bz_error(img, 0x100, "not a Linux kernel");
    expect_bz_error(img, 0x210, "too short");
    expect_bz_error(img, 0x260, "too short");
    expect_bz_error(img, 5 * 512, "truncated");
    expect_bz_error(img, BZ_SIZE - 4096, "truncated");

    g_autofree uint8_t *old = make_bzimage(BZ_SIZE);
    old[0x206] = 0x04; /* version 2.04 */
    expect_bz_error(old, BZ_SIZE, "too old");

    g_autofree uint8_t *k32 = make_bzimage(BZ_SIZE);
    k32[0x236] = 0; /* no XLF_KERNEL_64 */
    expect_bz_error(k32, BZ_SIZE, "64-bit");

    g_autofree uint8_t *noflag = make_bzimage(BZ_SIZE);
    noflag[0x1fe] = 0;
    expect_bz_error(noflag, BZ_SIZE, "HdrS");

    /* Garbage of every size never parses and never reads out of bounds. */
    g_autofree uint8_t *garbage = g_malloc(BZ_SIZE);
    GRand *rand = g_rand_new_with_seed(42);
    for (size_t i = 0; i < BZ_SIZE; i++) {
        garbage[i] = (uint8_t)g_rand_int(rand);
    }
    g_rand_free(rand);
    for (size_t len = 0; len < 2048; len += 7) {
        BootKernel k;
        g_assert_false(boot_parse_kernel(garbage, len, &k, NULL));
    }
}

typedef struct {
    Elf64_Ehdr eh;
    Elf64_Phdr ph[2];
    Elf64_Nhdr nh;
    char name[4];
    uint32_t entry;
    uint8_t pad[4];
    uint8_t code[256];
} FakeElf;

static void make_elf(FakeElf *e, bool with_note)
{
    memset(e, 0, sizeof(*e));
    memcpy(e->eh.e_ident, ELFMAG, SELFMAG);
    e->eh.e_ident[EI_CLASS] = ELFCLASS64;
    e->eh.e_ident[EI_DATA] = ELFDATA2LSB;
    e->eh.e_machine = EM_X86_64;
    e->eh.e_phoff = offsetof(FakeElf, ph);
    e->eh.e_phentsize = sizeof(Elf64_Phdr);
    e->eh.e_phnum = 2;
    e->ph[0] = (Elf64_Phdr){.p_type = PT_LOAD, .p_offset = offsetof(FakeElf, code),
                            .p_paddr = 0x1000000, .p_filesz = 256, .p_memsz = 0x3000};
    e->ph[1] = (Elf64_Phdr){.p_type = PT_NOTE, .p_offset = offsetof(FakeElf, nh),
                            .p_filesz = sizeof(Elf64_Nhdr) + 4 + 4};
    e->nh = (Elf64_Nhdr){.n_namesz = 4, .n_descsz = 4, .n_type = with_note ? 18 : 1};
    memcpy(e->name, "Xen", 4);
    e->entry = 0x1000040;
    memset(e->code, 0x90, sizeof(e->code));
}

static void test_elf_pvh(void)
{
    FakeElf e;
    make_elf(&e, true);
    BootKernel k;
    g_autoptr(GError) err = NULL;
    g_assert_true(boot_parse_kernel((uint8_t *)&e, sizeof(e), &k, &err));
    g_assert_no_error(err);
    g_assert_cmpint(k.kind, ==, KERNEL_ELF_PVH);
    g_assert_cmphex(k.pvh_entry, ==, 0x1000040);
    g_assert_cmpuint(k.nsegs, ==, 1);
    g_assert_cmphex(k.end, ==, 0x1003000);

    make_elf(&e, false);
    g_assert_false(boot_parse_kernel((uint8_t *)&e, sizeof(e), &k, &err));
    g_assert_nonnull(strstr(err->message, "PVH"));
    g_clear_error(&err);

    make_elf(&e, true);
    e.ph[0].p_filesz = 1 << 20; /* past the end of the file */
    g_assert_false(boot_parse_kernel((uint8_t *)&e, sizeof(e), &k, &err));
    g_clear_error(&err);

    make_elf(&e, true);
    e.eh.e_phnum = 1000; /* program headers past the end */
    g_assert_false(boot_parse_kernel((uint8_t *)&e, sizeof(e), &k, &err));
    g_clear_error(&err);

    make_elf(&e, true);
    e.nh.n_descsz = 0xffffffff; /* note runs off its segment */
    g_assert_false(boot_parse_kernel((uint8_t *)&e, sizeof(e), &k, &err));
    g_clear_error(&err);

    make_elf(&e, true);
    g_assert_false(boot_parse_kernel((uint8_t *)&e, 40, &k, &err)); /* truncated header */
}

static void test_e820(void)
{
    E820Entry e[BOOT_E820_MAX];
    unsigned n = boot_e820(0x8000000, 0, e, BOOT_E820_MAX);
    g_assert_cmpuint(n, ==, 5);
    g_assert_cmphex(e[0].addr, ==, 0);
    g_assert_cmphex(e[0].size, ==, 0x9fc00);
    g_assert_cmpuint(e[0].type, ==, E820_RAM);
    g_assert_cmpuint(e[1].type, ==, E820_RESERVED);
    g_assert_cmphex(e[2].addr, ==, 0xe0000);
    g_assert_cmpuint(e[2].type, ==, E820_RESERVED);
    g_assert_cmphex(e[3].addr, ==, 0x100000);
    g_assert_cmphex(e[3].addr + e[3].size, ==, 0x8000000);
    /* The PCI ECAM window is reserved. */
    g_assert_cmphex(e[4].addr, ==, PCI_ECAM_BASE);
    g_assert_cmpuint(e[4].type, ==, E820_RESERVED);

    /* RAM beyond the hole continues at 4 GiB. */
    n = boot_e820(0xc0000000, 0x40000000, e, BOOT_E820_MAX);
    g_assert_cmpuint(n, ==, 6);
    g_assert_cmphex(e[5].addr, ==, 0x100000000ULL);
    g_assert_cmphex(e[5].size, ==, 0x40000000);
    /* No entry overlaps the next. */
    for (unsigned i = 1; i < n; i++) {
        g_assert_cmpuint(e[i - 1].addr + e[i - 1].size, <=, e[i].addr);
    }
}

static void test_bzimage_load(void)
{
    g_autofree uint8_t *img = make_bzimage(BZ_SIZE);
    g_autoptr(GuestMem) mem = guest_mem_new(RAM_SIZE, 0xc0000000, NULL);
    g_assert_nonnull(mem);
    BootKernel k;
    g_assert_true(boot_parse_kernel(img, BZ_SIZE, &k, NULL));
    uint8_t initrd[10000];
    memset(initrd, 0x5a, sizeof(initrd));
    BootSetup in = {.kernel = &k, .initrd = initrd, .initrd_size = sizeof(initrd),
                    .cmdline = "console=ttyS0 quiet", .rsdp = 0xe0000};
    BootEntry entry;
    g_autoptr(GError) err = NULL;
    g_assert_true(boot_load(mem, &in, &entry, &err));
    g_assert_no_error(err);
    g_assert_cmpint(entry.mode, ==, BOOT_MODE_LONG64);
    g_assert_cmphex(entry.rip, ==, 0x100200);
    g_assert_cmphex(entry.rsi, ==, BOOT_PARAMS_ADDR);

    struct boot_params *bp = guest_mem_ptr(mem, BOOT_PARAMS_ADDR, sizeof(*bp));
    g_assert_cmphex(bp->hdr.header, ==, 0x53726448);
    g_assert_cmphex(bp->hdr.type_of_loader, ==, 0xff);
    g_assert_cmphex(bp->hdr.code32_start, ==, 0x100000);
    g_assert_cmpstr((char *)guest_mem_ptr(mem, bp->hdr.cmd_line_ptr, 1), ==,
                    "console=ttyS0 quiet");
    g_assert_cmphex(bp->acpi_rsdp_addr, ==, 0xe0000);
    g_assert_cmpuint(bp->e820_entries, ==, 5);
    g_assert_cmphex(bp->e820_table[3].addr + bp->e820_table[3].size, ==, RAM_SIZE);
    /* The initrd sits page-aligned at the top of RAM, above the kernel. */
    g_assert_cmpuint(bp->hdr.ramdisk_size, ==, sizeof(initrd));
    g_assert_cmphex(bp->hdr.ramdisk_image & 0xfff, ==, 0);
    g_assert_cmpuint(bp->hdr.ramdisk_image + sizeof(initrd), <=, RAM_SIZE);
    g_assert_cmpuint(bp->hdr.ramdisk_image, >=, k.end);
    g_assert_cmpmem(guest_mem_ptr(mem, bp->hdr.ramdisk_image, sizeof(initrd)), sizeof(initrd),
                    initrd, sizeof(initrd));
    /* The protected-mode kernel is at 1 MiB. */
    g_assert_cmphex(*(uint8_t *)guest_mem_ptr(mem, 0x100000, 1), ==, 0xcc);
    /* Identity page tables: PML4 -> PDPT -> 2 MiB pages. */
    uint64_t *pd = guest_mem_ptr(mem, BOOT_PD_ADDR, 8 * 2);
    g_assert_cmphex(pd[1], ==, 0x200083);
}

static void test_load_errors(void)
{
    g_autofree uint8_t *img = make_bzimage(BZ_SIZE);
    g_autoptr(GuestMem) mem = guest_mem_new(RAM_SIZE, 0xc0000000, NULL);
    BootKernel k;
    g_assert_true(boot_parse_kernel(img, BZ_SIZE, &k, NULL));
    g_autoptr(GError) err = NULL;

    /* An initrd larger than the RAM above the kernel. */
    size_t big = RAM_SIZE - 0x1000000;
    g_autofree uint8_t *initrd = g_malloc0(big);
    BootSetup in = {.kernel = &k, .initrd = initrd, .initrd_size = big, .initrd_name = "big.img"};
    BootEntry entry;
    g_assert_false(boot_load(mem, &in, &entry, &err));
    g_assert_nonnull(strstr(err->message, "big.img"));
    g_assert_nonnull(strstr(err->message, "does not fit"));
    g_clear_error(&err);

    /* A command line longer than the header allows. */
    g_autofree char *longcmd = g_strnfill(3000, 'a');
    BootSetup in2 = {.kernel = &k, .cmdline = longcmd};
    g_assert_false(boot_load(mem, &in2, &entry, &err));
    g_assert_nonnull(strstr(err->message, "at most 2047"));
    g_clear_error(&err);

    /* A kernel that needs more RAM than there is. */
    g_autoptr(GuestMem) small = guest_mem_new(16ULL << 20, 0xc0000000, NULL);
    BootSetup in3 = {.kernel = &k};
    g_assert_false(boot_load(small, &in3, &entry, &err));
    g_assert_nonnull(strstr(err->message, "more -m"));
}

static void test_pvh_load(void)
{
    FakeElf e;
    make_elf(&e, true);
    BootKernel k;
    g_assert_true(boot_parse_kernel((uint8_t *)&e, sizeof(e), &k, NULL));
    g_autoptr(GuestMem) mem = guest_mem_new(RAM_SIZE, 0xc0000000, NULL);
    uint8_t initrd[100] = {1, 2, 3};
    BootSetup in = {.kernel = &k, .initrd = initrd, .initrd_size = sizeof(initrd),
                    .cmdline = "x", .rsdp = 0xe0000};
    BootEntry entry;
    g_autoptr(GError) err = NULL;
    g_assert_true(boot_load(mem, &in, &entry, &err));
    g_assert_cmpint(entry.mode, ==, BOOT_MODE_PROT32);
    g_assert_cmphex(entry.rip, ==, 0x1000040);
    g_assert_cmphex(entry.rbx, ==, BOOT_START_INFO_ADDR);
    uint32_t *si = guest_mem_ptr(mem, BOOT_START_INFO_ADDR, 64);
    g_assert_cmphex(si[0], ==, 0x336ec578);
    g_assert_cmpuint(si[1], ==, 1);
    g_assert_cmpuint(si[3], ==, 1); /* one module: the initrd */
    uint64_t *si64 = (uint64_t *)(si + 4);
    g_assert_cmphex(si64[1], ==, BOOT_CMDLINE_ADDR);
    g_assert_cmphex(si64[2], ==, 0xe0000);
    g_assert_cmpuint(si[12], ==, 5); /* memmap entries, at byte 48 */
    /* Segment loaded, its bss zeroed. */
    uint8_t *seg = guest_mem_ptr(mem, 0x1000000, 0x3000);
    g_assert_cmphex(seg[0], ==, 0x90);
    g_assert_cmphex(seg[0x2fff], ==, 0);

    /* A segment below 1 MiB would overwrite the boot structures. */
    e.ph[0].p_paddr = 0x7000;
    g_assert_true(boot_parse_kernel((uint8_t *)&e, sizeof(e), &k, NULL));
    BootSetup in2 = {.kernel = &k};
    g_assert_false(boot_load(mem, &in2, &entry, &err));
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/boot/bzimage/parse", test_bzimage_parse);
    g_test_add_func("/boot/bzimage/bad", test_bzimage_bad);
    g_test_add_func("/boot/bzimage/load", test_bzimage_load);
    g_test_add_func("/boot/load-errors", test_load_errors);
    g_test_add_func("/boot/elf/pvh-note", test_elf_pvh);
    g_test_add_func("/boot/elf/load", test_pvh_load);
    g_test_add_func("/boot/e820", test_e820);
    return g_test_run();
}
