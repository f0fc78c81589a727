/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "mem/guest-mem.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

GuestMem *guest_mem_new(uint64_t size, uint64_t lowmem_limit, GError **error)
{
    if (size == 0 || size % 4096) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "RAM size %" G_GUINT64_FORMAT " is not a positive multiple of 4 KiB", size);
        return NULL;
    }
    g_autoptr(GuestMem) mem = g_new0(GuestMem, 1);
    mem->fd = memfd_create("qlite-ram", MFD_CLOEXEC);
    if (mem->fd < 0) {
        qlite_error_errno(error, errno, "memfd_create for guest RAM");
        return NULL;
    }
    if (ftruncate(mem->fd, (off_t)size) < 0) {
        qlite_error_errno(error, errno, "cannot size guest RAM to %" G_GUINT64_FORMAT " bytes",
                          size);
        return NULL;
    }
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, mem->fd, 0);
    if (p == MAP_FAILED) {
        qlite_error_errno(error, errno, "cannot map %" G_GUINT64_FORMAT " bytes of guest RAM",
                          size);
        return NULL;
    }
    mem->base = p;
    mem->size = size;
    /* Guest RAM is not worth a core dump and must not be inherited by children. */
    madvise(p, size, MADV_DONTDUMP);
    madvise(p, size, MADV_DONTFORK);

    uint64_t low = MIN(size, lowmem_limit);
    mem->regions[mem->nregions++] = (GuestRegion){.gpa = 0, .size = low, .hva = mem->base};
    if (size > low) {
        mem->regions[mem->nregions++] =
            (GuestRegion){.gpa = GUEST_MEM_HIGH_BASE, .size = size - low, .hva = mem->base + low};
    }
    return g_steal_pointer(&mem);
}

void guest_mem_free(GuestMem *mem)
{
    if (!mem) {
        return;
    }
    if (mem->base) {
        munmap(mem->base, mem->size);
    }
    if (mem->fd >= 0) {
        close(mem->fd);
    }
    g_free(mem->dirty);
    g_free(mem);
}

void *guest_mem_ptr(GuestMem *mem, uint64_t gpa, uint64_t len)
{
    for (unsigned i = 0; i < mem->nregions; i++) {
        const GuestRegion *r = &mem->regions[i];
        /* Written so that no sum can overflow with guest-chosen values. */
        if (gpa >= r->gpa && gpa - r->gpa <= r->size && len <= r->size - (gpa - r->gpa)) {
            return r->hva + (gpa - r->gpa);
        }
    }
    return NULL;
}

bool guest_mem_write(GuestMem *mem, uint64_t gpa, const void *src, uint64_t len)
{
    void *p = guest_mem_ptr(mem, gpa, len);
    if (!p) {
        return false;
    }
    memcpy(p, src, len);
    guest_mem_mark_dirty(mem, p, len);
    return true;
}

bool guest_mem_read(GuestMem *mem, uint64_t gpa, void *dst, uint64_t len)
{
    void *p = guest_mem_ptr(mem, gpa, len);
    if (!p) {
        return false;
    }
    memcpy(dst, p, len);
    return true;
}

uint64_t guest_mem_low_end(const GuestMem *mem)
{
    return mem->regions[0].size;
}

bool guest_mem_clear(GuestMem *mem, GError **error)
{
    if (fallocate(mem->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, (off_t)mem->size) < 0) {
        qlite_error_errno(error, errno, "cannot clear guest RAM");
        return false;
    }
    guest_mem_mark_dirty(mem, mem->base, mem->size);
    return true;
}

uint64_t guest_mem_page_gpa(const GuestMem *mem, uint64_t page)
{
    const uint8_t *hva = mem->base + page * GUEST_PAGE_SIZE;
    for (unsigned i = 0; i < mem->nregions; i++) {
        const GuestRegion *r = &mem->regions[i];
        if (hva >= r->hva && (uint64_t)(hva - r->hva) < r->size) {
            return r->gpa + (uint64_t)(hva - r->hva);
        }
    }
    g_assert_not_reached();
}

static size_t dirty_words(const GuestMem *mem)
{
    return (guest_mem_pages(mem) + GUEST_BITS_PER_LONG - 1) / GUEST_BITS_PER_LONG;
}

void guest_mem_dirty_start(GuestMem *mem)
{
    if (!mem->dirty) {
        mem->dirty = g_new0(unsigned long, dirty_words(mem));
    }
    for (size_t i = 0; i < dirty_words(mem); i++) {
        __atomic_store_n(&mem->dirty[i], 0, __ATOMIC_RELAXED);
    }
    /* Bits cleared before anyone sees tracking on. */
    g_atomic_int_set(&mem->dirty_on, 1);
}

void guest_mem_dirty_stop(GuestMem *mem)
{
    g_atomic_int_set(&mem->dirty_on, 0);
}

void guest_mem_dirty_collect(GuestMem *mem, unsigned long *bitmap)
{
    if (!mem->dirty) {
        return;
    }
    for (size_t i = 0; i < dirty_words(mem); i++) {
        if (__atomic_load_n(&mem->dirty[i], __ATOMIC_RELAXED)) {
            bitmap[i] |= __atomic_exchange_n(&mem->dirty[i], 0, __ATOMIC_ACQ_REL);
        }
    }
}

/* Acquire pairs with the set in start: the bitmap exists and is cleared. */
static bool dirty_tracking(GuestMem *mem)
{
    return g_atomic_int_get(&mem->dirty_on);
}

static void mark_range(GuestMem *mem, const void *hva, uint64_t len)
{
    if (!len) {
        return;
    }
    uint64_t first = (uint64_t)((const uint8_t *)hva - mem->base) / GUEST_PAGE_SIZE;
    uint64_t last = (uint64_t)((const uint8_t *)hva - mem->base + len - 1) / GUEST_PAGE_SIZE;
    for (uint64_t p = first; p <= last; p++) {
        __atomic_fetch_or(&mem->dirty[p / GUEST_BITS_PER_LONG], 1UL << (p % GUEST_BITS_PER_LONG),
                          __ATOMIC_RELEASE);
    }
}

void guest_mem_mark_dirty(GuestMem *mem, const void *hva, uint64_t len)
{
    if (dirty_tracking(mem)) {
        mark_range(mem, hva, len);
    }
}

void guest_mem_mark_dirty_iov(GuestMem *mem, const struct iovec *iov, unsigned n)
{
    if (!dirty_tracking(mem)) {
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        mark_range(mem, iov[i].iov_base, iov[i].iov_len);
    }
}
