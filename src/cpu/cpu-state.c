/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "cpu/cpu-state.h"
#include "util/error.h"
#include "util/state.h"

#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

/*
 * Block bodies that hold a KVM structure carry it in the kernel's own layout
 * (Documentation/virt/kvm/api.rst): on x86 those structures are built from
 * fixed-width fields only, so their bytes are the same on every x86-64 host,
 * and x86 is little-endian. The asserts catch a header whose layout differs
 * from the one the format was written against.
 */
#if G_BYTE_ORDER != G_LITTLE_ENDIAN
#error "the CPU state encoding assumes a little-endian host (x86)"
#endif
G_STATIC_ASSERT(sizeof(struct kvm_regs) == 144);
G_STATIC_ASSERT(sizeof(struct kvm_sregs) == 312);
G_STATIC_ASSERT(sizeof(struct kvm_fpu) == 416);
G_STATIC_ASSERT(sizeof(struct kvm_xsave) == 4096);
G_STATIC_ASSERT(sizeof(struct kvm_xcrs) == 392);
G_STATIC_ASSERT(sizeof(struct kvm_lapic_state) == 1024);
G_STATIC_ASSERT(sizeof(struct kvm_vcpu_events) == 64);
G_STATIC_ASSERT(sizeof(struct kvm_debugregs) == 128);
G_STATIC_ASSERT(sizeof(struct kvm_mp_state) == 4);
G_STATIC_ASSERT(sizeof(struct kvm_irqchip) == 520);
G_STATIC_ASSERT(sizeof(struct kvm_pit_state2) == 112);

/* A block tag is four ASCII bytes, stored in this order. */
#define STATE_TAG(a, b, c, d)                                                                      \
    ((uint32_t)(a) | (uint32_t)(b) << 8 | (uint32_t)(c) << 16 | (uint32_t)(d) << 24)

#define VCPU_STATE_MAGIC STATE_TAG('Q', 'C', 'P', 'U')
#define VM_STATE_MAGIC   STATE_TAG('Q', 'V', 'M', 'S')

#define TAG_REGS  STATE_TAG('R', 'E', 'G', 'S')
#define TAG_SREGS STATE_TAG('S', 'R', 'E', 'G')
#define TAG_XSAVE STATE_TAG('X', 'S', 'A', 'V')
#define TAG_FPU   STATE_TAG('F', 'P', 'U', ' ')
#define TAG_XCRS  STATE_TAG('X', 'C', 'R', 'S')
#define TAG_MSRS  STATE_TAG('M', 'S', 'R', 'S')
#define TAG_LAPIC STATE_TAG('L', 'A', 'P', 'I')
#define TAG_EVNT  STATE_TAG('E', 'V', 'N', 'T')
#define TAG_DBGR  STATE_TAG('D', 'B', 'G', 'R')
#define TAG_MPST  STATE_TAG('M', 'P', 'S', 'T')

#define TAG_PICM STATE_TAG('P', 'I', 'C', 'M')
#define TAG_PICS STATE_TAG('P', 'I', 'C', 'S')
#define TAG_IOAP STATE_TAG('I', 'O', 'A', 'P')
#define TAG_PIT2 STATE_TAG('P', 'I', 'T', '2')
#define TAG_CLCK STATE_TAG('C', 'L', 'C', 'K')

/* Magic, version; then each block: tag, body length, body. */
#define STATE_HEADER_SIZE 8
#define BLOCK_HEADER_SIZE 8

/* Far above the ~40 to 100 MSRs KVM lists; bounds what a malformed count can ask for. */
#define VCPU_STATE_MSRS_MAX 4096
#define MSR_ENTRY_SIZE      12 /* u32 index, u64 value */
/* KVM_GET_MSRS/KVM_SET_MSRS refuse more than a few hundred entries per call. */
#define MSR_BATCH 128

#define MSR_IA32_TSC_DEADLINE 0x6e0

typedef struct BlockSpec {
    uint32_t tag;
    size_t size; /* exact body size; 0: variable, checked by the block's parser */
    bool required;
} BlockSpec;

typedef struct Block {
    const uint8_t *body; /* NULL: absent */
    size_t len;
} Block;

static const BlockSpec vcpu_blocks[] = {
    {TAG_REGS, sizeof(struct kvm_regs), true},
    {TAG_SREGS, sizeof(struct kvm_sregs), true},
    {TAG_XSAVE, sizeof(struct kvm_xsave), false}, /* exactly one of XSAV and FPU */
    {TAG_FPU, sizeof(struct kvm_fpu), false},
    {TAG_XCRS, sizeof(struct kvm_xcrs), false},
    {TAG_MSRS, 0, true},
    {TAG_LAPIC, sizeof(struct kvm_lapic_state), true},
    {TAG_EVNT, sizeof(struct kvm_vcpu_events), true},
    {TAG_DBGR, sizeof(struct kvm_debugregs), false},
    {TAG_MPST, sizeof(struct kvm_mp_state), true},
};

/* The optional blocks, present when the saving host's KVM had these. */
static const struct {
    uint32_t tag;
    int cap;
    const char *name;
} vcpu_block_caps[] = {
    {TAG_XSAVE, KVM_CAP_XSAVE, "KVM_CAP_XSAVE"},
    {TAG_XCRS, KVM_CAP_XCRS, "KVM_CAP_XCRS"},
    {TAG_DBGR, KVM_CAP_DEBUGREGS, "KVM_CAP_DEBUGREGS"},
};

static const BlockSpec vm_blocks[] = {
    {TAG_PICM, sizeof(struct kvm_irqchip), true}, {TAG_PICS, sizeof(struct kvm_irqchip), true},
    {TAG_IOAP, sizeof(struct kvm_irqchip), true}, {TAG_PIT2, sizeof(struct kvm_pit_state2), true},
    {TAG_CLCK, sizeof(uint64_t), true},
};

/* The tag as text for messages; "0x..." when it is not printable. */
static const char *tag_name(uint32_t tag, char buf[16])
{
    for (int i = 0; i < 4; i++) {
        char c = (char)(tag >> (8 * i));
        if (c < 0x20 || c > 0x7e) {
            g_snprintf(buf, 16, "0x%08x", tag);
            return buf;
        }
        buf[i] = c;
    }
    buf[4] = '\0';
    return buf;
}

/* ---- encoding ---- */

static void put_header(GByteArray *out, uint32_t magic, uint32_t version)
{
    state_put_u32(out, magic);
    state_put_u32(out, version);
}

static void put_block(GByteArray *out, uint32_t tag, const void *body, size_t len)
{
    state_put_u32(out, tag);
    state_put_u32(out, (uint32_t)len);
    state_put_bytes(out, body, len);
}

/*
 * Splits data into its blocks, one slot per spec, after checking the header,
 * every block's tag and size, that no block appears twice and that the
 * required ones are there.
 */
static bool parse_blocks(const char *what, uint32_t magic, uint32_t version, const BlockSpec *specs,
                         size_t nspecs, const uint8_t *data, size_t len, Block *blocks,
                         GError **error)
{
    char name[16];
    memset(blocks, 0, nspecs * sizeof(*blocks));
    if (len < STATE_HEADER_SIZE) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "%s state truncated in its header",
                    what);
        return false;
    }
    StateIn in;
    state_in_init(&in, data, len);
    if (state_get_u32(&in) != magic) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "not a qlite %s state (bad magic)",
                    what);
        return false;
    }
    uint32_t v = state_get_u32(&in);
    if (v != version) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "%s state version %u is not supported (this qlite reads version %u)", what, v,
                    version);
        return false;
    }
    while (in.off < len) {
        if (len - in.off < BLOCK_HEADER_SIZE) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "%s state truncated in a block header", what);
            return false;
        }
        uint32_t tag = state_get_u32(&in);
        uint32_t blen = state_get_u32(&in);
        size_t i = 0;
        while (i < nspecs && specs[i].tag != tag) {
            i++;
        }
        if (i == nspecs) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "%s state: unknown block '%s'",
                        what, tag_name(tag, name));
            return false;
        }
        if (blen > len - in.off) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "%s state truncated in block '%s' (%u bytes, %zu left)", what,
                        tag_name(tag, name), blen, len - in.off);
            return false;
        }
        if (blocks[i].body) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "%s state: block '%s' appears twice", what, tag_name(tag, name));
            return false;
        }
        if (specs[i].size && blen != specs[i].size) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "%s state: block '%s' has %u bytes, expected %zu", what,
                        tag_name(tag, name), blen, specs[i].size);
            return false;
        }
        blocks[i] = (Block){.body = data + in.off, .len = blen};
        in.off += blen;
    }
    for (size_t i = 0; i < nspecs; i++) {
        if (specs[i].required && !blocks[i].body) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID, "%s state: block '%s' is missing",
                        what, tag_name(specs[i].tag, name));
            return false;
        }
    }
    return true;
}

static const Block *find_block(const BlockSpec *specs, const Block *blocks, size_t n, uint32_t tag)
{
    for (size_t i = 0; i < n; i++) {
        if (specs[i].tag == tag) {
            return blocks[i].body ? &blocks[i] : NULL;
        }
    }
    g_assert_not_reached();
}

/* ---- vCPU ---- */

static bool vcpu_has_cap(Vcpu *cpu, int cap)
{
    return ioctl(cpu->set->kvm->vm_fd, KVM_CHECK_EXTENSION, cap) > 0;
}

static bool vcpu_get(Vcpu *cpu, unsigned long req, const char *name, void *buf, GError **error)
{
    if (ioctl(cpu->fd, req, buf) < 0) {
        qlite_error_errno(error, errno, "%s on vCPU %u", name, cpu->index);
        return false;
    }
    return true;
}

/* KVM reads a struct that the block holds byte for byte; copy it out to align it. */
static bool vcpu_put(Vcpu *cpu, unsigned long req, const char *name, const Block *b, GError **error)
{
    g_autofree void *buf = g_memdup2(b->body, b->len);
    if (ioctl(cpu->fd, req, buf) < 0) {
        qlite_error_errno(error, errno, "%s on vCPU %u", name, cpu->index);
        return false;
    }
    return true;
}

/*
 * Reads every listed MSR this vCPU has. KVM_GET_MSRS stops at the first
 * index it cannot read (one the vCPU's CPUID rules out, say) and returns how
 * many it read: keep those, drop the failing one and go on after it.
 */
static bool vcpu_read_msrs(Vcpu *cpu, GArray *entries, GError **error)
{
    const Kvm *kvm = cpu->set->kvm;
    g_autofree struct kvm_msrs *m =
        g_malloc0(sizeof(*m) + MSR_BATCH * sizeof(struct kvm_msr_entry));
    unsigned next = 0;
    while (next < kvm->nmsr_index) {
        unsigned n = MIN(MSR_BATCH, kvm->nmsr_index - next);
        memset(m->entries, 0, n * sizeof(m->entries[0]));
        m->nmsrs = n;
        for (unsigned i = 0; i < n; i++) {
            m->entries[i].index = kvm->msr_index[next + i];
        }
        int got = ioctl(cpu->fd, KVM_GET_MSRS, m);
        if (got < 0) {
            qlite_error_errno(error, errno, "KVM_GET_MSRS on vCPU %u", cpu->index);
            return false;
        }
        g_array_append_vals(entries, m->entries, (guint)got);
        if ((unsigned)got < n) {
            g_debug("vCPU %u: MSR 0x%x not readable, not saved", cpu->index, m->entries[got].index);
            next += (unsigned)got + 1;
        } else {
            next += n;
        }
    }
    return true;
}

static void put_msrs(GByteArray *out, const GArray *entries)
{
    g_autoptr(GByteArray) body = g_byte_array_new();
    state_put_u32(body, entries->len);
    for (guint i = 0; i < entries->len; i++) {
        const struct kvm_msr_entry *e = &g_array_index(entries, struct kvm_msr_entry, i);
        state_put_u32(body, e->index);
        state_put_u64(body, e->data);
    }
    put_block(out, TAG_MSRS, body->data, body->len);
}

bool vcpu_state_save(Vcpu *cpu, GByteArray *out, GError **error)
{
    struct kvm_regs regs;
    struct kvm_sregs sregs;
    struct kvm_lapic_state lapic;
    struct kvm_vcpu_events events;
    struct kvm_mp_state mp;
    memset(&events, 0, sizeof(events));
    if (!vcpu_get(cpu, KVM_GET_REGS, "KVM_GET_REGS", &regs, error) ||
        !vcpu_get(cpu, KVM_GET_SREGS, "KVM_GET_SREGS", &sregs, error) ||
        !vcpu_get(cpu, KVM_GET_LAPIC, "KVM_GET_LAPIC", &lapic, error) ||
        !vcpu_get(cpu, KVM_GET_VCPU_EVENTS, "KVM_GET_VCPU_EVENTS", &events, error) ||
        !vcpu_get(cpu, KVM_GET_MP_STATE, "KVM_GET_MP_STATE", &mp, error)) {
        return false;
    }
    /*
     * KVM_SET_VCPU_EVENTS takes the pending NMI and the SIPI vector only when
     * flagged; KVM_GET_VCPU_EVENTS fills both in but never flags the SIPI
     * vector (and older kernels not the NMI either).
     */
    events.flags |= KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SIPI_VECTOR;

    g_autoptr(GArray) msrs = g_array_new(FALSE, FALSE, sizeof(struct kvm_msr_entry));
    if (!vcpu_read_msrs(cpu, msrs, error)) {
        return false;
    }

    g_autoptr(GByteArray) buf = g_byte_array_new();
    put_header(buf, VCPU_STATE_MAGIC, VCPU_STATE_VERSION);
    put_block(buf, TAG_REGS, &regs, sizeof(regs));
    put_block(buf, TAG_SREGS, &sregs, sizeof(sregs));
    if (vcpu_has_cap(cpu, KVM_CAP_XSAVE)) {
        g_autofree struct kvm_xsave *xsave = g_new0(struct kvm_xsave, 1);
        if (!vcpu_get(cpu, KVM_GET_XSAVE, "KVM_GET_XSAVE", xsave, error)) {
            return false;
        }
        put_block(buf, TAG_XSAVE, xsave, sizeof(*xsave));
    } else {
        struct kvm_fpu fpu;
        if (!vcpu_get(cpu, KVM_GET_FPU, "KVM_GET_FPU", &fpu, error)) {
            return false;
        }
        put_block(buf, TAG_FPU, &fpu, sizeof(fpu));
    }
    if (vcpu_has_cap(cpu, KVM_CAP_XCRS)) {
        struct kvm_xcrs xcrs;
        memset(&xcrs, 0, sizeof(xcrs));
        if (!vcpu_get(cpu, KVM_GET_XCRS, "KVM_GET_XCRS", &xcrs, error)) {
            return false;
        }
        put_block(buf, TAG_XCRS, &xcrs, sizeof(xcrs));
    }
    put_msrs(buf, msrs);
    put_block(buf, TAG_LAPIC, &lapic, sizeof(lapic));
    put_block(buf, TAG_EVNT, &events, sizeof(events));
    if (vcpu_has_cap(cpu, KVM_CAP_DEBUGREGS)) {
        struct kvm_debugregs dbg;
        if (!vcpu_get(cpu, KVM_GET_DEBUGREGS, "KVM_GET_DEBUGREGS", &dbg, error)) {
            return false;
        }
        put_block(buf, TAG_DBGR, &dbg, sizeof(dbg));
    }
    put_block(buf, TAG_MPST, &mp, sizeof(mp));
    g_byte_array_append(out, buf->data, buf->len);
    return true;
}

/* The MSRS body: u32 count, then count (u32 index, u64 value) pairs. */
static struct kvm_msrs *parse_msrs(const Block *b, GError **error)
{
    StateIn in;
    state_in_init(&in, b->body, b->len);
    uint32_t n = state_get_u32(&in);
    if (in.bad || n > VCPU_STATE_MSRS_MAX || b->len != 4 + (size_t)n * MSR_ENTRY_SIZE) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "vCPU state: block 'MSRS' is malformed (%zu bytes, %u MSRs, at most %u)",
                    b->len, n, VCPU_STATE_MSRS_MAX);
        return NULL;
    }
    struct kvm_msrs *m = g_malloc0(sizeof(*m) + n * sizeof(struct kvm_msr_entry));
    m->nmsrs = n;
    for (uint32_t i = 0; i < n; i++) {
        m->entries[i].index = state_get_u32(&in);
        m->entries[i].data = state_get_u64(&in);
    }
    return m;
}

static bool vcpu_write_msrs(Vcpu *cpu, const struct kvm_msr_entry *entries, unsigned n,
                            GError **error)
{
    g_autofree struct kvm_msrs *m =
        g_malloc0(sizeof(*m) + MSR_BATCH * sizeof(struct kvm_msr_entry));
    for (unsigned done = 0; done < n;) {
        unsigned batch = MIN(MSR_BATCH, n - done);
        m->nmsrs = batch;
        memcpy(m->entries, entries + done, batch * sizeof(m->entries[0]));
        int set = ioctl(cpu->fd, KVM_SET_MSRS, m);
        if (set < 0) {
            qlite_error_errno(error, errno, "KVM_SET_MSRS on vCPU %u", cpu->index);
            return false;
        }
        if ((unsigned)set < batch) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_FAILED,
                        "KVM refused MSR 0x%x = 0x%" G_GINT64_MODIFIER "x on vCPU %u",
                        m->entries[set].index, (guint64)m->entries[set].data, cpu->index);
            return false;
        }
        done += batch;
    }
    return true;
}

bool vcpu_state_load(Vcpu *cpu, const uint8_t *data, size_t len, GError **error)
{
    enum { N = G_N_ELEMENTS(vcpu_blocks) };
    Block blocks[N];
    if (!parse_blocks("vCPU", VCPU_STATE_MAGIC, VCPU_STATE_VERSION, vcpu_blocks, N, data, len,
                      blocks, error)) {
        return false;
    }
    const Block *xsave = find_block(vcpu_blocks, blocks, N, TAG_XSAVE);
    const Block *fpu = find_block(vcpu_blocks, blocks, N, TAG_FPU);
    const Block *xcrs = find_block(vcpu_blocks, blocks, N, TAG_XCRS);
    const Block *dbg = find_block(vcpu_blocks, blocks, N, TAG_DBGR);
    if (!xsave == !fpu) {
        g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                    "vCPU state: needs exactly one of the blocks 'XSAV' and 'FPU '");
        return false;
    }
    g_autofree struct kvm_msrs *msrs =
        parse_msrs(find_block(vcpu_blocks, blocks, N, TAG_MSRS), error);
    if (!msrs) {
        return false;
    }
    for (size_t i = 0; i < G_N_ELEMENTS(vcpu_block_caps); i++) {
        if (find_block(vcpu_blocks, blocks, N, vcpu_block_caps[i].tag) &&
            !vcpu_has_cap(cpu, vcpu_block_caps[i].cap)) {
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_MISSING,
                        "vCPU state was saved with %s, which this host's KVM lacks",
                        vcpu_block_caps[i].name);
            return false;
        }
    }

    /*
     * Order: the segment and control registers set the mode the rest is
     * checked against (EFER for the syscall MSRs, the APIC base for the
     * LAPIC); the TSC deadline only sticks once the LAPIC timer is in
     * TSC-deadline mode, so it is written again after the LAPIC; pending
     * events and the MP state go last so that nothing above clears them.
     */
    if (!vcpu_put(cpu, KVM_SET_SREGS, "KVM_SET_SREGS",
                  find_block(vcpu_blocks, blocks, N, TAG_SREGS), error) ||
        !vcpu_put(cpu, KVM_SET_REGS, "KVM_SET_REGS", find_block(vcpu_blocks, blocks, N, TAG_REGS),
                  error)) {
        return false;
    }
    if (xsave ? !vcpu_put(cpu, KVM_SET_XSAVE, "KVM_SET_XSAVE", xsave, error)
              : !vcpu_put(cpu, KVM_SET_FPU, "KVM_SET_FPU", fpu, error)) {
        return false;
    }
    if (xcrs && !vcpu_put(cpu, KVM_SET_XCRS, "KVM_SET_XCRS", xcrs, error)) {
        return false;
    }
    if (!vcpu_write_msrs(cpu, msrs->entries, msrs->nmsrs, error) ||
        !vcpu_put(cpu, KVM_SET_LAPIC, "KVM_SET_LAPIC",
                  find_block(vcpu_blocks, blocks, N, TAG_LAPIC), error)) {
        return false;
    }
    for (uint32_t i = 0; i < msrs->nmsrs; i++) {
        if (msrs->entries[i].index == MSR_IA32_TSC_DEADLINE &&
            !vcpu_write_msrs(cpu, &msrs->entries[i], 1, error)) {
            return false;
        }
    }
    if (dbg && !vcpu_put(cpu, KVM_SET_DEBUGREGS, "KVM_SET_DEBUGREGS", dbg, error)) {
        return false;
    }
    return vcpu_put(cpu, KVM_SET_VCPU_EVENTS, "KVM_SET_VCPU_EVENTS",
                    find_block(vcpu_blocks, blocks, N, TAG_EVNT), error) &&
           vcpu_put(cpu, KVM_SET_MP_STATE, "KVM_SET_MP_STATE",
                    find_block(vcpu_blocks, blocks, N, TAG_MPST), error);
}

/* ---- VM ---- */

static const struct {
    uint32_t tag;
    uint32_t chip_id;
} vm_irqchips[] = {
    {TAG_PICM, KVM_IRQCHIP_PIC_MASTER},
    {TAG_PICS, KVM_IRQCHIP_PIC_SLAVE},
    {TAG_IOAP, KVM_IRQCHIP_IOAPIC},
};

bool vm_state_save(Kvm *kvm, GByteArray *out, GError **error)
{
    g_autoptr(GByteArray) buf = g_byte_array_new();
    put_header(buf, VM_STATE_MAGIC, VM_STATE_VERSION);
    for (size_t i = 0; i < G_N_ELEMENTS(vm_irqchips); i++) {
        struct kvm_irqchip chip;
        memset(&chip, 0, sizeof(chip));
        chip.chip_id = vm_irqchips[i].chip_id;
        if (ioctl(kvm->vm_fd, KVM_GET_IRQCHIP, &chip) < 0) {
            qlite_error_errno(error, errno, "KVM_GET_IRQCHIP %u", chip.chip_id);
            return false;
        }
        put_block(buf, vm_irqchips[i].tag, &chip, sizeof(chip));
    }
    struct kvm_pit_state2 pit;
    memset(&pit, 0, sizeof(pit));
    if (ioctl(kvm->vm_fd, KVM_GET_PIT2, &pit) < 0) {
        qlite_error_errno(error, errno, "KVM_GET_PIT2");
        return false;
    }
    /*
     * A host kernel timestamp, meaningless elsewhere: KVM_SET_PIT2 ignores it
     * and starts each counter afresh. Zeroed so equal states save as equal bytes.
     */
    for (size_t i = 0; i < G_N_ELEMENTS(pit.channels); i++) {
        pit.channels[i].count_load_time = 0;
    }
    put_block(buf, TAG_PIT2, &pit, sizeof(pit));

    /* Only the clock value: KVM_GET_CLOCK's flags and host timestamps describe this host. */
    uint64_t ns;
    if (!kvm_clock_get(kvm, &ns, error)) {
        return false;
    }
    uint8_t clock[sizeof(uint64_t)];
    uint64_t le = GUINT64_TO_LE(ns);
    memcpy(clock, &le, sizeof(clock));
    put_block(buf, TAG_CLCK, clock, sizeof(clock));
    g_byte_array_append(out, buf->data, buf->len);
    return true;
}

bool vm_state_load(Kvm *kvm, const uint8_t *data, size_t len, GError **error)
{
    enum { N = G_N_ELEMENTS(vm_blocks) };
    Block blocks[N];
    if (!parse_blocks("VM", VM_STATE_MAGIC, VM_STATE_VERSION, vm_blocks, N, data, len, blocks,
                      error)) {
        return false;
    }
    struct kvm_irqchip chips[G_N_ELEMENTS(vm_irqchips)];
    for (size_t i = 0; i < G_N_ELEMENTS(vm_irqchips); i++) {
        const Block *b = find_block(vm_blocks, blocks, N, vm_irqchips[i].tag);
        memcpy(&chips[i], b->body, sizeof(chips[i]));
        if (chips[i].chip_id != vm_irqchips[i].chip_id) {
            char name[16];
            g_set_error(error, QLITE_ERROR, QLITE_ERROR_INVALID,
                        "VM state: block '%s' holds irqchip %u, expected %u",
                        tag_name(vm_irqchips[i].tag, name), chips[i].chip_id,
                        vm_irqchips[i].chip_id);
            return false;
        }
    }
    struct kvm_pit_state2 pit;
    memcpy(&pit, find_block(vm_blocks, blocks, N, TAG_PIT2)->body, sizeof(pit));
    StateIn in;
    const Block *clock = find_block(vm_blocks, blocks, N, TAG_CLCK);
    state_in_init(&in, clock->body, clock->len);
    uint64_t ns = state_get_u64(&in);

    for (size_t i = 0; i < G_N_ELEMENTS(chips); i++) {
        if (ioctl(kvm->vm_fd, KVM_SET_IRQCHIP, &chips[i]) < 0) {
            qlite_error_errno(error, errno, "KVM_SET_IRQCHIP %u", chips[i].chip_id);
            return false;
        }
    }
    if (ioctl(kvm->vm_fd, KVM_SET_PIT2, &pit) < 0) {
        qlite_error_errno(error, errno, "KVM_SET_PIT2");
        return false;
    }
    return kvm_clock_set(kvm, ns, error);
}
