/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "virtio-fake.h"
#include "virtio/virtqueue.h"

#include <string.h>

#define MEM_SIZE  (4 * 1024 * 1024)
#define RING_BASE 0x10000
#define QSIZE     16

typedef struct {
    GuestMem *mem;
    FakeVq f;
    VirtQueue vq;
    uint64_t data; /* free guest memory after the rings */
} Fixture;

static void fixture_setup(Fixture *fx, bool event_idx)
{
    g_autoptr(GError) err = NULL;
    fx->mem = guest_mem_new(MEM_SIZE, MEM_SIZE, &err);
    g_assert_no_error(err);
    fake_vq_init(&fx->f, fx->mem, RING_BASE, QSIZE);
    fx->data = fake_vq_end(&fx->f);
    virtqueue_init(&fx->vq, QSIZE);
    fake_vq_apply(&fx->f, &fx->vq);
    g_assert_true(virtqueue_start(&fx->vq, fx->mem, event_idx, &err));
    g_assert_no_error(err);
}

static void fixture_teardown(Fixture *fx)
{
    guest_mem_free(fx->mem);
}

static void *hva(Fixture *fx, uint64_t gpa)
{
    return guest_mem_ptr(fx->mem, gpa, 1);
}

static VirtQueueElement *pop_ok(Fixture *fx)
{
    g_autoptr(GError) err = NULL;
    VirtQueueElement *e = NULL;
    g_assert_cmpint(virtqueue_pop(&fx->vq, &e, &err), ==, 1);
    g_assert_no_error(err);
    return e;
}

static void test_empty(void)
{
    Fixture fx;
    fixture_setup(&fx, false);
    g_autoptr(GError) err = NULL;
    VirtQueueElement *e = NULL;
    g_assert_true(virtqueue_empty(&fx.vq));
    g_assert_cmpint(virtqueue_pop(&fx.vq, &e, &err), ==, 0);
    g_assert_no_error(err);
    g_assert_null(e);
    fixture_teardown(&fx);
}

static void test_chain(void)
{
    Fixture fx;
    fixture_setup(&fx, false);
    FakeBuf bufs[] = {
        {fx.data, 10, false},        {fx.data + 0x100, 20, false},
        {fx.data + 0x200, 30, true}, {fx.data + 0x300, 0, true}, /* zero-length: no iovec */
        {fx.data + 0x400, 40, true},
    };
    uint16_t head = fake_vq_add(&fx.f, bufs, G_N_ELEMENTS(bufs));
    g_assert_false(virtqueue_empty(&fx.vq));
    VirtQueueElement *e = pop_ok(&fx);
    g_assert_cmpuint(e->head, ==, head);
    g_assert_cmpuint(e->out_num, ==, 2);
    g_assert_cmpuint(e->in_num, ==, 2);
    g_assert_cmpuint(e->out_len, ==, 30);
    g_assert_cmpuint(e->in_len, ==, 70);
    g_assert_true(e->out_sg[0].iov_base == hva(&fx, fx.data));
    g_assert_true(e->out_sg[1].iov_base == hva(&fx, fx.data + 0x100));
    g_assert_true(e->in_sg[0].iov_base == hva(&fx, fx.data + 0x200));
    g_assert_true(e->in_sg[1].iov_base == hva(&fx, fx.data + 0x400));
    g_assert_cmpuint(fx.vq.inflight, ==, 1);
    virtqueue_push(&fx.vq, e, 70);
    g_assert_cmpuint(fx.vq.inflight, ==, 0);
    uint32_t id, len;
    g_assert_true(fake_vq_pop_used(&fx.f, &id, &len));
    g_assert_cmpuint(id, ==, head);
    g_assert_cmpuint(len, ==, 70);
    g_assert_false(fake_vq_pop_used(&fx.f, &id, &len));
    g_assert_true(virtqueue_empty(&fx.vq));
    fixture_teardown(&fx);
}

/* The free-running 16-bit indices wrap at 65536, not at the queue size (§2.7.6). */
static void test_wrap(void)
{
    Fixture fx;
    fixture_setup(&fx, true);
    uint16_t start = 65530;
    fx.vq.last_avail_idx = fx.vq.used_idx = start;
    fake_vq_set_avail_idx(&fx.f, start);
    fx.f.last_used = start;
    uint16_t used_le = GUINT16_TO_LE(start);
    memcpy(hva(&fx, fx.f.used_gpa + 2), &used_le, 2);
    for (unsigned i = 0; i < 3 * QSIZE; i++) {
        FakeBuf b = {fx.data + 64 * (i % QSIZE), 64, i % 2};
        uint16_t head = fake_vq_add(&fx.f, &b, 1);
        VirtQueueElement *e = pop_ok(&fx);
        g_assert_cmpuint(e->head, ==, head);
        virtqueue_push(&fx.vq, e, i);
        uint32_t id, len;
        g_assert_true(fake_vq_pop_used(&fx.f, &id, &len));
        g_assert_cmpuint(id, ==, head);
        g_assert_cmpuint(len, ==, i);
    }
    g_assert_cmpuint(fx.vq.last_avail_idx, ==, (uint16_t)(start + 3 * QSIZE));
    g_assert_cmpuint(fake_vq_used_idx(&fx.f), ==, (uint16_t)(start + 3 * QSIZE));
    /* A full ring across the wrap: size entries pending is fine. */
    for (unsigned i = 0; i < QSIZE; i++) {
        FakeBuf b = {fx.data + 64 * i, 64, true};
        fake_vq_add(&fx.f, &b, 1);
    }
    for (unsigned i = 0; i < QSIZE; i++) {
        virtqueue_push(&fx.vq, pop_ok(&fx), 0);
    }
    g_assert_true(virtqueue_empty(&fx.vq));
    fixture_teardown(&fx);
}

static void test_indirect(void)
{
    Fixture fx;
    fixture_setup(&fx, false);
    uint64_t table = fx.data + 0x1000;
    FakeBuf bufs[] = {
        {fx.data, 16, false},
        {fx.data + 0x100, 512, true},
        {fx.data + 0x400, 1, true},
    };
    uint16_t head = fake_vq_add_indirect(&fx.f, table, bufs, 3);
    VirtQueueElement *e = pop_ok(&fx);
    g_assert_cmpuint(e->head, ==, head);
    g_assert_cmpuint(e->out_num, ==, 1);
    g_assert_cmpuint(e->in_num, ==, 2);
    g_assert_cmpuint(e->in_len, ==, 513);
    virtqueue_push(&fx.vq, e, 513);

    /* §2.7.5.3.2: direct descriptors followed by one indirect descriptor. */
    uint64_t table2 = fx.data + 0x2000;
    fake_vq_write_table(&fx.f, table2, bufs + 1, 2);
    fake_vq_set_desc(&fx.f, QSIZE - 2, fx.data, 16, VIRTQ_DESC_F_NEXT, QSIZE - 1);
    fake_vq_set_desc(&fx.f, QSIZE - 1, table2, 32, VIRTQ_DESC_F_INDIRECT, 0);
    fake_vq_publish(&fx.f, QSIZE - 2);
    e = pop_ok(&fx);
    g_assert_cmpuint(e->head, ==, QSIZE - 2);
    g_assert_cmpuint(e->out_num, ==, 1);
    g_assert_cmpuint(e->in_num, ==, 2);
    virtqueue_element_free(e);
    fixture_teardown(&fx);
}

/* Chains given back newest first come out again in the same order, untouched. */
static void test_unpop(void)
{
    Fixture fx;
    fixture_setup(&fx, true);
    uint16_t heads[3];
    for (unsigned i = 0; i < 3; i++) {
        FakeBuf b = {fx.data + 0x100 * i, 64 + i, true};
        heads[i] = fake_vq_add(&fx.f, &b, 1);
    }
    VirtQueueElement *e[3];
    for (unsigned i = 0; i < 3; i++) {
        e[i] = pop_ok(&fx);
    }
    g_assert_true(virtqueue_empty(&fx.vq));
    /* Asking for a kick while holding them puts avail_event past them (§2.7.10). */
    virtqueue_set_notification(&fx.vq, true);
    g_assert_cmpuint(fake_vq_avail_event(&fx.f), ==, fx.f.avail_idx);
    virtqueue_unpop(&fx.vq, e[2]);
    virtqueue_unpop(&fx.vq, e[1]);
    g_assert_cmpuint(fx.vq.inflight, ==, 1);
    g_assert_false(virtqueue_empty(&fx.vq));
    for (unsigned i = 1; i < 3; i++) {
        e[i] = pop_ok(&fx);
        g_assert_cmpuint(e[i]->head, ==, heads[i]);
        g_assert_cmpuint(e[i]->in_len, ==, 64 + i);
    }
    for (unsigned i = 0; i < 3; i++) {
        virtqueue_push(&fx.vq, e[i], i);
    }
    g_assert_cmpuint(fx.vq.inflight, ==, 0);
    for (unsigned i = 0; i < 3; i++) {
        uint32_t id, len;
        g_assert_true(fake_vq_pop_used(&fx.f, &id, &len));
        g_assert_cmpuint(id, ==, heads[i]);
        g_assert_cmpuint(len, ==, i);
    }
    fixture_teardown(&fx);
}

/* Several chains published by one used index update, across the ring's end. */
static void test_push_many(void)
{
    Fixture fx;
    fixture_setup(&fx, false);
    uint16_t start = QSIZE - 2;
    fx.vq.last_avail_idx = fx.vq.used_idx = start;
    fake_vq_set_avail_idx(&fx.f, start);
    fx.f.last_used = start;
    uint16_t used_le = GUINT16_TO_LE(start);
    memcpy(hva(&fx, fx.f.used_gpa + 2), &used_le, 2);
    VirtQueueElement *e[4];
    uint16_t heads[4];
    uint32_t lens[4] = {100, 200, 300, 7};
    for (unsigned i = 0; i < 4; i++) {
        FakeBuf b = {fx.data + 0x400 * i, 0x400, true};
        heads[i] = fake_vq_add(&fx.f, &b, 1);
        e[i] = pop_ok(&fx);
    }
    virtqueue_push_many(&fx.vq, e, lens, 3);
    g_assert_cmpuint(fake_vq_used_idx(&fx.f), ==, (uint16_t)(start + 3));
    g_assert_cmpuint(fx.vq.inflight, ==, 1);
    virtqueue_push_many(&fx.vq, e + 3, lens + 3, 1);
    g_assert_cmpuint(fx.vq.inflight, ==, 0);
    for (unsigned i = 0; i < 4; i++) {
        uint32_t id, len;
        g_assert_true(fake_vq_pop_used(&fx.f, &id, &len));
        g_assert_cmpuint(id, ==, heads[i]);
        g_assert_cmpuint(len, ==, lens[i]);
    }
    fixture_teardown(&fx);
}

static void push_one(Fixture *fx)
{
    FakeBuf b = {fx->data, 8, true};
    fake_vq_add(&fx->f, &b, 1);
    virtqueue_push(&fx->vq, pop_ok(fx), 8);
    uint32_t id, len;
    g_assert_true(fake_vq_pop_used(&fx->f, &id, &len));
}

static void test_event_idx(void)
{
    Fixture fx;
    fixture_setup(&fx, true);
    /* Flags are ignored with EVENT_IDX (§2.7.7.2). */
    fake_vq_set_avail_flags(&fx.f, VIRTQ_AVAIL_F_NO_INTERRUPT);
    push_one(&fx);
    g_assert_true(virtqueue_should_notify(&fx.vq));  /* first one always */
    g_assert_false(virtqueue_should_notify(&fx.vq)); /* nothing new */
    /* The driver wants an interrupt once entry 4 is used (used idx goes 4 -> 5). */
    fake_vq_set_used_event(&fx.f, 4);
    push_one(&fx); /* idx 2 */
    g_assert_false(virtqueue_should_notify(&fx.vq));
    push_one(&fx); /* 3 */
    push_one(&fx); /* 4 */
    g_assert_false(virtqueue_should_notify(&fx.vq));
    push_one(&fx); /* 5: crosses used_event */
    g_assert_true(virtqueue_should_notify(&fx.vq));
    /* used_event behind: several entries at once still interrupt only when crossed. */
    fake_vq_set_used_event(&fx.f, 7);
    push_one(&fx);
    push_one(&fx);
    push_one(&fx); /* 8 */
    g_assert_true(virtqueue_should_notify(&fx.vq));
    /* avail_event tells the driver where to kick next. */
    virtqueue_set_notification(&fx.vq, true);
    g_assert_cmpuint(fake_vq_avail_event(&fx.f), ==, fx.vq.last_avail_idx);
    fixture_teardown(&fx);
}

static void test_no_interrupt(void)
{
    Fixture fx;
    fixture_setup(&fx, false);
    fake_vq_set_avail_flags(&fx.f, VIRTQ_AVAIL_F_NO_INTERRUPT);
    push_one(&fx);
    g_assert_false(virtqueue_should_notify(&fx.vq));
    fake_vq_set_avail_flags(&fx.f, 0);
    push_one(&fx);
    g_assert_true(virtqueue_should_notify(&fx.vq));
    g_assert_false(virtqueue_should_notify(&fx.vq));

    virtqueue_set_notification(&fx.vq, false);
    g_assert_cmpuint(fake_vq_used_flags(&fx.f), ==, VIRTQ_USED_F_NO_NOTIFY);
    virtqueue_set_notification(&fx.vq, true);
    g_assert_cmpuint(fake_vq_used_flags(&fx.f), ==, 0);
    fixture_teardown(&fx);
}

static void test_start_errors(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GuestMem) mem = guest_mem_new(MEM_SIZE, MEM_SIZE, &err);
    FakeVq f;
    fake_vq_init(&f, mem, RING_BASE, QSIZE);
    VirtQueue vq;
    struct {
        uint16_t size;
        uint64_t desc, avail, used;
        const char *msg;
    } cases[] = {
        {12, f.desc_gpa, f.avail_gpa, f.used_gpa, "power of two"},
        {32, f.desc_gpa, f.avail_gpa, f.used_gpa, "power of two"}, /* > max_size */
        {QSIZE, f.desc_gpa + 8, f.avail_gpa, f.used_gpa, "misaligned"},
        {QSIZE, f.desc_gpa, f.avail_gpa + 1, f.used_gpa, "misaligned"},
        {QSIZE, f.desc_gpa, f.avail_gpa, f.used_gpa + 2, "misaligned"},
        {QSIZE, MEM_SIZE - 64, f.avail_gpa, f.used_gpa, "outside guest RAM"},
        {QSIZE, f.desc_gpa, f.avail_gpa, MEM_SIZE - 8, "outside guest RAM"},
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(cases); i++) {
        virtqueue_init(&vq, QSIZE);
        vq.size = cases[i].size;
        vq.desc_gpa = cases[i].desc;
        vq.avail_gpa = cases[i].avail;
        vq.used_gpa = cases[i].used;
        g_assert_false(virtqueue_start(&vq, mem, false, &err));
        g_assert_nonnull(err);
        g_assert_nonnull(strstr(err->message, cases[i].msg));
        g_clear_error(&err);
        g_assert_false(vq.started);
    }
}

/* ---- malformed rings: pop fails with a message, never crashes ---- */

typedef struct {
    const char *name;
    void (*build)(Fixture *fx);
    const char *msg;
} BadCase;

static void bad_avail_ahead(Fixture *fx)
{
    fake_vq_set_avail_idx(&fx->f, QSIZE + 1);
}

static void bad_head(Fixture *fx)
{
    fake_vq_publish(&fx->f, QSIZE);
}

static void bad_next(Fixture *fx)
{
    fake_vq_set_desc(&fx->f, 0, fx->data, 8, VIRTQ_DESC_F_NEXT, QSIZE + 3);
    fake_vq_publish(&fx->f, 0);
}

static void bad_loop(Fixture *fx)
{
    fake_vq_set_desc(&fx->f, 0, fx->data, 8, VIRTQ_DESC_F_NEXT, 1);
    fake_vq_set_desc(&fx->f, 1, fx->data, 8, VIRTQ_DESC_F_NEXT, 0);
    fake_vq_publish(&fx->f, 0);
}

static void bad_outside_ram(Fixture *fx)
{
    fake_vq_set_desc(&fx->f, 0, MEM_SIZE + 0x1000, 8, 0, 0);
    fake_vq_publish(&fx->f, 0);
}

static void bad_straddles_end(Fixture *fx)
{
    fake_vq_set_desc(&fx->f, 0, MEM_SIZE - 4, 8, 0, 0);
    fake_vq_publish(&fx->f, 0);
}

static void bad_huge_len(Fixture *fx)
{
    fake_vq_set_desc(&fx->f, 0, fx->data, 0xffffffff, 0, 0);
    fake_vq_publish(&fx->f, 0);
}

static void bad_read_after_write(Fixture *fx)
{
    fake_vq_set_desc(&fx->f, 0, fx->data, 8, VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
    fake_vq_set_desc(&fx->f, 1, fx->data, 8, 0, 0);
    fake_vq_publish(&fx->f, 0);
}

static void bad_empty_chain(Fixture *fx)
{
    fake_vq_set_desc(&fx->f, 0, fx->data, 0, VIRTQ_DESC_F_NEXT, 1);
    fake_vq_set_desc(&fx->f, 1, fx->data, 0, VIRTQ_DESC_F_WRITE, 0);
    fake_vq_publish(&fx->f, 0);
}

static void indirect_with_len(Fixture *fx, uint32_t len, uint16_t flags)
{
    fake_vq_set_desc(&fx->f, 0, fx->data + 0x1000, len, VIRTQ_DESC_F_INDIRECT | flags, 1);
    fake_vq_publish(&fx->f, 0);
}

static void bad_indirect_zero(Fixture *fx)
{
    indirect_with_len(fx, 0, 0);
}

static void bad_indirect_unaligned_len(Fixture *fx)
{
    indirect_with_len(fx, 24, 0);
}

static void bad_indirect_too_long(Fixture *fx)
{
    indirect_with_len(fx, 16 * (VIRTQ_MAX_SIZE + 1), 0);
}

static void bad_indirect_and_next(Fixture *fx)
{
    fake_vq_set_desc(&fx->f, 1, fx->data, 8, 0, 0);
    indirect_with_len(fx, 16, VIRTQ_DESC_F_NEXT);
}

static void bad_indirect_outside_ram(Fixture *fx)
{
    fake_vq_set_desc(&fx->f, 0, MEM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
    fake_vq_publish(&fx->f, 0);
}

static void bad_indirect_nested(Fixture *fx)
{
    FakeBuf b = {fx->data, 8, false};
    uint16_t head = fake_vq_add_indirect(&fx->f, fx->data + 0x1000, &b, 1);
    /* Rewrite the table's single entry as another indirect descriptor. */
    uint16_t fl = GUINT16_TO_LE(VIRTQ_DESC_F_INDIRECT);
    uint32_t len = GUINT32_TO_LE(16);
    uint8_t *t = guest_mem_ptr(fx->mem, fx->data + 0x1000, 16);
    memcpy(t + 8, &len, 4);
    memcpy(t + 12, &fl, 2);
    (void)head;
}

static void indirect_table(Fixture *fx, uint16_t next0, uint16_t next1)
{
    uint8_t *t = guest_mem_ptr(fx->mem, fx->data + 0x1000, 32);
    for (unsigned i = 0; i < 2; i++) {
        uint64_t a = GUINT64_TO_LE(fx->data);
        uint32_t l = GUINT32_TO_LE(8);
        uint16_t fl = GUINT16_TO_LE(VIRTQ_DESC_F_NEXT);
        uint16_t nx = GUINT16_TO_LE(i ? next1 : next0);
        memcpy(t + 16 * i, &a, 8);
        memcpy(t + 16 * i + 8, &l, 4);
        memcpy(t + 16 * i + 12, &fl, 2);
        memcpy(t + 16 * i + 14, &nx, 2);
    }
    indirect_with_len(fx, 32, 0);
}

static void bad_indirect_loop(Fixture *fx)
{
    indirect_table(fx, 1, 0);
}

static void bad_indirect_next(Fixture *fx)
{
    indirect_table(fx, 1, 2);
}

static const BadCase bad_cases[] = {
    {"avail-ahead", bad_avail_ahead, "ahead"},
    {"head", bad_head, "head index"},
    {"next", bad_next, "next index"},
    {"loop", bad_loop, "loop"},
    {"outside-ram", bad_outside_ram, "outside guest RAM"},
    {"straddles-end", bad_straddles_end, "outside guest RAM"},
    {"huge-len", bad_huge_len, "outside guest RAM"},
    {"read-after-write", bad_read_after_write, "readable descriptor after a writable"},
    {"empty", bad_empty_chain, "no data"},
    {"indirect-zero", bad_indirect_zero, "multiple of 16"},
    {"indirect-len", bad_indirect_unaligned_len, "multiple of 16"},
    {"indirect-too-long", bad_indirect_too_long, "longer than"},
    {"indirect-and-next", bad_indirect_and_next, "INDIRECT and NEXT"},
    {"indirect-outside-ram", bad_indirect_outside_ram, "outside guest RAM"},
    {"indirect-nested", bad_indirect_nested, "nested"},
    {"indirect-loop", bad_indirect_loop, "loop"},
    {"indirect-next", bad_indirect_next, "out of range"},
};

static void test_bad(gconstpointer data)
{
    const BadCase *c = data;
    Fixture fx;
    fixture_setup(&fx, false);
    c->build(&fx);
    g_autoptr(GError) err = NULL;
    VirtQueueElement *e = NULL;
    g_assert_cmpint(virtqueue_pop(&fx.vq, &e, &err), ==, -1);
    g_assert_null(e);
    g_assert_nonnull(err);
    if (!strstr(err->message, c->msg)) {
        g_error("'%s' does not mention '%s'", err->message, c->msg);
    }
    g_assert_cmpuint(fx.vq.inflight, ==, 0);
    fixture_teardown(&fx);
}

/* ---- save/restore ---- */

static GByteArray *save_queue(const VirtQueue *vq)
{
    GByteArray *out = g_byte_array_new();
    virtqueue_save(vq, out);
    return out;
}

static bool load_queue(VirtQueue *vq, GuestMem *mem, const GByteArray *state, GError **error)
{
    StateIn in;
    state_in_init(&in, state->data, state->len);
    bool ok = virtqueue_load(vq, &in, mem, error);
    g_assert_cmpint(ok, ==, !in.bad);
    return ok && state_in_finish(&in, "queue", error);
}

static void test_save_load(void)
{
    Fixture fx;
    fixture_setup(&fx, true);
    fake_vq_set_used_event(&fx.f, 100);
    push_one(&fx);
    push_one(&fx);
    push_one(&fx);
    g_assert_true(virtqueue_should_notify(&fx.vq)); /* the first one always */
    g_autoptr(GByteArray) saved = save_queue(&fx.vq);

    VirtQueue vq;
    virtqueue_init(&vq, QSIZE);
    g_autoptr(GError) err = NULL;
    g_assert_true(load_queue(&vq, fx.mem, saved, &err));
    g_assert_no_error(err);
    g_assert_true(vq.started);
    g_assert_true(vq.event_idx);
    g_assert_cmpuint(vq.last_avail_idx, ==, 3);
    g_assert_cmpuint(vq.used_idx, ==, 3);
    g_assert_true(vq.desc_hva == fx.vq.desc_hva && vq.used_hva == fx.vq.used_hva);
    g_autoptr(GByteArray) again = save_queue(&vq);
    g_assert_cmpmem(saved->data, saved->len, again->data, again->len);

    /* The loaded queue takes the next chain and fills the next used slot. */
    FakeBuf b = {fx.data, 8, true};
    uint16_t head = fake_vq_add(&fx.f, &b, 1);
    VirtQueueElement *e = NULL;
    g_assert_cmpint(virtqueue_pop(&vq, &e, &err), ==, 1);
    g_assert_cmpuint(e->head, ==, head);
    virtqueue_push(&vq, e, 8);
    g_assert_cmpuint(fake_vq_used_idx(&fx.f), ==, 4);
    uint32_t id, len;
    g_assert_true(fake_vq_pop_used(&fx.f, &id, &len));
    g_assert_cmpuint(id, ==, head);
    /* The interrupt already sent came along: used_event 100 is not crossed, so none now. */
    g_assert_false(virtqueue_should_notify(&vq));
    fixture_teardown(&fx);
}

/* A queue the driver set up but that never started: the settings and nothing else. */
static void test_save_load_stopped(void)
{
    g_autoptr(GError) err = NULL;
    g_autoptr(GuestMem) mem = guest_mem_new(MEM_SIZE, MEM_SIZE, &err);
    VirtQueue a, b;
    virtqueue_init(&a, QSIZE);
    a.size = 8;
    a.desc_gpa = 0x1234; /* not checked until the queue starts */
    g_autoptr(GByteArray) saved = save_queue(&a);
    virtqueue_init(&b, QSIZE);
    g_assert_true(load_queue(&b, mem, saved, &err));
    g_assert_false(b.started);
    g_assert_cmpuint(b.size, ==, 8);
    g_assert_cmphex(b.desc_gpa, ==, 0x1234);
    g_assert_null(b.desc_hva);
}

/* The saved layout, written field by field, so each case can break one. */
typedef struct {
    uint16_t max_size, size;
    uint8_t enabled;
    uint64_t desc, avail, used;
    uint8_t started, event_idx;
    uint16_t last_avail, used_idx, signalled;
    uint8_t signalled_valid;
} QueueState;

static GByteArray *queue_state_bytes(const QueueState *s)
{
    GByteArray *out = g_byte_array_new();
    state_put_u16(out, s->max_size);
    state_put_u16(out, s->size);
    state_put_u8(out, s->enabled);
    state_put_u64(out, s->desc);
    state_put_u64(out, s->avail);
    state_put_u64(out, s->used);
    state_put_u8(out, s->started);
    state_put_u8(out, s->event_idx);
    state_put_u16(out, s->last_avail);
    state_put_u16(out, s->used_idx);
    state_put_u16(out, s->signalled);
    state_put_u8(out, s->signalled_valid);
    return out;
}

typedef struct {
    const char *name;
    void (*spoil)(QueueState *s);
    const char *msg;
} BadState;

static void spoil_max_size(QueueState *s)
{
    s->max_size = 2 * QSIZE;
}
static void spoil_size_pow2(QueueState *s)
{
    s->size = 12;
}
static void spoil_size_big(QueueState *s)
{
    s->size = 2 * QSIZE;
}
static void spoil_size_zero(QueueState *s)
{
    s->size = 0;
}
static void spoil_desc_outside(QueueState *s)
{
    s->desc = MEM_SIZE;
}
static void spoil_used_straddles(QueueState *s)
{
    s->used = MEM_SIZE - 8;
}
static void spoil_desc_misaligned(QueueState *s)
{
    s->desc += 8;
}
static void spoil_indices(QueueState *s)
{
    s->last_avail = (uint16_t)(s->used_idx + QSIZE + 1);
}
static void spoil_not_enabled(QueueState *s)
{
    s->enabled = 0;
}
static void spoil_bool(QueueState *s)
{
    s->event_idx = 2;
}
static void spoil_stopped_indices(QueueState *s)
{
    s->started = 0;
    s->event_idx = 0;
}

static const BadState bad_states[] = {
    {"max-size", spoil_max_size, "at most"},
    {"size-not-power-of-two", spoil_size_pow2, "power of two"},
    {"size-over-max", spoil_size_big, "power of two"},
    {"size-zero", spoil_size_zero, "power of two"},
    {"desc-outside-ram", spoil_desc_outside, "outside guest RAM"},
    {"used-past-ram", spoil_used_straddles, "outside guest RAM"},
    {"desc-misaligned", spoil_desc_misaligned, "misaligned"},
    {"indices", spoil_indices, "ahead"},
    {"not-enabled", spoil_not_enabled, "not enabled"},
    {"bool", spoil_bool, "truncated"},
    {"stopped-with-indices", spoil_stopped_indices, "never started"},
};

static void test_load_bad(gconstpointer data)
{
    const BadState *c = data;
    Fixture fx;
    fixture_setup(&fx, false);
    push_one(&fx);
    push_one(&fx);
    QueueState s = {
        .max_size = QSIZE,
        .size = QSIZE,
        .enabled = 1,
        .desc = fx.f.desc_gpa,
        .avail = fx.f.avail_gpa,
        .used = fx.f.used_gpa,
        .started = 1,
        .last_avail = 2,
        .used_idx = 2,
    };
    /* Unspoiled, the hand-built state is what the queue saves and it loads. */
    g_autoptr(GByteArray) good = queue_state_bytes(&s);
    g_autoptr(GByteArray) saved = save_queue(&fx.vq);
    g_assert_cmpmem(good->data, good->len, saved->data, saved->len);
    VirtQueue vq, before;
    virtqueue_init(&vq, QSIZE);
    g_autoptr(GError) err = NULL;
    g_assert_true(load_queue(&vq, fx.mem, good, &err));

    c->spoil(&s);
    g_autoptr(GByteArray) bad = queue_state_bytes(&s);
    virtqueue_init(&vq, QSIZE);
    before = vq;
    g_assert_false(load_queue(&vq, fx.mem, bad, &err));
    g_assert_nonnull(err);
    if (!strstr(err->message, c->msg)) {
        g_error("'%s' does not mention '%s'", err->message, c->msg);
    }
    g_assert_cmpmem(&vq, sizeof(vq), &before, sizeof(before));
    fixture_teardown(&fx);
}

static void test_load_truncated(void)
{
    Fixture fx;
    fixture_setup(&fx, false);
    g_autoptr(GByteArray) saved = save_queue(&fx.vq);
    for (guint len = 0; len < saved->len; len++) {
        VirtQueue vq;
        virtqueue_init(&vq, QSIZE);
        StateIn in;
        state_in_init(&in, saved->data, len);
        g_autoptr(GError) err = NULL;
        g_assert_false(virtqueue_load(&vq, &in, fx.mem, &err));
        g_assert_true(in.bad);
        g_assert_nonnull(err);
        g_assert_false(vq.started);
    }
    fixture_teardown(&fx);
}

static void test_iov(void)
{
    uint8_t a[3], b[5], out[8];
    struct iovec iov[] = {{a, sizeof(a)}, {b, sizeof(b)}};
    const uint8_t src[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    g_assert_cmpuint(iov_from_buf(iov, 2, 0, src, 8), ==, 8);
    g_assert_cmpuint(a[2], ==, 3);
    g_assert_cmpuint(b[0], ==, 4);
    g_assert_cmpuint(iov_to_buf(iov, 2, 2, out, 8), ==, 6);
    g_assert_cmpmem(out, 6, src + 2, 6);
    g_assert_cmpuint(iov_to_buf(iov, 2, 9, out, 8), ==, 0);
}

static bool page_dirty(const unsigned long *bm, uint64_t gpa)
{
    uint64_t p = gpa / GUEST_PAGE_SIZE;
    return bm[p / GUEST_BITS_PER_LONG] & (1UL << (p % GUEST_BITS_PER_LONG));
}

static unsigned dirty_count(const unsigned long *bm, size_t words)
{
    unsigned n = 0;
    for (size_t i = 0; i < words; i++) {
        n += (unsigned)__builtin_popcountl(bm[i]);
    }
    return n;
}

/* For migration: what the device writes (used ring, device-writable buffers) is marked dirty. */
static void test_dirty(void)
{
    Fixture fx;
    fixture_setup(&fx, true);
    size_t words = (guest_mem_pages(fx.mem) + GUEST_BITS_PER_LONG - 1) / GUEST_BITS_PER_LONG;
    g_autofree unsigned long *bm = g_new0(unsigned long, words);
    uint64_t base = (fx.data + GUEST_PAGE_SIZE - 1) & ~(uint64_t)(GUEST_PAGE_SIZE - 1);
    FakeBuf bufs[] = {
        {base, 100, false},                          /* read by the device */
        {base + 2 * GUEST_PAGE_SIZE - 16, 32, true}, /* written, across two pages */
        {base + 5 * GUEST_PAGE_SIZE + 8, 8, true},   /* written */
    };
    /* Not tracking: nothing is recorded. */
    fake_vq_add(&fx.f, bufs, G_N_ELEMENTS(bufs));
    virtqueue_push(&fx.vq, pop_ok(&fx), 40);
    guest_mem_dirty_start(fx.mem);
    guest_mem_dirty_stop(fx.mem);
    guest_mem_dirty_collect(fx.mem, bm);
    g_assert_cmpuint(dirty_count(bm, words), ==, 0);

    guest_mem_dirty_start(fx.mem);
    fake_vq_add(&fx.f, bufs, G_N_ELEMENTS(bufs)); /* the driver's writes: the vCPUs' (KVM's log) */
    VirtQueueElement *e = pop_ok(&fx);
    guest_mem_dirty_collect(fx.mem, bm);
    g_assert_cmpuint(dirty_count(bm, words), ==, 0); /* popping writes nothing */
    virtqueue_push(&fx.vq, e, 40);
    guest_mem_dirty_collect(fx.mem, bm);
    g_assert_true(page_dirty(bm, base + GUEST_PAGE_SIZE));
    g_assert_true(page_dirty(bm, base + 2 * GUEST_PAGE_SIZE));
    g_assert_true(page_dirty(bm, base + 5 * GUEST_PAGE_SIZE));
    g_assert_true(page_dirty(bm, fx.f.used_gpa));
    g_assert_false(page_dirty(bm, base));
    g_assert_cmpuint(dirty_count(bm, words), ==, 4);
    /* Collecting cleared the record; re-enabling notifications writes avail_event. */
    memset(bm, 0, words * sizeof(*bm));
    virtqueue_set_notification(&fx.vq, true);
    guest_mem_dirty_collect(fx.mem, bm);
    g_assert_true(page_dirty(bm, fx.f.used_gpa + 4 + 8 * QSIZE));
    g_assert_cmpuint(dirty_count(bm, words), ==, 1);
    guest_mem_dirty_stop(fx.mem);
    fixture_teardown(&fx);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    g_test_add_func("/virtio/queue/empty", test_empty);
    g_test_add_func("/virtio/queue/chain", test_chain);
    g_test_add_func("/virtio/queue/wrap", test_wrap);
    g_test_add_func("/virtio/queue/indirect", test_indirect);
    g_test_add_func("/virtio/queue/event-idx", test_event_idx);
    g_test_add_func("/virtio/queue/no-interrupt", test_no_interrupt);
    g_test_add_func("/virtio/queue/start-errors", test_start_errors);
    g_test_add_func("/virtio/queue/iov", test_iov);
    g_test_add_func("/virtio/queue/unpop", test_unpop);
    g_test_add_func("/virtio/queue/push-many", test_push_many);
    g_test_add_func("/virtio/queue/dirty", test_dirty);
    g_test_add_func("/virtio/queue/save-load", test_save_load);
    g_test_add_func("/virtio/queue/save-load-stopped", test_save_load_stopped);
    g_test_add_func("/virtio/queue/load-truncated", test_load_truncated);
    for (unsigned i = 0; i < G_N_ELEMENTS(bad_states); i++) {
        g_autofree char *path = g_strdup_printf("/virtio/queue/load-bad/%s", bad_states[i].name);
        g_test_add_data_func(path, &bad_states[i], test_load_bad);
    }
    for (unsigned i = 0; i < G_N_ELEMENTS(bad_cases); i++) {
        g_autofree char *path = g_strdup_printf("/virtio/queue/bad/%s", bad_cases[i].name);
        g_test_add_data_func(path, &bad_cases[i], test_bad);
    }
    return g_test_run();
}
