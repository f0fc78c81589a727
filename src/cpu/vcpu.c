/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "cpu/vcpu.h"
#include "util/error.h"
#include "util/sandbox.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* Kicks a vCPU out of KVM_RUN; the handler itself does nothing. */
#define VCPU_KICK_SIGNAL SIGUSR1

#define APIC_LVT_LINT0   0x350
#define APIC_LVT_LINT1   0x360
#define APIC_MODE_NMI    0x4
#define APIC_MODE_EXTINT 0x7

/*
 * MSRs put back at reset: the paravirtual ones stop KVM from writing into
 * the cleared RAM of the next boot; the others are architectural reset values.
 */
static const struct {
    uint32_t index;
    uint64_t value;
} vcpu_reset_msrs[] = {
    {0x12, 0},              /* MSR_KVM_SYSTEM_TIME */
    {0x4b564d01, 0},        /* MSR_KVM_SYSTEM_TIME_NEW */
    {0x4b564d02, 0},        /* MSR_KVM_ASYNC_PF_EN */
    {0x4b564d03, 0},        /* MSR_KVM_STEAL_TIME */
    {0x4b564d04, 0},        /* MSR_KVM_PV_EOI_EN */
    {0x174, 0},             /* SYSENTER_CS */
    {0x175, 0},             /* SYSENTER_ESP */
    {0x176, 0},             /* SYSENTER_EIP */
    {0xc0000081, 0},        /* STAR */
    {0xc0000082, 0},        /* LSTAR */
    {0xc0000083, 0},        /* CSTAR */
    {0xc0000084, 0},        /* SFMASK */
    {0xc0000102, 0},        /* KERNEL_GS_BASE */
    {0x1a0, 1},             /* MISC_ENABLE: fast strings */
    {0x2ff, (1 << 11) | 6}, /* MTRRdefType: enabled, write-back */
};

static void vcpu_kick_handler(int sig)
{
}

static void vcpu_set_msrs(Vcpu *cpu)
{
    for (size_t i = 0; i < G_N_ELEMENTS(vcpu_reset_msrs); i++) {
        union {
            struct kvm_msrs hdr;
            uint8_t bytes[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
        } m = {.hdr.nmsrs = 1};
        m.hdr.entries[0] = (struct kvm_msr_entry){.index = vcpu_reset_msrs[i].index,
                                                  .data = vcpu_reset_msrs[i].value};
        /* A host without one of these (older KVM) simply does not have it to reset. */
        if (ioctl(cpu->fd, KVM_SET_MSRS, &m) != 1) {
            g_debug("vCPU %u: MSR 0x%x not settable", cpu->index, vcpu_reset_msrs[i].index);
        }
    }
}

/* Virtual wire mode on LINT0/LINT1, as a PC BIOS leaves it (Intel MP spec 3.6.2). */
static bool vcpu_setup_lapic(Vcpu *cpu, GError **error)
{
    struct kvm_lapic_state la;
    if (ioctl(cpu->fd, KVM_GET_LAPIC, &la) < 0) {
        qlite_error_errno(error, errno, "KVM_GET_LAPIC on vCPU %u", cpu->index);
        return false;
    }
    uint32_t *lint0 = (uint32_t *)&la.regs[APIC_LVT_LINT0];
    uint32_t *lint1 = (uint32_t *)&la.regs[APIC_LVT_LINT1];
    *lint0 = (*lint0 & ~0x700U) | (APIC_MODE_EXTINT << 8);
    *lint1 = (*lint1 & ~0x700U) | (APIC_MODE_NMI << 8);
    if (ioctl(cpu->fd, KVM_SET_LAPIC, &la) < 0) {
        qlite_error_errno(error, errno, "KVM_SET_LAPIC on vCPU %u", cpu->index);
        return false;
    }
    cpu->init_lapic = la;
    return true;
}

static bool vcpu_capture_init(Vcpu *cpu, GError **error)
{
    if (ioctl(cpu->fd, KVM_GET_REGS, &cpu->init_regs) < 0 ||
        ioctl(cpu->fd, KVM_GET_SREGS, &cpu->init_sregs) < 0 ||
        ioctl(cpu->fd, KVM_GET_FPU, &cpu->init_fpu) < 0 ||
        ioctl(cpu->fd, KVM_GET_MP_STATE, &cpu->init_mp) < 0) {
        qlite_error_errno(error, errno, "reading the power-on state of vCPU %u", cpu->index);
        return false;
    }
    return true;
}

static void vcpu_free(Vcpu *cpu)
{
    kvm_stats_free(cpu->stats);
    munmap(cpu->run, cpu->set->kvm->run_size);
    close(cpu->fd);
    g_free(cpu);
}

static Vcpu *vcpu_new(CpuSet *set, unsigned index, GError **error)
{
    Vcpu *cpu = g_new0(Vcpu, 1);
    cpu->index = index;
    cpu->set = set;
    cpu->fd = ioctl(set->kvm->vm_fd, KVM_CREATE_VCPU, index);
    if (cpu->fd < 0) {
        qlite_error_errno(error, errno, "KVM_CREATE_VCPU %u", index);
        g_free(cpu);
        return NULL;
    }
    cpu->run = mmap(NULL, set->kvm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, cpu->fd, 0);
    if (cpu->run == MAP_FAILED) {
        qlite_error_errno(error, errno, "mmap of vCPU %u run area", index);
        close(cpu->fd);
        g_free(cpu);
        return NULL;
    }
    GError *err = NULL;
    cpu->stats = kvm_stats_open(cpu->fd, &err);
    if (err) {
        g_propagate_error(error, err);
        vcpu_free(cpu);
        return NULL;
    }
    return cpu;
}

CpuSet *cpus_new(Kvm *kvm, unsigned n, Bus *pio, Bus *mmio, const VcpuEvents *events,
                 GError **error)
{
    g_autoptr(CpuSet) set = g_new0(CpuSet, 1);
    set->kvm = kvm;
    set->pio = pio;
    set->mmio = mmio;
    set->events = *events;
    g_mutex_init(&set->lock);
    g_cond_init(&set->cond);
    set->cpus = g_new0(Vcpu *, n);

    struct sigaction sa = {.sa_handler = vcpu_kick_handler};
    sigemptyset(&sa.sa_mask);
    sigaction(VCPU_KICK_SIGNAL, &sa, NULL); /* no SA_RESTART: KVM_RUN must return EINTR */

    for (unsigned i = 0; i < n; i++) {
        set->cpus[i] = vcpu_new(set, i, error);
        if (!set->cpus[i]) {
            return NULL;
        }
        set->n++;
        if (!vcpu_setup_cpuid(set->cpus[i], kvm->supported_cpuid, n, error)) {
            return NULL;
        }
        vcpu_set_msrs(set->cpus[i]);
    }
    /*
     * Only once every vCPU exists: some hosts deliver a directed INIT/SIPI to
     * an AP only after its LAPIC was written (see docs/architecture.md).
     */
    for (unsigned i = 0; i < n; i++) {
        if (!vcpu_setup_lapic(set->cpus[i], error) || !vcpu_capture_init(set->cpus[i], error)) {
            return NULL;
        }
    }
    return g_steal_pointer(&set);
}

static bool vcpu_handle_access(Vcpu *cpu);

/*
 * An I/O or MMIO exit is complete only once KVM_RUN is entered again: KVM
 * then moves RIP past the instruction (and stores what an IN read). A vCPU
 * that parked before that would be saved (or reset) in the middle of it,
 * and a destination would run the instruction a second time (a console byte
 * printed twice). So before parking: KVM_RUN with immediate_exit, which
 * finishes the instruction and returns EINTR without running further; a
 * string instruction may first exit again for its next I/O.
 */
static void vcpu_finish_access(Vcpu *cpu)
{
    cpu->run->immediate_exit = 1;
    while (cpu->access_pending) {
        cpu->access_pending = false;
        if (ioctl(cpu->fd, KVM_RUN, 0) == 0) {
            cpu->access_pending = vcpu_handle_access(cpu);
        }
    }
}

/* Parks while a pause is requested; returns false when the thread must end. */
static bool vcpu_wait_runnable(Vcpu *cpu)
{
    CpuSet *set = cpu->set;
    g_mutex_lock(&set->lock);
    if (set->pause_requested && !set->quit && cpu->access_pending) {
        g_mutex_unlock(&set->lock);
        vcpu_finish_access(cpu);
        g_mutex_lock(&set->lock);
    }
    if (set->pause_requested && !set->quit) {
        set->parked++;
        g_cond_broadcast(&set->cond);
        while (set->pause_requested && !set->quit) {
            g_cond_wait(&set->cond, &set->lock);
        }
        set->parked--;
    }
    /* Cleared under the lock, so a kick that raced with us is not lost. */
    cpu->run->immediate_exit = set->pause_requested || set->quit;
    bool go = !set->quit;
    g_mutex_unlock(&set->lock);
    return go;
}

static void vcpu_handle_io(Vcpu *cpu)
{
    struct kvm_run *run = cpu->run;
    uint8_t *data = (uint8_t *)run + run->io.data_offset;
    for (uint32_t i = 0; i < run->io.count; i++) {
        if (run->io.direction == KVM_EXIT_IO_OUT) {
            bus_write(cpu->set->pio, run->io.port, data, run->io.size);
        } else {
            bus_read(cpu->set->pio, run->io.port, data, run->io.size);
        }
        data += run->io.size;
    }
}

/* Serves an I/O or MMIO exit; false for any other exit reason. */
static bool vcpu_handle_access(Vcpu *cpu)
{
    struct kvm_run *run = cpu->run;
    if (run->exit_reason == KVM_EXIT_IO) {
        vcpu_handle_io(cpu);
        return true;
    }
    if (run->exit_reason != KVM_EXIT_MMIO) {
        return false;
    }
    if (run->mmio.is_write) {
        bus_write(cpu->set->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len);
    } else {
        bus_read(cpu->set->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len);
    }
    return true;
}

static void vcpu_fail(Vcpu *cpu)
{
    cpus_request_pause(cpu->set);
    cpu->set->events.failure(cpu->set->events.opaque, cpu);
}

static void *vcpu_thread(void *arg)
{
    Vcpu *cpu = arg;
    CpuSet *set = cpu->set;
    struct kvm_run *run = cpu->run;

    g_mutex_lock(&set->lock);
    cpu->tid = (pid_t)syscall(SYS_gettid);
    g_cond_broadcast(&set->cond);
    g_mutex_unlock(&set->lock);
    g_autoptr(GError) err = NULL;
    if (!sandbox_apply(SANDBOX_VCPU, &err)) {
        g_printerr("qlite: vCPU %u: %s\n", cpu->index, err->message);
        _exit(1); /* QLITE_EXIT_ERROR: the VM cannot run */
    }
    sigset_t unblock;
    sigemptyset(&unblock);
    sigaddset(&unblock, VCPU_KICK_SIGNAL);
    pthread_sigmask(SIG_UNBLOCK, &unblock, NULL);

    bool first_run = cpu->index == 0;
    while (vcpu_wait_runnable(cpu)) {
        if (first_run) {
            /* For start-up latency figures (bench/): compare with the launcher's clock. */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            g_debug("vcpu0: first KVM_RUN at monotonic %ld.%09ld", (long)ts.tv_sec, ts.tv_nsec);
            first_run = false;
        }
        int rc = ioctl(cpu->fd, KVM_RUN, 0);
        cpu->access_pending = false; /* KVM completed it before anything else */
        if (rc < 0) {
            /* EINTR: kicked. EAGAIN: an AP got INIT while waiting for SIPI. */
            if (errno == EINTR || errno == EAGAIN) {
                continue;
            }
            g_printerr("qlite: vCPU %u: KVM_RUN failed: %s\n", cpu->index, g_strerror(errno));
            vcpu_fail(cpu);
            continue;
        }
        if (vcpu_handle_access(cpu)) {
            cpu->access_pending = true;
            continue;
        }
        switch (run->exit_reason) {
        case KVM_EXIT_INTR:
        case KVM_EXIT_HLT: /* the in-kernel LAPIC handles HLT; a spurious one just reruns */
            break;
        case KVM_EXIT_SHUTDOWN:
            /* A triple fault: a PC resets. */
            cpus_request_pause(set);
            set->events.reset(set->events.opaque, "triple fault");
            break;
        case KVM_EXIT_SYSTEM_EVENT:
            if (run->system_event.type == KVM_SYSTEM_EVENT_RESET) {
                cpus_request_pause(set);
                set->events.reset(set->events.opaque, "system event");
                break;
            }
            vcpu_fail(cpu);
            break;
        default:
            vcpu_fail(cpu);
            break;
        }
    }
    return NULL;
}

bool cpus_start(CpuSet *set, GError **error)
{
    /* Threads inherit this mask: only the vCPU threads take the kick signal. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, VCPU_KICK_SIGNAL);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    for (unsigned i = 0; i < set->n; i++) {
        Vcpu *cpu = set->cpus[i];
        int err = pthread_create(&cpu->thread, NULL, vcpu_thread, cpu);
        if (err) {
            pthread_sigmask(SIG_SETMASK, &old, NULL);
            qlite_error_errno(error, err, "cannot start the thread of vCPU %u", i);
            return false;
        }
        cpu->thread_started = true;
        g_autofree char *name = g_strdup_printf("vcpu%u", i);
        pthread_setname_np(cpu->thread, name);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    /* Each thread's id is known on return (query-cpus-fast reports them). */
    g_mutex_lock(&set->lock);
    for (unsigned i = 0; i < set->n; i++) {
        while (!set->cpus[i]->tid) {
            g_cond_wait(&set->cond, &set->lock);
        }
    }
    g_mutex_unlock(&set->lock);
    return true;
}

static void cpus_kick_locked(CpuSet *set)
{
    for (unsigned i = 0; i < set->n; i++) {
        Vcpu *cpu = set->cpus[i];
        cpu->run->immediate_exit = 1;
        if (cpu->thread_started && !pthread_equal(cpu->thread, pthread_self())) {
            pthread_kill(cpu->thread, VCPU_KICK_SIGNAL);
        }
    }
}

void cpus_request_pause(CpuSet *set)
{
    g_mutex_lock(&set->lock);
    set->pause_requested = true;
    cpus_kick_locked(set);
    g_mutex_unlock(&set->lock);
}

void cpus_pause(CpuSet *set)
{
    g_mutex_lock(&set->lock);
    set->pause_requested = true;
    cpus_kick_locked(set);
    unsigned started = 0;
    for (unsigned i = 0; i < set->n; i++) {
        started += set->cpus[i]->thread_started;
    }
    while (set->parked < started) {
        g_cond_wait(&set->cond, &set->lock);
    }
    g_mutex_unlock(&set->lock);
}

void cpus_resume(CpuSet *set)
{
    g_mutex_lock(&set->lock);
    set->pause_requested = false;
    g_cond_broadcast(&set->cond);
    g_mutex_unlock(&set->lock);
}

void cpus_note_stopped(CpuSet *set)
{
    for (unsigned i = 0; i < set->n; i++) {
        /* EINVAL: this vCPU's guest has not set up kvmclock, nothing to tell. */
        if (ioctl(set->cpus[i]->fd, KVM_KVMCLOCK_CTRL, 0) < 0 && errno != EINVAL) {
            g_debug("vcpu%u: KVM_KVMCLOCK_CTRL: %s", i, g_strerror(errno));
        }
    }
}

bool cpus_reset(CpuSet *set, GError **error)
{
    for (unsigned i = 0; i < set->n; i++) {
        Vcpu *cpu = set->cpus[i];
        struct kvm_vcpu_events ev = {0};
        if (ioctl(cpu->fd, KVM_SET_REGS, &cpu->init_regs) < 0 ||
            ioctl(cpu->fd, KVM_SET_SREGS, &cpu->init_sregs) < 0 ||
            ioctl(cpu->fd, KVM_SET_FPU, &cpu->init_fpu) < 0 ||
            ioctl(cpu->fd, KVM_SET_LAPIC, &cpu->init_lapic) < 0 ||
            ioctl(cpu->fd, KVM_SET_VCPU_EVENTS, &ev) < 0 ||
            ioctl(cpu->fd, KVM_SET_MP_STATE, &cpu->init_mp) < 0) {
            qlite_error_errno(error, errno, "resetting vCPU %u", i);
            return false;
        }
        vcpu_set_msrs(cpu);
    }
    return true;
}

void cpus_free(CpuSet *set)
{
    if (!set) {
        return;
    }
    g_mutex_lock(&set->lock);
    set->quit = true;
    cpus_kick_locked(set);
    g_cond_broadcast(&set->cond);
    g_mutex_unlock(&set->lock);
    for (unsigned i = 0; i < set->n; i++) {
        if (set->cpus[i]->thread_started) {
            pthread_join(set->cpus[i]->thread, NULL);
        }
        vcpu_free(set->cpus[i]);
    }
    g_free(set->cpus);
    g_mutex_clear(&set->lock);
    g_cond_clear(&set->cond);
    g_free(set);
}

static void seg(struct kvm_segment *s, uint16_t sel, uint8_t type, bool code64, bool big)
{
    *s = (struct kvm_segment){
        .base = 0,
        .limit = 0xffffffff,
        .selector = sel,
        .type = type,
        .present = 1,
        .dpl = 0,
        .db = big,
        .s = 1,
        .l = code64,
        .g = 1,
    };
}

bool vcpu_set_boot_entry(Vcpu *cpu, const BootEntry *entry, GError **error)
{
    struct kvm_sregs sregs;
    if (ioctl(cpu->fd, KVM_GET_SREGS, &sregs) < 0) {
        qlite_error_errno(error, errno, "KVM_GET_SREGS");
        return false;
    }
    struct kvm_segment data;
    seg(&data, BOOT_GDT_DATA, 0x3, false, true);
    sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = data;
    sregs.tr =
        (struct kvm_segment){.selector = BOOT_GDT_TSS, .limit = 0x67, .type = 0xb, .present = 1};
    sregs.ldt = (struct kvm_segment){.unusable = 1, .type = 0x2, .present = 1};
    sregs.gdt.base = entry->gdt;
    sregs.gdt.limit = entry->gdt_limit;
    sregs.idt.base = 0;
    sregs.idt.limit = 0;

    if (entry->mode == BOOT_MODE_LONG64) {
        seg(&sregs.cs, BOOT_GDT_CODE64, 0xb, true, false);
        sregs.cr3 = entry->cr3;
        sregs.cr4 = 1U << 5;                            /* PAE */
        sregs.cr0 = (1U << 0) | (1U << 4) | (1U << 31); /* PE, ET, PG */
        sregs.efer = (1U << 8) | (1U << 10);            /* LME, LMA */
    } else {
        /* PVH: flat 32-bit protected mode, paging off
         * (xen/include/public/arch-x86/hvm/start_info.h). */
        seg(&sregs.cs, BOOT_GDT_CODE32, 0xb, false, true);
        sregs.cr0 = (1U << 0) | (1U << 4); /* PE, ET */
        sregs.cr3 = 0;
        sregs.cr4 = 0;
        sregs.efer = 0;
    }
    if (ioctl(cpu->fd, KVM_SET_SREGS, &sregs) < 0) {
        qlite_error_errno(error, errno, "KVM_SET_SREGS");
        return false;
    }
    struct kvm_regs regs = {
        .rip = entry->rip,
        .rsi = entry->rsi,
        .rbx = entry->rbx,
        .rflags = 0x2,
    };
    if (ioctl(cpu->fd, KVM_SET_REGS, &regs) < 0) {
        qlite_error_errno(error, errno, "KVM_SET_REGS");
        return false;
    }
    return true;
}

static void dump_seg(FILE *out, const char *name, const struct kvm_segment *s)
{
    fprintf(out, "%-3s =%04x %016llx %08x type=%x dpl=%u l=%u db=%u\n", name, s->selector,
            (unsigned long long)s->base, s->limit, s->type, s->dpl, s->l, s->db);
}

void vcpu_dump(Vcpu *cpu, FILE *out)
{
    struct kvm_run *run = cpu->run;
    fprintf(out, "qlite: vCPU %u stopped: exit reason %u", cpu->index, run->exit_reason);
    if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR) {
        fprintf(out, " (internal error, suberror %u%s)", run->internal.suberror,
                run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION ? ": emulation failure"
                                                                       : "");
    } else if (run->exit_reason == KVM_EXIT_FAIL_ENTRY) {
        fprintf(out, " (entry failed, reason 0x%llx)",
                (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
    }
    fputc('\n', out);

    struct kvm_regs r;
    struct kvm_sregs s;
    if (ioctl(cpu->fd, KVM_GET_REGS, &r) < 0 || ioctl(cpu->fd, KVM_GET_SREGS, &s) < 0) {
        fprintf(out, "qlite: cannot read the registers: %s\n", g_strerror(errno));
        return;
    }
    fprintf(out, "RAX=%016llx RBX=%016llx RCX=%016llx RDX=%016llx\n", r.rax, r.rbx, r.rcx, r.rdx);
    fprintf(out, "RSI=%016llx RDI=%016llx RBP=%016llx RSP=%016llx\n", r.rsi, r.rdi, r.rbp, r.rsp);
    fprintf(out, "R8 =%016llx R9 =%016llx R10=%016llx R11=%016llx\n", r.r8, r.r9, r.r10, r.r11);
    fprintf(out, "R12=%016llx R13=%016llx R14=%016llx R15=%016llx\n", r.r12, r.r13, r.r14, r.r15);
    fprintf(out, "RIP=%016llx RFL=%08llx\n", r.rip, r.rflags);
    dump_seg(out, "CS", &s.cs);
    dump_seg(out, "SS", &s.ss);
    dump_seg(out, "DS", &s.ds);
    dump_seg(out, "TR", &s.tr);
    fprintf(out, "GDT=%016llx %04x IDT=%016llx %04x\n", s.gdt.base, s.gdt.limit, s.idt.base,
            s.idt.limit);
    fprintf(out, "CR0=%08llx CR2=%016llx CR3=%016llx CR4=%08llx EFER=%016llx\n", s.cr0, s.cr2,
            s.cr3, s.cr4, s.efer);
    if (run->exit_reason == KVM_EXIT_INTERNAL_ERROR && run->internal.ndata > 0) {
        fprintf(out, "extra data:");
        for (uint32_t i = 0; i < run->internal.ndata && i < 16; i++) {
            fprintf(out, " %016llx", run->internal.data[i]);
        }
        fputc('\n', out);
    }
}
