/**
 * The kmod install path's TEST STAND-INs for the VM suite (kmod.test.ts): the kernel module `falco`
 * (standin/kmod/falco-standin-kmod.c, NOT Falco's driver) built for the VM image's kernel from Debian's
 * linux-headers for exactly that kernel, and the `falcoctl` stand-in script (standin/falcoctl-standin.sh) that
 * models falcoctl v0.13's `driver` commands. Built modules are cached under .cache/e2e/ like the other artifacts.
 */
import * as fs from "fs";
import * as path from "path";
import { BaseImage } from "./artifacts";
import { cachedDir, hashFiles, requireTools, runChecked } from "./exec";

const STANDIN_DIR = path.join(__dirname, "standin");
export const FALCOCTL_STANDIN = path.join(STANDIN_DIR, "falcoctl-standin.sh");

/** The kernel release of a base image, from its manifest (`kernel: 6.1.0-57-amd64`). */
export function imageKernelRelease(image: Pick<BaseImage, "manifest">): string {
    const m = /^kernel: (\S+)$/m.exec(fs.readFileSync(image.manifest, "utf8"));
    if (!m) throw new Error(`no kernel line in ${image.manifest}`);
    return m[1];
}

/**
 * The stand-in module for `kernelRelease`, version `driverVersion` (what the stand-in Falco reports as its
 * `Default driver`). Installs Debian's linux-headers-<kernelRelease> on this machine when missing (root, apt):
 * the headers must be those of the image's kernel exactly, or the module would not load.
 */
export async function buildStandinKmod(kernelRelease: string, driverVersion: string, log: (m: string) => void = () => undefined): Promise<string> {
    const kmodDir = path.join(STANDIN_DIR, "kmod");
    const { dir } = await cachedDir(
        "standin-kmod",
        hashFiles([kmodDir], `${kernelRelease} ${driverVersion}`),
        async (out) => {
            await requireTools(["make", "gcc", "modinfo"]);
            if (!fs.existsSync(`/usr/src/linux-headers-${kernelRelease}/Makefile`)) {
                if (process.getuid?.() !== 0) throw new Error(`linux-headers-${kernelRelease} is not installed and this is not root`);
                log(`installing linux-headers-${kernelRelease} (the VM image's kernel) to build the stand-in module`);
                await runChecked("apt-get", ["install", "-y", "-q", "--no-install-recommends", `linux-headers-${kernelRelease}`], {
                    env: { ...process.env, DEBIAN_FRONTEND: "noninteractive" },
                    timeoutMs: 15 * 60_000,
                });
            }
            await runChecked("bash", [path.join(kmodDir, "build-kmod.sh"), kernelRelease, driverVersion, out], { timeoutMs: 10 * 60_000 });
        },
        { keep: 2 },
    );
    return path.join(dir, "falco.ko");
}
