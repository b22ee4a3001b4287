/**
 * A throwaway Debian VM for the e2e suite (Debian 12 or 13: VmOptions.debian, default this run's E2E_DEBIAN),
 * booted with qemu under TCG (software emulation: the machine's KVM hangs stock kernels) from the cached base image
 * of that release (image/build-image.sh) through a per-run qcow2 overlay.
 *
 * Networking is qemu user networking with `restrict=on`: the guest can reach nothing but
 *   - its SSH port, forwarded from 127.0.0.1:<random port> on this machine, and
 *   - http://10.0.2.100/, forwarded (guestfwd, one relay process per connection) to 127.0.0.1:<guestHttpPort>,
 *     the test process's own HTTP server (httpServer.ts), when guestHttpPort is given.
 *
 * Per run, a small seed disk carries a fresh SSH host key (pinned by the client: StrictHostKeyChecking=yes), the
 * run's authorized key for `admin`, and a random password for `admin`. Nothing secret is baked into the image.
 *
 * stop() kills qemu; so do process exit and SIGINT/SIGTERM, and a watchdog shell that outlives a SIGKILLed test
 * process by at most a few seconds (it also enforces maxLifetimeMs).
 */
import { ChildProcess, spawn } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { BaseImage, DebianRelease, e2eDebian, ensureBaseImage, ensureGuestfwdRelay } from "./artifacts";
import { freeLoopbackPort, requireTools, run, runChecked, RunResult, shQuote, sleep, tail, waitFor } from "./exec";
import { GUEST_HTTP_HOST } from "./httpServer";

export interface VmOptions {
    /** The Debian release to boot. Default: this run's (e2eDebian(), from E2E_DEBIAN). */
    debian?: DebianRelease;
    /** Loopback port of the HTTP server the guest reaches as http://10.0.2.100/ (startTestHttpServer().port). */
    guestHttpPort?: number;
    /** Guest memory. Default 2048 MiB. */
    memoryMiB?: number;
    /** Guest vCPUs. Default 2. */
    cpus?: number;
    /** qemu -cpu model. Default "qemu64,svm=off" (plain x86-64, cheap to emulate); env E2E_QEMU_CPU overrides. */
    cpuModel?: string;
    /** How long boot may take until SSH answers and systemd settles. Default 300 s (emulation on a busy machine). */
    bootTimeoutMs?: number;
    /** Wait for `systemctl is-system-running --wait` before returning. Default true. */
    waitForSystemd?: boolean;
    /** Hard limit on the VM's life, enforced by the watchdog even if this process dies. Default 2 h. */
    maxLifetimeMs?: number;
    /**
     * Guest TCP ports to forward from 127.0.0.1 on this machine (e.g. [8765] to query Falco's /healthz from the
     * test process); vm.forwardedPorts maps each to its host port.
     */
    forwardPorts?: readonly number[];
    /** Extra kernel command line. */
    kernelArgs?: string;
    /** Progress messages (timings). Default: console.log prefixed with [e2e]. */
    log?: (msg: string) => void;
}

export interface SshOptions {
    /** Fed to the remote command's stdin. */
    stdin?: string | Buffer;
    /** Remote user. Default "admin". */
    user?: string;
    /** Kill the ssh client after this long (result code 124). Default 10 minutes. */
    timeoutMs?: number;
    /**
     * Open a new SSH connection instead of sharing the VM's multiplexed one: use it to test what a fresh login
     * sees after sshd's configuration changed (the shared connection survives sshd restarts).
     */
    fresh?: boolean;
}

export interface FileInfo {
    /** Permission bits in octal, e.g. "644", "600", "4755". */
    mode: string;
    owner: string;
    group: string;
    /** As stat(1) says: "regular file", "directory", "symbolic link", ... */
    type: string;
    size: number;
}

export interface Vm {
    /** The Debian release the VM runs. */
    debian: DebianRelease;
    host: string;
    /** SSH port on 127.0.0.1. */
    port: number;
    /** The cloud-image user with passwordless sudo. */
    user: string;
    /** admin's password for this run (password logins work until the product hardens sshd). */
    password: string;
    /** The guest's SSH host key, "ssh-ed25519 AAAA...". */
    hostKey: string;
    /** The run's private key for `admin` (ed25519, no passphrase). */
    privateKeyPath: string;
    /** known_hosts file pinning hostKey for [127.0.0.1]:port. */
    knownHostsPath: string;
    /**
     * ssh options (no destination, no command): `ssh ...sshArgs admin@127.0.0.1 CMD`. Pinned host key, BatchMode,
     * the run's identity only, no user or system ssh_config.
     */
    sshArgs: string[];
    /** Per-run files: overlay disk, seed, keys, console log. Deleted by stop() unless E2E_KEEP_RUN=1. */
    runDir: string;
    /** Path of the serial console log (kernel and systemd boot messages). */
    consoleLog: string;
    /** Guest port -> 127.0.0.1 port on this machine, for VmOptions.forwardPorts. */
    forwardedPorts: Record<number, number>;
    /** Boot timings, seconds. */
    timings: { image: number; bootToSsh: number; bootToSettled?: number; imageCached: boolean };
    /** Result of `systemctl is-system-running --wait` at boot ("running" or "degraded"), if waited for. */
    systemState?: string;

    /** Runs a shell command line as `user` (default admin). Never throws for a non-zero exit: check `code`. */
    ssh(cmd: string, opts?: SshOptions): Promise<RunResult>;
    /** Like ssh, but throws with the output unless the command exits 0. Returns stdout. */
    sshChecked(cmd: string, opts?: SshOptions): Promise<string>;
    /**
     * Runs a bash script as root the way the product converges a host: one SSH session, `sudo -n bash -s`, the
     * script on stdin. Extra args become "$1"...
     */
    runAsRoot(script: string, opts?: { args?: string[]; timeoutMs?: number; fresh?: boolean }): Promise<RunResult>;
    /** Reads a file as root. Throws if it cannot. */
    readFile(remotePath: string): Promise<string>;
    /** Writes a file as root (atomically, via a temp file), creating parent directories. */
    writeFile(remotePath: string, content: string | Buffer, opts?: { mode?: string; owner?: string }): Promise<void>;
    /** Copies a local file into the guest (as writeFile). */
    copyTo(localPath: string, remotePath: string, opts?: { mode?: string; owner?: string }): Promise<void>;
    /** stat as root; undefined if the path does not exist. Symlinks are not followed. */
    stat(remotePath: string): Promise<FileInfo | undefined>;
    /** `systemctl show` properties of a unit, e.g. unitProps("falco-nodes.service", ["ActiveState", "MainPID"]). */
    unitProps(unit: string, props: readonly string[]): Promise<Record<string, string>>;
    /** The unit's journal (this boot), as `journalctl -u UNIT -b -o cat` prints it. */
    journal(unit: string): Promise<string>;
    /** Tries a password login (pubkey disabled, fresh connection). Returns the ssh result: code 0 means it worked. */
    tryPasswordLogin(password?: string, user?: string): Promise<RunResult>;
    /** Reboots the guest and waits until it is back (new boot id) and settled. */
    reboot(): Promise<void>;
    /** Kills qemu and removes the run directory (kept when E2E_KEEP_RUN=1). Idempotent. */
    stop(): Promise<void>;
}

const SEED_LABEL = "E2ESEED";
const live = new Set<ChildProcess>();
let exitHooksInstalled = false;

function installExitHooks(): void {
    if (exitHooksInstalled) return;
    exitHooksInstalled = true;
    const killAll = (): void => {
        for (const p of live) {
            try {
                p.kill("SIGKILL");
            } catch {
                // already gone
            }
        }
    };
    process.on("exit", killAll);
    for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
        process.once(sig, () => {
            killAll();
            process.exit(128 + os.constants.signals[sig]);
        });
    }
}

/** Boots a VM from the cached base image and waits until admin can log in over SSH (and systemd has settled). */
export async function startVm(opts: VmOptions = {}): Promise<Vm> {
    const log = opts.log ?? ((m: string) => console.log(`[e2e] ${m}`));
    await requireTools(["qemu-system-x86_64", "qemu-img", "mkfs.ext4", "ssh", "ssh-keygen", "openssl", "setsid"]);
    const image = await ensureBaseImage(log, opts.debian ?? e2eDebian());
    const relay = opts.guestHttpPort === undefined ? undefined : await ensureGuestfwdRelay();
    installExitHooks();

    // Short path: the ssh control socket lives here (unix socket paths are limited to 108 bytes).
    const runDir = fs.mkdtempSync(path.join(os.tmpdir(), "e2e-vm-"));
    try {
        return await boot(image, relay, runDir, opts, log);
    } catch (e) {
        if (process.env.E2E_KEEP_RUN !== "1") fs.rmSync(runDir, { recursive: true, force: true });
        throw e;
    }
}

async function boot(
    image: BaseImage,
    relay: string | undefined,
    runDir: string,
    opts: VmOptions,
    log: (msg: string) => void,
): Promise<Vm> {
    const user = "admin";
    const host = "127.0.0.1";
    const keyPath = path.join(runDir, "id_ed25519");
    const hostKeyPath = path.join(runDir, "ssh_host_ed25519_key");
    const seedDir = path.join(runDir, "seed");
    const seedImg = path.join(runDir, "seed.img");
    const overlay = path.join(runDir, "overlay.qcow2");
    const consoleLog = path.join(runDir, "console.log");
    const knownHostsPath = path.join(runDir, "known_hosts");
    const controlPath = path.join(runDir, "cm");
    const password = crypto.randomBytes(12).toString("base64url");

    await runChecked("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "e2e-admin", "-f", keyPath]);
    await runChecked("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "e2e-host", "-f", hostKeyPath]);
    const hostKey = fs.readFileSync(`${hostKeyPath}.pub`, "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
    fs.mkdirSync(seedDir);
    fs.copyFileSync(hostKeyPath, path.join(seedDir, "ssh_host_ed25519_key"));
    fs.copyFileSync(`${hostKeyPath}.pub`, path.join(seedDir, "ssh_host_ed25519_key.pub"));
    fs.copyFileSync(`${keyPath}.pub`, path.join(seedDir, "authorized_keys"));
    const passwordHash = (await runChecked("openssl", ["passwd", "-6", "-stdin"], { input: password })).trim();
    fs.writeFileSync(path.join(seedDir, "admin-password-hash"), `${passwordHash}\n`, { mode: 0o600 });
    await runChecked("mkfs.ext4", ["-q", "-F", "-L", SEED_LABEL, "-d", seedDir, seedImg, "4M"]);
    fs.rmSync(seedDir, { recursive: true });
    await runChecked("qemu-img", ["create", "-q", "-f", "qcow2", "-b", image.rootfs, "-F", "raw", overlay]);

    // No SVM: the guest would otherwise load kvm modules at boot for nothing.
    const cpu = opts.cpuModel ?? process.env.E2E_QEMU_CPU ?? "qemu64,svm=off";
    const append = ["root=/dev/vda", "rw", "console=ttyS0", "loglevel=4", "mitigations=off", opts.kernelArgs ?? ""]
        .filter(Boolean)
        .join(" ");

    let qemu: ChildProcess | undefined;
    let port = 0;
    let forwardedPorts: Record<number, number> = {};
    let qemuStderr = "";
    let started = 0;
    for (let attempt = 1; ; attempt++) {
        port = await freeLoopbackPort();
        let netdev = `user,id=n0,restrict=on,hostfwd=tcp:${host}:${port}-:22`;
        forwardedPorts = {};
        for (const guestPort of opts.forwardPorts ?? []) {
            forwardedPorts[guestPort] = await freeLoopbackPort();
            netdev += `,hostfwd=tcp:${host}:${forwardedPorts[guestPort]}-:${guestPort}`;
        }
        if (relay) {
            // qemu runs the cmd through /bin/sh once per guest connection; a comma in a -netdev value is doubled.
            netdev += `,guestfwd=tcp:${GUEST_HTTP_HOST}:80-cmd:${relay.replace(/,/g, ",,")} 127.0.0.1 ${opts.guestHttpPort}`;
        }
        const args = [
            "-accel", "tcg",
            "-cpu", cpu,
            "-smp", String(opts.cpus ?? 2),
            "-m", String(opts.memoryMiB ?? 2048),
            "-nodefaults", "-no-user-config", "-display", "none",
            "-kernel", image.kernel,
            "-initrd", image.initrd,
            "-append", append,
            "-drive", `file=${overlay},if=virtio,format=qcow2,cache=unsafe,discard=unmap`,
            "-drive", `file=${seedImg},if=virtio,format=raw,readonly=on`,
            "-netdev", netdev,
            "-device", "virtio-net-pci,netdev=n0",
            "-device", "virtio-rng-pci",
            "-rtc", "base=utc",
            "-serial", `file:${consoleLog}`,
            "-monitor", "none",
        ];
        fs.writeFileSync(path.join(runDir, "qemu.cmdline"), ["qemu-system-x86_64", ...args].map(shQuote).join(" ") + "\n");
        started = Date.now();
        qemuStderr = "";
        const child = spawn("qemu-system-x86_64", args, { stdio: ["ignore", "ignore", "pipe"] });
        live.add(child);
        child.stderr!.on("data", (d: Buffer) => {
            qemuStderr += d.toString();
            fs.appendFileSync(path.join(runDir, "qemu.stderr"), d);
        });
        child.on("exit", () => live.delete(child));
        startWatchdog(child.pid!, opts.maxLifetimeMs ?? 2 * 3600_000, runDir);
        // qemu fails at once if it cannot bind the forwarded port (taken since freeLoopbackPort).
        const exitedEarly = await new Promise<boolean>((resolve) => {
            const t = setTimeout(() => resolve(false), 1500);
            child.once("exit", () => {
                clearTimeout(t);
                resolve(true);
            });
        });
        if (!exitedEarly) {
            qemu = child;
            break;
        }
        if (attempt >= 3 || !/hostfwd|forward/i.test(qemuStderr)) {
            throw new Error(`qemu exited at start:\n${qemuStderr}`);
        }
    }
    const qemuProc = qemu;
    log(`qemu started (pid ${qemuProc.pid}, ssh on ${host}:${port}, run dir ${runDir})`);

    fs.writeFileSync(knownHostsPath, `[${host}]:${port} ${hostKey}\n`);
    // Shared by key and password logins: no user or system ssh_config, the pinned host key only.
    const commonSshArgs = [
        "-F", "/dev/null",
        "-p", String(port),
        "-o", "IdentityAgent=none",
        "-o", "StrictHostKeyChecking=yes",
        "-o", `UserKnownHostsFile=${knownHostsPath}`,
        "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "HostKeyAlgorithms=ssh-ed25519",
        "-o", "ConnectTimeout=20",
        "-o", "ServerAliveInterval=15",
        "-o", "ServerAliveCountMax=8",
        "-o", "LogLevel=ERROR",
    ];
    const baseSshArgs = [...commonSshArgs, "-i", keyPath, "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes"];
    const muxArgs = ["-o", "ControlMaster=no", "-o", `ControlPath=${controlPath}`];
    const freshArgs = ["-o", "ControlMaster=no", "-o", "ControlPath=none"];
    let master: ChildProcess | undefined;

    const qemuAlive = (): boolean => qemuProc.exitCode === null && qemuProc.signalCode === null;
    const consoleTail = (): string => {
        try {
            return tail(fs.readFileSync(consoleLog, "utf8"), 30);
        } catch {
            return "(no console output)";
        }
    };

    const ssh = async (cmd: string, o: SshOptions = {}): Promise<RunResult> => {
        // The shared connection is admin's: another user needs a connection of its own.
        const fresh = o.fresh || (o.user !== undefined && o.user !== user);
        const args = [...baseSshArgs, ...(fresh ? freshArgs : muxArgs), `${o.user ?? user}@${host}`, cmd];
        return run("ssh", args, { input: o.stdin, timeoutMs: o.timeoutMs ?? 600_000 });
    };
    const sshChecked = async (cmd: string, o: SshOptions = {}): Promise<string> => {
        const r = await ssh(cmd, o);
        if (r.code !== 0) {
            throw new Error(`ssh ${cmd} exited ${r.code}\n--- stdout\n${tail(r.stdout)}\n--- stderr\n${tail(r.stderr)}`);
        }
        return r.stdout;
    };

    /** One long-lived master connection that later ssh calls share: saves a key exchange per call under emulation. */
    const startMaster = async (): Promise<void> => {
        stopMaster();
        fs.rmSync(controlPath, { force: true });
        const m = spawn(
            "ssh",
            [...baseSshArgs, "-o", "ControlMaster=yes", "-o", `ControlPath=${controlPath}`, "-N", `${user}@${host}`],
            { stdio: "ignore" },
        );
        live.add(m);
        m.on("exit", () => live.delete(m));
        master = m;
        await waitFor("the ssh control socket", async () => fs.existsSync(controlPath) || m.exitCode !== null, {
            timeoutMs: 60_000,
            intervalMs: 200,
        });
    };
    const stopMaster = (): void => {
        if (master && master.exitCode === null) master.kill("SIGTERM");
        master = undefined;
    };

    const waitForSsh = async (what: string, timeoutMs: number): Promise<void> => {
        await waitFor(
            what,
            async () => {
                if (!qemuAlive()) {
                    throw new Error(`qemu exited (${qemuProc.exitCode ?? qemuProc.signalCode})\n${qemuStderr}\n${consoleTail()}`);
                }
                const r = await ssh("true", { fresh: true, timeoutMs: 30_000 });
                return r.code === 0;
            },
            { timeoutMs, intervalMs: 1000 },
        ).catch((e: unknown) => {
            throw new Error(`${String(e)}\n--- console (${consoleLog})\n${consoleTail()}`);
        });
    };

    const bootTimeoutMs = opts.bootTimeoutMs ?? 300_000;
    const settle = async (): Promise<string> => {
        const r = await ssh("systemctl is-system-running --wait", { timeoutMs: bootTimeoutMs });
        return r.stdout.trim();
    };

    let stopped = false;
    const stop = async (): Promise<void> => {
        if (stopped) return;
        stopped = true;
        stopMaster();
        if (qemuAlive()) {
            qemuProc.kill("SIGTERM");
            const exited = await Promise.race([
                new Promise<boolean>((r) => qemuProc.once("exit", () => r(true))),
                sleep(5000).then(() => false),
            ]);
            if (!exited) qemuProc.kill("SIGKILL");
        }
        live.delete(qemuProc);
        if (process.env.E2E_KEEP_RUN === "1") log(`kept run dir ${runDir}`);
        else fs.rmSync(runDir, { recursive: true, force: true });
    };

    try {
        await waitForSsh("SSH login as admin", bootTimeoutMs);
        const bootToSsh = (Date.now() - started) / 1000;
        log(`boot to SSH: ${bootToSsh.toFixed(1)} s`);
        await startMaster();

        const vm: Vm = {
            debian: image.release,
            host,
            port,
            user,
            password,
            hostKey,
            privateKeyPath: keyPath,
            knownHostsPath,
            sshArgs: [...baseSshArgs, ...muxArgs],
            forwardedPorts,
            runDir,
            consoleLog,
            timings: { image: image.seconds, imageCached: image.cached, bootToSsh },
            ssh,
            sshChecked,
            runAsRoot(script, o = {}) {
                const args = (o.args ?? []).map(shQuote).join(" ");
                return ssh(`sudo -n bash -s${args ? ` -- ${args}` : ""}`, { stdin: script, timeoutMs: o.timeoutMs, fresh: o.fresh });
            },
            async readFile(remotePath) {
                return sshChecked(`sudo -n cat -- ${shQuote(remotePath)}`);
            },
            async writeFile(remotePath, content, o = {}) {
                const q = shQuote(remotePath);
                const cmd = [
                    `set -e; umask 077; d=$(dirname -- ${q}); mkdir -p -- "$d"; t=$(mktemp -p "$d" .e2e-write.XXXXXX)`,
                    `cat > "$t"`,
                    `chmod ${o.mode ?? "0644"} "$t"`,
                    `chown ${o.owner ?? "root:root"} "$t"`,
                    `mv -f -- "$t" ${q}`,
                ].join("; ");
                await sshChecked(`sudo -n sh -c ${shQuote(cmd)}`, { stdin: content });
            },
            async copyTo(localPath, remotePath, o = {}) {
                await vm.writeFile(remotePath, fs.readFileSync(localPath), o);
            },
            async stat(remotePath) {
                const r = await ssh(`sudo -n stat -c '%a|%U|%G|%F|%s' -- ${shQuote(remotePath)}`);
                if (r.code !== 0) {
                    if (/No such file or directory/.test(r.stderr)) return undefined;
                    throw new Error(`stat ${remotePath}: ${r.stderr}`);
                }
                const [mode, owner, group, type, size] = r.stdout.trim().split("|");
                return { mode, owner, group, type, size: Number(size) };
            },
            async unitProps(unit, props) {
                const out = await sshChecked(
                    `systemctl show ${props.map((p) => `-p ${shQuote(p)}`).join(" ")} -- ${shQuote(unit)}`,
                );
                const result: Record<string, string> = {};
                for (const line of out.split("\n")) {
                    const i = line.indexOf("=");
                    if (i > 0) result[line.slice(0, i)] = line.slice(i + 1);
                }
                return result;
            },
            async journal(unit) {
                return sshChecked(`sudo -n journalctl --no-pager -b -o cat -u ${shQuote(unit)}`);
            },
            async tryPasswordLogin(pw = password, u = user) {
                const askpass = path.join(runDir, "askpass.sh");
                const pwFile = path.join(runDir, "askpass.pw");
                fs.writeFileSync(pwFile, pw, { mode: 0o600 });
                fs.writeFileSync(askpass, `#!/bin/sh\ncat ${shQuote(pwFile)}\n`, { mode: 0o700 });
                const args = [
                    ...commonSshArgs,
                    ...freshArgs,
                    "-o", "BatchMode=no",
                    "-o", "PubkeyAuthentication=no",
                    "-o", "PreferredAuthentications=password,keyboard-interactive",
                    "-o", "NumberOfPasswordPrompts=1",
                    `${u}@${host}`,
                    "true",
                ];
                return run("setsid", ["-w", "ssh", ...args], {
                    timeoutMs: 120_000,
                    env: { ...process.env, SSH_ASKPASS: askpass, SSH_ASKPASS_REQUIRE: "force", DISPLAY: ":0" },
                });
            },
            async reboot() {
                const before = (await sshChecked("cat /proc/sys/kernel/random/boot_id")).trim();
                stopMaster();
                await ssh("sudo -n systemctl reboot", { fresh: true, timeoutMs: 60_000 });
                const t0 = Date.now();
                await waitFor(
                    "the guest to come back with a new boot id",
                    async () => {
                        if (!qemuAlive()) throw new Error(`qemu exited during reboot\n${consoleTail()}`);
                        const r = await ssh("cat /proc/sys/kernel/random/boot_id", { fresh: true, timeoutMs: 30_000 });
                        return r.code === 0 && r.stdout.trim() !== before;
                    },
                    { timeoutMs: bootTimeoutMs, intervalMs: 2000 },
                );
                await startMaster();
                const state = await settle();
                log(`rebooted in ${((Date.now() - t0) / 1000).toFixed(1)} s (${state})`);
            },
            stop,
        };

        if (opts.waitForSystemd ?? true) {
            vm.systemState = await settle();
            vm.timings.bootToSettled = (Date.now() - started) / 1000;
            log(`boot to settled: ${vm.timings.bootToSettled.toFixed(1)} s (${vm.systemState})`);
        }
        return vm;
    } catch (e) {
        await stop();
        throw e;
    }
}

/**
 * A shell that kills qemu when this process is gone (even by SIGKILL) or the VM outlived its limit. Detached, so a
 * Ctrl-C to the test's process group does not kill it first; it exits on its own once qemu is gone.
 */
function startWatchdog(qemuPid: number, maxLifetimeMs: number, runDir: string): void {
    const cleanup = process.env.E2E_KEEP_RUN === "1" ? "" : `rm -rf ${shQuote(runDir)}; `;
    const script = [
        `deadline=$(( $(date +%s) + ${Math.ceil(maxLifetimeMs / 1000)} ))`,
        `while kill -0 ${qemuPid} 2>/dev/null; do`,
        `  if ! kill -0 ${process.pid} 2>/dev/null || [ "$(date +%s)" -ge "$deadline" ]; then`,
        `    kill ${qemuPid} 2>/dev/null; sleep 5; kill -9 ${qemuPid} 2>/dev/null`,
        // The test process is gone: nobody else will remove the run directory.
        `    if ! kill -0 ${process.pid} 2>/dev/null; then ${cleanup}:; fi`,
        `    exit 0`,
        `  fi`,
        `  sleep 2`,
        `done`,
    ].join("\n");
    const w = spawn("sh", ["-c", script], { detached: true, stdio: "ignore" });
    w.unref();
}
