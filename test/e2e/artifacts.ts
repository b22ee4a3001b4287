/**
 * What the e2e suite builds on this machine and caches under .cache/e2e/ (see cachedDir): the base VM image, the
 * guestfwd relay, and the TEST STAND-IN falco packages. Each cache entry is keyed by the sha256 of its sources, so
 * editing a source rebuilds it on the next run and a warm run reuses it.
 */
import * as fs from "fs";
import * as path from "path";
import { cacheRoot, cachedDir, hashFiles, REPO_ROOT, requireTools, runChecked, tail } from "./exec";

const E2E_DIR = __dirname;

export interface BaseImage {
    /** The Debian release the image holds. */
    release: DebianRelease;
    /** Raw ext4 root filesystem; used read-only as the backing file of each run's qcow2 overlay. */
    rootfs: string;
    kernel: string;
    initrd: string;
    /** Kernel version and package list of the image. */
    manifest: string;
    /** True when the cache already had it. */
    cached: boolean;
    /** Time spent getting it (building, or just looking it up). */
    seconds: number;
}

/** The Debian releases the VM suite runs on (the matrix `npm run test:e2e` runs, README "Tests"). */
export const DEBIAN_RELEASES = {
    bookworm: { suite: "bookworm", version: 12, title: "Debian 12 (bookworm)" },
    trixie: { suite: "trixie", version: 13, title: "Debian 13 (trixie)" },
} as const;
export type DebianSuite = keyof typeof DEBIAN_RELEASES;
export type DebianRelease = (typeof DEBIAN_RELEASES)[DebianSuite];

/**
 * The release this run boots: `E2E_DEBIAN` (`bookworm`, `trixie`, or the version number `12`, `13`), default
 * bookworm. One release per mocha run: test/e2e/matrix.sh runs the suite once for each.
 */
export function e2eDebian(env: string | undefined = process.env.E2E_DEBIAN): DebianRelease {
    if (env === undefined || env === "") return DEBIAN_RELEASES.bookworm;
    const found = Object.values(DEBIAN_RELEASES).find((r) => r.suite === env || String(r.version) === env);
    if (!found) {
        const known = Object.values(DEBIAN_RELEASES).map((r) => `${r.suite} (${r.version})`).join(", ");
        throw new Error(`E2E_DEBIAN=${env}: not a release the VM suite runs on; use one of ${known}`);
    }
    return found;
}

/**
 * Which suites and steps run on which release (the matrix, README "Tests"). Debian 13 runs what depends on the
 * release: the lifecycle and fault suites whole (systemd 257, apt 3, OpenSSH 10) and the issue-13 guarantees whose
 * subject is apt, dpkg, sshd or systemd's unit states. What does not differ between the releases runs on Debian 12
 * only, so the matrix stays well under CI's time limit: the engine's step sequences (Pulumi's contract, the same
 * converge on both), the interrupted-converge and hung-Falco bookkeeping (bash and curl), and the registry client
 * (the falcoctl stand-in). `E2E_FULL_MATRIX=1` runs everything on every release. Call from a hook or test.
 */
export function skipUnlessRelease(ctx: Mocha.Context, suites: DebianSuite[], what: string): void {
    const release = e2eDebian();
    if (suites.includes(release.suite) || process.env.E2E_FULL_MATRIX === "1") return;
    const on = suites.map((s) => DEBIAN_RELEASES[s].title).join(", ");
    console.log(`[e2e] ${what}: runs on ${on} only, not on ${release.title} (skipUnlessRelease, test/e2e/artifacts.ts; E2E_FULL_MATRIX=1 runs it)`);
    ctx.skip();
}

/**
 * The base image of `release` (default: this run's, e2eDebian()), built by image/build-image.sh (as root) unless
 * cached. Cold build: about a minute. One cache entry per release (`base-<suite>-<key>`), so the two releases'
 * images live side by side.
 */
export async function ensureBaseImage(log: (msg: string) => void = () => undefined, release: DebianRelease = e2eDebian()): Promise<BaseImage> {
    const started = Date.now();
    const imageDir = path.join(E2E_DIR, "image");
    const key = hashFiles([imageDir], release.suite);
    const { dir, hit } = await cachedDir(`base-${release.suite}`, key, async (out) => {
        if (process.getuid?.() !== 0) {
            throw new Error("building the e2e base image needs root (mmdebstrap --mode=root, chroot)");
        }
        await requireTools(["mmdebstrap", "mkfs.ext4", "chroot"]);
        const logFile = path.join(cacheRootLogDir(), `base-${release.suite}-${key.slice(0, 16)}.build.log`);
        log(`building the ${release.title} base image (cache miss, key ${key.slice(0, 16)}), log: ${logFile}`);
        try {
            await runChecked("bash", [path.join(imageDir, "build-image.sh"), out, release.suite], { logFile, timeoutMs: 20 * 60_000 });
        } catch (e) {
            throw new Error(`base image build failed (full log: ${logFile})\n${tail(String(e), 60)}`);
        }
    }, { keep: 1 }); // ~0.5 GiB each: keep only the current one
    const seconds = (Date.now() - started) / 1000;
    log(`${release.title} base image ${hit ? "reused from cache" : "built"} in ${seconds.toFixed(1)} s: ${dir}`);
    return {
        release,
        rootfs: path.join(dir, "rootfs.img"),
        kernel: path.join(dir, "vmlinuz"),
        initrd: path.join(dir, "initrd.img"),
        manifest: path.join(dir, "manifest.txt"),
        cached: hit,
        seconds,
    };
}

function cacheRootLogDir(): string {
    const dir = path.join(cacheRoot(), "logs");
    fs.mkdirSync(dir, { recursive: true });
    return dir;
}

/** tools/guestfwd-relay.c compiled for this machine: qemu runs it per guest connection to reach our HTTP server. */
export async function ensureGuestfwdRelay(): Promise<string> {
    const src = path.join(E2E_DIR, "tools", "guestfwd-relay.c");
    const { dir } = await cachedDir("relay", hashFiles([src]), async (out) => {
        await requireTools(["gcc"]);
        await runChecked("gcc", ["-O2", "-Wall", "-Wextra", "-Werror", "-o", path.join(out, "guestfwd-relay"), src]);
    });
    return path.join(dir, "guestfwd-relay");
}

/** The stand-in's default versions: the one the product pins, and a newer one for upgrade tests. */
export const STANDIN_VERSIONS = ["0.44.1", "0.44.2"] as const;

/** Where the real packages' unit files are (the upstream reference data beside the repository). */
export function referenceUnitsDir(): string {
    return process.env.E2E_REFERENCE_UNITS ?? path.resolve(REPO_ROOT, "..", "shared", "reference", "falco", "systemd");
}

/**
 * Builds the TEST STAND-IN `falco` .deb (NOT Falco; see standin/falco-standin.c) for each version, and returns
 * their paths in the same order.
 */
export async function buildStandinDebs(versions: readonly string[] = STANDIN_VERSIONS): Promise<string[]> {
    const standinDir = path.join(E2E_DIR, "standin");
    const units = referenceUnitsDir();
    if (!fs.existsSync(units)) throw new Error(`reference unit files not found at ${units} (set E2E_REFERENCE_UNITS)`);
    const key = hashFiles([standinDir, units], versions.join(","));
    const { dir } = await cachedDir(
        "standin",
        key,
        async (out) => {
            await requireTools(["gcc", "dpkg-deb"]);
            for (const v of versions) {
                await runChecked("bash", [path.join(standinDir, "build-deb.sh"), v, out, units]);
            }
        },
        { keep: 3 },
    );
    return versions.map((v) => path.join(dir, `falco_${v}_amd64.deb`));
}
