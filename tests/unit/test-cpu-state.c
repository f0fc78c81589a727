/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vCPU and VM state under /dev/kvm: a real-mode guest counts in EBX, stores
 * the count at GUEST_COUNTER and writes port GUEST_PORT every 256 counts. It
 * runs a while in one VM, whose state and RAM then go to a second VM that
 * must carry on counting; and malformed state must be refused untouched.
 */
#include "cpu/cpu-state.h"
#include "cpu/kvm.h"
#include "cpu/vcpu.h"
#include "mem/bus.h"
#include "mem/guest-mem.h"
#include "util/error.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#define GUEST_RAM     (1024 * 1024)
#define GUEST_CODE    0x1000
#define GUEST_COUNTER 0x2000
#define GUEST_PORT    0xf4
#define GUEST_STEP    256

/* EBX counts; every GUEST_STEP counts (BL wraps to 0) an OUT to GUEST_PORT. */
static const uint8_t guest_code[] = {
    0x66, 0x43,                         /* 1000: inc ebx */
    0x66, 0x89,       0x1e, 0x00, 0x20, /* 1002: mov [0x2000], ebx */
    0x84, 0xdb,                         /* 1007: test bl, bl */
    0x75, 0xf5,                         /* 1009: jnz 0x1000 */
    0xe6, GUEST_PORT,                   /* 100b: out GUEST_PORT, al */
    0xeb, 0xf1,                         /* 100d: jmp 0x1000 */
};

#define MSR_IA32_TSC 0x10
/* Hyper-V counters in 100 ns units that KVM lists (seen on AMD hosts): the
 * vCPU's run time and the partition reference time (from the kvmclock). They
 * run on between two saves like the TSC, so a round trip compares them apart. */
#define HV_X64_MSR_VP_RUNTIME     0x40000010
#define HV_X64_MSR_TIME_REF_COUNT 0x40000020
/* Set in the first VM to values no fresh vCPU has, so a lost MSR shows. */
static const struct kvm_msr_entry test_msrs[] = {
    {.index = MSR_IA32_TSC, .data = 1ULL << 40},
    {.index = 0x174, .data = 0x10},                    /* SYSENTER_CS */
    {.index = 0x175, .data = 0x7000},                  /* SYSENTER_ESP */
    {.index = 0xc0000082, .data = 0xffffffff81000000}, /* LSTAR */
    {.index = 0xc0000102, .data = 0xffff888000001000}, /* KERNEL_GS_BASE */
};
/* A TSC that went back, or forward by more than this, was not carried over. */
#define TSC_SLACK (1ULL << 37) /* some 40 s at 3 GHz */

typedef struct TestVm {
    Kvm *kvm;
    GuestMem *mem;
    Bus *pio;
    Bus *mmio;
    CpuSet *cpus;
} TestVm;

static void on_reset(void *opaque, const char *why)
{
}

static void on_failure(void *opaque, Vcpu *cpu)
{
}

static const VcpuEvents test_events = {.reset = on_reset, .failure = on_failure};

static void test_vm_free(TestVm *vm)
{
    cpus_free(vm->cpus);
    bus_free(vm->pio);
    bus_free(vm->mmio);
    guest_mem_free(vm->mem);
    kvm_free(vm->kvm);
    g_free(vm);
}
G_DEFINE_AUTOPTR_CLEANUP_FUNC(TestVm, test_vm_free)

static TestVm *test_vm_new(void)
{
    g_autoptr(GError) err = NULL;
    TestVm *vm = g_new0(TestVm, 1);
    vm->kvm = kvm_new(&err);
    g_assert_no_error(err);
    vm->mem = guest_mem_new(GUEST_RAM, GUEST_RAM, &err);
    g_assert_no_error(err);
    g_assert_true(kvm_map_ram(vm->kvm, vm->mem, &err));
    vm->pio = bus_new("pio");
    vm->mmio = bus_new("mmio");
    vm->cpus = cpus_new(vm->kvm, 1, vm->pio, vm->mmio, &test_events, &err);
    g_assert_no_error(err);
    return vm;
}

static Vcpu *test_vcpu(TestVm *vm)
{
    return vm->cpus->cpus[0];
}

/* Real mode with CS base 0, at the counting loop, EBX 0. */
static void test_vm_boot(TestVm *vm)
{
    Vcpu *cpu = test_vcpu(vm);
    g_assert_true(guest_mem_write(vm->mem, GUEST_CODE, guest_code, sizeof(guest_code)));
    struct kvm_sregs sregs;
    g_assert_cmpint(ioctl(cpu->fd, KVM_GET_SREGS, &sregs), ==, 0);
    sregs.cs.selector = 0;
    sregs.cs.base = 0;
    g_assert_cmpint(ioctl(cpu->fd, KVM_SET_SREGS, &sregs), ==, 0);
    struct kvm_regs regs = {.rip = GUEST_CODE, .rflags = 0x2};
    g_assert_cmpint(ioctl(cpu->fd, KVM_SET_REGS, &regs), ==, 0);
}

/*
 * Runs the vCPU on this thread until it has written GUEST_PORT n times, then
 * enters KVM_RUN once more with immediate_exit so the OUT completes, as a
 * parked vCPU thread does before its state is read.
 */
static void test_vm_run(TestVm *vm, unsigned n)
{
    Vcpu *cpu = test_vcpu(vm);
    for (unsigned outs = 0; outs < n;) {
        int r = ioctl(cpu->fd, KVM_RUN, 0);
        if (r < 0 && (errno == EINTR || errno == EAGAIN)) {
            continue;
        }
        g_assert_cmpint(r, ==, 0);
        if (cpu->run->exit_reason != KVM_EXIT_IO) {
            vcpu_dump(cpu, stderr);
        }
        g_assert_cmpuint(cpu->run->exit_reason, ==, KVM_EXIT_IO);
        if (cpu->run->io.port == GUEST_PORT) {
            outs++;
        }
    }
    cpu->run->immediate_exit = 1;
    int r = ioctl(cpu->fd, KVM_RUN, 0);
    int err = errno;
    cpu->run->immediate_exit = 0;
    g_assert_cmpint(r, ==, -1);
    g_assert_cmpint(err, ==, EINTR);
}

static void test_set_msrs(TestVm *vm)
{
    union {
        struct kvm_msrs hdr;
        uint8_t bytes[sizeof(struct kvm_msrs) + sizeof(test_msrs)];
    } m = {.hdr.nmsrs = G_N_ELEMENTS(test_msrs)};
    memcpy(m.hdr.entries, test_msrs, sizeof(test_msrs));
    g_assert_cmpint(ioctl(test_vcpu(vm)->fd, KVM_SET_MSRS, &m), ==, G_N_ELEMENTS(test_msrs));
}

static uint64_t test_get_msr(TestVm *vm, uint32_t index)
{
    union {
        struct kvm_msrs hdr;
        uint8_t bytes[sizeof(struct kvm_msrs) + sizeof(struct kvm_msr_entry)];
    } m = {.hdr.nmsrs = 1};
    m.hdr.entries[0].index = index;
    g_assert_cmpint(ioctl(test_vcpu(vm)->fd, KVM_GET_MSRS, &m), ==, 1);
    return m.hdr.entries[0].data;
}

/* An NMI that stays pending: NMIs are masked, as inside an NMI handler. */
static void test_set_pending_nmi(TestVm *vm)
{
    struct kvm_vcpu_events ev;
    g_assert_cmpint(ioctl(test_vcpu(vm)->fd, KVM_GET_VCPU_EVENTS, &ev), ==, 0);
    ev.nmi.pending = 1;
    ev.nmi.masked = 1;
    ev.flags = KVM_VCPUEVENT_VALID_NMI_PENDING;
    g_assert_cmpint(ioctl(test_vcpu(vm)->fd, KVM_SET_VCPU_EVENTS, &ev), ==, 0);
}

static uint64_t test_rbx(TestVm *vm)
{
    struct kvm_regs regs;
    g_assert_cmpint(ioctl(test_vcpu(vm)->fd, KVM_GET_REGS, &regs), ==, 0);
    return regs.rbx;
}

static uint32_t test_counter(TestVm *vm)
{
    uint32_t v;
    g_assert_true(guest_mem_read(vm->mem, GUEST_COUNTER, &v, sizeof(v)));
    return GUINT32_FROM_LE(v);
}

/* Without /dev/kvm these tests skip, except under CI=true, where a skip would
 * hide that nothing was proven (scripts/test.sh runs them on a KVM host). */
static bool have_kvm(void)
{
    if (access("/dev/kvm", R_OK | W_OK) != 0) {
        if (g_strcmp0(g_getenv("CI"), "true") == 0) {
            g_test_fail_printf("/dev/kvm is not usable (CI=true: not skipped)");
        } else {
            g_test_skip("/dev/kvm is not usable");
        }
        return false;
    }
    return true;
}

/* ---- a reader of the encoding, written from docs/migration.md ---- */

static uint32_t le32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return GUINT32_FROM_LE(v);
}

static uint64_t le64(const uint8_t *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return GUINT64_FROM_LE(v);
}

static uint32_t tag(const char *s)
{
    return le32((const uint8_t *)s);
}

/* Offset of the block header with tag t, or -1. */
static gssize find_block(const GByteArray *b, const char *t)
{
    gsize off = 8;
    while (off + 8 <= b->len) {
        if (le32(b->data + off) == tag(t)) {
            return (gssize)off;
        }
        off += 8 + le32(b->data + off + 4);
    }
    g_assert_cmpuint(off, ==, b->len);
    return -1;
}

/* Pointer to the value of MSR index in the MSRS block, or NULL. */
static uint8_t *find_msr(GByteArray *b, uint32_t index)
{
    gssize off = find_block(b, "MSRS");
    g_assert_cmpint(off, >=, 0);
    uint8_t *body = b->data + off + 8;
    uint32_t n = le32(body);
    g_assert_cmpuint(le32(b->data + off + 4), ==, 4 + 12 * n);
    for (uint32_t i = 0; i < n; i++) {
        if (le32(body + 4 + 12 * i) == index) {
            return body + 4 + 12 * i + 4;
        }
    }
    return NULL;
}

static GByteArray *copy_bytes(const GByteArray *b)
{
    GByteArray *c = g_byte_array_sized_new(b->len);
    g_byte_array_append(c, b->data, b->len);
    return c;
}

/* Replaces *t with a fresh copy of good. */
static void renew(GByteArray **t, const GByteArray *good)
{
    g_byte_array_unref(*t);
    *t = copy_bytes(good);
}

/* Cuts the block at off out of b. */
static void drop_block(GByteArray *b, gssize off)
{
    g_byte_array_remove_range(b, (guint)off, 8 + le32(b->data + off + 4));
}

static void assert_refused(Vcpu *cpu, Kvm *kvm, const GByteArray *b, const char *msg_part)
{
    g_autoptr(GError) err = NULL;
    bool ok = cpu ? vcpu_state_load(cpu, b->data, b->len, &err)
                  : vm_state_load(kvm, b->data, b->len, &err);
    g_assert_false(ok);
    g_assert_error(err, QLITE_ERROR, QLITE_ERROR_INVALID);
    if (msg_part && !strstr(err->message, msg_part)) {
        g_test_message("error: %s (expected '%s')", err->message, msg_part);
        g_test_fail();
    }
}

/* ---- tests ---- */

static void test_round_trip(void)
{
    if (!have_kvm()) {
        return;
    }
    g_autoptr(GError) err = NULL;
    g_autoptr(TestVm) a = test_vm_new();
    test_vm_boot(a);
    test_set_msrs(a);
    /* Some KVMs (paravirtual flavours) run the guest on the host's TSC and ignore writes. */
    bool tsc_settable = test_get_msr(a, MSR_IA32_TSC) - test_msrs[0].data < TSC_SLACK;
    if (!tsc_settable) {
        g_test_message("this KVM ignores writes of the TSC: its restore is not checked");
    }
    test_vm_run(a, 3);
    test_set_pending_nmi(a);
    g_assert_cmpuint(test_rbx(a), ==, 3 * GUEST_STEP);
    g_assert_cmpuint(test_counter(a), ==, 3 * GUEST_STEP);
    /* Let A's TSC and kvmclock run well past those of a VM created afterwards. */
    g_usleep(200 * 1000);

    g_autoptr(GByteArray) vcpu_a = g_byte_array_new();
    g_autoptr(GByteArray) vm_a = g_byte_array_new();
    g_assert_true(vcpu_state_save(test_vcpu(a), vcpu_a, &err));
    g_assert_no_error(err);
    g_assert_true(vm_state_save(a->kvm, vm_a, &err));
    g_assert_no_error(err);
    uint8_t *tsc = find_msr(vcpu_a, MSR_IA32_TSC);
    g_assert_nonnull(tsc);
    uint64_t tsc_a = le64(tsc);
    gssize clock_off = find_block(vm_a, "CLCK");
    g_assert_cmpint(clock_off, >=, 0);
    uint64_t clock_a = le64(vm_a->data + clock_off + 8);
    g_assert_cmpuint(clock_a, >=, 200 * 1000 * 1000);

    g_autoptr(TestVm) b = test_vm_new();
    g_autofree uint8_t *ram = g_malloc(GUEST_RAM);
    g_assert_true(guest_mem_read(a->mem, 0, ram, GUEST_RAM));
    g_assert_true(guest_mem_write(b->mem, 0, ram, GUEST_RAM));
    g_assert_true(vm_state_load(b->kvm, vm_a->data, vm_a->len, &err));
    g_assert_no_error(err);
    g_assert_true(vcpu_state_load(test_vcpu(b), vcpu_a->data, vcpu_a->len, &err));
    g_assert_no_error(err);

    /* save -> load -> save: the same bytes, but for the clocks, which must not go back. */
    g_autoptr(GByteArray) vcpu_b = g_byte_array_new();
    g_autoptr(GByteArray) vm_b = g_byte_array_new();
    g_assert_true(vcpu_state_save(test_vcpu(b), vcpu_b, &err));
    g_assert_no_error(err);
    g_assert_true(vm_state_save(b->kvm, vm_b, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(vcpu_b->len, ==, vcpu_a->len);
    g_assert_cmpuint(vm_b->len, ==, vm_a->len);
    uint64_t tsc_b = le64(find_msr(vcpu_b, MSR_IA32_TSC));
    uint64_t clock_b = le64(vm_b->data + clock_off + 8);
    if (tsc_settable) {
        g_assert_cmpuint(tsc_a, >=, test_msrs[0].data);
        g_assert_cmpuint(tsc_a - test_msrs[0].data, <, TSC_SLACK);
        g_assert_cmpuint(tsc_b, >=, tsc_a);
        g_assert_cmpuint(tsc_b - tsc_a, <, TSC_SLACK);
    }
    g_assert_cmpuint(clock_b, >=, clock_a);
    g_assert_cmpuint(clock_b - clock_a, <, 2ULL * 1000 * 1000 * 1000); /* no jump forward */
    memset(find_msr(vcpu_a, MSR_IA32_TSC), 0, 8);
    memset(find_msr(vcpu_b, MSR_IA32_TSC), 0, 8);
    static const uint32_t hv_counters[] = {HV_X64_MSR_VP_RUNTIME, HV_X64_MSR_TIME_REF_COUNT};
    for (size_t i = 0; i < G_N_ELEMENTS(hv_counters); i++) {
        uint8_t *ca = find_msr(vcpu_a, hv_counters[i]);
        uint8_t *cb = find_msr(vcpu_b, hv_counters[i]);
        g_assert_true((ca == NULL) == (cb == NULL));
        if (ca) {
            g_assert_cmpuint(le64(cb), >=, le64(ca));
            g_assert_cmpuint(le64(cb) - le64(ca), <, 2ULL * 1000 * 1000 * 10); /* 2 s */
            memset(ca, 0, 8);
            memset(cb, 0, 8);
        }
    }
    memset(vm_a->data + clock_off + 8, 0, 8);
    memset(vm_b->data + clock_off + 8, 0, 8);
    g_assert_cmpmem(vcpu_b->data, vcpu_b->len, vcpu_a->data, vcpu_a->len);
    g_assert_cmpmem(vm_b->data, vm_b->len, vm_a->data, vm_a->len);

    /* Checked through KVM itself, not only through the encoding. */
    for (size_t i = 1; i < G_N_ELEMENTS(test_msrs); i++) {
        g_assert_cmphex(test_get_msr(b, test_msrs[i].index), ==, test_msrs[i].data);
    }
    struct kvm_vcpu_events ev;
    g_assert_cmpint(ioctl(test_vcpu(b)->fd, KVM_GET_VCPU_EVENTS, &ev), ==, 0);
    g_assert_cmpuint(ev.nmi.pending, ==, 1);
    g_assert_cmpuint(ev.nmi.masked, ==, 1);

    /* B carries on counting where A stopped. */
    test_vm_run(b, 1);
    g_assert_cmpuint(test_rbx(b), ==, 4 * GUEST_STEP);
    g_assert_cmpuint(test_counter(b), ==, 4 * GUEST_STEP);
    struct kvm_regs regs;
    g_assert_cmpint(ioctl(test_vcpu(b)->fd, KVM_GET_REGS, &regs), ==, 0);
    g_assert_cmpuint(regs.rip, >=, GUEST_CODE);
    g_assert_cmpuint(regs.rip, <, GUEST_CODE + sizeof(guest_code));
    /* A was not disturbed by the save either. */
    test_vm_run(a, 1);
    g_assert_cmpuint(test_rbx(a), ==, 4 * GUEST_STEP);
}

/* The blocks the vCPU state must carry, and the FPU one it does. */
static void test_vcpu_layout(void)
{
    if (!have_kvm()) {
        return;
    }
    g_autoptr(GError) err = NULL;
    g_autoptr(TestVm) vm = test_vm_new();
    g_autoptr(GByteArray) b = g_byte_array_new();
    g_assert_true(vcpu_state_save(test_vcpu(vm), b, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(le32(b->data), ==, tag("QCPU"));
    g_assert_cmpuint(le32(b->data + 4), ==, VCPU_STATE_VERSION);
    static const char *const required[] = {"REGS", "SREG", "MSRS", "LAPI", "EVNT", "MPST"};
    for (size_t i = 0; i < G_N_ELEMENTS(required); i++) {
        g_assert_cmpint(find_block(b, required[i]), >=, 0);
    }
    bool xsave = ioctl(vm->kvm->vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE) > 0;
    g_assert_cmpint(find_block(b, "XSAV") >= 0, ==, xsave);
    g_assert_cmpint(find_block(b, "FPU ") >= 0, ==, !xsave);
    /* The kvmclock MSRs are among the saved ones when KVM lists them. */
    for (unsigned i = 0; i < vm->kvm->nmsr_index; i++) {
        if (vm->kvm->msr_index[i] == 0x4b564d01) {
            g_assert_nonnull(find_msr(b, 0x4b564d01));
        }
    }
}

static void test_vcpu_refuse(void)
{
    if (!have_kvm()) {
        return;
    }
    g_autoptr(GError) err = NULL;
    g_autoptr(TestVm) vm = test_vm_new();
    test_vm_boot(vm);
    test_vm_run(vm, 1);
    Vcpu *cpu = test_vcpu(vm);
    g_autoptr(GByteArray) good = g_byte_array_new();
    g_assert_true(vcpu_state_save(cpu, good, &err));
    g_assert_no_error(err);
    uint64_t rbx = test_rbx(vm);

    /* Every proper prefix. */
    for (guint len = 0; len < good->len; len++) {
        g_autoptr(GByteArray) t = copy_bytes(good);
        g_byte_array_set_size(t, len);
        assert_refused(cpu, NULL, t, NULL);
    }
    g_autoptr(GByteArray) t = copy_bytes(good);
    g_byte_array_set_size(t, 20);
    assert_refused(cpu, NULL, t, "truncated in block 'REGS'");

    renew(&t, good);
    t->data[0] = 'X';
    assert_refused(cpu, NULL, t, "bad magic");

    renew(&t, good);
    t->data[4] = 2;
    assert_refused(cpu, NULL, t, "version 2 is not supported");

    /* REGS a byte short; the rest shifted accordingly. */
    renew(&t, good);
    gssize off = find_block(t, "REGS");
    uint32_t short_len = GUINT32_TO_LE(sizeof(struct kvm_regs) - 1);
    memcpy(t->data + off + 4, &short_len, 4);
    g_byte_array_remove_index(t, (guint)off + 8);
    assert_refused(cpu, NULL, t, "block 'REGS' has 143 bytes, expected 144");

    /* A length running past the end. */
    renew(&t, good);
    off = find_block(t, "MPST");
    uint32_t huge = GUINT32_TO_LE(0xffffffffu);
    memcpy(t->data + off + 4, &huge, 4);
    assert_refused(cpu, NULL, t, "truncated in block 'MPST'");

    renew(&t, good);
    off = find_block(t, "LAPI");
    memcpy(t->data + off, "LAPX", 4);
    assert_refused(cpu, NULL, t, "unknown block 'LAPX'");

    renew(&t, good);
    off = find_block(t, "MPST");
    g_byte_array_append(t, t->data + off, 8 + sizeof(struct kvm_mp_state));
    assert_refused(cpu, NULL, t, "block 'MPST' appears twice");

    renew(&t, good);
    drop_block(t, find_block(t, "EVNT"));
    assert_refused(cpu, NULL, t, "block 'EVNT' is missing");

    renew(&t, good);
    gssize fpu = find_block(t, "XSAV");
    drop_block(t, fpu >= 0 ? fpu : find_block(t, "FPU "));
    assert_refused(cpu, NULL, t, "exactly one of the blocks");

    /* An MSR count that disagrees with the block length. */
    renew(&t, good);
    off = find_block(t, "MSRS");
    uint32_t count = GUINT32_TO_LE(le32(t->data + off + 8) + 1);
    memcpy(t->data + off + 8, &count, 4);
    assert_refused(cpu, NULL, t, "block 'MSRS' is malformed");

    /* Refused before anything is written: a changed RBX in front of a broken block. */
    renew(&t, good);
    off = find_block(t, "REGS");
    uint64_t new_rbx = GUINT64_TO_LE(0x1234567);
    memcpy(t->data + off + 8 + G_STRUCT_OFFSET(struct kvm_regs, rbx), &new_rbx, 8);
    g_byte_array_set_size(t, t->len - 1);
    assert_refused(cpu, NULL, t, NULL);
    g_assert_cmpuint(test_rbx(vm), ==, rbx);

    /* The intact state still loads, and the guest goes on. */
    g_assert_true(vcpu_state_load(cpu, good->data, good->len, &err));
    g_assert_no_error(err);
    test_vm_run(vm, 1);
    g_assert_cmpuint(test_rbx(vm), ==, 2 * GUEST_STEP);
}

static void test_vm_refuse(void)
{
    if (!have_kvm()) {
        return;
    }
    g_autoptr(GError) err = NULL;
    g_autoptr(TestVm) vm = test_vm_new();
    g_autoptr(GByteArray) good = g_byte_array_new();
    g_assert_true(vm_state_save(vm->kvm, good, &err));
    g_assert_no_error(err);
    g_assert_cmpuint(le32(good->data), ==, tag("QVMS"));

    for (guint len = 0; len < good->len; len++) {
        g_autoptr(GByteArray) t = copy_bytes(good);
        g_byte_array_set_size(t, len);
        assert_refused(NULL, vm->kvm, t, NULL);
    }
    g_autoptr(GByteArray) t = copy_bytes(good);
    t->data[4] = 7;
    assert_refused(NULL, vm->kvm, t, "VM state version 7 is not supported");

    /* The slave PIC's state in the master's block. */
    renew(&t, good);
    gssize off = find_block(t, "PICM");
    uint32_t id = GUINT32_TO_LE(KVM_IRQCHIP_PIC_SLAVE);
    memcpy(t->data + off + 8, &id, 4);
    assert_refused(NULL, vm->kvm, t, "block 'PICM' holds irqchip 1, expected 0");

    renew(&t, good);
    drop_block(t, find_block(t, "CLCK"));
    assert_refused(NULL, vm->kvm, t, "block 'CLCK' is missing");

    g_assert_true(vm_state_load(vm->kvm, good->data, good->len, &err));
    g_assert_no_error(err);
}

/* KVM's dirty log (live migration): the page the guest writes, and nothing
 * outside the guest's own pages, read once. KVM may report a page the guest
 * only ran from (nested SVM does, for the code page): a superset is safe for
 * migration, a missing page is not. */
static void test_dirty_log(void)
{
    if (!have_kvm()) {
        return;
    }
    g_autoptr(GError) err = NULL;
    g_autoptr(TestVm) vm = test_vm_new();
    test_vm_boot(vm);
    size_t words = (guest_mem_pages(vm->mem) + GUEST_BITS_PER_LONG - 1) / GUEST_BITS_PER_LONG;
    g_autofree unsigned long *bm = g_new0(unsigned long, words);
    g_assert_true(kvm_dirty_log_set(vm->kvm, vm->mem, true, &err));
    g_assert_no_error(err);
    test_vm_run(vm, 2);
    g_assert_true(kvm_dirty_log_get(vm->kvm, vm->mem, bm, &err));
    g_assert_no_error(err);
    unsigned n = 0;
    for (size_t i = 0; i < words; i++) {
        n += (unsigned)__builtin_popcountl(bm[i]);
    }
    unsigned long guest_pages =
        (1UL << (GUEST_CODE / GUEST_PAGE_SIZE)) | (1UL << (GUEST_COUNTER / GUEST_PAGE_SIZE));
    g_assert_true(bm[0] & (1UL << (GUEST_COUNTER / GUEST_PAGE_SIZE)));
    g_assert_cmphex(bm[0] & ~guest_pages, ==, 0);
    g_assert_cmpuint(n, ==, (unsigned)__builtin_popcountl(bm[0]));
    /* Reading cleared it: nothing new without running. */
    memset(bm, 0, words * sizeof(*bm));
    g_assert_true(kvm_dirty_log_get(vm->kvm, vm->mem, bm, &err));
    g_assert_cmpuint(bm[0], ==, 0);
    /* Off: KVM refuses to report. */
    g_assert_true(kvm_dirty_log_set(vm->kvm, vm->mem, false, &err));
    g_assert_false(kvm_dirty_log_get(vm->kvm, vm->mem, bm, &err));
    g_assert_nonnull(err);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/cpu-state/round-trip", test_round_trip);
    g_test_add_func("/cpu-state/vcpu-layout", test_vcpu_layout);
    g_test_add_func("/cpu-state/vcpu-refuse", test_vcpu_refuse);
    g_test_add_func("/cpu-state/vm-refuse", test_vm_refuse);
    g_test_add_func("/cpu-state/dirty-log", test_dirty_log);
    return g_test_run();
}
