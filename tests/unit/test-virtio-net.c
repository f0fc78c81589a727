/* SPDX-License-Identifier: GPL-2.0-or-later */
#include "virtio-fake.h"
#include "virtio/net.h"

#include <string.h>

#define MEM_SIZE (16 * 1024 * 1024)
#define RX_RING  0x10000
#define TX_RING  0x20000
#define DATA     0x100000
#define QSIZE    256
#define WAIT_MS  5000
#define HDR_LEN  12
#define FILL     0xee /* guest bytes the device must not touch */

/* §5.1.3 feature bits, §5.1.4 status and §5.1.6 header values the test speaks in. */
#define F_CSUM       0
#define F_GUEST_CSUM 1
#define F_MAC        5
#define F_GUEST_TSO4 7
#define F_GUEST_TSO6 8
#define F_GUEST_ECN  9
#define F_HOST_TSO4  11
#define F_HOST_TSO6  12
#define F_HOST_ECN   13
#define F_MRG_RXBUF  15
#define F_STATUS     16
#define S_LINK_UP    1
#define NEEDS_CSUM   1
#define DATA_VALID   2
#define RSC_INFO     4
#define GSO_TCPV4    1
#define GSO_TCPV6    4
#define GSO_ECN      0x80

#define BIT(n)    (1ULL << (n))
#define VERSION_1 BIT(VIRTIO_F_VERSION_1)

typedef NetVnetHdr Hdr;

static unsigned warnings;

/* ---- a fake backend: records what the device does to it ---- */

typedef struct {
    NetBackend nb;
    GMainContext *ctx;
    bool attached_on_owner; /* attach ran on the thread that owns ctx */
    GMutex lock;
    GPtrArray *sent; /* GByteArray per frame */
    unsigned rx_ready;
    unsigned offload_calls;
    NetOffloads offloads;
    bool fail_send;
    bool *freed;
    VirtioDevice *pause_on_send; /* pause it once the current dispatch ends */
    bool paused;
} FakeNet;

static gboolean fake_pause(gpointer opaque)
{
    FakeNet *fn = opaque;
    virtio_device_pause(fn->pause_on_send);
    __atomic_store_n(&fn->paused, true, __ATOMIC_RELEASE);
    return G_SOURCE_REMOVE;
}

static bool fake_attach(NetBackend *nb, GMainContext *ctx, GError **error)
{
    FakeNet *fn = (FakeNet *)nb;
    fn->ctx = ctx;
    fn->attached_on_owner = g_main_context_is_owner(ctx);
    return true;
}

static bool fake_send(NetBackend *nb, const struct iovec *iov, unsigned iovcnt)
{
    FakeNet *fn = (FakeNet *)nb;
    GByteArray *frame = g_byte_array_new();
    for (unsigned i = 0; i < iovcnt; i++) {
        g_byte_array_append(frame, iov[i].iov_base, (guint)iov[i].iov_len);
    }
    g_mutex_lock(&fn->lock);
    g_ptr_array_add(fn->sent, frame);
    g_mutex_unlock(&fn->lock);
    if (fn->pause_on_send && !fn->paused) {
        /* What virtio_device_pause from another thread queues: a high-priority call. */
        GSource *src = g_idle_source_new();
        g_source_set_priority(src, G_PRIORITY_HIGH);
        g_source_set_callback(src, fake_pause, fn, NULL);
        g_source_attach(src, fn->ctx);
        g_source_unref(src);
    }
    return !fn->fail_send;
}

static void fake_rx_ready(NetBackend *nb)
{
    __atomic_add_fetch(&((FakeNet *)nb)->rx_ready, 1, __ATOMIC_RELAXED);
}

static void fake_set_offloads(NetBackend *nb, const NetOffloads *o)
{
    FakeNet *fn = (FakeNet *)nb;
    fn->offloads = *o;
    fn->offload_calls++;
}

static void fake_free(NetBackend *nb)
{
    FakeNet *fn = (FakeNet *)nb;
    if (fn->freed) {
        *fn->freed = true;
    }
    g_ptr_array_unref(fn->sent);
    g_mutex_clear(&fn->lock);
    g_free(fn->nb.id);
    g_free(fn);
}

static const NetBackendOps fake_net_ops = {
    .type = "fake",
    .attach = fake_attach,
    .send = fake_send,
    .rx_ready = fake_rx_ready,
    .set_offloads = fake_set_offloads,
    .free = fake_free,
};

static FakeNet *fake_net_new(bool vnet_hdr)
{
    FakeNet *fn = g_new0(FakeNet, 1);
    fn->nb.ops = &fake_net_ops;
    fn->nb.id = g_strdup("n0");
    fn->nb.vnet_hdr = vnet_hdr;
    g_mutex_init(&fn->lock);
    fn->sent = g_ptr_array_new_with_free_func((GDestroyNotify)g_byte_array_unref);
    return fn;
}

static unsigned sent_count(FakeNet *fn)
{
    g_mutex_lock(&fn->lock);
    unsigned n = fn->sent->len;
    g_mutex_unlock(&fn->lock);
    return n;
}

static GByteArray *sent_frame(FakeNet *fn, unsigned i)
{
    g_mutex_lock(&fn->lock);
    g_assert_cmpuint(i, <, fn->sent->len);
    GByteArray *b = g_ptr_array_index(fn->sent, i);
    g_mutex_unlock(&fn->lock);
    return b;
}

static unsigned rx_ready_count(FakeNet *fn)
{
    return __atomic_load_n(&fn->rx_ready, __ATOMIC_RELAXED);
}

/* ---- fixture ---- */

typedef struct {
    GuestMem *mem;
    FakeNet *fn;
    VirtioDevice *vdev;
    FakeTransport t;
    FakeVq rx, tx;
} Fixture;

static const uint8_t cfg_mac[6] = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xef};

static void fixture_open_mac(Fixture *fx, bool vnet_hdr, uint16_t rx_size, const uint8_t mac[6])
{
    memset(fx, 0, sizeof(*fx));
    g_autoptr(GError) err = NULL;
    fx->mem = guest_mem_new(MEM_SIZE, MEM_SIZE, &err);
    g_assert_no_error(err);
    fx->fn = fake_net_new(vnet_hdr);
    VirtioNetConfig cfg = {.id = "net0"};
    memcpy(cfg.mac, mac, 6);
    fx->vdev = virtio_net_new(&cfg, &fx->fn->nb, fx->mem, &err);
    g_assert_no_error(err);
    g_assert_nonnull(fx->vdev);
    fake_transport_init(&fx->t, fx->vdev);
    fake_vq_init(&fx->rx, fx->mem, RX_RING, rx_size);
    fake_vq_init(&fx->tx, fx->mem, TX_RING, QSIZE);
}

static void fixture_open(Fixture *fx, bool vnet_hdr, uint16_t rx_size)
{
    fixture_open_mac(fx, vnet_hdr, rx_size, cfg_mac);
}

static uint8_t fixture_try_start(Fixture *fx, uint64_t features)
{
    fake_vq_init(&fx->rx, fx->mem, RX_RING, fx->rx.size);
    fake_vq_init(&fx->tx, fx->mem, TX_RING, QSIZE);
    const FakeVq *fqs[] = {&fx->rx, &fx->tx};
    return fake_virtio_start_queues(fx->vdev, fqs, 2, features);
}

static void fixture_start(Fixture *fx, uint64_t features)
{
    uint8_t s = fixture_try_start(fx, features);
    g_assert_cmphex(
        s & (VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_NEEDS_RESET), ==,
        VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FEATURES_OK);
}

static void fixture_close(Fixture *fx)
{
    virtio_device_free(fx->vdev);
    fake_transport_destroy(&fx->t);
    guest_mem_free(fx->mem);
}

static uint64_t host_features(VirtioDevice *vdev)
{
    return virtio_get_host_features(vdev, 0) | (uint64_t)virtio_get_host_features(vdev, 1) << 32;
}

static void *gp(Fixture *fx, uint64_t gpa, size_t len)
{
    void *p = guest_mem_ptr(fx->mem, gpa, len);
    g_assert_nonnull(p);
    return p;
}

static VirtioNetStats stats(Fixture *fx)
{
    VirtioNetStats s;
    virtio_net_get_stats(fx->vdev, &s);
    return s;
}

static void pattern(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(i * 13 + i / 251 + seed * 7 + 1);
    }
}

static Hdr hdr_make(uint8_t flags, uint8_t gso_type, uint16_t num_buffers)
{
    return (Hdr){.flags = flags,
                 .gso_type = gso_type,
                 .hdr_len = GUINT16_TO_LE(54),
                 .gso_size = GUINT16_TO_LE(1448),
                 .csum_start = GUINT16_TO_LE(34),
                 .csum_offset = GUINT16_TO_LE(16),
                 .num_buffers = GUINT16_TO_LE(num_buffers)};
}

static bool wait_until(bool (*cond)(Fixture *fx, unsigned arg), Fixture *fx, unsigned arg)
{
    gint64 deadline = g_get_monotonic_time() + WAIT_MS * 1000;
    while (!cond(fx, arg)) {
        if (g_get_monotonic_time() > deadline) {
            return false;
        }
        g_usleep(1000);
    }
    return true;
}

static bool needs_reset(Fixture *fx, unsigned unused)
{
    return virtio_get_status(fx->vdev) & VIRTIO_STATUS_NEEDS_RESET;
}

/* virtio_error sets NEEDS_RESET first, then interrupts: wait for the interrupt. */
static bool config_irqs_reach(Fixture *fx, unsigned n)
{
    return fake_transport_config_irqs(&fx->t) >= n;
}

static bool backend_paused(Fixture *fx, unsigned unused)
{
    return __atomic_load_n(&fx->fn->paused, __ATOMIC_ACQUIRE);
}

static bool rx_ready_reaches(Fixture *fx, unsigned n)
{
    return rx_ready_count(fx->fn) >= n;
}

/* ---- the driver's side ---- */

/*
 * A transmit chain at gpa: hdr and frame laid out back to back, split into
 * three descriptors so that the header straddles the first two (§2.6.4).
 */
static uint16_t add_tx(Fixture *fx, uint64_t gpa, const Hdr *hdr, const uint8_t *frame, size_t len)
{
    uint8_t *p = gp(fx, gpa, HDR_LEN + len);
    memcpy(p, hdr, HDR_LEN);
    memcpy(p + HDR_LEN, frame, len);
    uint32_t cut = (uint32_t)(7 + len / 2);
    FakeBuf bufs[] = {
        {gpa, 5, false},
        {gpa + 5, cut, false},
        {gpa + 5 + cut, (uint32_t)(HDR_LEN + len - 5 - cut), false},
    };
    return fake_vq_add(&fx->tx, bufs, bufs[2].len ? 3 : 2);
}

static void tx_kick_wait(Fixture *fx, unsigned n)
{
    virtio_kick(fx->vdev, 1);
    g_assert_true(fake_vq_wait_used(&fx->tx, &fx->t, n, WAIT_MS));
}

/* One writable receive chain of len bytes at gpa, filled with FILL. */
static uint16_t add_rx(Fixture *fx, uint64_t gpa, uint32_t len)
{
    memset(gp(fx, gpa, len), FILL, len);
    FakeBuf b = {gpa, len, true};
    return fake_vq_add(&fx->rx, &b, 1);
}

typedef struct {
    Fixture *fx;
    const struct iovec *iov;
    unsigned n;
    bool ret;
} RxCall;

static void rx_on_thread(void *opaque)
{
    RxCall *c = opaque;
    NetBackend *nb = &c->fx->fn->nb;
    c->ret = nb->receive(nb->receive_opaque, c->iov, c->n);
}

/* Delivers a frame as a backend does, on the device's IoThread; hdr only for vnet_hdr. */
static bool inject(Fixture *fx, const Hdr *hdr, const uint8_t *frame, size_t len)
{
    struct iovec iov[3];
    unsigned n = 0;
    if (hdr) {
        iov[n++] = (struct iovec){(void *)hdr, HDR_LEN};
    }
    size_t cut = len / 3;
    iov[n++] = (struct iovec){(void *)frame, cut};
    iov[n++] = (struct iovec){(void *)(frame + cut), len - cut};
    RxCall c = {.fx = fx, .iov = iov, .n = n};
    iothread_run_sync(fx->vdev->iothread, rx_on_thread, &c);
    return c.ret;
}

static void expect_used(FakeVq *f, uint16_t head, uint32_t len)
{
    uint32_t id, used;
    g_assert_true(fake_vq_pop_used(f, &id, &used));
    g_assert_cmpuint(id, ==, head);
    g_assert_cmpuint(used, ==, len);
}

static void expect_no_used(FakeVq *f)
{
    g_assert_cmpuint(fake_vq_used_idx(f), ==, f->last_used);
}

/* The header the device wrote at gpa. */
static Hdr rx_hdr(Fixture *fx, uint64_t gpa)
{
    Hdr h;
    memcpy(&h, gp(fx, gpa, HDR_LEN), HDR_LEN);
    return h;
}

/* ---- tests ---- */

static const uint64_t base_features = VERSION_1 | BIT(VIRTIO_F_INDIRECT_DESC) |
                                      BIT(VIRTIO_F_EVENT_IDX) | BIT(F_MAC) | BIT(F_STATUS) |
                                      BIT(F_MRG_RXBUF);
static const uint64_t offload_features = BIT(F_CSUM) | BIT(F_GUEST_CSUM) | BIT(F_HOST_TSO4) |
                                         BIT(F_HOST_TSO6) | BIT(F_HOST_ECN) | BIT(F_GUEST_TSO4) |
                                         BIT(F_GUEST_TSO6) | BIT(F_GUEST_ECN);

static void test_features_bare(void)
{
    Fixture fx;
    fixture_open(&fx, false, QSIZE);
    VirtioDevice *v = fx.vdev;
    g_assert_cmphex(host_features(v), ==, base_features);
    g_assert_cmpuint(v->device_id, ==, VIRTIO_ID_NET);
    g_assert_cmpuint(v->nqueues, ==, 2);
    g_assert_cmpuint(virtio_queue(v, 0)->max_size, ==, QSIZE);
    g_assert_cmpuint(virtio_queue(v, 1)->max_size, ==, QSIZE);
    g_assert_null(virtio_queue(v, 2));
    /* Attached on the device's IoThread. */
    g_assert_true(fx.fn->ctx == iothread_context(v->iothread));
    g_assert_true(fx.fn->attached_on_owner);
    /* An offload the device did not offer: FEATURES_OK does not stick. */
    g_assert_false(fixture_try_start(&fx, base_features | BIT(F_CSUM)) & VIRTIO_STATUS_FEATURES_OK);
    fixture_start(&fx, base_features);
    /* A bare backend has no offloads to set. */
    g_assert_cmpuint(fx.fn->offload_calls, ==, 0);
    fixture_close(&fx);
}

static void test_features_vnet_hdr(void)
{
    Fixture fx;
    fixture_open(&fx, true, QSIZE);
    g_assert_cmphex(host_features(fx.vdev), ==, base_features | offload_features);
    fixture_start(&fx, VERSION_1 | BIT(F_GUEST_CSUM) | BIT(F_GUEST_TSO4) | BIT(F_GUEST_ECN) |
                           BIT(F_CSUM) | BIT(F_HOST_TSO6));
    g_assert_cmpuint(fx.fn->offload_calls, ==, 1);
    g_assert_true(fx.fn->offloads.csum);
    g_assert_true(fx.fn->offloads.tso4);
    g_assert_false(fx.fn->offloads.tso6);
    g_assert_true(fx.fn->offloads.ecn);
    g_assert_false(fx.fn->offloads.ufo);
    /* A driver that skips GUEST_CSUM gets no segmentation either (§5.1.3.1). */
    fixture_start(&fx, VERSION_1 | BIT(F_GUEST_TSO4) | BIT(F_GUEST_TSO6) | BIT(F_GUEST_ECN));
    g_assert_cmpuint(fx.fn->offload_calls, ==, 2);
    g_assert_false(fx.fn->offloads.csum);
    g_assert_false(fx.fn->offloads.tso4);
    g_assert_false(fx.fn->offloads.tso6);
    g_assert_false(fx.fn->offloads.ecn);
    fixture_start(&fx, VERSION_1);
    g_assert_cmpuint(fx.fn->offload_calls, ==, 3);
    g_assert_false(fx.fn->offloads.csum);
    fixture_close(&fx);
}

static void test_config(void)
{
    Fixture fx;
    fixture_open(&fx, false, QSIZE);
    VirtioDevice *v = fx.vdev;
    g_assert_cmpuint(v->config_size, ==, 8);
    uint8_t mac[6];
    virtio_config_read(v, 0, mac, 6);
    g_assert_cmpmem(mac, 6, cfg_mac, 6);
    g_assert_cmpuint(fake_config_read(v, 5, 1), ==, 0xef);
    g_assert_cmpuint(fake_config_read(v, 6, 2), ==, S_LINK_UP);
    /* Past the end reads zeroes; writes change nothing. */
    g_assert_cmpuint(fake_config_read(v, 8, 2), ==, 0);
    uint8_t junk[6] = {1, 2, 3, 4, 5, 6};
    virtio_config_write(v, 0, junk, 6);
    virtio_config_read(v, 0, mac, 6);
    g_assert_cmpmem(mac, 6, cfg_mac, 6);
    fixture_close(&fx);
}

static void expect_mac_error(const char *text, const char *msg)
{
    g_autoptr(GError) err = NULL;
    uint8_t mac[6] = {9, 9, 9, 9, 9, 9};
    const uint8_t untouched[6] = {9, 9, 9, 9, 9, 9};
    g_assert_false(virtio_net_parse_mac(text, mac, &err));
    g_assert_nonnull(err);
    g_autofree char *quoted = g_strdup_printf("'%s'", text);
    if (!strstr(err->message, quoted) || !strstr(err->message, msg)) {
        g_error("'%s' does not mention %s and '%s'", err->message, quoted, msg);
    }
    g_assert_cmpmem(mac, 6, untouched, 6);
}

static void test_mac(void)
{
    g_autoptr(GError) err = NULL;
    uint8_t mac[6];
    g_assert_true(virtio_net_parse_mac("52:54:00:12:34:56", mac, &err));
    g_assert_no_error(err);
    const uint8_t want[6] = {0x52, 0x54, 0x00, 0x12, 0x34, 0x56};
    g_assert_cmpmem(mac, 6, want, 6);
    g_assert_true(virtio_net_parse_mac("02:aB:Cd:eF:00:fe", mac, &err));
    const uint8_t want2[6] = {0x02, 0xab, 0xcd, 0xef, 0x00, 0xfe};
    g_assert_cmpmem(mac, 6, want2, 6);

    const char *malformed[] = {
        "",
        "52:54:00:12:34",
        "52:54:00:12:34:56:78",
        "52:54:00:12:34:56:",
        "52-54-00-12-34-56",
        "5:54:00:12:34:56",
        "52:54:00:12:34:5",
        "52:54:00:12:34:5g",
        "52:54:00:12:34:56 ",
        " 52:54:00:12:34:56",
        "525400123456",
        "52:54:00:12:3456",
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(malformed); i++) {
        expect_mac_error(malformed[i], "six hex bytes");
    }
    expect_mac_error("01:00:5e:00:00:01", "multicast");
    expect_mac_error("ff:ff:ff:ff:ff:ff", "multicast");
    expect_mac_error("53:54:00:12:34:56", "multicast");
    expect_mac_error("00:00:00:00:00:00", "zero");

    /* QEMU's numbering, carrying past :ff instead of repeating addresses. */
    const struct {
        unsigned index;
        uint8_t mac[6];
    } defaults[] = {
        {0, {0x52, 0x54, 0x00, 0x12, 0x34, 0x56}},    {1, {0x52, 0x54, 0x00, 0x12, 0x34, 0x57}},
        {3, {0x52, 0x54, 0x00, 0x12, 0x34, 0x59}},    {0xa9, {0x52, 0x54, 0x00, 0x12, 0x34, 0xff}},
        {0xaa, {0x52, 0x54, 0x00, 0x12, 0x35, 0x00}},
    };
    for (unsigned i = 0; i < G_N_ELEMENTS(defaults); i++) {
        virtio_net_default_mac(defaults[i].index, mac);
        g_assert_cmpmem(mac, 6, defaults[i].mac, 6);
    }
}

/* A backend serves one NIC; a failed virtio_net_new leaves it to the caller. */
static void test_backend_busy(void)
{
    Fixture fx;
    fixture_open(&fx, false, QSIZE);
    bool freed = false;
    fx.fn->freed = &freed;
    g_autoptr(GError) err = NULL;
    VirtioNetConfig cfg = {.id = "net1"};
    virtio_net_default_mac(1, cfg.mac);
    g_assert_null(virtio_net_new(&cfg, &fx.fn->nb, fx.mem, &err));
    g_assert_nonnull(err);
    g_assert_nonnull(strstr(err->message, "'n0' is already used"));
    g_assert_false(freed);
    /* The first device still has it, and frees it. */
    fixture_start(&fx, base_features);
    uint8_t frame[60];
    pattern(frame, sizeof(frame), 1);
    Hdr h = hdr_make(0, 0, 0);
    add_tx(&fx, DATA, &h, frame, sizeof(frame));
    tx_kick_wait(&fx, 1);
    g_assert_cmpuint(sent_count(fx.fn), ==, 1);
    fixture_close(&fx);
    g_assert_true(freed);
}

/* A bare backend gets the frame without the header; unusable frames are dropped, not errors. */
static void test_tx_bare(void)
{
    Fixture fx;
    fixture_open(&fx, false, QSIZE);
    fixture_start(&fx, base_features);
    uint8_t frame[1514];
    pattern(frame, sizeof(frame), 2);
    Hdr plain = hdr_make(0, 0, 0);
    Hdr csum = hdr_make(NEEDS_CSUM, 0, 0);
    Hdr gso = hdr_make(NEEDS_CSUM, GSO_TCPV4, 0);
    uint16_t heads[] = {
        add_tx(&fx, DATA, &plain, frame, 60),
        add_tx(&fx, DATA + 0x1000, &csum, frame, 60),  /* CSUM not negotiated */
        add_tx(&fx, DATA + 0x2000, &gso, frame, 60),   /* HOST_TSO4 not offered */
        add_tx(&fx, DATA + 0x3000, &plain, frame, 13), /* runt */
        add_tx(&fx, DATA + 0x4000, &plain, frame, 0),  /* header only */
        add_tx(&fx, DATA + 0x5000, &plain, frame, sizeof(frame)),
    };
    tx_kick_wait(&fx, G_N_ELEMENTS(heads));
    for (unsigned i = 0; i < G_N_ELEMENTS(heads); i++) {
        expect_used(&fx.tx, heads[i], 0);
    }
    g_assert_cmpuint(sent_count(fx.fn), ==, 2);
    GByteArray *f = sent_frame(fx.fn, 0);
    g_assert_cmpmem(f->data, f->len, frame, 60);
    f = sent_frame(fx.fn, 1);
    g_assert_cmpmem(f->data, f->len, frame, sizeof(frame));
    VirtioNetStats s = stats(&fx);
    g_assert_cmpuint(s.tx_frames, ==, 2);
    g_assert_cmpuint(s.tx_bytes, ==, 60 + sizeof(frame));
    g_assert_cmpuint(s.tx_dropped, ==, 4);
    g_assert_false(virtio_get_status(fx.vdev) & VIRTIO_STATUS_NEEDS_RESET);

    /* The backend refusing a frame is a drop too. */
    fx.fn->fail_send = true;
    uint16_t head = add_tx(&fx, DATA, &plain, frame, 100);
    tx_kick_wait(&fx, 1);
    expect_used(&fx.tx, head, 0);
    g_assert_cmpuint(stats(&fx).tx_dropped, ==, 5);
    fixture_close(&fx);
}

/* A vnet_hdr backend gets header and frame; num_buffers is zeroed (§5.1.6.2). */
static void test_tx_vnet_hdr(void)
{
    Fixture fx;
    fixture_open(&fx, true, QSIZE);
    fixture_start(&fx, VERSION_1 | BIT(F_CSUM) | BIT(F_HOST_TSO4));
    uint8_t frame[3000];
    pattern(frame, sizeof(frame), 3);
    Hdr tso = hdr_make(NEEDS_CSUM, GSO_TCPV4, 0x1234);
    Hdr tso6 = hdr_make(NEEDS_CSUM, GSO_TCPV6, 0);          /* HOST_TSO6 not negotiated */
    Hdr ecn = hdr_make(NEEDS_CSUM, GSO_TCPV4 | GSO_ECN, 0); /* HOST_ECN not negotiated */
    Hdr ufo = hdr_make(NEEDS_CSUM, 3, 0);                   /* GSO_UDP never offered */
    Hdr plain = hdr_make(DATA_VALID | 0x40, 0, 0);          /* unknown flags: ignored */
    uint16_t heads[] = {
        add_tx(&fx, DATA, &tso, frame, sizeof(frame)),
        add_tx(&fx, DATA + 0x1000, &tso6, frame, 100),
        add_tx(&fx, DATA + 0x2000, &ecn, frame, 100),
        add_tx(&fx, DATA + 0x3000, &ufo, frame, 100),
        add_tx(&fx, DATA + 0x4000, &plain, frame, 100),
    };
    tx_kick_wait(&fx, G_N_ELEMENTS(heads));
    for (unsigned i = 0; i < G_N_ELEMENTS(heads); i++) {
        expect_used(&fx.tx, heads[i], 0);
    }
    g_assert_cmpuint(sent_count(fx.fn), ==, 2);
    GByteArray *f = sent_frame(fx.fn, 0);
    g_assert_cmpuint(f->len, ==, HDR_LEN + sizeof(frame));
    Hdr want = tso;
    want.num_buffers = 0;
    g_assert_cmpmem(f->data, HDR_LEN, &want, HDR_LEN);
    g_assert_cmpmem(f->data + HDR_LEN, sizeof(frame), frame, sizeof(frame));
    f = sent_frame(fx.fn, 1);
    g_assert_cmpmem(f->data, HDR_LEN, &plain, HDR_LEN);
    g_assert_cmpmem(f->data + HDR_LEN, f->len - HDR_LEN, frame, 100);
    g_assert_cmpuint(stats(&fx).tx_dropped, ==, 3);
    fixture_close(&fx);
}

/* Malformed transmit chains stop the device (NEEDS_RESET); a reset brings it back. */
static void test_tx_malformed(void)
{
    Fixture fx;
    fixture_open(&fx, false, QSIZE);
    fixture_start(&fx, base_features);
    unsigned warned = warnings;
    unsigned config_irqs = fake_transport_config_irqs(&fx.t);
    uint8_t frame[100];
    pattern(frame, sizeof(frame), 4);
    Hdr h = hdr_make(0, 0, 0);
    /* A good frame, then one with a device-writable buffer in it. */
    uint16_t good = add_tx(&fx, DATA, &h, frame, sizeof(frame));
    memcpy(gp(&fx, DATA + 0x1000, HDR_LEN + 60), &h, HDR_LEN);
    FakeBuf bad[] = {{DATA + 0x1000, HDR_LEN + 60, false}, {DATA + 0x2000, 64, true}};
    fake_vq_add(&fx.tx, bad, 2);
    virtio_kick(fx.vdev, 1);
    g_assert_true(wait_until(config_irqs_reach, &fx, config_irqs + 1));
    g_assert_true(needs_reset(&fx, 0));
    g_assert_cmpuint(fake_transport_config_irqs(&fx.t), ==, config_irqs + 1);
    g_assert_cmpuint(warnings, ==, warned + 1);
    /* What came before the bad chain went out and was returned. */
    g_assert_true(fake_vq_wait_used(&fx.tx, &fx.t, 1, WAIT_MS));
    expect_used(&fx.tx, good, 0);
    expect_no_used(&fx.tx);
    g_assert_cmpuint(sent_count(fx.fn), ==, 1);

    /* Reset and start again: it works; a chain shorter than the header stops it again. */
    fixture_start(&fx, base_features);
    uint16_t head = add_tx(&fx, DATA, &h, frame, sizeof(frame));
    tx_kick_wait(&fx, 1);
    expect_used(&fx.tx, head, 0);
    g_assert_cmpuint(sent_count(fx.fn), ==, 2);
    FakeBuf shorty = {DATA, HDR_LEN - 1, false};
    fake_vq_add(&fx.tx, &shorty, 1);
    virtio_kick(fx.vdev, 1);
    g_assert_true(wait_until(config_irqs_reach, &fx, config_irqs + 2));
    g_assert_true(needs_reset(&fx, 0));
    g_assert_cmpuint(fake_transport_config_irqs(&fx.t), ==, config_irqs + 2);
    expect_no_used(&fx.tx);

    fixture_start(&fx, base_features);
    head = add_tx(&fx, DATA, &h, frame, sizeof(frame));
    tx_kick_wait(&fx, 1);
    expect_used(&fx.tx, head, 0);
    g_assert_cmpuint(sent_count(fx.fn), ==, 3);
    fixture_close(&fx);
}

/* A full ring in one kick: sent in bursts, in order, none lost between them. */
static void test_tx_burst(void)
{
    Fixture fx;
    fixture_open(&fx, false, QSIZE);
    fixture_start(&fx, base_features);
    Hdr h = hdr_make(0, 0, 0);
    uint16_t heads[QSIZE];
    for (unsigned i = 0; i < QSIZE; i++) {
        /* One descriptor each, so that a full ring fits in the descriptor table. */
        uint64_t gpa = DATA + 0x100 * i;
        uint8_t *p = gp(&fx, gpa, HDR_LEN + 64);
        memcpy(p, &h, HDR_LEN);
        pattern(p + HDR_LEN, 64, i);
        FakeBuf b = {gpa, HDR_LEN + 64, false};
        heads[i] = fake_vq_add(&fx.tx, &b, 1);
    }
    tx_kick_wait(&fx, QSIZE);
    g_assert_cmpuint(sent_count(fx.fn), ==, QSIZE);
    for (unsigned i = 0; i < QSIZE; i++) {
        expect_used(&fx.tx, heads[i], 0);
        uint8_t frame[64];
        pattern(frame, sizeof(frame), i);
        GByteArray *f = sent_frame(fx.fn, i);
        g_assert_cmpmem(f->data, f->len, frame, sizeof(frame));
    }
    /* And the queue still takes kicks afterwards. */
    uint8_t frame[64];
    pattern(frame, sizeof(frame), 999);
    uint16_t head = add_tx(&fx, DATA, &h, frame, sizeof(frame));
    tx_kick_wait(&fx, 1);
    expect_used(&fx.tx, head, 0);
    g_assert_cmpuint(stats(&fx).tx_frames, ==, QSIZE + 1);
    fixture_close(&fx);
}

/* A pause between two bursts: the rest waits for resume, nothing is written meanwhile. */
static void test_tx_pause(void)
{
    Fixture fx;
    fixture_open(&fx, false, QSIZE);
    fixture_start(&fx, base_features);
    Hdr h = hdr_make(0, 0, 0);
    for (unsigned i = 0; i < QSIZE; i++) {
        uint64_t gpa = DATA + 0x100 * i;
        uint8_t *p = gp(&fx, gpa, HDR_LEN + 64);
        memcpy(p, &h, HDR_LEN);
        pattern(p + HDR_LEN, 64, i);
        FakeBuf b = {gpa, HDR_LEN + 64, false};
        fake_vq_add(&fx.tx, &b, 1);
    }
    fx.fn->pause_on_send = fx.vdev;
    virtio_kick(fx.vdev, 1);
    g_assert_true(wait_until(backend_paused, &fx, 0));
    unsigned sent = sent_count(fx.fn);
    g_assert_cmpuint(sent, >, 0);
    g_assert_cmpuint(sent, <, QSIZE);
    g_assert_false(fake_vq_wait_used(&fx.tx, &fx.t, sent + 1, 200));
    g_assert_cmpuint(fake_vq_used_idx(&fx.tx), ==, sent);
    g_assert_cmpuint(sent_count(fx.fn), ==, sent);
    virtio_device_resume(fx.vdev);
    g_assert_true(fake_vq_wait_used(&fx.tx, &fx.t, QSIZE, WAIT_MS));
    g_assert_cmpuint(sent_count(fx.fn), ==, QSIZE);
    for (unsigned i = 0; i < QSIZE; i++) {
        uint8_t frame[64];
        pattern(frame, sizeof(frame), i);
        GByteArray *f = sent_frame(fx.fn, i);
        g_assert_cmpmem(f->data, f->len, frame, sizeof(frame));
    }
    fixture_close(&fx);
}

/* Without MRG_RXBUF: one chain per frame, num_buffers 1, a frame too big for it dropped. */
static void test_rx_single(void)
{
    Fixture fx;
    fixture_open(&fx, false, QSIZE);
    fixture_start(&fx, VERSION_1 | BIT(VIRTIO_F_EVENT_IDX));
    uint64_t a = DATA, b = DATA + 0x1000;
    memset(gp(&fx, a, 100), FILL, 100);
    memset(gp(&fx, b, 1900), FILL, 1900);
    FakeBuf bufs[] = {{a, 100, true}, {b, 1900, true}};
    uint16_t head = fake_vq_add(&fx.rx, bufs, 2);
    uint8_t frame[1000];
    pattern(frame, sizeof(frame), 5);
    g_assert_true(inject(&fx, NULL, frame, sizeof(frame)));
    expect_used(&fx.rx, head, HDR_LEN + sizeof(frame));
    Hdr want = hdr_make(0, 0, 1);
    want.hdr_len = want.gso_size = want.csum_start = want.csum_offset = 0;
    Hdr got = rx_hdr(&fx, a);
    g_assert_cmpmem(&got, HDR_LEN, &want, HDR_LEN);
    g_assert_cmpmem(gp(&fx, a + HDR_LEN, 88), 88, frame, 88);
    g_assert_cmpmem(gp(&fx, b, 912), 912, frame + 88, 912);
    g_assert_cmpuint(*(uint8_t *)gp(&fx, b + 912, 1), ==, FILL);
    g_assert_cmpuint(fake_transport_queue_irqs(&fx.t), >=, 1);

    /* A chain too small for the frame: the frame is dropped, the chain kept for the next. */
    uint64_t c = DATA + 0x2000;
    head = add_rx(&fx, c, 600);
    g_assert_true(inject(&fx, NULL, frame, sizeof(frame)));
    expect_no_used(&fx.rx);
    g_assert_cmpuint(*(uint8_t *)gp(&fx, c, 1), ==, FILL);
    g_assert_true(inject(&fx, NULL, frame, 500));
    expect_used(&fx.rx, head, HDR_LEN + 500);
    g_assert_cmpmem(gp(&fx, c + HDR_LEN, 500), 500, frame, 500);
    VirtioNetStats s = stats(&fx);
    g_assert_cmpuint(s.rx_frames, ==, 2);
    g_assert_cmpuint(s.rx_bytes, ==, 1500);
    g_assert_cmpuint(s.rx_dropped, ==, 1);
    fixture_close(&fx);
}

/* With MRG_RXBUF a frame flows over several chains, all but the last filled (§5.1.6.4). */
static void test_rx_mergeable(void)
{
    Fixture fx;
    fixture_open(&fx, false, QSIZE);
    fixture_start(&fx, VERSION_1 | BIT(F_MRG_RXBUF));
    uint64_t buf[4] = {DATA, DATA + 0x1000, DATA + 0x2000, DATA + 0x3000};
    uint16_t heads[4];
    heads[0] = add_rx(&fx, buf[0], 1000);
    /* The second chain is two descriptors. */
    memset(gp(&fx, buf[1], 0x2000), FILL, 0x2000);
    FakeBuf split[] = {{buf[1] + 0x800, 400, true}, {buf[1], 600, true}};
    heads[1] = fake_vq_add(&fx.rx, split, 2);
    heads[2] = add_rx(&fx, buf[2], 1000);
    heads[3] = add_rx(&fx, buf[3], 1000);
    uint8_t frame[2500];
    pattern(frame, sizeof(frame), 6);
    g_assert_true(inject(&fx, NULL, frame, sizeof(frame)));
    expect_used(&fx.rx, heads[0], 1000);
    expect_used(&fx.rx, heads[1], 1000);
    expect_used(&fx.rx, heads[2], 2512 - 2000);
    expect_no_used(&fx.rx);
    Hdr got = rx_hdr(&fx, buf[0]);
    g_assert_cmpuint(GUINT16_FROM_LE(got.num_buffers), ==, 3);
    g_assert_cmpuint(got.flags, ==, 0);
    g_assert_cmpuint(got.gso_type, ==, 0);
    g_assert_cmpmem(gp(&fx, buf[0] + HDR_LEN, 988), 988, frame, 988);
    g_assert_cmpmem(gp(&fx, buf[1] + 0x800, 400), 400, frame + 988, 400);
    g_assert_cmpmem(gp(&fx, buf[1], 600), 600, frame + 1388, 600);
    g_assert_cmpmem(gp(&fx, buf[2], 512), 512, frame + 1988, 512);
    g_assert_cmpuint(*(uint8_t *)gp(&fx, buf[2] + 512, 1), ==, FILL);
    g_assert_cmpuint(*(uint8_t *)gp(&fx, buf[3], 1), ==, FILL);
    /* The next frame starts in the fourth chain. */
    g_assert_true(inject(&fx, NULL, frame, 100));
    expect_used(&fx.rx, heads[3], HDR_LEN + 100);
    got = rx_hdr(&fx, buf[3]);
    g_assert_cmpuint(GUINT16_FROM_LE(got.num_buffers), ==, 1);
    g_assert_cmpmem(gp(&fx, buf[3] + HDR_LEN, 100), 100, frame, 100);
    fixture_close(&fx);
}

/* A vnet_hdr backend's header reaches the driver, cut down to what it accepted. */
static void test_rx_vnet_hdr(void)
{
    Fixture fx;
    fixture_open(&fx, true, QSIZE);
    fixture_start(&fx, VERSION_1 | BIT(F_MRG_RXBUF) | BIT(F_GUEST_CSUM) | BIT(F_GUEST_TSO4));
    uint8_t frame[3000];
    pattern(frame, sizeof(frame), 7);
    uint16_t h0 = add_rx(&fx, DATA, 2048);
    uint16_t h1 = add_rx(&fx, DATA + 0x1000, 2048);
    Hdr in = hdr_make(NEEDS_CSUM | DATA_VALID | RSC_INFO, GSO_TCPV4, 77);
    g_assert_true(inject(&fx, &in, frame, sizeof(frame)));
    expect_used(&fx.rx, h0, 2048);
    expect_used(&fx.rx, h1, HDR_LEN + sizeof(frame) - 2048);
    Hdr want = hdr_make(NEEDS_CSUM | DATA_VALID, GSO_TCPV4, 2);
    Hdr got = rx_hdr(&fx, DATA);
    g_assert_cmpmem(&got, HDR_LEN, &want, HDR_LEN);
    g_assert_cmpmem(gp(&fx, DATA + HDR_LEN, 2036), 2036, frame, 2036);
    g_assert_cmpmem(gp(&fx, DATA + 0x1000, 964), 964, frame + 2036, 964);

    /* Offloads the driver did not take: the frame cannot be delivered as is. */
    add_rx(&fx, DATA + 0x2000, 4096);
    Hdr tso6 = hdr_make(NEEDS_CSUM, GSO_TCPV6, 0);
    Hdr ecn = hdr_make(NEEDS_CSUM, GSO_TCPV4 | GSO_ECN, 0);
    g_assert_true(inject(&fx, &tso6, frame, 1000));
    g_assert_true(inject(&fx, &ecn, frame, 1000));
    expect_no_used(&fx.rx);
    g_assert_cmpuint(stats(&fx).rx_dropped, ==, 2);

    /* Without GUEST_CSUM: flags cleared, a partial checksum dropped (§5.1.6.4.1). */
    fixture_start(&fx, VERSION_1);
    uint16_t h2 = add_rx(&fx, DATA + 0x2000, 4096);
    Hdr valid = hdr_make(DATA_VALID, 0, 0);
    Hdr partial = hdr_make(NEEDS_CSUM, 0, 0);
    g_assert_true(inject(&fx, &partial, frame, 1000));
    expect_no_used(&fx.rx);
    g_assert_true(inject(&fx, &valid, frame, 1000));
    expect_used(&fx.rx, h2, HDR_LEN + 1000);
    got = rx_hdr(&fx, DATA + 0x2000);
    want = hdr_make(0, 0, 1);
    g_assert_cmpmem(&got, HDR_LEN, &want, HDR_LEN);
    g_assert_cmpuint(stats(&fx).rx_dropped, ==, 3);
    fixture_close(&fx);
}

/* No buffers: refused, a kick asked for; the kick tells the backend to retry. */
static void test_rx_no_buffers(void)
{
    Fixture fx;
    fixture_open(&fx, false, QSIZE);
    fixture_start(&fx, VERSION_1);
    /* DRIVER_OK looked at the receive queue once, and wants no kicks while buffers last. */
    g_assert_cmpuint(rx_ready_count(fx.fn), ==, 1);
    g_assert_cmphex(fake_vq_used_flags(&fx.rx), ==, VIRTQ_USED_F_NO_NOTIFY);
    uint8_t frame[200];
    pattern(frame, sizeof(frame), 8);
    g_assert_false(inject(&fx, NULL, frame, sizeof(frame)));
    g_assert_cmphex(fake_vq_used_flags(&fx.rx), ==, 0);
    g_assert_cmpuint(rx_ready_count(fx.fn), ==, 1);
    uint16_t head = add_rx(&fx, DATA, 1526);
    virtio_kick(fx.vdev, 0);
    g_assert_true(wait_until(rx_ready_reaches, &fx, 2));
    g_assert_cmphex(fake_vq_used_flags(&fx.rx), ==, VIRTQ_USED_F_NO_NOTIFY);
    g_assert_true(inject(&fx, NULL, frame, sizeof(frame)));
    expect_used(&fx.rx, head, HDR_LEN + sizeof(frame));
    g_assert_cmpmem(gp(&fx, DATA + HDR_LEN, sizeof(frame)), sizeof(frame), frame, sizeof(frame));
    g_assert_cmpuint(stats(&fx).rx_dropped, ==, 0);
    fixture_close(&fx);
}

/*
 * EVENT_IDX and MRG_RXBUF: too few buffers for the frame; they stay the
 * driver's, and avail_event asks for a kick on the very next buffer.
 */
static void test_rx_short_event_idx(void)
{
    Fixture fx;
    fixture_open(&fx, false, QSIZE);
    fixture_start(&fx, VERSION_1 | BIT(VIRTIO_F_EVENT_IDX) | BIT(F_MRG_RXBUF));
    uint16_t h0 = add_rx(&fx, DATA, 100);
    uint8_t frame[1000];
    pattern(frame, sizeof(frame), 9);
    g_assert_false(inject(&fx, NULL, frame, sizeof(frame)));
    expect_no_used(&fx.rx);
    g_assert_cmpuint(*(uint8_t *)gp(&fx, DATA, 1), ==, FILL);
    g_assert_cmpuint(fake_vq_avail_event(&fx.rx), ==, fx.rx.avail_idx);
    unsigned ready = rx_ready_count(fx.fn);
    uint16_t h1 = add_rx(&fx, DATA + 0x1000, 2000);
    virtio_kick(fx.vdev, 0);
    g_assert_true(wait_until(rx_ready_reaches, &fx, ready + 1));
    g_assert_true(inject(&fx, NULL, frame, sizeof(frame)));
    expect_used(&fx.rx, h0, 100);
    expect_used(&fx.rx, h1, HDR_LEN + sizeof(frame) - 100);
    g_assert_cmpuint(GUINT16_FROM_LE(rx_hdr(&fx, DATA).num_buffers), ==, 2);
    g_assert_cmpmem(gp(&fx, DATA + HDR_LEN, 88), 88, frame, 88);
    g_assert_cmpmem(gp(&fx, DATA + 0x1000, 912), 912, frame + 88, 912);
    fixture_close(&fx);
}

/* A frame bigger than the whole ring can hold is dropped instead of waited for. */
static void test_rx_too_big(void)
{
    Fixture fx;
    fixture_open(&fx, false, 8);
    fixture_start(&fx, VERSION_1 | BIT(F_MRG_RXBUF));
    uint16_t heads[8];
    for (unsigned i = 0; i < 8; i++) {
        heads[i] = add_rx(&fx, DATA + 0x100 * i, 64);
    }
    uint8_t frame[1000];
    pattern(frame, sizeof(frame), 10);
    g_assert_true(inject(&fx, NULL, frame, sizeof(frame)));
    expect_no_used(&fx.rx);
    g_assert_cmpuint(*(uint8_t *)gp(&fx, DATA, 1), ==, FILL);
    g_assert_cmpuint(stats(&fx).rx_dropped, ==, 1);
    /* The ring is intact: the next frame uses its first chains. */
    g_assert_true(inject(&fx, NULL, frame, 100));
    expect_used(&fx.rx, heads[0], 64);
    expect_used(&fx.rx, heads[1], HDR_LEN + 100 - 64);
    g_assert_cmpmem(gp(&fx, DATA + HDR_LEN, 52), 52, frame, 52);
    g_assert_cmpmem(gp(&fx, DATA + 0x100, 48), 48, frame + 52, 48);
    /* Runts and oversized frames from a backend are dropped too. */
    g_assert_true(inject(&fx, NULL, frame, 13));
    g_autofree uint8_t *huge = g_malloc0(NET_MAX_FRAME + 1);
    g_assert_true(inject(&fx, NULL, huge, NET_MAX_FRAME + 1));
    expect_no_used(&fx.rx);
    g_assert_cmpuint(stats(&fx).rx_dropped, ==, 3);
    fixture_close(&fx);
}

/* Not live, paused or reset: nothing is written; resume tells the backend to retry. */
static void test_rx_paused(void)
{
    Fixture fx;
    fixture_open(&fx, false, QSIZE);
    uint8_t frame[300];
    pattern(frame, sizeof(frame), 11);
    g_assert_false(inject(&fx, NULL, frame, sizeof(frame)));
    fixture_start(&fx, VERSION_1);
    uint16_t head = add_rx(&fx, DATA, 1526);
    virtio_device_pause(fx.vdev);
    g_assert_false(inject(&fx, NULL, frame, sizeof(frame)));
    expect_no_used(&fx.rx);
    g_assert_cmpuint(*(uint8_t *)gp(&fx, DATA, 1), ==, FILL);
    unsigned ready = rx_ready_count(fx.fn);
    virtio_device_resume(fx.vdev);
    g_assert_cmpuint(rx_ready_count(fx.fn), ==, ready + 1);
    g_assert_true(inject(&fx, NULL, frame, sizeof(frame)));
    expect_used(&fx.rx, head, HDR_LEN + sizeof(frame));

    add_rx(&fx, DATA + 0x1000, 1526);
    virtio_set_status(fx.vdev, 0);
    g_assert_false(inject(&fx, NULL, frame, sizeof(frame)));
    g_assert_cmpuint(*(uint8_t *)gp(&fx, DATA + 0x1000, 1), ==, FILL);
    g_assert_cmpuint(stats(&fx).rx_dropped, ==, 0);
    fixture_close(&fx);
}

/* Receive chains that are readable or shorter than a header: NEEDS_RESET. */
static void test_rx_malformed(void)
{
    Fixture fx;
    fixture_open(&fx, false, QSIZE);
    fixture_start(&fx, VERSION_1 | BIT(F_MRG_RXBUF));
    unsigned config_irqs = fake_transport_config_irqs(&fx.t);
    uint8_t frame[300];
    pattern(frame, sizeof(frame), 12);
    memset(gp(&fx, DATA, 0x2000), FILL, 0x2000);
    FakeBuf mixed[] = {{DATA, 64, false}, {DATA + 0x1000, 1500, true}};
    fake_vq_add(&fx.rx, mixed, 2);
    g_assert_true(inject(&fx, NULL, frame, 100));
    g_assert_true(needs_reset(&fx, 0));
    g_assert_cmpuint(fake_transport_config_irqs(&fx.t), ==, config_irqs + 1);
    g_assert_cmpuint(*(uint8_t *)gp(&fx, DATA + 0x1000, 1), ==, FILL);
    expect_no_used(&fx.rx);
    /* A stopped device takes no more frames. */
    g_assert_false(inject(&fx, NULL, frame, 100));

    /* The frame needs a second chain, and that one cannot hold even a header. */
    fixture_start(&fx, VERSION_1 | BIT(F_MRG_RXBUF));
    add_rx(&fx, DATA, 200);
    add_rx(&fx, DATA + 0x1000, HDR_LEN - 1);
    g_assert_true(inject(&fx, NULL, frame, sizeof(frame)));
    g_assert_true(needs_reset(&fx, 0));
    expect_no_used(&fx.rx);

    fixture_start(&fx, VERSION_1 | BIT(F_MRG_RXBUF));
    uint16_t head = add_rx(&fx, DATA, 200);
    g_assert_true(inject(&fx, NULL, frame, 100));
    expect_used(&fx.rx, head, HDR_LEN + 100);
    fixture_close(&fx);
}

/* ---- save/restore through the core ---- */

static GByteArray *save_net(Fixture *fx)
{
    GByteArray *out = g_byte_array_new();
    virtio_device_save(fx->vdev, out);
    return out;
}

/* b takes over a's guest: RAM and the driver's view of the rings. */
static bool load_net(Fixture *b, const Fixture *a, const GByteArray *st, GError **error)
{
    memcpy(gp(b, 0, MEM_SIZE), guest_mem_ptr(a->mem, 0, MEM_SIZE), MEM_SIZE);
    b->rx = a->rx;
    b->rx.mem = b->mem;
    b->tx = a->tx;
    b->tx.mem = b->mem;
    StateIn in;
    state_in_init(&in, st->data, st->len);
    bool ok = virtio_device_load(b->vdev, &in, error);
    g_assert_cmpint(ok, ==, !in.bad);
    return ok && state_in_finish(&in, "virtio-net", error);
}

/* A live NIC saved while paused continues on one built the same way, once resumed. */
static void test_save_load(void)
{
    Fixture a, b;
    fixture_open(&a, true, QSIZE);
    fixture_start(&a, base_features | offload_features);
    uint8_t frame[60];
    pattern(frame, sizeof(frame), 3);
    Hdr h = hdr_make(0, 0, 0);
    add_tx(&a, DATA, &h, frame, sizeof(frame));
    tx_kick_wait(&a, 1);
    virtio_device_pause(a.vdev);
    g_autoptr(GByteArray) st = save_net(&a);

    fixture_open(&b, true, QSIZE);
    g_autoptr(GError) err = NULL;
    g_assert_true(load_net(&b, &a, st, &err));
    g_assert_no_error(err);
    g_autoptr(GByteArray) again = save_net(&b);
    g_assert_cmpmem(st->data, st->len, again->data, again->len);
    g_assert_cmphex(virtio_get_status(b.vdev), ==, virtio_get_status(a.vdev));
    /* Activated again: the backend got the driver's offloads. */
    g_assert_cmpuint(b.fn->offload_calls, ==, 1);
    g_assert_true(b.fn->offloads.csum && b.fn->offloads.tso4);

    /* Paused until resumed: the kick waits, then the frame goes in the next used slot. */
    add_tx(&b, DATA + 0x1000, &h, frame, sizeof(frame));
    virtio_kick(b.vdev, 1);
    g_usleep(50 * 1000);
    g_assert_cmpuint(sent_count(b.fn), ==, 0);
    virtio_device_resume(b.vdev);
    g_assert_true(fake_vq_wait_used(&b.tx, &b.t, 2, WAIT_MS));
    g_assert_cmpuint(sent_count(b.fn), ==, 1);
    g_assert_cmpuint(fake_vq_used_idx(&b.tx), ==, 2);
    fixture_close(&b);
    fixture_close(&a);
}

/* Another MAC or other offloads: another NIC, refused. */
static void test_load_other_nic(void)
{
    Fixture a, b, c;
    fixture_open(&a, true, QSIZE);
    fixture_start(&a, base_features);
    virtio_device_pause(a.vdev);
    g_autoptr(GByteArray) st = save_net(&a);

    const uint8_t other_mac[6] = {0x52, 0x54, 0x00, 0xab, 0xcd, 0xf0};
    fixture_open_mac(&b, true, QSIZE, other_mac);
    g_autoptr(GError) err = NULL;
    g_assert_false(load_net(&b, &a, st, &err));
    g_assert_nonnull(strstr(err->message, "config space"));
    g_assert_cmpuint(virtio_get_status(b.vdev), ==, 0);
    fixture_close(&b);

    fixture_open(&c, false, QSIZE);
    g_clear_error(&err);
    g_assert_false(load_net(&c, &a, st, &err));
    g_assert_nonnull(strstr(err->message, "another device"));
    fixture_close(&c);
    fixture_close(&a);
}

int main(int argc, char **argv)
{
    g_test_init(&argc, &argv, NULL);
    fake_count_virtio_warnings(&warnings);
    g_test_add_func("/virtio/net/features/bare", test_features_bare);
    g_test_add_func("/virtio/net/features/vnet-hdr", test_features_vnet_hdr);
    g_test_add_func("/virtio/net/config", test_config);
    g_test_add_func("/virtio/net/mac", test_mac);
    g_test_add_func("/virtio/net/backend-busy", test_backend_busy);
    g_test_add_func("/virtio/net/tx/bare", test_tx_bare);
    g_test_add_func("/virtio/net/tx/vnet-hdr", test_tx_vnet_hdr);
    g_test_add_func("/virtio/net/tx/malformed", test_tx_malformed);
    g_test_add_func("/virtio/net/tx/burst", test_tx_burst);
    g_test_add_func("/virtio/net/tx/pause", test_tx_pause);
    g_test_add_func("/virtio/net/rx/single", test_rx_single);
    g_test_add_func("/virtio/net/rx/mergeable", test_rx_mergeable);
    g_test_add_func("/virtio/net/rx/vnet-hdr", test_rx_vnet_hdr);
    g_test_add_func("/virtio/net/rx/no-buffers", test_rx_no_buffers);
    g_test_add_func("/virtio/net/rx/short-event-idx", test_rx_short_event_idx);
    g_test_add_func("/virtio/net/rx/too-big", test_rx_too_big);
    g_test_add_func("/virtio/net/rx/paused", test_rx_paused);
    g_test_add_func("/virtio/net/rx/malformed", test_rx_malformed);
    g_test_add_func("/virtio/net/save-load", test_save_load);
    g_test_add_func("/virtio/net/load-other-nic", test_load_other_nic);
    return g_test_run();
}
