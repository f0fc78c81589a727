/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "cpu/kvm.h"
#include "util/error.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define KVM_CPUID_MAX_ENTRIES 256

/* Every capability the code relies on; a missing one is named in the error. */
static const struct {
    int cap;
    const char *name;
} kvm_required_caps[] = {
    {KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY"},
    {KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP"},
    {KVM_CAP_PIT2, "KVM_CAP_PIT2"},
    {KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR"},
    {KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID"},
    {KVM_CAP_IMMEDIATE_EXIT, "KVM_CAP_IMMEDIATE_EXIT"},
    {KVM_CAP_IRQ_INJECT_STATUS, "KVM_CAP_IRQ_INJECT_STATUS"},
    {KVM_CAP_MP_STATE, "KVM_CAP_MP_STATE"},
    {KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS"},
    {KVM_CAP_IRQ_ROUTING, "KVM_CAP_IRQ_ROUTING"},
    {KVM_CAP_IRQFD, "KVM_CAP_IRQFD"},
    {KVM_CAP_IOEVENTFD, "KVM_CAP_IOEVENTFD"},
};

static int kvm_check_cap(int fd, int cap)
{
    return ioctl(fd, KVM_CHECK_EXTENSION, cap);
}

/* The first call fails with E2BIG and says how many indices there are. */
static bool kvm_read_msr_index(Kvm *kvm, GError **error)
{
    struct kvm_msr_list probe = {0};
    if (ioctl(kvm->sys_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG) {
        qlite_error_errno(error, errno, "KVM_GET_MSR_INDEX_LIST");
        return false;
    }
    g_autofree struct kvm_msr_list *list =
        g_malloc0(sizeof(*list) + probe.nmsrs * sizeof(list->indices[0]));
    list->nmsrs = probe.nmsrs;
    if (ioctl(kvm->sys_fd, KVM_GET_MSR_INDEX_LIST, list) < 0) {
        qlite_error_errno(error, errno, "KVM_GET_MSR_INDEX_LIST");
        return false;
    }
    kvm->nmsr_index = list->nmsrs;
    kvm->msr_index = g_memdup2(list->indices, list->nmsrs * sizeof(list->indices[0]));
    return true;
}

static bool kvm_open(Kvm *kvm, GError **error)
{
    kvm->sys_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
    if (kvm->sys_fd < 0) {
        qlite_error_errno(error, errno, "cannot open /dev/kvm");
        return false;
    }
    int version = ioctl(kvm->sys_fd, KVM_GET_API_VERSION, 0);
    if (version != KVM_API_VERSION) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_MISSING,
                    "/dev/kvm speaks KVM API version %d, qlite needs %d", version, KVM_API_VERSION);
        return false;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(kvm_required_caps); i++) {
        if (kvm_check_cap(kvm->sys_fd, kvm_required_caps[i].cap) <= 0) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_MISSING,
                        "KVM lacks the capability %s that qlite needs", kvm_required_caps[i].name);
            return false;
        }
    }
    kvm->run_size = ioctl(kvm->sys_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
    if (kvm->run_size < (int)sizeof(struct kvm_run)) {
        qlite_error_errno(error, errno, "KVM_GET_VCPU_MMAP_SIZE");
        return false;
    }
    kvm->supported_cpuid = g_malloc0(sizeof(struct kvm_cpuid2) +
                                     KVM_CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2));
    kvm->supported_cpuid->nent = KVM_CPUID_MAX_ENTRIES;
    if (ioctl(kvm->sys_fd, KVM_GET_SUPPORTED_CPUID, kvm->supported_cpuid) < 0) {
        qlite_error_errno(error, errno, "KVM_GET_SUPPORTED_CPUID");
        return false;
    }
    return kvm_read_msr_index(kvm, error);
}

static bool kvm_save_irqchip_init(Kvm *kvm, GError **error)
{
    static const int chips[] = {KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE, KVM_IRQCHIP_IOAPIC};
    for (size_t i = 0; i < G_N_ELEMENTS(chips); i++) {
        kvm->irqchip_init[i].chip_id = chips[i];
        if (ioctl(kvm->vm_fd, KVM_GET_IRQCHIP, &kvm->irqchip_init[i]) < 0) {
            qlite_error_errno(error, errno, "KVM_GET_IRQCHIP");
            return false;
        }
    }
    if (ioctl(kvm->vm_fd, KVM_GET_PIT2, &kvm->pit_init) < 0) {
        qlite_error_errno(error, errno, "KVM_GET_PIT2");
        return false;
    }
    return true;
}

Kvm *kvm_new(GError **error)
{
    g_autoptr(Kvm) kvm = g_new0(Kvm, 1);
    kvm->sys_fd = kvm->vm_fd = -1;
    g_mutex_init(&kvm->routes_lock);
    if (!kvm_open(kvm, error)) {
        return NULL;
    }
    kvm->vm_fd = ioctl(kvm->sys_fd, KVM_CREATE_VM, 0);
    if (kvm->vm_fd < 0) {
        qlite_error_errno(error, errno, "KVM_CREATE_VM");
        return NULL;
    }
    if (ioctl(kvm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0) {
        qlite_error_errno(error, errno, "KVM_SET_TSS_ADDR");
        return NULL;
    }
    /* Only VMX without unrestricted guest needs it; some hosts do not offer it. */
    if (kvm_check_cap(kvm->vm_fd, KVM_CAP_SET_IDENTITY_MAP_ADDR) > 0) {
        uint64_t addr = KVM_IDENTITY_MAP_ADDR;
        if (ioctl(kvm->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &addr) < 0) {
            qlite_error_errno(error, errno, "KVM_SET_IDENTITY_MAP_ADDR");
            return NULL;
        }
    }
    if (ioctl(kvm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0) {
        qlite_error_errno(error, errno, "KVM_CREATE_IRQCHIP");
        return NULL;
    }
    struct kvm_pit_config pit = {.flags = KVM_PIT_SPEAKER_DUMMY};
    if (ioctl(kvm->vm_fd, KVM_CREATE_PIT2, &pit) < 0) {
        qlite_error_errno(error, errno, "KVM_CREATE_PIT2");
        return NULL;
    }
    if (!kvm_save_irqchip_init(kvm, error)) {
        return NULL;
    }
    GError *err = NULL;
    kvm->stats = kvm_stats_open(kvm->vm_fd, &err);
    if (err) {
        g_propagate_error(error, err);
        return NULL;
    }
    return g_steal_pointer(&kvm);
}

void kvm_free(Kvm *kvm)
{
    if (!kvm) {
        return;
    }
    kvm_stats_free(kvm->stats);
    if (kvm->vm_fd >= 0) {
        close(kvm->vm_fd);
    }
    if (kvm->sys_fd >= 0) {
        close(kvm->sys_fd);
    }
    g_free(kvm->supported_cpuid);
    g_free(kvm->msi_routes);
    g_free(kvm->msr_index);
    g_mutex_clear(&kvm->routes_lock);
    g_free(kvm);
}

static bool kvm_set_slots(Kvm *kvm, GuestMem *mem, uint32_t flags, GError **error)
{
    for (unsigned i = 0; i < mem->nregions; i++) {
        struct kvm_userspace_memory_region r = {
            .slot = i,
            .flags = flags,
            .guest_phys_addr = mem->regions[i].gpa,
            .memory_size = mem->regions[i].size,
            .userspace_addr = (uintptr_t)mem->regions[i].hva,
        };
        if (ioctl(kvm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
            qlite_error_errno(error, errno, "KVM_SET_USER_MEMORY_REGION slot %u", i);
            return false;
        }
    }
    return true;
}

bool kvm_map_ram(Kvm *kvm, GuestMem *mem, GError **error)
{
    return kvm_set_slots(kvm, mem, 0, error);
}

bool kvm_map_rom(Kvm *kvm, uint64_t gpa, const void *hva, uint64_t size, GError **error)
{
    if (ioctl(kvm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_READONLY_MEM) <= 0) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_FAILED,
                    "KVM cannot map read-only memory (KVM_CAP_READONLY_MEM) for the firmware");
        return false;
    }
    struct kvm_userspace_memory_region r = {
        .slot = KVM_ROM_SLOT,
        .flags = KVM_MEM_READONLY,
        .guest_phys_addr = gpa,
        .memory_size = size,
        .userspace_addr = (uintptr_t)hva,
    };
    if (ioctl(kvm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
        qlite_error_errno(error, errno, "KVM_SET_USER_MEMORY_REGION (firmware)");
        return false;
    }
    return true;
}

bool kvm_dirty_log_set(Kvm *kvm, GuestMem *mem, bool on, GError **error)
{
    return kvm_set_slots(kvm, mem, on ? KVM_MEM_LOG_DIRTY_PAGES : 0, error);
}

bool kvm_dirty_log_get(Kvm *kvm, GuestMem *mem, unsigned long *bitmap, GError **error)
{
    for (unsigned i = 0; i < mem->nregions; i++) {
        const GuestRegion *r = &mem->regions[i];
        uint64_t pages = r->size / GUEST_PAGE_SIZE;
        /* KVM writes whole 64-bit words. */
        g_autofree uint64_t *log = g_new0(uint64_t, (pages + 63) / 64);
        struct kvm_dirty_log d = {.slot = i, .dirty_bitmap = log};
        if (ioctl(kvm->vm_fd, KVM_GET_DIRTY_LOG, &d) < 0) {
            qlite_error_errno(error, errno, "KVM_GET_DIRTY_LOG slot %u", i);
            return false;
        }
        uint64_t first = (uint64_t)(r->hva - mem->base) / GUEST_PAGE_SIZE;
        for (uint64_t w = 0; w < (pages + 63) / 64; w++) {
            for (uint64_t bits = log[w]; bits; bits &= bits - 1) {
                uint64_t p = first + w * 64 + (uint64_t)__builtin_ctzll(bits);
                bitmap[p / GUEST_BITS_PER_LONG] |= 1UL << (p % GUEST_BITS_PER_LONG);
            }
        }
    }
    return true;
}

bool kvm_irq_line(Kvm *kvm, unsigned irq, bool level)
{
    struct kvm_irq_level l = {.irq = irq, .level = level};
    return ioctl(kvm->vm_fd, KVM_IRQ_LINE_STATUS, &l) == 0;
}

bool kvm_clock_get(Kvm *kvm, uint64_t *ns, GError **error)
{
    struct kvm_clock_data data = {0};
    if (ioctl(kvm->vm_fd, KVM_GET_CLOCK, &data) < 0) {
        qlite_error_errno(error, errno, "KVM_GET_CLOCK");
        return false;
    }
    *ns = data.clock;
    return true;
}

bool kvm_clock_set(Kvm *kvm, uint64_t ns, GError **error)
{
    struct kvm_clock_data data = {.clock = ns};
    if (ioctl(kvm->vm_fd, KVM_SET_CLOCK, &data) < 0) {
        qlite_error_errno(error, errno, "KVM_SET_CLOCK");
        return false;
    }
    return true;
}

bool kvm_reset_irqchip(Kvm *kvm, GError **error)
{
    for (size_t i = 0; i < G_N_ELEMENTS(kvm->irqchip_init); i++) {
        if (ioctl(kvm->vm_fd, KVM_SET_IRQCHIP, &kvm->irqchip_init[i]) < 0) {
            qlite_error_errno(error, errno, "KVM_SET_IRQCHIP");
            return false;
        }
    }
    if (ioctl(kvm->vm_fd, KVM_SET_PIT2, &kvm->pit_init) < 0) {
        qlite_error_errno(error, errno, "KVM_SET_PIT2");
        return false;
    }
    return true;
}

/*
 * KVM_SET_GSI_ROUTING replaces the whole table, so it always carries the
 * irqchip routes KVM_CREATE_IRQCHIP set up by default: GSI 0-15 to the PIC
 * pins and the IOAPIC pin of the same number, GSI 16-23 to the IOAPIC.
 */
static bool kvm_commit_routes_locked(Kvm *kvm, GError **error)
{
    unsigned max = 16 * 2 + (KVM_IOAPIC_PINS - 16) + kvm->nmsi_routes;
    g_autofree struct kvm_irq_routing *r =
        g_malloc0(sizeof(*r) + max * sizeof(struct kvm_irq_routing_entry));
    unsigned n = 0;
    for (unsigned gsi = 0; gsi < KVM_IOAPIC_PINS; gsi++) {
        if (gsi < 16 && gsi != 2) {
            r->entries[n++] = (struct kvm_irq_routing_entry){
                .gsi = gsi,
                .type = KVM_IRQ_ROUTING_IRQCHIP,
                .u.irqchip = {.irqchip = gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE,
                              .pin = gsi % 8}};
        }
        r->entries[n++] = (struct kvm_irq_routing_entry){
            .gsi = gsi,
            .type = KVM_IRQ_ROUTING_IRQCHIP,
            .u.irqchip = {.irqchip = KVM_IRQCHIP_IOAPIC, .pin = gsi}};
    }
    for (unsigned i = 0; i < kvm->nmsi_routes; i++) {
        if (kvm->msi_routes[i].type == KVM_IRQ_ROUTING_MSI) {
            r->entries[n++] = kvm->msi_routes[i];
        }
    }
    r->nr = n;
    if (ioctl(kvm->vm_fd, KVM_SET_GSI_ROUTING, r) < 0) {
        qlite_error_errno(error, errno, "KVM_SET_GSI_ROUTING");
        return false;
    }
    return true;
}

bool kvm_msi_gsi_alloc(Kvm *kvm, unsigned *gsi, GError **error)
{
    int max = kvm_check_cap(kvm->vm_fd, KVM_CAP_IRQ_ROUTING);
    g_mutex_lock(&kvm->routes_lock);
    if (max > 0 && KVM_MSI_GSI_BASE + kvm->nmsi_routes >= (unsigned)max) {
        g_mutex_unlock(&kvm->routes_lock);
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_MISSING, "KVM has no GSI left for MSI (%d)",
                    max);
        return false;
    }
    kvm->msi_routes = g_renew(struct kvm_irq_routing_entry, kvm->msi_routes, kvm->nmsi_routes + 1);
    /* Type 0: no route yet; added once the guest programs the vector. */
    kvm->msi_routes[kvm->nmsi_routes] =
        (struct kvm_irq_routing_entry){.gsi = KVM_MSI_GSI_BASE + kvm->nmsi_routes};
    *gsi = KVM_MSI_GSI_BASE + kvm->nmsi_routes++;
    g_mutex_unlock(&kvm->routes_lock);
    return true;
}

bool kvm_msi_route_set(Kvm *kvm, unsigned gsi, uint64_t addr, uint32_t data, GError **error)
{
    g_mutex_lock(&kvm->routes_lock);
    if (gsi < KVM_MSI_GSI_BASE || gsi - KVM_MSI_GSI_BASE >= kvm->nmsi_routes) {
        g_mutex_unlock(&kvm->routes_lock);
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "GSI %u is not an MSI route", gsi);
        return false;
    }
    struct kvm_irq_routing_entry *e = &kvm->msi_routes[gsi - KVM_MSI_GSI_BASE];
    struct kvm_irq_routing_entry ne = {.gsi = gsi,
                                       .type = KVM_IRQ_ROUTING_MSI,
                                       .u.msi = {.address_lo = (uint32_t)addr,
                                                 .address_hi = (uint32_t)(addr >> 32),
                                                 .data = data}};
    bool ok = true;
    if (memcmp(e, &ne, sizeof(ne)) != 0) {
        *e = ne;
        ok = kvm_commit_routes_locked(kvm, error);
    }
    g_mutex_unlock(&kvm->routes_lock);
    return ok;
}

bool kvm_irqfd(Kvm *kvm, int fd, unsigned gsi, bool assign, GError **error)
{
    struct kvm_irqfd req = {
        .fd = (uint32_t)fd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN};
    if (ioctl(kvm->vm_fd, KVM_IRQFD, &req) < 0) {
        qlite_error_errno(error, errno, "KVM_IRQFD gsi %u", gsi);
        return false;
    }
    return true;
}

bool kvm_ioeventfd(Kvm *kvm, int fd, uint64_t addr, unsigned len, bool pio, bool assign,
                   GError **error)
{
    struct kvm_ioeventfd req = {.addr = addr, .len = len, .fd = fd};
    if (pio) {
        req.flags |= KVM_IOEVENTFD_FLAG_PIO;
    }
    if (!assign) {
        req.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
    }
    if (ioctl(kvm->vm_fd, KVM_IOEVENTFD, &req) < 0) {
        qlite_error_errno(error, errno, "KVM_IOEVENTFD 0x%" G_GINT64_MODIFIER "x", addr);
        return false;
    }
    return true;
}
