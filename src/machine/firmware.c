/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "machine/firmware.h"
#include "machine/boot.h"
#include "machine/pci-host.h"
#include "util/error.h"

#include <errno.h>
#include <glib/gstdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>

/* Below 1 MiB the image ends at 1 MiB and fills at most 0xc0000-0xfffff. */
#define FIRMWARE_SHADOW_END  0x100000ULL
#define FIRMWARE_SHADOW_MAX  0x40000ULL
#define FIRMWARE_IMAGE_ALIGN 0x10000ULL

/* fw_cfg's ACPI table loader (QEMU's hw/acpi/bios-linker-loader.c, SeaBIOS's romfile_loader). */
#define LOADER_ALLOCATE     1
#define LOADER_ADD_POINTER  2
#define LOADER_ADD_CHECKSUM 3
#define LOADER_ZONE_HIGH    1
#define LOADER_ZONE_FSEG    2
#define LOADER_NAME_MAX     56

#define ACPI_FILE_TABLES "etc/acpi/tables"
#define ACPI_FILE_RSDP   "etc/acpi/rsdp"

typedef struct __attribute__((packed)) {
    uint32_t command;
    union {
        struct __attribute__((packed)) {
            char file[LOADER_NAME_MAX];
            uint32_t align;
            uint8_t zone;
        } alloc;
        struct __attribute__((packed)) {
            char dest_file[LOADER_NAME_MAX]; /* holds the pointer */
            char src_file[LOADER_NAME_MAX];  /* what it points into */
            uint32_t offset;
            uint8_t size;
        } pointer;
        struct __attribute__((packed)) {
            char file[LOADER_NAME_MAX];
            uint32_t offset;
            uint32_t start;
            uint32_t length;
        } cksum;
        char pad[124];
    };
} LoaderEntry;

G_STATIC_ASSERT(sizeof(LoaderEntry) == 128);

typedef struct __attribute__((packed)) {
    uint64_t address;
    uint64_t length;
    uint32_t type;
} FwCfgE820;

struct Firmware {
    char *path;
    uint8_t *image; /* page-aligned copy: the ROM slot maps it */
    size_t size;
    FwCfg *fw_cfg;
};

Firmware *firmware_new(const char *path, GError **error)
{
    g_autofree char *data = NULL;
    gsize len = 0;
    g_autoptr(GError) err = NULL;
    GStatBuf st;
    /* A regular file of a sane size before reading it: not /dev/zero, not a FIFO. */
    if (g_stat(path, &st) == 0 && (!S_ISREG(st.st_mode) || st.st_size > FIRMWARE_MAX)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "could not load PC BIOS '%s': not a regular file of at most 16 MiB", path);
        return NULL;
    }
    if (!g_file_get_contents(path, &data, &len, &err)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "could not load PC BIOS '%s': %s",
                    path, err->message);
        return NULL;
    }
    if (len == 0 || len % FIRMWARE_IMAGE_ALIGN || len > FIRMWARE_MAX) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "could not load PC BIOS '%s': %" G_GSIZE_FORMAT
                    " bytes, not a multiple of 64 KiB up to 16 MiB",
                    path, len);
        return NULL;
    }
    void *image = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (image == MAP_FAILED) {
        qlite_error_errno(error, errno, "cannot map the BIOS image");
        return NULL;
    }
    memcpy(image, data, len);
    mprotect(image, len, PROT_READ);
    Firmware *fw = g_new0(Firmware, 1);
    fw->path = g_strdup(path);
    fw->image = image;
    fw->size = len;
    return fw;
}

void firmware_free(Firmware *fw)
{
    if (!fw) {
        return;
    }
    if (fw->image) {
        munmap(fw->image, fw->size);
    }
    fw_cfg_free(fw->fw_cfg);
    g_free(fw->path);
    g_free(fw);
}

FwCfg *firmware_fw_cfg(Firmware *fw)
{
    return fw->fw_cfg;
}

char *firmware_describe(Firmware *fw)
{
    g_autofree char *sha = g_compute_checksum_for_data(G_CHECKSUM_SHA256, fw->image, fw->size);
    return g_strdup_printf("%zu bytes sha256 %s", fw->size, sha);
}

bool firmware_reset(Firmware *fw, GuestMem *mem, GError **error)
{
    size_t n = MIN(fw->size, (size_t)FIRMWARE_SHADOW_MAX);
    if (!guest_mem_write(mem, FIRMWARE_SHADOW_END - n, fw->image + fw->size - n, n)) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "no RAM below 1 MiB for the BIOS");
        return false;
    }
    fw_cfg_reset(fw->fw_cfg);
    return true;
}

/* ---- what the firmware reads ---- */

static void loader_name(char *dst, const char *name)
{
    memset(dst, 0, LOADER_NAME_MAX);
    g_strlcpy(dst, name, LOADER_NAME_MAX);
}

static void loader_alloc(GByteArray *out, const char *file, uint32_t align, uint8_t zone)
{
    LoaderEntry e = {.command = GUINT32_TO_LE(LOADER_ALLOCATE)};
    loader_name(e.alloc.file, file);
    e.alloc.align = GUINT32_TO_LE(align);
    e.alloc.zone = zone;
    g_byte_array_append(out, (const uint8_t *)&e, sizeof(e));
}

/* The file holding the byte at offset of the tables as built: the RSDP's or the rest. */
static const char *loader_file(const AcpiLinks *l, uint32_t offset, uint32_t *in_file)
{
    if (offset >= l->rsdp && offset < l->rsdp + l->rsdp_len) {
        *in_file = (uint32_t)(offset - l->rsdp);
        return ACPI_FILE_RSDP;
    }
    *in_file = offset;
    return ACPI_FILE_TABLES;
}

/*
 * The ACPI tables as two files, the RSDP (in the F segment, where an OS
 * searches for it) and the rest (in high memory), and the commands that
 * place them and fix up their pointers and checksums.
 */
static bool firmware_add_acpi(FwCfg *f, const FirmwareConfig *cfg, GError **error)
{
    const AcpiLinks *l = cfg->acpi_links;
    g_autoptr(GByteArray) loader = g_byte_array_new();
    loader_alloc(loader, ACPI_FILE_RSDP, 16, LOADER_ZONE_FSEG);
    loader_alloc(loader, ACPI_FILE_TABLES, 64, LOADER_ZONE_HIGH);
    for (unsigned i = 0; i < l->npointers; i++) {
        LoaderEntry e = {.command = GUINT32_TO_LE(LOADER_ADD_POINTER)};
        uint32_t at;
        loader_name(e.pointer.dest_file, loader_file(l, l->pointers[i].offset, &at));
        loader_name(e.pointer.src_file, ACPI_FILE_TABLES); /* every target is a table */
        e.pointer.offset = GUINT32_TO_LE(at);
        e.pointer.size = l->pointers[i].size;
        g_byte_array_append(loader, (const uint8_t *)&e, sizeof(e));
    }
    for (unsigned i = 0; i < l->nchecksums; i++) {
        LoaderEntry e = {.command = GUINT32_TO_LE(LOADER_ADD_CHECKSUM)};
        uint32_t start, field;
        loader_name(e.cksum.file, loader_file(l, l->checksums[i].start, &start));
        loader_file(l, l->checksums[i].field, &field);
        e.cksum.offset = GUINT32_TO_LE(field);
        e.cksum.start = GUINT32_TO_LE(start);
        e.cksum.length = GUINT32_TO_LE(l->checksums[i].length);
        g_byte_array_append(loader, (const uint8_t *)&e, sizeof(e));
    }
    /* The tables file keeps the RSDP's place, zeroed: one RSDP is enough. */
    g_autofree uint8_t *tables = g_memdup2(cfg->acpi, cfg->acpi_size);
    memset(tables + l->rsdp, 0, l->rsdp_len);
    return fw_cfg_add_file(f, ACPI_FILE_RSDP, cfg->acpi + l->rsdp, l->rsdp_len, error) &&
           fw_cfg_add_file(f, ACPI_FILE_TABLES, tables, cfg->acpi_size, error) &&
           fw_cfg_add_file(f, "etc/table-loader", loader->data, loader->len, error);
}

/* RAM and the ECAM window (which the firmware does not know about); it adds its own areas. */
static bool firmware_add_e820(FwCfg *f, GuestMem *mem, GError **error)
{
    uint64_t low = guest_mem_low_end(mem);
    uint64_t high = mem->size - low;
    FwCfgE820 map[3];
    unsigned n = 0;
    map[n++] = (FwCfgE820){.address = 0, .length = low, .type = E820_RAM};
    map[n++] =
        (FwCfgE820){.address = PCI_ECAM_BASE, .length = PCI_ECAM_SIZE, .type = E820_RESERVED};
    if (high) {
        map[n++] = (FwCfgE820){.address = GUEST_MEM_HIGH_BASE, .length = high, .type = E820_RAM};
    }
    return fw_cfg_add_file(f, "etc/e820", map, n * sizeof(map[0]), error);
}

bool firmware_boot_cmos(const char *order, uint8_t *reg3d, uint8_t *reg38)
{
    uint8_t code[3] = {0};
    for (size_t i = 0; order[i]; i++) {
        uint8_t c = order[i] == 'a' || order[i] == 'b' ? 1
                    : order[i] == 'c'                  ? 2
                    : order[i] == 'd'                  ? 3
                    : order[i] == 'n'                  ? 4
                                                       : 0;
        if (!c) {
            return false;
        }
        if (i < 3) {
            code[i] = c;
        }
    }
    *reg3d = (uint8_t)(code[1] << 4 | code[0]);
    *reg38 = (uint8_t)(code[2] << 4 | 1); /* no floppy: skip its boot signature check */
    return true;
}

/* QEMU's Open Firmware paths of virtio-blk-pci disks, one a line; HALT ends a strict list. */
static bool firmware_add_bootorder(FwCfg *f, const FirmwareConfig *cfg, GError **error)
{
    if (!cfg->nboot_slots && !cfg->boot_strict) {
        return true;
    }
    g_autoptr(GString) order = g_string_new(NULL);
    for (unsigned i = 0; i < cfg->nboot_slots; i++) {
        g_string_append_printf(order, "/pci@i0cf8/scsi@%x/disk@0,0\n", cfg->boot_slots[i]);
    }
    if (cfg->boot_strict) {
        g_string_append(order, "HALT\n");
    }
    return fw_cfg_add_file(f, "bootorder", order->str, order->len + 1, error);
}

bool firmware_setup(Firmware *fw, Kvm *kvm, GuestMem *mem, Bus *pio, const FirmwareConfig *cfg,
                    GError **error)
{
    if (!kvm_map_rom(kvm, (1ULL << 32) - fw->size, fw->image, fw->size, error)) {
        return false;
    }
    FwCfg *f = fw->fw_cfg = fw_cfg_new(mem);
    fw_cfg_add_i64(f, FW_CFG_RAM_SIZE, cfg->ram_size);
    fw_cfg_add_i16(f, FW_CFG_NOGRAPHIC, 1); /* no display: SeaBIOS's console is COM1 */
    fw_cfg_add_i16(f, FW_CFG_NB_CPUS, (uint16_t)cfg->ncpus);
    fw_cfg_add_i16(f, FW_CFG_MAX_CPUS, (uint16_t)cfg->ncpus);
    fw_cfg_add_i16(f, FW_CFG_BOOT_MENU, cfg->boot_menu);
    if (cfg->boot_retry_ms >= 0) {
        uint32_t ms = GUINT32_TO_LE((uint32_t)cfg->boot_retry_ms);
        if (!fw_cfg_add_file(f, "etc/boot-fail-wait", &ms, sizeof(ms), error)) {
            return false;
        }
    }
    /*
     * SeaBIOS keeps 64-bit BARs below 4 GiB while they fit: the ACPI tables
     * describe only the windows there.
     */
    static const char pci64[] = "0";
    return firmware_add_e820(f, mem, error) && firmware_add_acpi(f, cfg, error) &&
           firmware_add_bootorder(f, cfg, error) &&
           fw_cfg_add_file(f, "opt/org.seabios/pci64", pci64, sizeof(pci64) - 1, error) &&
           fw_cfg_register(f, pio, error) && firmware_reset(fw, mem, error);
}
