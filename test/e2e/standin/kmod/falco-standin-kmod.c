// SPDX-License-Identifier: GPL-2.0
/*
 * TEST STAND-IN kernel module named `falco` (falco-nodes e2e suite). NOT Falco's driver: it captures nothing, has no
 * device and no probes. It exists so the VM suite can show the kmod install path with a real module file: that
 * converge puts it where modprobe finds it (/lib/modules/<kernel>/extra, depmod), that the unit's
 * `modprobe falco` / `rmmod falco` load and unload it, across a reboot, a package upgrade and an uninstall.
 *
 * Built on the test machine for the VM image's kernel from Debian's linux-headers for that kernel
 * (test/e2e/kmod.ts). Its version is the driver version the stand-in Falco reports (`Default driver:`), as
 * falcosecurity/libs' driver module carries DRIVER_VERSION.
 */
#include <linux/init.h>
#include <linux/module.h>

#ifndef STANDIN_DRIVER_VERSION
#error STANDIN_DRIVER_VERSION must be defined
#endif

static int __init falco_standin_init(void)
{
	pr_info("falco TEST STAND-IN module loaded (not Falco's driver)\n");
	return 0;
}

static void __exit falco_standin_exit(void)
{
	pr_info("falco TEST STAND-IN module unloaded\n");
}

module_init(falco_standin_init);
module_exit(falco_standin_exit);

MODULE_LICENSE("GPL");
MODULE_AUTHOR("falco-nodes e2e suite");
MODULE_DESCRIPTION("TEST STAND-IN named falco: not Falco's kernel driver");
MODULE_VERSION(STANDIN_DRIVER_VERSION);
