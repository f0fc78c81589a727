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

#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/init.h>
#include <linux/io.h>
#include <linux/kernel.h>
#include <linux/kvm_para.h>
#include <linux/mc146818rtc.h>
#include <linux/moduleparam.h>
#include <linux/reboot.h>
#include <linux/rtc.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
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

static const struct {
	const char *name;
	void (*run)(void);
} known_checks[] = {
	{ "cpus", check_cpus },
	{ "kvmclock", check_kvmclock },
	{ "rtc", check_rtc },
};

/* Runs each check named in param_checks, or only counts them if !run. */
static int for_each_listed_check(bool run)
{
	char *list, *cursor, *name;
	int count = 0, i;

	list = kstrdup(param_checks, GFP_KERNEL);
	if (!list)
		return 0;
	cursor = list;
	while ((name = strsep(&cursor, ",")) != NULL) {
		name = strim(name);
		if (!*name)
			continue;
		count++;
		if (!run)
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
	return count;
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
	bool came_back = false;

	if (!param_run)
		return 0;

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
	pr_info("1..%d\n", came_back + for_each_listed_check(false) + param_fail);

	if (came_back)
		report(true, "came back after reboot");
	for_each_listed_check(true);
	if (param_fail)
		report(false, "forced failure (qlite_selftest.fail=1)");

	pr_info("qlite-selftest: %s\n", all_ok ? "PASS" : "FAIL");
	outb(all_ok ? DEBUG_EXIT_PASS : DEBUG_EXIT_FAIL, DEBUG_EXIT_PORT);
	/* Still here: no exit device, so let the boot go on. */
	return 0;
}
late_initcall(qlite_selftest_init);
