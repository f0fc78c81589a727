/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * An incoming migration stream: the input is the stream (see stream_fd).
 * The reader checks framing, checksums and limits; the sections it returns
 * go to every device's load that runs without KVM (COM1, RTC, 8042, ACPI PM,
 * the PCI host bridge, a virtio-blk function), and a state that loaded must
 * save again. Whatever the stream says must end in a loaded device or a
 * refusal, never a crash or a read outside what was sent. Sections are
 * vetted as the machine vets them: only known ids, each bounded.
 */
#include "fuzz-devices.h"
#include "machine/acpi-pm.h"
#include "machine/i8042.h"
#include "machine/rtc.h"
#include "machine/serial.h"
#include "migration/stream.h"
#include "util/state.h"

#include <sys/mman.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    FuzzPc *pc;
    Serial *serial;
    Rtc *rtc;
    I8042 *kbd;
    AcpiPm *pm;
} Devices;

static void nothing(void *opaque)
{
}
static void no_irq(void *opaque, bool level)
{
}
static void no_write(void *opaque, const uint8_t *buf, size_t len)
{
}
static time_t epoch(void)
{
    return 1700000000;
}

static Devices *devices(void)
{
    static Devices d;
    if (!d.pc) {
        d.pc = fuzz_pc_new(true);
        static const SerialBackend be = {
            .write = no_write, .accept_input = nothing, .set_irq = no_irq};
        d.serial = serial_new(&be);
        d.rtc = rtc_new(epoch);
        d.kbd = i8042_new(nothing, NULL);
        static const AcpiPmOps pm_ops = {.poweroff = nothing, .set_sci = no_irq};
        d.pm = acpi_pm_new(&pm_ops, NULL);
    }
    return &d;
}

static bool any_machine(void *opaque, const void *cfg, size_t len, GError **error)
{
    return true;
}

static const char *const ids[] = {"serial", "rtc", "i8042", "acpi-pm", "pci-host", "virtio0"};

static bool known_section(void *opaque, const char *id, size_t len, GError **error)
{
    for (size_t i = 0; i < G_N_ELEMENTS(ids); i++) {
        if (strcmp(id, ids[i]) == 0 && len <= (1 << 20)) {
            return true;
        }
    }
    g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "not ours");
    return false;
}

static bool store_page(void *opaque, uint64_t gpa, const void *page, GError **error)
{
    uint8_t *dst = guest_mem_ptr(opaque, gpa, MIG_PAGE_SIZE);
    if (!dst) {
        g_set_error(error, G_FILE_ERROR, G_FILE_ERROR_INVAL, "outside RAM");
        return false;
    }
    if (page) {
        memcpy(dst, page, MIG_PAGE_SIZE);
    } else {
        memset(dst, 0, MIG_PAGE_SIZE);
    }
    return true;
}

/* Loads a section into its device; a state that loaded must save again. */
static void load(Devices *d, const char *id, GBytes *b)
{
    gsize len;
    const uint8_t *p = g_bytes_get_data(b, &len);
    StateIn in;
    state_in_init(&in, p, len);
    g_autoptr(GError) err = NULL;
    g_autoptr(GByteArray) out = g_byte_array_new();
    if (strcmp(id, "serial") == 0) {
        serial_load(d->serial, &in);
        serial_save(d->serial, out);
    } else if (strcmp(id, "rtc") == 0) {
        rtc_load(d->rtc, &in);
        rtc_save(d->rtc, out);
    } else if (strcmp(id, "i8042") == 0) {
        i8042_load(d->kbd, &in);
        i8042_save(d->kbd, out);
    } else if (strcmp(id, "acpi-pm") == 0) {
        acpi_pm_load(d->pm, &in);
        acpi_pm_save(d->pm, out);
    } else if (strcmp(id, "pci-host") == 0) {
        pci_host_load(d->pc->host, &in);
        pci_host_save(d->pc->host, out);
    } else {
        pci_device_unmap(virtio_pci_device(d->pc->vp));
        if (virtio_pci_load(d->pc->vp, &in, &err)) {
            virtio_pci_save(d->pc->vp, out);
        }
    }
    if (!err) {
        state_in_finish(&in, id, &err);
    }
}

/*
 * The stream to read: the input after its first byte, as it is when that
 * byte is odd; else a stream written from it with valid checksums, so that
 * mutations reach the loads: records of a selector byte (below 0xf0: a
 * section, ids[selector % 6], of a 16-bit length and that many bytes; else a
 * RAM page at a 24-bit page number, filled from the input).
 */
static int stream_fd(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz-stream", MFD_CLOEXEC);
    g_assert(fd >= 0);
    if (size > 0 && (data[0] & 1)) {
        g_assert(write(fd, data + 1, size - 1) == (ssize_t)(size - 1));
    } else if (size > 0) {
        g_autoptr(MigWriter) w = mig_writer_new(fd);
        g_assert(mig_write_header(w, NULL) && mig_write_machine(w, "pc", 2, NULL));
        const uint8_t *p = data + 1, *end = data + size;
        while (p < end) {
            uint8_t sel = *p++;
            if (sel < 0xf0) {
                size_t len = end - p >= 2 ? (size_t)(p[0] | p[1] << 8) : 0;
                p += MIN(2, end - p);
                len = MIN(len, (size_t)(end - p));
                g_assert(mig_write_state(w, ids[sel % G_N_ELEMENTS(ids)], p, len, NULL));
                p += len;
            } else {
                uint8_t page[MIG_PAGE_SIZE] = {0};
                uint64_t pfn = end - p >= 3 ? (uint64_t)(p[0] | p[1] << 8 | p[2] << 16) : 0;
                p += MIN(3, end - p);
                size_t len = MIN(sizeof(page), (size_t)(end - p));
                memcpy(page, p, len);
                p += len;
                g_assert(mig_write_page(w, pfn * MIG_PAGE_SIZE, page, NULL));
            }
        }
        g_assert(mig_write_end(w, NULL));
    }
    g_assert(lseek(fd, 0, SEEK_SET) == 0);
    return fd;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    Devices *d = devices();
    int fd = stream_fd(data, size);
    g_autoptr(MigReader) r = mig_reader_new(fd, store_page, d->pc->mem);
    g_autoptr(GError) err = NULL;
    g_autoptr(GHashTable) states = mig_read_all(r, any_machine, known_section, NULL, &err);
    close(fd);
    if (!states) {
        g_assert(err);
        return 0;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(ids); i++) {
        GBytes *b = g_hash_table_lookup(states, ids[i]);
        if (b) {
            load(d, ids[i], b);
        }
    }
    return 0;
}
