/* SPDX-License-Identifier: GPL-2.0-or-later */
#pragma once

/*
 * Guest RAM: one memfd mapped shared, split around the PC hole below 4 GiB.
 * RAM below lowmem_limit sits at guest address 0; the rest continues at 4 GiB.
 * A memfd (not anonymous memory) lets later code hand the same pages to
 * another process or write them out without copying.
 */
#include <glib.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define GUEST_MEM_HIGH_BASE   0x100000000ULL
#define GUEST_MEM_MAX_REGIONS 2

typedef struct {
    uint64_t gpa;
    uint64_t size;
    uint8_t *hva;
} GuestRegion;

typedef struct GuestMem {
    int fd;
    uint8_t *base;
    uint64_t size;
    GuestRegion regions[GUEST_MEM_MAX_REGIONS];
    unsigned nregions;
    /*
     * Pages qlite itself wrote while a migration tracks them (KVM's dirty
     * log sees only the vCPUs' writes): one bit per page of the memfd,
     * set atomically from any thread, allocated on first use, kept until free.
     */
    unsigned long *dirty;
    gint dirty_on;
} GuestMem;

#define GUEST_PAGE_SIZE     4096
#define GUEST_BITS_PER_LONG (8 * sizeof(unsigned long))

GuestMem *guest_mem_new(uint64_t size, uint64_t lowmem_limit, GError **error);
void guest_mem_free(GuestMem *mem);
G_DEFINE_AUTOPTR_CLEANUP_FUNC(GuestMem, guest_mem_free)

/* Host pointer to [gpa, gpa+len) if it lies inside one RAM region, else NULL. */
void *guest_mem_ptr(GuestMem *mem, uint64_t gpa, uint64_t len);
bool guest_mem_write(GuestMem *mem, uint64_t gpa, const void *src, uint64_t len);
bool guest_mem_read(GuestMem *mem, uint64_t gpa, void *dst, uint64_t len);
/* Top of RAM below 4 GiB. */
uint64_t guest_mem_low_end(const GuestMem *mem);
/* Zero all of RAM and give the pages back to the host (power-on state). */
bool guest_mem_clear(GuestMem *mem, GError **error);

/* Pages of the memfd; page i is at base + i * GUEST_PAGE_SIZE. */
static inline uint64_t guest_mem_pages(const GuestMem *mem)
{
    return mem->size / GUEST_PAGE_SIZE;
}
/* Guest physical address of memfd page i (< guest_mem_pages). */
uint64_t guest_mem_page_gpa(const GuestMem *mem, uint64_t page);

/*
 * Dirty tracking of qlite's own writes, for migration. Between start and
 * stop, guest_mem_mark_dirty (and guest_mem_write, guest_mem_clear) record
 * the pages written; collect moves the recorded bits into a caller's bitmap
 * of guest_mem_pages bits (ORed in) and clears them.
 */
void guest_mem_dirty_start(GuestMem *mem);
void guest_mem_dirty_stop(GuestMem *mem);
void guest_mem_dirty_collect(GuestMem *mem, unsigned long *bitmap);
/* [hva, hva+len) must lie inside guest RAM (as every checked pointer does). */
void guest_mem_mark_dirty(GuestMem *mem, const void *hva, uint64_t len);
/* The same for each buffer of an iovec into guest RAM. */
void guest_mem_mark_dirty_iov(GuestMem *mem, const struct iovec *iov, unsigned n);
