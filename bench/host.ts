/**
 * `npm run bench:host`: what one converge costs on a real host. Boots the e2e suite's Debian 12 VM (qemu under
 * TCG, i.e. software emulation) with the test's signed apt repository and the TEST STAND-IN falco package, then
 * converges it as FalcoHost does (one fresh SSH connection per converge, `remoteShell()`, the bundle on stdin):
 * fresh (package install included), no-op (three times) and a rule change.
 *
 * For each it prints the wall time seen from here, the time the script itself took on the VM (measured on the VM
 * around `bash -s`), the difference (SSH: key exchange, authentication, sudo, moving the ~60 KB script), and the
 * SSH sessions it cost, counted twice: by construction (one `ssh` process per converge) and by sshd's own journal
 * (`Accepted publickey` lines; the bench's other queries ride an already authenticated connection and add none).
 *
 * Emulation makes every process start on the VM tens of times slower than on hardware; the bench measures that
 * factor (a loop of /bin/true on the VM and here) and prints the VM time divided by it as a rough native
 * estimate, labelled as such. Figures only: nothing here fails on a slow machine. Needs root (the image build).
 */
import { spawnSync } from "child_process";
import { remoteShell } from "../components/host/falcoHost";
import { startAptRepo } from "../test/e2e/aptRepo";
import { aptSettings, bundleFor, runHostScript, ScriptRun } from "../test/e2e/host";
import { startVm, Vm } from "../test/e2e/vm";

const NOOP_RUNS = 3;

interface Row {
    what: string;
    total: number;
    onHost: number;
    sessions: number;
    changed: boolean;
    restarted: boolean;
}

/** FalcoHost's command, with the VM's clock read around the script: stderr gets `falco-nodes-bench <start> <end>`. */
function timedConverge(user: string): string {
    const plain = remoteShell(user, "converge");
    // `sudo -n env FALCO_NODES_CONVERGE=1 bash -s -- converge` -> the same sudo/env, then a bash that times `bash -s`.
    const prefix = plain.slice(0, plain.indexOf("bash -s"));
    return `${prefix}bash -c 's=$EPOCHREALTIME; bash -s -- converge; rc=$?; echo "falco-nodes-bench $s $EPOCHREALTIME" >&2; exit $rc'`;
}

async function acceptedLogins(vm: Vm): Promise<number> {
    const out = await vm.sshChecked("sudo -n journalctl -b -o cat -u ssh.service | grep -c 'Accepted publickey' || true");
    return Number(out.trim());
}

async function measure(vm: Vm, what: string, bundle: ReturnType<typeof bundleFor>): Promise<Row> {
    const before = await acceptedLogins(vm);
    const r: ScriptRun = await runHostScript(vm, bundle, "converge", { fresh: true, command: timedConverge(vm.user) });
    const after = await acceptedLogins(vm);
    if (r.code !== 0 || !r.report) throw new Error(`${what}: converge exited ${r.code}\n${r.stderr.slice(-3000)}`);
    const m = /^falco-nodes-bench ([0-9.]+) ([0-9.]+)$/m.exec(r.stderr);
    if (!m) throw new Error(`${what}: no timing line in stderr`);
    return {
        what,
        total: r.seconds,
        onHost: Number(m[2]) - Number(m[1]),
        sessions: after - before,
        changed: r.report.changed,
        restarted: r.report.restarted,
    };
}

/** Seconds per fork+exec of /bin/true, from a loop of n. */
function localSpawnCost(n: number): number {
    const t = spawnSync("bash", ["-c", `s=$EPOCHREALTIME; for ((i = 0; i < ${n}; i++)); do /bin/true; done; echo "$s $EPOCHREALTIME"`], { encoding: "utf8" });
    const [s, e] = t.stdout.trim().split(" ").map(Number);
    return (e - s) / n;
}

async function vmSpawnCost(vm: Vm, n: number): Promise<number> {
    const out = await vm.sshChecked(`bash -c 's=$EPOCHREALTIME; for ((i = 0; i < ${n}; i++)); do /bin/true; done; echo "$s $EPOCHREALTIME"'`);
    const [s, e] = out.trim().split(" ").map(Number);
    return (e - s) / n;
}

async function main(): Promise<void> {
    const repo = await startAptRepo();
    const vm = await startVm({ guestHttpPort: repo.server.port, log: () => undefined });
    try {
        const rule = (tag: string) =>
            `- rule: bench probe ${tag}\n  desc: bench\n  condition: evt.type = open and fd.name = /etc/bench-${tag}\n  output: "bench ${tag} (file=%fd.name)"\n  priority: WARNING\n`;
        const v1 = bundleFor(aptSettings(repo, { rules: { custom: { bench: rule("v1") } } }));
        const v2 = bundleFor(aptSettings(repo, { rules: { custom: { bench: rule("v2") } } }));

        const rows: Row[] = [];
        rows.push(await measure(vm, "fresh (apt install)", v1));
        for (let i = 1; i <= NOOP_RUNS; i++) rows.push(await measure(vm, `no-op #${i}`, v1));
        rows.push(await measure(vm, "rule change", v2));

        const handshake: number[] = [];
        for (let i = 0; i < 3; i++) {
            const t0 = Date.now();
            await vm.ssh("true", { fresh: true });
            handshake.push((Date.now() - t0) / 1000);
        }
        const local = localSpawnCost(500);
        const remote = await vmSpawnCost(vm, 100);
        const factor = remote / local;

        const pad = (s: string, n: number) => s.padEnd(n);
        const num = (x: number) => x.toFixed(2).padStart(8);
        console.log("");
        console.log(`falco-nodes host converge (Debian 12 VM under TCG emulation; boot ${vm.timings.bootToSsh.toFixed(1)} s to SSH)`);
        console.log("");
        console.log(`${pad("converge", 22)}${"total s".padStart(8)}${"on VM s".padStart(9)}${"SSH s".padStart(8)}  sessions  changed restarted  native est. s`);
        for (const r of rows) {
            console.log(
                `${pad(r.what, 22)}${num(r.total)} ${num(r.onHost)}${num(r.total - r.onHost)}  ${String(r.sessions).padStart(8)}  ${String(r.changed).padEnd(7)} ${String(r.restarted).padEnd(9)} ${num(r.onHost / factor)}`,
            );
        }
        const noops = rows.filter((r) => r.what.startsWith("no-op"));
        const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
        console.log("");
        console.log(`SSH sessions per converge: 1 by construction (one ssh process, one exec channel); sshd logged ${rows.map((r) => r.sessions).join(", ")}`);
        console.log(`no-op converge, median of ${NOOP_RUNS}: ${median(noops.map((r) => r.total)).toFixed(2)} s total, ${median(noops.map((r) => r.onHost)).toFixed(2)} s on the VM, ${median(noops.map((r) => r.total - r.onHost)).toFixed(2)} s SSH`);
        console.log(`a bare SSH login (fresh connection, \`true\`): ${handshake.map((h) => h.toFixed(2)).join(", ")} s`);
        console.log(
            `process start (fork+exec of /bin/true): ${(remote * 1000).toFixed(1)} ms on the VM, ${(local * 1000).toFixed(2)} ms here: emulation factor ~${factor.toFixed(0)}x; ` +
                `"native est." = on-VM time / factor, a rough figure for the same script on hardware (the script's time is mostly process starts)`,
        );
        console.log(`target: a no-op converge in one SSH session and under 2 s of host time`);
    } finally {
        await vm.stop();
        await repo.stop();
    }
}

main().catch((e) => {
    console.error(e);
    process.exit(1);
});
