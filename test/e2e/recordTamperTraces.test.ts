/**
 * Records the syscall fixtures of the tamper rows (test/rules/tamper-rows.yaml): each row's snippet runs as root on
 * a fresh e2e VM (Debian 12, kernel 6.1, systemd 252) under strace, and the trace lands in test/fixtures/tamper/
 * with the facts strace does not print (each executable's canonical path, as Falco's `proc.exepath` has it from
 * the kernel's `trusted_exepath`; the parent of a process the kernel started). The unit tests read those fixtures
 * (test/rules/tamperRows.test.ts); re-record after changing a snippet:
 *
 *   E2E_RECORD_TAMPER_TRACES=1 E2E_CACHE_DIR=/var/cache/falco-nodes/e2e flock /work/coord/vm.lock \
 *     npx mocha --no-config -r ts-node/register/transpile-only --timeout 1800000 --exit \
 *     --grep "record the tamper rows" test/e2e/recordTamperTraces.test.ts
 *
 * (one row: `--grep "record the tamper rows.*kill-term"`; several: `--grep "tamper rows.*(kill-term|kill-stop)$"`.)
 * Snippets run with stdin from /dev/null: `runc run` would otherwise read the rest of the script ssh feeds bash.
 *
 * The image has no strace: its Debian packages (and runc, for the runc row) are fetched on this machine with
 * `apt-get download` and served to the guest by the e2e HTTP server. Skipped unless E2E_RECORD_TAMPER_TRACES=1.
 */
import * as assert from "assert";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { run, shQuote } from "./exec";
import { startTestHttpServer, TestHttpServer } from "./httpServer";
import { startVm, Vm } from "./vm";

export const TAMPER_ROWS_PATH = path.join(__dirname, "..", "rules", "tamper-rows.yaml");
export const TAMPER_FIXTURE_DIR = path.join(__dirname, "..", "fixtures", "tamper");

/** Debian packages the guest needs (strace and its library; the programs rows name in `needs`). */
const DEBS = ["strace", "libunwind8", "runc"];
/**
 * Packages whose files a row runs but whose dependencies the image lacks (containernetworking-plugins depends on
 * iptables, which only its ipMasq and portmap paths use): their /usr/lib/cni copied into the guest, not installed.
 */
const UNPACKED_DEBS = ["containernetworking-plugins"];

/** The syscalls whose events the self-protection rules look at, plus what the model needs to follow processes. */
export const TRACED_SYSCALLS = [
    "execve", "execveat", "clone", "clone3", "fork", "vfork", "chdir", "fchdir",
    "open", "openat", "openat2", "creat", "open_by_handle_at", "truncate", "ftruncate",
    "unlink", "unlinkat", "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat",
    "mkdir", "mkdirat", "rmdir", "chmod", "fchmod", "fchmodat", "chown", "fchown", "lchown", "fchownat", "mount",
    "kill", "tkill", "tgkill", "pidfd_open", "pidfd_send_signal", "bpf", "init_module", "finit_module",
    "delete_module", "connect",
    // close(2): strace -y prints the path of the fd it closes, the trace's only record of the file an
    // open_by_handle_at opened (test/support/syscallTrace.ts, resolveHandleOpens).
    "close",
];

interface Row {
    id: string;
    snippet: string;
    needs?: string[];
    trace?: "kernel-modprobe";
}

const STRACE = `strace -f -v -s 4096 -y -qq -e signal=none -e trace=${TRACED_SYSCALLS.join(",")}`;

/** The guest script for one row: run it under strace, then resolve every executable strace saw exec'd. */
function recordScript(row: Row): string {
    const dir = `/root/tamper-rows`;
    const trace = `${dir}/${row.id}.strace`;
    const lines = [
        "set -u",
        `mkdir -p ${dir}`,
        `cat > ${dir}/${row.id}.sh <<'FALCO_NODES_ROW_EOF'\n${row.snippet.replace(/\n?$/, "\n")}FALCO_NODES_ROW_EOF`,
        `rm -f ${trace} ${dir}/${row.id}.parent`,
    ];
    if (row.trace === "kernel-modprobe") {
        // The kernel runs /proc/sys/kernel/modprobe itself (no parent strace can follow): point it at a wrapper
        // that notes its parent and runs the real modprobe under strace, with the argv and environment it was given.
        lines.push(
            `old=$(cat /proc/sys/kernel/modprobe)`,
            `cat > /usr/local/sbin/modprobe-record <<EOF\n#!/bin/sh\necho "\\$(cat /proc/\\$PPID/comm)|\\$(readlink /proc/\\$PPID/exe)|\\$(awk '/^PPid:/ {print \\$2}' /proc/\\$PPID/status)" >> ${dir}/${row.id}.parent\nexec ${STRACE} -o ${trace}.k\\$\\$ /sbin/modprobe "\\$@"\nEOF`,
            `chmod 0755 /usr/local/sbin/modprobe-record`,
            `echo /usr/local/sbin/modprobe-record > /proc/sys/kernel/modprobe`,
            `(cd /tmp && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root bash ${dir}/${row.id}.sh) < /dev/null > ${dir}/${row.id}.out 2>&1; echo "rc=$?" >> ${dir}/${row.id}.out`,
            `sleep 2; echo "$old" > /proc/sys/kernel/modprobe; rm -f /usr/local/sbin/modprobe-record`,
            `cat ${trace}.k* > ${trace} 2>/dev/null || : > ${trace}`,
            `rm -f ${trace}.k*`,
        );
    } else {
        lines.push(
            `(cd /tmp && env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root ${STRACE} -o ${trace} bash ${dir}/${row.id}.sh) < /dev/null > ${dir}/${row.id}.out 2>&1; echo "rc=$?" >> ${dir}/${row.id}.out`,
        );
    }
    // exepath: the canonical path of each exec'd file (Falco: execve's trusted_exepath, the kernel's exe_file,
    // resolved by the kernel); for a `#!` script that is its interpreter's (binfmt_script execs the interpreter).
    lines.push(
        `grep -o 'execve("[^"]*"' ${trace} | sed 's/^execve("//; s/"$//' | sort -u | while read -r f; do ` +
            `e=$f; if [ "$(head -c2 "$f" 2>/dev/null)" = '#!' ]; then e=$(head -1 "$f" | sed 's/^#! *//; s/[[:space:]].*//'); fi; ` +
            `printf '%s\\t%s\\n' "$f" "$(readlink -f "$e")"; done > ${dir}/${row.id}.exe`,
    );
    return lines.join("\n") + "\n";
}

describe("record the tamper rows' syscall fixtures (E2E_RECORD_TAMPER_TRACES=1)", function () {
    let server: TestHttpServer;
    let vm: Vm;
    let debDir: string;
    const rows: Row[] = YAML.parse(fs.readFileSync(TAMPER_ROWS_PATH, "utf8"));

    before(async function () {
        if (process.env.E2E_RECORD_TAMPER_TRACES !== "1") this.skip();
        debDir = fs.mkdtempSync(path.join(os.tmpdir(), "tamper-debs-"));
        fs.chmodSync(debDir, 0o777); // apt-get download drops privileges to _apt
        const dl = await run("apt-get", ["download", ...DEBS, ...UNPACKED_DEBS], { cwd: debDir });
        assert.strictEqual(dl.code, 0, dl.stderr);
        server = await startTestHttpServer();
        server.mountStatic("/debs", debDir);
        vm = await startVm({ guestHttpPort: server.port });
        const all = fs.readdirSync(debDir).filter((f) => f.endsWith(".deb"));
        const unpacked = all.filter((d) => UNPACKED_DEBS.some((p) => d.startsWith(`${p}_`)));
        const debs = all.filter((d) => !unpacked.includes(d));
        const install = [
            "set -e",
            "cd /tmp",
            ...all.map((d) => `curl -fsS -o ${shQuote(d)} ${shQuote(`${server.guestBaseUrl}/debs/${d}`)}`),
            `dpkg -i ${debs.map(shQuote).join(" ")} >/dev/null`,
            // Into a scratch directory, then only usr/lib/cni: extracting the deb onto / would replace the merged-usr
            // /lib symlink with the package's ./lib/ directory (tar does not keep directory symlinks) and break the guest.
            ...unpacked.flatMap((d) => [`rm -rf /tmp/unpacked && dpkg-deb -x ${shQuote(d)} /tmp/unpacked`, "cp -a /tmp/unpacked/usr/lib/cni /usr/lib/", "rm -rf /tmp/unpacked"]),
            "strace -V | head -1",
        ];
        const r = await vm.runAsRoot(install.join("\n"));
        assert.strictEqual(r.code, 0, r.stderr);
        fs.mkdirSync(TAMPER_FIXTURE_DIR, { recursive: true });
        fs.writeFileSync(
            path.join(TAMPER_FIXTURE_DIR, "RECORDED.txt"),
            `Recorded by test/e2e/recordTamperTraces.test.ts on the e2e VM: ${r.stdout.trim()}, ` +
                `${(await vm.sshChecked("uname -sr")).trim()}, ${(await vm.sshChecked("systemctl --version | head -1")).trim()}\n`,
        );
    });

    after(async function () {
        await vm?.stop();
        await server?.stop();
        if (debDir) fs.rmSync(debDir, { recursive: true, force: true });
    });

    for (const row of rows) {
        it(row.id, async function () {
            const r = await vm.runAsRoot(recordScript(row), { timeoutMs: 300_000 });
            assert.strictEqual(r.code, 0, r.stderr);
            const base = `/root/tamper-rows/${row.id}`;
            const out = await vm.readFile(`${base}.out`);
            const fixture = {
                id: row.id,
                // Which snippet this trace is of: the unit test refuses a trace of another version of the row.
                snippetSha256: createHash("sha256").update(row.snippet).digest("hex"),
                snippetOutput: out,
                exepaths: Object.fromEntries(
                    (await vm.readFile(`${base}.exe`))
                        .split("\n")
                        .filter(Boolean)
                        .map((l) => l.split("\t")),
                ),
                // comm|exe|ppid of the process the kernel started modprobe from (a kworker: no exe, kthreadd's child).
                kernelParent:
                    row.trace === "kernel-modprobe"
                        ? (([comm, exe, ppid]) => ({ comm, exe, ppid: Number(ppid) }))((await vm.readFile(`${base}.parent`)).trim().split("\n")[0].split("|"))
                        : undefined,
            };
            fs.writeFileSync(path.join(TAMPER_FIXTURE_DIR, `${row.id}.strace`), await vm.readFile(`${base}.strace`));
            fs.writeFileSync(path.join(TAMPER_FIXTURE_DIR, `${row.id}.json`), JSON.stringify(fixture, null, 2) + "\n");
        });
    }
});
