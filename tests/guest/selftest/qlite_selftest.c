// SPDX-License-Identifier: GPL-2.0
/*
 * qlite guest selftest, built into the qlite test kernel.
 *
 * Guest userspace cannot run on every host we test on (the PVM hosts cannot
 * deliver its system calls), so the checks a guest has to make run here, in
 * the kernel, at late_initcall. Results go to the console as TAP lines; the
 * verdict goes to the isa-debug-exit port so the VMM's exit status carries it.
 *
 * Does nothing unless the kernel command line has qlite_selftest.run=1, so
 * the same kernel stays usable for other tests.
 */

#include <linux/acpi.h>
#include <linux/atomic.h>
#include <linux/bio.h>
#include <linux/blk-mq.h>
#include <linux/blkdev.h>
#include <linux/completion.h>
#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/gfp.h>
#include <linux/init.h>
#include <linux/inet.h>
#include <linux/init_syscalls.h>
#include <linux/initrd.h>
#include <linux/io.h>
#include <linux/kdev_t.h>
#include <linux/kernel.h>
#include <linux/ktime.h>
#include <linux/kvm_para.h>
#include <linux/mc146818rtc.h>
#include <linux/moduleparam.h>
#include <linux/net.h>
#include <linux/mount.h>
#include <linux/printk.h>
#include <linux/reboot.h>
#include <linux/rtc.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/task_work.h>
#include <linux/vmalloc.h>
#include <linux/workqueue.h>
#include <net/ipconfig.h>
#include <net/sock.h>
#include <uapi/linux/mount.h>
#include <uapi/linux/virtio_blk.h>
#ifdef CONFIG_KVM_GUEST
#include <linux/clocksource.h>
#include <asm/pvclock.h>
#include <asm/kvmclock.h>
#endif

/* Parameters: qlite_selftest.<name>=<value> on the kernel command line. */
static bool param_run;
module_param_named(run, param_run, bool, 0444);
static char *param_checks = "cpus,kvmclock,rtc";
module_param_named(checks, param_checks, charp, 0444);
static int param_cpus = 1;
module_param_named(cpus, param_cpus, int, 0444);
static long param_now;	/* host Unix time at VMM start; 0 = unknown */
module_param_named(now, param_now, long, 0444);
static bool param_fail;
module_param_named(fail, param_fail, bool, 0444);
static bool param_reboot;
module_param_named(reboot, param_reboot, bool, 0444);

/* Block checks (see check_blk() and the pattern description below). */
static char *param_blk_disk = "vda";
module_param_named(blk_disk, param_blk_disk, charp, 0444);
static uint param_blk_seed = 1;
module_param_named(blk_seed, param_blk_seed, uint, 0444);
static uint param_blk_hold;	/* seconds to wait after "blk flushed" */
module_param_named(blk_hold, param_blk_hold, uint, 0444);
static char *param_blk_serial;	/* expected virtio-blk serial of blk_disk */
module_param_named(blk_serial, param_blk_serial, charp, 0444);
static char *param_blk_ro_disk = "vdc";
module_param_named(blk_ro_disk, param_blk_ro_disk, charp, 0444);
static uint param_blk_ro_seed;	/* 0: content not known in advance */
module_param_named(blk_ro_seed, param_blk_ro_seed, uint, 0444);
static char *param_ext2_disk = "vdb";
module_param_named(ext2_disk, param_ext2_disk, charp, 0444);
static char *param_ext2_file = "/hello.txt";
module_param_named(ext2_file, param_ext2_file, charp, 0444);
static char *param_ext2_expect;	/* exact content of ext2_file */
module_param_named(ext2_expect, param_ext2_expect, charp, 0444);
static char *param_ext2_hash_file;
module_param_named(ext2_hash_file, param_ext2_hash_file, charp, 0444);
static char *param_ext2_hash;	/* FNV-1a 64 of ext2_hash_file, 16 hex digits */
module_param_named(ext2_hash, param_ext2_hash, charp, 0444);
static char *param_bench_disk = "vda";
module_param_named(bench_disk, param_bench_disk, charp, 0444);
static uint param_bench_ops = 1024;	/* 4 KiB requests per measurement */
module_param_named(bench_ops, param_bench_ops, uint, 0444);
static uint param_bench_qd = 16;	/* the higher queue depth */
module_param_named(bench_qd, param_bench_qd, uint, 0444);
static uint param_bench_ms = 1500;	/* time cap per measurement */
module_param_named(bench_ms, param_bench_ms, uint, 0444);
static uint param_io_timeout = 60;	/* seconds one batch of I/O may take */
module_param_named(io_timeout, param_io_timeout, uint, 0444);

/* exits: VM-exit cost (see check_exits()). */
static uint param_exit_count = 10000;	/* exits timed per kind */
module_param_named(exit_count, param_exit_count, uint, 0444);
static uint param_exit_port = 0x1f0;	/* an I/O port no device claims */
module_param_named(exit_port, param_exit_port, uint, 0444);
static ulong param_exit_mmio = 0xdff00000;	/* a physical address nothing claims */
module_param_named(exit_mmio, param_exit_mmio, ulong, 0444);

/* Network checks (see check_net_tx() and check_net_rx()). */
static char *param_net_addr;	/* the address the kernel's ip= set-up must get */
module_param_named(net_addr, param_net_addr, charp, 0444);
static char *param_net_server;	/* "A.B.C.D:PORT" net_tx sends to */
module_param_named(net_server, param_net_server, charp, 0444);
static uint param_net_port;	/* TCP port net_rx listens on */
module_param_named(net_port, param_net_port, uint, 0444);
static uint param_net_bytes = 4 << 20;	/* each way; a multiple of 512 */
module_param_named(net_bytes, param_net_bytes, uint, 0444);
static uint param_net_seed = 1;
module_param_named(net_seed, param_net_seed, uint, 0444);

/* mig_workload: memory the guest keeps rewriting while it is saved or migrated. */
static uint param_mig_rounds;	/* rounds to run (0: the check reports a bad parameter) */
module_param_named(mig_rounds, param_mig_rounds, uint, 0444);
static uint param_mig_kib = 2048;	/* memory rewritten every round */
module_param_named(mig_kib, param_mig_kib, uint, 0444);
static uint param_mig_ms = 200;	/* pause between rounds */
module_param_named(mig_ms, param_mig_ms, uint, 0444);
static char *param_mig_disk;	/* disk written and read every round (none: memory only) */
module_param_named(mig_disk, param_mig_disk, charp, 0444);

/* Lifecycle (tests/qmp/lifecycle_test.py drives these from the host). */
static uint param_heartbeat_ms;	/* after the verdict, a heartbeat line this often */
module_param_named(heartbeat_ms, param_heartbeat_ms, uint, 0444);

/* QEMU/qlite isa-debug-exit: the VMM exits with status (value << 1) | 1. */
#define DEBUG_EXIT_PORT		0xf4
#define DEBUG_EXIT_PASS		0x10	/* exit status 33 */
#define DEBUG_EXIT_FAIL		0x11	/* exit status 35 */

/*
 * Reboot marker in the last CMOS NVRAM byte: CMOS survives a VM reset, RAM
 * does not, so finding it set proves we went through a reset and came back.
 */
#define REBOOT_MARK_INDEX	0x7f
#define REBOOT_MARK		0x5a

#define RTC_MAX_SKEW_SECONDS	3600

static int test_number;
static bool all_ok = true;

static __printf(2, 3) void report(bool ok, const char *fmt, ...)
{
	struct va_format vaf;
	va_list args;

	va_start(args, fmt);
	vaf.fmt = fmt;
	vaf.va = &args;
	pr_info("%sok %d - %pV\n", ok ? "" : "not ", ++test_number, &vaf);
	va_end(args);
	if (!ok)
		all_ok = false;
}

static void check_cpus(void)
{
	unsigned int online = num_online_cpus();

	if (online == param_cpus)
		report(true, "cpus online: %u", online);
	else
		report(false, "cpus online: %u (expected %d)", online, param_cpus);
}

static void check_kvmclock(void)
{
#ifdef CONFIG_KVM_GUEST
	u64 t0, t1, delta_us;

	if (!kvm_para_available()) {
		report(false, "kvmclock: no KVM signature in CPUID");
		return;
	}
	if (!kvm_para_has_feature(KVM_FEATURE_CLOCKSOURCE2) &&
	    !kvm_para_has_feature(KVM_FEATURE_CLOCKSOURCE)) {
		report(false, "kvmclock: KVM offers no kvmclock feature");
		return;
	}
	/* Still NULL if kvmclock_init() bailed out (or no-kvmclock was given). */
	if (!this_cpu_read(hv_clock_per_cpu)) {
		report(false, "kvmclock: not set up by the kernel");
		return;
	}

	t0 = kvm_clock.read(&kvm_clock);
	mdelay(10);
	t1 = kvm_clock.read(&kvm_clock);
	delta_us = (t1 - t0) / NSEC_PER_USEC;

	/* mdelay() runs on the TSC; wide bounds, as ring 0 may be emulated. */
	report(delta_us >= USEC_PER_MSEC && delta_us <= 10 * USEC_PER_SEC,
	       "kvmclock advances: %llu us across mdelay(10)", delta_us);
#else
	report(false, "kvmclock: kernel built without CONFIG_KVM_GUEST");
#endif
}

static void check_rtc(void)
{
	struct rtc_time tm;
	time64_t rtc_secs, skew;
	int year;

	if (mc146818_get_time(&tm, 1000) < 0) {
		report(false, "rtc: CMOS RTC does not answer (update never ends)");
		return;
	}
	year = tm.tm_year + 1900;
	if (year < 2024 || year > 2099 || rtc_valid_tm(&tm)) {
		report(false, "rtc: insane date %04d-%02d-%02d %02d:%02d:%02d",
		       year, tm.tm_mon + 1, tm.tm_mday,
		       tm.tm_hour, tm.tm_min, tm.tm_sec);
		return;
	}
	if (!param_now) {
		report(true, "rtc: %ptR (host time not given)", &tm);
		return;
	}
	rtc_secs = rtc_tm_to_time64(&tm);
	skew = rtc_secs - param_now;
	if (abs(skew) <= RTC_MAX_SKEW_SECONDS)
		report(true, "rtc: %ptR, %lld s from host time", &tm, skew);
	else
		report(false, "rtc: %ptR, %lld s from host time (max %d)",
		       &tm, skew, RTC_MAX_SKEW_SECONDS);
}

/* ---- Block devices -------------------------------------------------- */

/*
 * The disk pattern. With seed S, the 512-byte sector number s holds 64
 * little-endian 64-bit words w[0..63] (all arithmetic modulo 2^64):
 *
 *	G    = 0x9e3779b97f4a7c15
 *	h    = mix(S ^ (s * G))
 *	w[i] = h + i * G
 *
 *	mix(z): z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
 *		z = (z ^ (z >> 27)) * 0x94d049bb133111eb
 *		return z ^ (z >> 31)
 *
 * (mix is the finalizer of the SplitMix64 generator.) One mix per sector and
 * one add per word keeps it cheap where guest ring 0 is emulated, and every
 * sector differs from every other, so a misplaced sector is caught too.
 * tests/boot/boot_test.py (disk_pattern) computes the same bytes on the host.
 */
#define PATTERN_G	0x9e3779b97f4a7c15ULL
#define CHUNK_BYTES	(64 * 1024)
#define CHUNK_ORDER	get_order(CHUNK_BYTES)
#define CHUNK_SECTORS	(CHUNK_BYTES >> SECTOR_SHIFT)
#define WORDS_PER_SECTOR	(SECTOR_SIZE / sizeof(u64))

static u64 pattern_mix(u64 z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void pattern_fill(void *buf, u64 seed, sector_t sector, unsigned int nr)
{
	__le64 *w = buf;
	unsigned int s, i;

	for (s = 0; s < nr; s++) {
		u64 v = pattern_mix(seed ^ ((u64)(sector + s) * PATTERN_G));

		for (i = 0; i < WORDS_PER_SECTOR; i++, v += PATTERN_G)
			*w++ = cpu_to_le64(v);
	}
}

/* Returns the index of the first sector in buf that differs, or nr. */
static unsigned int pattern_check(const void *buf, u64 seed, sector_t sector,
				  unsigned int nr)
{
	const __le64 *w = buf;
	unsigned int s, i;

	for (s = 0; s < nr; s++) {
		u64 v = pattern_mix(seed ^ ((u64)(sector + s) * PATTERN_G));

		for (i = 0; i < WORDS_PER_SECTOR; i++, v += PATTERN_G)
			if (le64_to_cpu(w[s * WORDS_PER_SECTOR + i]) != v)
				return s;
	}
	return nr;
}

/*
 * A batch of bios waited for together, with a timeout. The batch lives on
 * the heap: if a wait times out, the bios may still complete later, so the
 * batch (and the buffers those bios point at) are deliberately leaked.
 */
struct io_batch {
	struct completion done;
	atomic_t pending;	/* bios in flight, +1 while still submitting */
	blk_status_t status;	/* first error */
};

static void io_batch_end(struct bio *bio)
{
	struct io_batch *b = bio->bi_private;

	if (bio->bi_status)
		cmpxchg(&b->status, BLK_STS_OK, bio->bi_status);
	bio_put(bio);
	if (atomic_dec_and_test(&b->pending))
		complete(&b->done);
}

static void io_batch_reset(struct io_batch *b)
{
	reinit_completion(&b->done);
	atomic_set(&b->pending, 1);
	b->status = BLK_STS_OK;
}

static struct io_batch *io_batch_new(void)
{
	struct io_batch *b = kzalloc(sizeof(*b), GFP_KERNEL);

	if (b) {
		init_completion(&b->done);
		io_batch_reset(b);
	}
	return b;
}

/* Submits one bio for len bytes of buf (direct-mapped memory; len may be 0). */
static int io_batch_add(struct io_batch *b, struct block_device *bdev,
			blk_opf_t opf, sector_t sector, void *buf, unsigned int len)
{
	struct bio *bio;

	bio = bio_alloc(bdev, DIV_ROUND_UP(len + offset_in_page(buf), PAGE_SIZE),
			opf, GFP_KERNEL);
	if (!bio)
		return -ENOMEM;
	bio->bi_iter.bi_sector = sector;
	bio->bi_end_io = io_batch_end;
	bio->bi_private = b;
	while (len) {
		unsigned int n = min_t(unsigned int, len,
				       PAGE_SIZE - offset_in_page(buf));

		if (bio_add_page(bio, virt_to_page(buf), n,
				 offset_in_page(buf)) != n) {
			bio_put(bio);
			return -EIO;
		}
		buf += n;
		len -= n;
	}
	atomic_inc(&b->pending);
	submit_bio(bio);
	return 0;
}

/* 0, the errno of the first failed bio, or -ETIMEDOUT (then leak b). */
static int io_batch_wait(struct io_batch *b)
{
	if (!atomic_dec_and_test(&b->pending) &&
	    !wait_for_completion_io_timeout(&b->done,
					    (unsigned long)param_io_timeout * HZ))
		return -ETIMEDOUT;
	return b->status ? blk_status_to_errno(b->status) : 0;
}

/* One synchronous bio; *leak is set when buf must not be freed. */
static int io_sync(struct block_device *bdev, blk_opf_t opf, sector_t sector,
		   void *buf, unsigned int len, bool *leak)
{
	struct io_batch *b = io_batch_new();
	int err;

	if (!b)
		return -ENOMEM;
	err = io_batch_add(b, bdev, opf, sector, buf, len);
	if (err) {
		kfree(b);
		return err;
	}
	err = io_batch_wait(b);
	if (err == -ETIMEDOUT)
		*leak = true;
	else
		kfree(b);
	return err;
}

static const char *io_err_name(int err)
{
	switch (err) {
	case -ETIMEDOUT: return " (timed out)";
	case -EIO: return " (I/O error)";
	case -EOPNOTSUPP: return " (not supported)";
	default: return "";
	}
}

/* The whole-disk device called name ("vda"), waiting up to 5 s; 0 (reported) if none. */
static dev_t find_disk_devt(const char *check, const char *name)
{
	char path[40];
	dev_t devt = 0;
	int i;

	snprintf(path, sizeof(path), "/dev/%s", name);
	for (i = 0; i < 50 && !devt; i++) {
		devt = name_to_dev_t(path);
		if (!devt)
			msleep(100);
	}
	if (!devt)
		report(false, "%s: no block device named %s", check, name);
	return devt;
}

static struct block_device *disk_open(const char *check, const char *name,
				      fmode_t mode)
{
	struct block_device *bdev;
	dev_t devt = find_disk_devt(check, name);

	if (!devt)
		return NULL;
	bdev = blkdev_get_by_dev(devt, mode, NULL);
	if (IS_ERR(bdev)) {
		report(false, "%s: cannot open %s: %ld", check, name, PTR_ERR(bdev));
		return NULL;
	}
	return bdev;
}

static void *chunk_alloc(void)
{
	return (void *)__get_free_pages(GFP_KERNEL | __GFP_ZERO, CHUNK_ORDER);
}

static void chunk_free(void *buf, bool leak)
{
	if (buf && !leak)
		free_pages((unsigned long)buf, CHUNK_ORDER);
}

/*
 * Reads the whole disk and compares it with the pattern of seed. Returns 0
 * and sets *bad to the first differing sector (or to nr_sectors if none).
 */
static int disk_verify(struct block_device *bdev, void *buf, u64 seed,
		       sector_t *bad, bool *leak)
{
	sector_t nr_sectors = bdev_nr_sectors(bdev), s;
	int err;

	for (s = 0; s < nr_sectors; s += CHUNK_SECTORS) {
		unsigned int n = min_t(sector_t, CHUNK_SECTORS, nr_sectors - s);
		unsigned int good;

		memset(buf, 0, CHUNK_BYTES);
		err = io_sync(bdev, REQ_OP_READ, s, buf, n << SECTOR_SHIFT, leak);
		if (err)
			return err;
		good = pattern_check(buf, seed, s, n);
		if (good < n) {
			*bad = s + good;
			return 0;
		}
	}
	*bad = nr_sectors;
	return 0;
}

/*
 * blk: write the pattern (seed blk_seed) over the whole of blk_disk, flush,
 * print "qlite-selftest: blk flushed", optionally hold (durability test),
 * then read everything back and compare.
 */
static void check_blk(void)
{
	const char *name = param_blk_disk;
	u64 seed = param_blk_seed;
	struct block_device *bdev;
	sector_t nr_sectors, s, bad;
	bool leak = false;
	void *buf;
	int err;
	uint i;

	bdev = disk_open("blk", name, FMODE_READ | FMODE_WRITE);
	if (!bdev)
		return;
	nr_sectors = bdev_nr_sectors(bdev);
	buf = chunk_alloc();
	if (!buf) {
		report(false, "blk %s: out of memory", name);
		goto out;
	}
	pr_info("# blk %s: %llu sectors (%llu KiB), write cache %s, read-only %s\n",
		name, (u64)nr_sectors, (u64)nr_sectors / 2,
		bdev_write_cache(bdev) ? "on" : "off",
		bdev_read_only(bdev) ? "yes" : "no");
	if (!nr_sectors) {
		report(false, "blk %s: disk is empty", name);
		goto out;
	}
	if (bdev_read_only(bdev)) {
		report(false, "blk %s: disk is read-only", name);
		goto out;
	}

	for (s = 0; s < nr_sectors; s += CHUNK_SECTORS) {
		unsigned int n = min_t(sector_t, CHUNK_SECTORS, nr_sectors - s);

		pattern_fill(buf, seed, s, n);
		err = io_sync(bdev, REQ_OP_WRITE, s, buf, n << SECTOR_SHIFT, &leak);
		if (err) {
			report(false, "blk %s: write at sector %llu failed: %d%s",
			       name, (u64)s, err, io_err_name(err));
			goto out;
		}
	}
	/*
	 * Rewrite a few sectors (same data) from a buffer that is not page
	 * aligned and not a multiple of 4 KiB, as a guest's odd requests are.
	 */
	if (nr_sectors >= 4) {
		pattern_fill(buf + SECTOR_SIZE, seed, 1, 3);
		err = io_sync(bdev, REQ_OP_WRITE, 1, buf + SECTOR_SIZE,
			      3 * SECTOR_SIZE, &leak);
		if (err) {
			report(false, "blk %s: 3-sector write at sector 1 failed: %d%s",
			       name, err, io_err_name(err));
			goto out;
		}
	}
	report(true, "blk %s: wrote pattern (seed %llu) over %llu sectors",
	       name, seed, (u64)nr_sectors);

	/* An empty bio with PREFLUSH: the block layer's cache flush. */
	err = io_sync(bdev, REQ_OP_WRITE | REQ_PREFLUSH, 0, NULL, 0, &leak);
	if (err) {
		report(false, "blk %s: flush failed: %d%s", name, err, io_err_name(err));
		goto out;
	}
	if (param_blk_hold)
		pr_info("qlite-selftest: blk flushed (%s); holding %u s\n",
			name, param_blk_hold);
	else
		pr_info("qlite-selftest: blk flushed (%s)\n", name);
	report(true, "blk %s: flush completed", name);
	for (i = 0; i < param_blk_hold; i++)
		msleep(1000);	/* the host test kills the VMM meanwhile */
	if (param_blk_hold)
		pr_info("# blk %s: hold of %u s over, nobody stopped us\n",
			name, param_blk_hold);

	err = disk_verify(bdev, buf, seed, &bad, &leak);
	if (err)
		report(false, "blk %s: read-back failed: %d%s", name, err,
		       io_err_name(err));
	else if (bad < nr_sectors)
		report(false, "blk %s: read-back differs at sector %llu", name, (u64)bad);
	else
		report(true, "blk %s: read back %llu sectors, all match", name,
		       (u64)nr_sectors);
out:
	chunk_free(buf, leak);
	blkdev_put(bdev, FMODE_READ | FMODE_WRITE);
}

/*
 * blk_ro: blk_ro_disk must be read-only: marked so (VIRTIO_BLK_F_RO), a
 * write must fail (Linux 6.1 only warns and sends it to the device, which has
 * to refuse it), and the data must be unchanged afterwards. With blk_ro_seed
 * the whole disk must also hold that pattern, before and after.
 */
static void check_blk_ro(void)
{
	const char *name = param_blk_ro_disk;
	struct block_device *bdev;
	sector_t nr_sectors, bad;
	unsigned int n, i;
	void *before = NULL, *buf = NULL;
	bool leak = false;
	int err;

	bdev = disk_open("blk_ro", name, FMODE_READ | FMODE_WRITE);
	if (!bdev)
		return;
	nr_sectors = bdev_nr_sectors(bdev);
	n = min_t(sector_t, CHUNK_SECTORS, nr_sectors);
	before = chunk_alloc();
	buf = chunk_alloc();
	if (!before || !buf || !n) {
		report(false, "blk_ro %s: %s", name, n ? "out of memory" : "disk is empty");
		goto out;
	}
	report(bdev_read_only(bdev), "blk_ro %s: disk is marked read-only", name);

	if (param_blk_ro_seed) {
		err = disk_verify(bdev, buf, param_blk_ro_seed, &bad, &leak);
		if (err) {
			report(false, "blk_ro %s: read failed: %d%s", name, err,
			       io_err_name(err));
			goto out;
		}
		if (bad < nr_sectors) {
			report(false, "blk_ro %s: differs from the pattern of seed %u at sector %llu",
			       name, param_blk_ro_seed, (u64)bad);
			goto out;
		}
		report(true, "blk_ro %s: holds the pattern of seed %u (%llu sectors)",
		       name, param_blk_ro_seed, (u64)nr_sectors);
	}

	err = io_sync(bdev, REQ_OP_READ, 0, before, n << SECTOR_SHIFT, &leak);
	if (err) {
		report(false, "blk_ro %s: read failed: %d%s", name, err, io_err_name(err));
		goto out;
	}
	for (i = 0; i < n << SECTOR_SHIFT; i++)
		((u8 *)buf)[i] = ((u8 *)before)[i] ^ 0xa5;
	err = io_sync(bdev, REQ_OP_WRITE, 0, buf, n << SECTOR_SHIFT, &leak);
	if (err == -ETIMEDOUT) {
		report(false, "blk_ro %s: write neither failed nor completed (timed out)",
		       name);
		goto out;
	}
	if (!err) {
		report(false, "blk_ro %s: a write of %u sectors reported success", name, n);
		/* Go on: did it change the data, too? */
	} else {
		report(true, "blk_ro %s: write refused: %d%s", name, err, io_err_name(err));
	}

	memset(buf, 0, CHUNK_BYTES);
	err = io_sync(bdev, REQ_OP_READ, 0, buf, n << SECTOR_SHIFT, &leak);
	if (err) {
		report(false, "blk_ro %s: read-back failed: %d%s", name, err,
		       io_err_name(err));
		goto out;
	}
	report(!memcmp(before, buf, n << SECTOR_SHIFT),
	       "blk_ro %s: first %u sectors unchanged after the write", name, n);
	if (param_blk_ro_seed) {
		err = disk_verify(bdev, buf, param_blk_ro_seed, &bad, &leak);
		report(!err && bad == nr_sectors,
		       "blk_ro %s: still holds the pattern of seed %u%s", name,
		       param_blk_ro_seed, err ? " (read failed)" : "");
	}
out:
	chunk_free(before, leak);
	chunk_free(buf, leak);
	blkdev_put(bdev, FMODE_READ | FMODE_WRITE);
}

/*
 * blk_serial: the virtio-blk serial (VIRTIO_BLK_T_GET_ID, which virtio_blk
 * sends for REQ_OP_DRV_IN) of blk_disk equals blk_serial.
 */
static void check_blk_serial(void)
{
	const char *name = param_blk_disk;
	struct block_device *bdev;
	struct request *rq;
	blk_status_t status;
	char *id;
	int err;

	if (!param_blk_serial) {
		report(false, "blk_serial: qlite_selftest.blk_serial= not given");
		return;
	}
	bdev = disk_open("blk_serial", name, FMODE_READ);
	if (!bdev)
		return;
	id = kzalloc(VIRTIO_BLK_ID_BYTES + 1, GFP_KERNEL);
	if (!id) {
		report(false, "blk_serial %s: out of memory", name);
		goto out;
	}
	rq = blk_mq_alloc_request(bdev_get_queue(bdev), REQ_OP_DRV_IN, 0);
	if (IS_ERR(rq)) {
		report(false, "blk_serial %s: no request: %ld", name, PTR_ERR(rq));
		goto out;
	}
	err = blk_rq_map_kern(bdev_get_queue(bdev), rq, id, VIRTIO_BLK_ID_BYTES,
			      GFP_KERNEL);
	status = err ? BLK_STS_RESOURCE : blk_execute_rq(rq, false);
	blk_mq_free_request(rq);
	if (err || status)
		report(false, "blk_serial %s: GET_ID failed: %d", name,
		       err ?: blk_status_to_errno(status));
	else
		report(!strcmp(id, param_blk_serial), "blk_serial %s: '%s'%s%s%s",
		       name, id, strcmp(id, param_blk_serial) ? " (expected '" : "",
		       strcmp(id, param_blk_serial) ? param_blk_serial : "",
		       strcmp(id, param_blk_serial) ? "')" : "");
out:
	kfree(id);
	blkdev_put(bdev, FMODE_READ);
}

/* ---- blk_bench: measurements only ---------------------------------- */

struct bench_result {
	u64 ops, ns;
};

/*
 * Runs 4 KiB requests at queue depth qd (submit qd bios under one plug, so
 * they reach the device together, then wait for all of them) until bench_ops requests or bench_ms elapsed. Random offsets come
 * from a fixed-seed xorshift64, so every run asks for the same blocks.
 */
static int bench_run(struct block_device *bdev, blk_opf_t op, bool random,
		     uint qd, void *bufs, struct bench_result *r, bool *leak)
{
	u64 nr_blocks = bdev_nr_sectors(bdev) >> (PAGE_SHIFT - SECTOR_SHIFT);
	u64 x = 0x2545f4914f6cdd1dULL, next = 0, t0, deadline;
	struct io_batch *b = io_batch_new();
	int err = 0;
	uint i;

	r->ops = 0;
	r->ns = 0;
	if (!b)
		return -ENOMEM;
	t0 = ktime_get_ns();
	deadline = t0 + (u64)param_bench_ms * NSEC_PER_MSEC;
	while (r->ops < param_bench_ops && ktime_get_ns() < deadline) {
		struct blk_plug plug;

		io_batch_reset(b);
		blk_start_plug(&plug);
		for (i = 0; i < qd && r->ops + i < param_bench_ops; i++) {
			u64 block;

			if (random) {
				x ^= x << 13;
				x ^= x >> 7;
				x ^= x << 17;
				block = x % nr_blocks;
			} else {
				block = next++ % nr_blocks;
			}
			/* No merging: every 4 KiB bio is one device request. */
			err = io_batch_add(b, bdev, op | REQ_NOMERGE,
					   block << (PAGE_SHIFT - SECTOR_SHIFT),
					   bufs + i * PAGE_SIZE, PAGE_SIZE);
			if (err)
				break;
		}
		blk_finish_plug(&plug);
		if (!err)
			err = io_batch_wait(b);
		else
			io_batch_wait(b);	/* the ones already submitted */
		if (err)
			break;
		r->ops += i;
	}
	r->ns = ktime_get_ns() - t0;
	if (err == -ETIMEDOUT)
		*leak = true;
	else
		kfree(b);
	return err;
}

/*
 * blk_bench: sequential and random 4 KiB reads and writes on bench_disk at
 * queue depth 1 and bench_qd, printed as "# blk-bench ..." lines. Its
 * writes overwrite blocks of the disk with whatever its buffers hold (zeros
 * at first, then data read back from the disk), so the disk's content is
 * garbage afterwards: list it before blk on the same disk.
 * Fails only on I/O errors and timeouts, never on speed.
 */
static void check_blk_bench(void)
{
	static const struct {
		const char *name;
		blk_opf_t op;
		bool random;
	} kinds[] = {
		{ "seq-write", REQ_OP_WRITE, false },
		{ "seq-read", REQ_OP_READ, false },
		{ "rand-write", REQ_OP_WRITE, true },
		{ "rand-read", REQ_OP_READ, true },
	};
	const char *name = param_bench_disk;
	uint qd_high = clamp_t(uint, param_bench_qd, 1, 128);
	uint qds[2] = { 1, qd_high }, k, q, order = get_order(qd_high * PAGE_SIZE);
	struct block_device *bdev;
	struct bench_result r;
	bool leak = false;
	void *bufs;
	int err = 0;

	bdev = disk_open("blk_bench", name, FMODE_READ | FMODE_WRITE);
	if (!bdev)
		return;
	bufs = (void *)__get_free_pages(GFP_KERNEL | __GFP_ZERO, order);
	if (!bufs || bdev_nr_sectors(bdev) < PAGE_SIZE / SECTOR_SIZE) {
		report(false, "blk_bench %s: %s", name,
		       bufs ? "disk smaller than 4 KiB" : "out of memory");
		goto out;
	}
	for (k = 0; k < ARRAY_SIZE(kinds) && !err; k++) {
		for (q = 0; q < ARRAY_SIZE(qds) && !err; q++) {
			u64 us, iops, kib_s;

			err = bench_run(bdev, kinds[k].op, kinds[k].random, qds[q],
					bufs, &r, &leak);
			if (err) {
				report(false, "blk_bench %s: %s qd%u: %d%s", name,
				       kinds[k].name, qds[q], err, io_err_name(err));
				break;
			}
			us = max_t(u64, div_u64(r.ns, NSEC_PER_USEC), 1);
			iops = div64_u64(r.ops * USEC_PER_SEC, us);
			kib_s = div64_u64(r.ops * (PAGE_SIZE / 1024) * USEC_PER_SEC, us);
			pr_info("# blk-bench %s 4k qd%u: %llu IOPS, %llu.%02llu MiB/s (%llu requests in %llu ms)\n",
				kinds[k].name, qds[q], iops, kib_s / 1024,
				(kib_s % 1024) * 100 / 1024, r.ops, div_u64(us, 1000));
		}
	}
	if (!err)
		report(true, "blk_bench %s: %u measurements done", name,
		       (uint)(ARRAY_SIZE(kinds) * ARRAY_SIZE(qds)));
out:
	if (bufs && !leak)
		free_pages((unsigned long)bufs, order);
	blkdev_put(bdev, FMODE_READ | FMODE_WRITE);
}

/* ---- exits: VM-exit cost ------------------------------------------- */

/*
 * Exits are timed in batches of this many with interrupts off: a timer tick
 * or a console interrupt in the middle would be counted as exit cost (and
 * where guest ring 0 is emulated one tick costs as much as dozens of exits).
 * Interrupts are taken between batches, so the tick and the console go on,
 * and on a real host a batch lasts only a few milliseconds. With interrupts
 * off we also stay on one CPU, so the clock reads are comparable.
 */
#define EXIT_BATCH	256

/*
 * ns for count exits: outb(0, port) when addr is NULL, else readl(addr)
 * (the last value read goes to *value). One loop per kind, no call per exit.
 */
static u64 time_exits(uint count, u16 port, void __iomem *addr, u32 *value)
{
	unsigned long flags;
	u64 total = 0, t0;
	uint done = 0, n, i;
	u32 v = 0;

	/* Warm up, untimed: the VMM may log the first access or set it up. */
	if (addr)
		v = readl(addr);
	else
		outb(0, port);
	while (done < count) {
		n = min_t(uint, count - done, EXIT_BATCH);
		local_irq_save(flags);
		t0 = ktime_get_ns();
		if (addr) {
			for (i = 0; i < n; i++)
				v = readl(addr);
		} else {
			for (i = 0; i < n; i++)
				outb(0, port);
		}
		total += ktime_get_ns() - t0;
		local_irq_restore(flags);
		done += n;
		cond_resched();
	}
	if (value)
		*value = v;
	return total;
}

static void print_exit_cost(const char *kind, uint count, u64 ns)
{
	pr_info("# exit-cost %s: %u exits in %llu ns, %llu ns/exit\n",
		kind, count, ns, div_u64(ns + count / 2, count));
}

/*
 * exits: exit_count byte writes (outb) to exit_port and exit_count 32-bit
 * reads (readl) of exit_mmio, both unclaimed, so every access is a full exit
 * to the VMM, which finds no device and resumes the guest. Prints the time
 * per exit; fails only on bad parameters, a failed ioremap or a clock that
 * did not advance.
 */
static void check_exits(void)
{
	void __iomem *addr;
	u32 value = 0;
	u64 pio_ns, mmio_ns;
	uint count = param_exit_count;

	if (!count || param_exit_port > 0xffff) {
		report(false, "exits: bad parameters (exit_count %u, exit_port 0x%x)",
		       count, param_exit_port);
		return;
	}
	if (param_exit_port == DEBUG_EXIT_PORT) {
		report(false, "exits: exit_port 0x%x is the verdict port", param_exit_port);
		return;
	}
	if (param_exit_mmio & 3) {
		report(false, "exits: exit_mmio 0x%lx is not 4-byte aligned", param_exit_mmio);
		return;
	}
	addr = ioremap(param_exit_mmio, 4);
	if (!addr) {
		report(false, "exits: cannot ioremap 0x%lx", param_exit_mmio);
		return;
	}

	pio_ns = time_exits(count, param_exit_port, NULL, NULL);
	mmio_ns = time_exits(count, 0, addr, &value);
	iounmap(addr);

	print_exit_cost("pio-write", count, pio_ns);
	print_exit_cost("mmio-read", count, mmio_ns);
	if (!pio_ns || !mmio_ns)
		report(false, "exits: clock did not advance (pio %llu ns, mmio %llu ns)",
		       pio_ns, mmio_ns);
	else
		report(true, "exits: %u each, pio-write 0x%x %llu ns/exit, mmio-read 0x%lx %llu ns/exit (reads 0x%08x)",
		       count, param_exit_port, div_u64(pio_ns + count / 2, count),
		       param_exit_mmio, div_u64(mmio_ns + count / 2, count),
		       value);
}

/* ---- ext2 ------------------------------------------------------------ */

#define EXT2_DIR		"/qlite-ext2"
#define EXT2_NODE		"/qlite-ext2-disk"
#define EXT2_MAX_FILE		(1024 * 1024)

/* FNV-1a, 64 bits: offset basis 0xcbf29ce484222325, prime 0x100000001b3. */
static u64 fnv1a64(const u8 *p, size_t len)
{
	u64 h = 0xcbf29ce484222325ULL;

	while (len--) {
		h ^= *p++;
		h *= 0x100000001b3ULL;
	}
	return h;
}

/* Reads up to EXT2_MAX_FILE bytes of a file below the mount point. */
static ssize_t ext2_read(const char *file, void **data)
{
	char *path = kasprintf(GFP_KERNEL, EXT2_DIR "%s%s",
			       file[0] == '/' ? "" : "/", file);
	struct file *f;
	loff_t pos = 0;
	ssize_t n = -ENOMEM, got;

	*data = NULL;
	if (!path)
		return -ENOMEM;
	f = filp_open(path, O_RDONLY, 0);
	kfree(path);
	if (IS_ERR(f))
		return PTR_ERR(f);
	*data = kvmalloc(EXT2_MAX_FILE, GFP_KERNEL);
	if (*data) {
		n = 0;
		while (n < EXT2_MAX_FILE) {
			got = kernel_read(f, *data + n, EXT2_MAX_FILE - n, &pos);
			if (got <= 0) {
				if (got < 0)
					n = got;
				break;
			}
			n += got;
		}
	}
	filp_close(f, NULL);
	return n;
}

/*
 * ext2: mount ext2_disk read-only (ext2) and check ext2_file against
 * ext2_expect (exact bytes, or with one trailing newline) and/or
 * ext2_hash_file against ext2_hash (FNV-1a 64, hex).
 */
static void __init check_ext2(void)
{
	const char *name = param_ext2_disk;
	dev_t devt;
	void *data;
	ssize_t n;
	int err;

	wait_for_initramfs();	/* rootfs is being populated asynchronously */
	devt = find_disk_devt("ext2", name);
	if (!devt)
		return;
	init_unlink(EXT2_NODE);
	err = init_mknod(EXT2_NODE, S_IFBLK | 0600, new_encode_dev(devt));
	if (!err) {
		err = init_mkdir(EXT2_DIR, 0755);
		if (err == -EEXIST)
			err = 0;
	}
	if (err) {
		report(false, "ext2: cannot prepare " EXT2_NODE " or " EXT2_DIR ": %d", err);
		return;
	}
	err = init_mount(EXT2_NODE, EXT2_DIR, "ext2", MS_RDONLY, NULL);
	report(!err, "ext2 %s: mounted read-only at " EXT2_DIR "%s", name,
	       err ? " failed" : "");
	if (err) {
		pr_info("# ext2: init_mount returned %d\n", err);
		return;
	}

	if (param_ext2_expect || !param_ext2_hash_file) {
		n = ext2_read(param_ext2_file, &data);
		if (n < 0) {
			report(false, "ext2 %s: cannot read %s: %zd", name,
			       param_ext2_file, n);
		} else if (!param_ext2_expect) {
			report(true, "ext2 %s: read %s, %zd bytes (no ext2_expect given)",
			       name, param_ext2_file, n);
		} else {
			size_t len = strlen(param_ext2_expect);
			bool same = (n == len || (n == len + 1 &&
						  ((char *)data)[len] == '\n')) &&
				    !memcmp(data, param_ext2_expect, len);

			if (same)
				report(true, "ext2 %s: %s holds '%s'", name,
				       param_ext2_file, param_ext2_expect);
			else
				report(false, "ext2 %s: %s holds '%.*s' (%zd bytes), expected '%s'",
				       name, param_ext2_file, (int)min_t(ssize_t, n, 64),
				       (char *)data, n, param_ext2_expect);
		}
		kvfree(data);
	}
	if (param_ext2_hash_file) {
		char hex[17];

		n = ext2_read(param_ext2_hash_file, &data);
		if (n < 0) {
			report(false, "ext2 %s: cannot read %s: %zd", name,
			       param_ext2_hash_file, n);
		} else {
			snprintf(hex, sizeof(hex), "%016llx", fnv1a64(data, n));
			if (!param_ext2_hash)
				report(true, "ext2 %s: %s: %zd bytes, fnv1a64 %s", name,
				       param_ext2_hash_file, n, hex);
			else
				report(!strcasecmp(hex, param_ext2_hash),
				       "ext2 %s: %s: %zd bytes, fnv1a64 %s%s%s", name,
				       param_ext2_hash_file, n, hex,
				       strcasecmp(hex, param_ext2_hash) ? ", expected " : "",
				       strcasecmp(hex, param_ext2_hash) ? param_ext2_hash : "");
		}
		kvfree(data);
	}
	/*
	 * We run in PID 1 before it execs init: not a kernel thread, so the
	 * final fput() of our files waits as task work for a return to user
	 * space that has not happened yet. Run it now, or umount sees EBUSY.
	 */
	task_work_run();
	flush_delayed_fput();
	err = init_umount(EXT2_DIR, 0);
	report(!err, "ext2 %s: unmounted%s", name, err ? " failed" : "");
	if (err)
		pr_info("# ext2: init_umount returned %d\n", err);
}

/*
 * Network checks. ip=dhcp (or a static ip=) configures eth0 before we run
 * (we are late_initcall_sync, after ip_auto_config). Streams carry the disk
 * pattern (pattern_fill: 512-byte blocks numbered from 0 across the stream)
 * and are summarised by a word-wise FNV-1a digest, cheap where ring 0 is
 * emulated: h = (h ^ w) * FNV_PRIME over the little-endian u64 words.
 * tests/boot/boot_test.py (stream_digest) computes the same on the host.
 *
 * net_tx: connect to net_server, send net_bytes of pattern(net_seed), shut
 *   down our side, read the server's digest line ("%016llx\n"), compare.
 * net_rx: listen on net_port, accept one connection, receive net_bytes of
 *   pattern(net_seed + 1) and check every block, send back its digest line
 *   and then net_bytes of pattern(net_seed + 2), shut down our side and wait
 *   for the peer to close (it has read everything then).
 */
#define FNV_OFFSET	0xcbf29ce484222325ULL
#define FNV_PRIME	0x100000001b3ULL

static u64 digest_words(u64 h, const void *buf, size_t len)
{
	const __le64 *w = buf;
	size_t i;

	for (i = 0; i < len / sizeof(u64); i++)
		h = (h ^ le64_to_cpu(w[i])) * FNV_PRIME;
	return h;
}

static int net_send_all(struct socket *sock, const void *buf, size_t len)
{
	while (len) {
		struct kvec iov = { .iov_base = (void *)buf, .iov_len = len };
		struct msghdr msg = { .msg_flags = MSG_NOSIGNAL };
		int n = kernel_sendmsg(sock, &msg, &iov, 1, len);

		if (n <= 0)
			return n ? n : -EPIPE;
		buf += n;
		len -= n;
	}
	return 0;
}

/* Fills buf unless the stream ends first; returns the bytes read or -errno. */
static int net_recv_full(struct socket *sock, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		struct kvec iov = { .iov_base = buf + got, .iov_len = len - got };
		struct msghdr msg = {};
		int n = kernel_recvmsg(sock, &msg, &iov, 1, len - got, 0);

		if (n < 0)
			return n;
		if (n == 0)
			break;
		got += n;
	}
	return got;
}

static int net_socket(struct socket **sock)
{
	int err = sock_create_kern(&init_net, AF_INET, SOCK_STREAM, IPPROTO_TCP, sock);

	if (!err)
		(*sock)->sk->sk_rcvtimeo = (*sock)->sk->sk_sndtimeo = param_io_timeout * HZ;
	return err;
}

/* Sends net_bytes of pattern(seed); returns 0 or -errno, and the digest. */
static int net_send_pattern(struct socket *sock, void *buf, u64 seed, u64 *digest)
{
	unsigned int off, len;
	int err;

	*digest = FNV_OFFSET;
	for (off = 0; off < param_net_bytes; off += len) {
		len = min_t(unsigned int, CHUNK_BYTES, param_net_bytes - off);
		pattern_fill(buf, seed, off >> SECTOR_SHIFT, len >> SECTOR_SHIFT);
		*digest = digest_words(*digest, buf, len);
		err = net_send_all(sock, buf, len);
		if (err)
			return err;
	}
	return 0;
}

static void print_rate(const char *check, const char *what, u64 ns)
{
	pr_info("# %s: %u KiB %s in %llu ms, %llu KiB/s (guest clock)\n", check,
		param_net_bytes >> 10, what, ns / NSEC_PER_MSEC,
		ns ? (u64)(param_net_bytes >> 10) * NSEC_PER_SEC / ns : 0);
}

static void check_net_addr(void)
{
	__be32 want;

	if (!param_net_addr || !in4_pton(param_net_addr, -1, (u8 *)&want, -1, NULL)) {
		report(false, "net_addr: qlite_selftest.net_addr=A.B.C.D is required");
		return;
	}
	report(ic_myaddr == want, "net_addr: the kernel's ip= set-up gave %pI4 (want %pI4)",
	       &ic_myaddr, &want);
}

static void check_net_tx(void)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	struct socket *sock = NULL;
	const char *end;
	char line[17] = {}, want[17];
	u16 port;
	u64 digest = 0, t0;
	void *buf;
	int err;

	if (!param_net_server ||
	    !in4_pton(param_net_server, -1, (u8 *)&addr.sin_addr, ':', &end) ||
	    *end != ':' || kstrtou16(end + 1, 10, &port) || !port ||
	    param_net_bytes % SECTOR_SIZE) {
		report(false, "net_tx: qlite_selftest.net_server=A.B.C.D:PORT is required");
		return;
	}
	addr.sin_port = htons(port);
	buf = chunk_alloc();
	err = buf ? net_socket(&sock) : -ENOMEM;
	if (err)
		goto out;
	t0 = ktime_get_ns();
	err = kernel_connect(sock, (struct sockaddr *)&addr, sizeof(addr), 0);
	if (err)
		goto out;
	err = net_send_pattern(sock, buf, param_net_seed, &digest);
	if (err)
		goto out;
	print_rate("net_tx", "sent", ktime_get_ns() - t0);
	err = kernel_sock_shutdown(sock, SHUT_WR);
	if (!err)
		err = net_recv_full(sock, line, 16);
out:
	if (err < 0) {
		report(false, "net_tx: to %s: error %d%s", param_net_server, err,
		       io_err_name(err));
	} else {
		snprintf(want, sizeof(want), "%016llx", digest);
		report(!strcmp(line, want), "net_tx: %u bytes to %s, the server's digest %s (want %s)",
		       param_net_bytes, param_net_server, line, want);
	}
	if (sock)
		sock_release(sock);
	chunk_free(buf, false);
}

static void check_net_rx(void)
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	struct socket *lsock = NULL, *sock = NULL;
	unsigned int off = 0, bad = 0;
	u64 digest = FNV_OFFSET, sent, t0;
	char line[18];
	void *buf, *want;
	int n = 0, err;

	if (!param_net_port || param_net_port > 65535 || param_net_bytes % SECTOR_SIZE) {
		report(false, "net_rx: qlite_selftest.net_port=PORT is required");
		return;
	}
	addr.sin_port = htons(param_net_port);
	buf = chunk_alloc();
	want = chunk_alloc();
	err = buf && want ? net_socket(&lsock) : -ENOMEM;
	if (!err)
		err = kernel_bind(lsock, (struct sockaddr *)&addr, sizeof(addr));
	if (!err)
		err = kernel_listen(lsock, 1);
	if (err)
		goto out;
	pr_info("qlite-selftest: net_rx: listening on port %u\n", param_net_port);
	err = kernel_accept(lsock, &sock, 0);
	if (err)
		goto out;
	sock->sk->sk_rcvtimeo = sock->sk->sk_sndtimeo = param_io_timeout * HZ;
	t0 = ktime_get_ns();
	while (off < param_net_bytes) {
		n = net_recv_full(sock, buf, min_t(unsigned int, CHUNK_BYTES,
						   param_net_bytes - off));
		if (n <= 0)
			break;
		digest = digest_words(digest, buf, n);
		if (!(n % SECTOR_SIZE)) {
			pattern_fill(want, param_net_seed + 1, off >> SECTOR_SHIFT,
				     n >> SECTOR_SHIFT);
			bad += memcmp(buf, want, n) != 0;
		}
		off += n;
	}
	if (n < 0) {
		err = n;
		goto out;
	}
	print_rate("net_rx", "received", ktime_get_ns() - t0);
	report(off == param_net_bytes && !bad, "net_rx: received %u bytes (want %u), %u bad chunks",
	       off, param_net_bytes, bad);
	snprintf(line, sizeof(line), "%016llx\n", digest);
	err = net_send_all(sock, line, 17);
	if (!err)
		err = net_send_pattern(sock, buf, param_net_seed + 2, &sent);
	if (!err)
		err = kernel_sock_shutdown(sock, SHUT_WR);
	/*
	 * The peer closes once it has read everything: until then our last
	 * bytes may still be in the send queue, and ending the VM (the
	 * verdict) would lose them.
	 */
	if (!err)
		err = min(net_recv_full(sock, buf, 1), 0);
out:
	report(!err, "net_rx: exchange on port %u: %d%s", param_net_port, err,
	       io_err_name(err));
	if (sock)
		sock_release(sock);
	if (lsock)
		sock_release(lsock);
	chunk_free(want, false);
	chunk_free(buf, false);
}

/*
 * One round of mig_workload's disk I/O: a chunk of pattern r written to
 * sector 0 and flushed, then read back into dma, a buffer only the device
 * ever writes (so a migration that misses the device's writes to guest
 * memory leaves it stale). Returns how many checks failed.
 */
static unsigned int mig_disk_round(struct block_device *bdev, void *wbuf,
				   void *dma, unsigned int r, int *err, bool *leak)
{
	unsigned int bad = 0;

	/* What the previous round read must still be there, wherever we run now. */
	if (r > 1 && pattern_check(dma, r - 1, 0, CHUNK_SECTORS) != CHUNK_SECTORS)
		bad++;
	pattern_fill(wbuf, r, 0, CHUNK_SECTORS);
	*err = io_sync(bdev, REQ_OP_WRITE | REQ_FUA, 0, wbuf, CHUNK_BYTES, leak);
	if (!*err)
		*err = io_sync(bdev, REQ_OP_READ, 0, dma, CHUNK_BYTES, leak);
	if (!*err && pattern_check(dma, r, 0, CHUNK_SECTORS) != CHUNK_SECTORS)
		bad++;
	return bad;
}

/*
 * mig_workload: round r first checks that the memory still holds round
 * r-1's pattern (seed r-1, blocks numbered from 0), then writes round r's,
 * does the round's disk I/O when mig_disk names a disk, prints
 * "qlite-selftest: mig round R kvmclock NS" and sleeps. A VM saved and
 * restored (or migrated) in the middle must carry on with the next round,
 * its memory intact, its disk too, and its clock never going backwards.
 */
static void check_mig_workload(void)
{
	unsigned int sectors = (param_mig_kib << 10) >> SECTOR_SHIFT, r, bad = 0;
	unsigned int disk_bad = 0;
	u64 now, last = 0, backwards = 0;
	struct block_device *bdev = NULL;
	void *mem, *wbuf = NULL, *dma = NULL;
	bool leak = false;
	int err = 0;

	if (!param_mig_rounds || !sectors) {
		report(false, "mig_workload: qlite_selftest.mig_rounds=N is required");
		return;
	}
	mem = vmalloc(sectors << SECTOR_SHIFT);
	if (!mem) {
		report(false, "mig_workload: out of memory");
		return;
	}
	if (param_mig_disk) {
		bdev = disk_open("mig_workload", param_mig_disk, FMODE_READ | FMODE_WRITE);
		wbuf = chunk_alloc();
		dma = chunk_alloc();
		if (!bdev || !wbuf || !dma) {
			report(false, "mig_workload: cannot set up disk I/O on %s", param_mig_disk);
			goto out;
		}
	}
	for (r = 1; r <= param_mig_rounds && !err; r++) {
		if (r > 1 && pattern_check(mem, r - 1, 0, sectors) != sectors)
			bad++;
		pattern_fill(mem, r, 0, sectors);
		if (bdev)
			disk_bad += mig_disk_round(bdev, wbuf, dma, r, &err, &leak);
		now = ktime_get_ns();
		if (now < last)
			backwards++;
		last = now;
		pr_info("qlite-selftest: mig round %u kvmclock %llu\n", r, now);
		msleep(param_mig_ms);
	}
	report(!bad && !backwards && !disk_bad && !err,
	       "mig_workload: %u rounds over %u KiB, %u with memory changed under us, clock went back %llu times, disk %s: %u bad, error %d%s",
	       param_mig_rounds, param_mig_kib, bad, backwards,
	       bdev ? param_mig_disk : "none", disk_bad, err, io_err_name(err));
out:
	if (bdev)
		blkdev_put(bdev, FMODE_READ | FMODE_WRITE);
	chunk_free(wbuf, leak);
	chunk_free(dma, leak);
	vfree(mem);
}

/*
 * power_button: what a distribution's acpid or logind does, in the kernel,
 * since our userspace cannot run everywhere: an ACPI fixed power button
 * press (PM1 status, SCI) powers the machine off (ACPI S5).
 */
#ifdef CONFIG_ACPI
static void power_off_fn(struct work_struct *work)
{
	pr_info("qlite-selftest: power button pressed, powering off\n");
	kernel_power_off();
}
static DECLARE_WORK(power_off_work, power_off_fn);

static u32 power_button_pressed(void *context)
{
	schedule_work(&power_off_work);
	return ACPI_INTERRUPT_HANDLED;
}
#endif

static void check_power_button(void)
{
#ifdef CONFIG_ACPI
	acpi_status status;

	if (acpi_disabled) {
		report(false, "power_button: ACPI is disabled");
		return;
	}
	status = acpi_install_fixed_event_handler(ACPI_EVENT_POWER_BUTTON,
						  power_button_pressed, NULL);
	report(ACPI_SUCCESS(status), "power_button: handler installed (%s)",
	       acpi_format_exception(status));
#else
	report(false, "power_button: kernel built without CONFIG_ACPI");
#endif
}

/*
 * After the verdict, with heartbeat_ms set: a numbered line with the guest's
 * kvmclock time, forever, so the host sees the guest run, stop and continue.
 */
static void __init heartbeat(void)
{
	unsigned int n = 0;
	u64 t;

	for (;;) {
		msleep(param_heartbeat_ms);
#ifdef CONFIG_KVM_GUEST
		t = this_cpu_read(hv_clock_per_cpu) ? kvm_clock.read(&kvm_clock) : 0;
#else
		t = 0;
#endif
		pr_info("qlite-selftest: heartbeat %u kvmclock %llu\n", ++n, t);
	}
}

static const struct {
	const char *name;
	void (*run)(void);
} known_checks[] __initconst = {
	{ "cpus", check_cpus },
	{ "kvmclock", check_kvmclock },
	{ "rtc", check_rtc },
	{ "blk_bench", check_blk_bench },
	{ "blk", check_blk },
	{ "blk_serial", check_blk_serial },
	{ "blk_ro", check_blk_ro },
	{ "ext2", check_ext2 },
	{ "exits", check_exits },
	{ "power_button", check_power_button },
	{ "mig_workload", check_mig_workload },
	{ "net_addr", check_net_addr },
	{ "net_tx", check_net_tx },
	{ "net_rx", check_net_rx },
};

/* Runs each check named in param_checks, in order. */
static void __init run_listed_checks(void)
{
	char *list, *cursor, *name;
	int i;

	list = kstrdup(param_checks, GFP_KERNEL);
	if (!list) {
		report(false, "out of memory");
		return;
	}
	cursor = list;
	while ((name = strsep(&cursor, ",")) != NULL) {
		name = strim(name);
		if (!*name)
			continue;
		for (i = 0; i < ARRAY_SIZE(known_checks); i++) {
			if (!strcmp(name, known_checks[i].name)) {
				known_checks[i].run();
				break;
			}
		}
		if (i == ARRAY_SIZE(known_checks))
			report(false, "unknown check '%s'", name);
	}
	kfree(list);
}

static u8 cmos_get(u8 index)
{
	unsigned long flags;
	u8 val;

	spin_lock_irqsave(&rtc_lock, flags);
	val = CMOS_READ(index);
	spin_unlock_irqrestore(&rtc_lock, flags);
	return val;
}

static void cmos_set(u8 index, u8 val)
{
	unsigned long flags;

	spin_lock_irqsave(&rtc_lock, flags);
	CMOS_WRITE(val, index);
	spin_unlock_irqrestore(&rtc_lock, flags);
}

static int __init qlite_selftest_init(void)
{
	int saved_loglevel = console_loglevel;
	bool came_back = false;

	if (!param_run)
		return 0;

	/* Our lines must reach the console even on a "quiet" (faster) boot. */
	if (console_loglevel <= LOGLEVEL_INFO)
		console_loglevel = LOGLEVEL_INFO + 1;

	if (param_reboot) {
		if (cmos_get(REBOOT_MARK_INDEX) != REBOOT_MARK) {
			cmos_set(REBOOT_MARK_INDEX, REBOOT_MARK);
			pr_info("qlite-selftest: rebooting\n");
			kernel_restart(NULL);
			/* not reached */
		}
		cmos_set(REBOOT_MARK_INDEX, 0);
		came_back = true;
	}

	pr_info("TAP version 13\n");
	if (came_back)
		report(true, "came back after reboot");
	run_listed_checks();
	if (param_fail)
		report(false, "forced failure (qlite_selftest.fail=1)");
	/* The plan comes last: a check may report more than one line. */
	pr_info("1..%d\n", test_number);

	pr_info("qlite-selftest: %s\n", all_ok ? "PASS" : "FAIL");
	outb(all_ok ? DEBUG_EXIT_PASS : DEBUG_EXIT_FAIL, DEBUG_EXIT_PORT);
	if (param_heartbeat_ms)
		heartbeat();
	/* Still here: no exit device, so let the boot go on. */
	console_loglevel = saved_loglevel;
	return 0;
}
/* _sync: after every late_initcall, so after ip_auto_config (ip=dhcp). */
late_initcall_sync(qlite_selftest_init);
