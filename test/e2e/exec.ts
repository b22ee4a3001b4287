/**
 * Small process, port, hashing and cache helpers the e2e harness shares. Nothing here talks to the network except
 * to probe loopback ports.
 */
import { spawn, SpawnOptions } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as net from "net";
import * as os from "os";
import * as path from "path";

export interface RunResult {
    code: number;
    stdout: string;
    stderr: string;
}

export interface RunOptions {
    /** Written to the child's stdin, which is then closed. Without it stdin is /dev/null. */
    input?: string | Buffer;
    /** Kill the child (SIGKILL) after this long; the result then has code 124. Default: no limit. */
    timeoutMs?: number;
    cwd?: string;
    env?: NodeJS.ProcessEnv;
    /** Also append stdout and stderr to this file as they arrive (build logs). */
    logFile?: string;
}

/** Runs a program (no shell) and collects its output. Never rejects for a non-zero exit: check `code`. */
export function run(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<RunResult> {
    return new Promise((resolve, reject) => {
        const spawnOpts: SpawnOptions = {
            cwd: opts.cwd,
            env: opts.env ?? process.env,
            stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
        };
        const child = spawn(cmd, args as string[], spawnOpts);
        const out: Buffer[] = [];
        const err: Buffer[] = [];
        const log = opts.logFile ? fs.createWriteStream(opts.logFile, { flags: "a" }) : undefined;
        let timedOut = false;
        const timer =
            opts.timeoutMs === undefined
                ? undefined
                : setTimeout(() => {
                      timedOut = true;
                      child.kill("SIGKILL");
                  }, opts.timeoutMs);
        child.stdout!.on("data", (d: Buffer) => {
            out.push(d);
            log?.write(d);
        });
        child.stderr!.on("data", (d: Buffer) => {
            err.push(d);
            log?.write(d);
        });
        child.on("error", (e) => {
            if (timer) clearTimeout(timer);
            log?.end();
            reject(new Error(`${cmd}: ${e.message}`));
        });
        child.on("close", (code, signal) => {
            if (timer) clearTimeout(timer);
            log?.end();
            resolve({
                code: timedOut ? 124 : code ?? (signal ? 128 + os.constants.signals[signal] : 1),
                stdout: Buffer.concat(out).toString("utf8"),
                stderr: Buffer.concat(err).toString("utf8") + (timedOut ? `\n[e2e] killed after ${opts.timeoutMs} ms` : ""),
            });
        });
        if (opts.input !== undefined) {
            child.stdin!.on("error", () => undefined); // the child may exit before reading all of it
            child.stdin!.end(opts.input);
        }
    });
}

/** Like run, but throws (with the output) unless the exit code is 0. Returns stdout. */
export async function runChecked(cmd: string, args: readonly string[], opts: RunOptions = {}): Promise<string> {
    const r = await run(cmd, args, opts);
    if (r.code !== 0) {
        throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}\n--- stdout\n${tail(r.stdout)}\n--- stderr\n${tail(r.stderr)}`);
    }
    return r.stdout;
}

/** The last `lines` lines of a text, for error messages. */
export function tail(text: string, lines = 40): string {
    const all = text.trimEnd().split("\n");
    return all.slice(-lines).join("\n");
}

/** A TCP port on 127.0.0.1 that was free a moment ago (the caller retries if it is taken in between). */
export function freeLoopbackPort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const srv = net.createServer();
        srv.unref();
        srv.on("error", reject);
        srv.listen(0, "127.0.0.1", () => {
            const port = (srv.address() as net.AddressInfo).port;
            srv.close(() => resolve(port));
        });
    });
}

/** Throws one clear error naming every program in `names` that is not on PATH (with the Debian packages to install). */
export async function requireTools(names: readonly string[]): Promise<void> {
    const r = await run("sh", ["-c", 'for t in "$@"; do command -v "$t" >/dev/null 2>&1 || echo "$t"; done', "sh", ...names]);
    const missing = r.stdout.split("\n").filter(Boolean);
    if (missing.length) {
        throw new Error(
            `e2e: missing host tools: ${missing.join(", ")} (Debian: apt-get install qemu-system-x86 qemu-utils ` +
                `mmdebstrap e2fsprogs openssh-client openssl gcc libc6-dev dpkg-dev apt-utils gnupg util-linux)`,
        );
    }
}

/** Quotes a string for a POSIX shell. */
export function shQuote(s: string): string {
    return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** sha256 over files (sorted by path; directories recursively), each contributing its relative path and bytes. */
export function hashFiles(paths: readonly string[], extra = ""): string {
    const h = crypto.createHash("sha256");
    h.update(extra);
    const files: string[] = [];
    const walk = (p: string): void => {
        const st = fs.statSync(p);
        if (st.isDirectory()) {
            for (const e of fs.readdirSync(p).sort()) walk(path.join(p, e));
        } else if (st.isFile()) {
            files.push(p);
        }
    };
    paths.forEach(walk);
    for (const f of files.sort()) {
        h.update(`\0${path.basename(f)}\0`);
        h.update(fs.readFileSync(f));
    }
    return h.digest("hex");
}

export function sleep(ms: number): Promise<void> {
    return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it returns a value other than undefined/false, or throws after timeoutMs. */
export async function waitFor<T>(
    what: string,
    check: () => Promise<T | undefined | false>,
    opts: { timeoutMs: number; intervalMs?: number },
): Promise<T> {
    const deadline = Date.now() + opts.timeoutMs;
    let lastError: unknown;
    for (;;) {
        try {
            const v = await check();
            if (v !== undefined && v !== false) return v;
        } catch (e) {
            lastError = e;
        }
        if (Date.now() > deadline) {
            throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what}${lastError ? `: ${String(lastError)}` : ""}`);
        }
        await sleep(opts.intervalMs ?? 1000);
    }
}

/** The repository root (test/e2e/ is two levels below it). */
export const REPO_ROOT = path.resolve(__dirname, "..", "..");

/** Where built artifacts (base image, stand-in packages, helper binaries) are cached between runs; gitignored. */
export function cacheRoot(): string {
    const dir = process.env.E2E_CACHE_DIR ?? path.join(REPO_ROOT, ".cache", "e2e");
    fs.mkdirSync(dir, { recursive: true });
    return dir;
}

/**
 * Returns `cacheRoot()/<name>-<key>`, building it with `build(tmpDir)` first unless present. The build writes into a
 * private temporary directory that is renamed into place when complete, so an interrupted build never leaves a
 * half-made entry and concurrent runs cannot see one. Older entries of the same name beyond `keep` are removed.
 */
export async function cachedDir(
    name: string,
    key: string,
    build: (dir: string) => Promise<void>,
    opts: { keep?: number } = {},
): Promise<{ dir: string; hit: boolean }> {
    const root = cacheRoot();
    const dir = path.join(root, `${name}-${key.slice(0, 16)}`);
    if (fs.existsSync(path.join(dir, ".complete"))) {
        fs.utimesSync(dir, new Date(), new Date());
        return { dir, hit: true };
    }
    const tmp = path.join(root, `.tmp-${name}-${process.pid}-${Date.now()}`);
    fs.mkdirSync(tmp);
    try {
        await build(tmp);
        fs.writeFileSync(path.join(tmp, ".complete"), `${key}\n`);
        try {
            fs.renameSync(tmp, dir);
        } catch (e) {
            // Another run finished the same entry first: use theirs.
            if (!fs.existsSync(path.join(dir, ".complete"))) throw e;
        }
    } finally {
        fs.rmSync(tmp, { recursive: true, force: true });
    }
    pruneCache(root, name, dir, opts.keep ?? 2);
    return { dir, hit: false };
}

function pruneCache(root: string, name: string, current: string, keep: number): void {
    const entries = fs
        .readdirSync(root)
        .filter((e) => e.startsWith(`${name}-`) && path.join(root, e) !== current)
        .map((e) => ({ p: path.join(root, e), mtime: fs.statSync(path.join(root, e)).mtimeMs }))
        .sort((a, b) => b.mtime - a.mtime);
    for (const e of entries.slice(Math.max(0, keep - 1))) fs.rmSync(e.p, { recursive: true, force: true });
    // Leftovers of runs that died mid-build.
    for (const e of fs.readdirSync(root)) {
        const m = /^\.tmp-.+-(\d+)-\d+$/.exec(e);
        if (m && !pidAlive(Number(m[1]))) fs.rmSync(path.join(root, e), { recursive: true, force: true });
    }
}

export function pidAlive(pid: number): boolean {
    try {
        process.kill(pid, 0);
        return true;
    } catch {
        return false;
    }
}

/**
 * For a suite whose steps build on each other: after its first failure, its remaining tests are skipped. Not
 * mocha's `this.bail(true)`: mocha skips every suite with bail set once the run has any failure at all
 * (mocha 12 lib/runner.js, Runner#runSuite: `if (!total || (self.failures && suite._bail)) return fn()`), so one
 * failing suite silently hid every later one (kmod and lifecycle did not run after a registry failure).
 */
export function stopAtFirstFailure(): void {
    let failed = false;
    beforeEach(function () {
        if (failed) this.skip();
    });
    afterEach(function () {
        if (this.currentTest?.state === "failed") failed = true;
    });
}
