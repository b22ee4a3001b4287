/**
 * `npm run bench`: how the program's cost grows with the fleet. Evaluates index.ts under Pulumi mocks (as
 * `pulumi preview` would, minus the engine) for fleets of 10, 100 and 500 nodes and prints time per node and
 * peak memory. Targets: linear growth, <= 10 ms per node, 500 nodes in under 5 s and under 1 GiB.
 *
 * Each fleet size runs in its own process, so peak memory is that run's alone. The time covers evaluating the
 * program (config parsing, validation, rendering every node's bundle, declaring every resource) until all
 * stack outputs are known; loading the modules is measured apart, since it does not grow with the fleet.
 * Figures only: nothing here fails on a slow machine.
 */
import { spawnSync } from "child_process";
import * as path from "path";

const SIZES = [10, 100, 500];
/** Every fifth node is an AWS node (more resources each); the rest are existing servers behind a bastion. */
const AWS_EVERY = 5;
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGs/MbsDJVGgX3toQvta8TevR8slzykb4it4nBZjqrW";

interface Result {
    nodes: number;
    /** One `renderBundle` call, measured alone. */
    bundleMs: number;
    resources: number;
    loadMs: number;
    evalMs: number;
    maxRssMiB: number;
    heapMiB: number;
}

/** A stack config with `n` nodes, in the shape the CLI passes (values as the stack file would hold them). */
function fleetConfig(n: number): Record<string, unknown> {
    const nodes = Array.from({ length: n }, (_, i) =>
        i % AWS_EVERY === AWS_EVERY - 1
            ? { name: `aws-${i}`, kind: "aws" }
            : { name: `host-${i}`, kind: "existing", ssh: { host: `10.${Math.floor(i / 250)}.${i % 250}.10`, hostKey: HOST_KEY }, ...(i % 7 === 0 ? { falco: { driver: "kmod" } } : {}) },
    );
    return {
        "falco-nodes:falco": { rules: { builtin: ["self-protection", "app-config-example"] } },
        "falco-nodes:ssh": { user: "deploy", bastion: { host: "bastion.example.net", user: "jump", hostKey: HOST_KEY } },
        "falco-nodes:aws": { subnetId: "subnet-0123456789abcdef0", sshSourceSecurityGroupIds: ["sg-0123456789abcdef0"] },
        "falco-nodes:nodes": nodes,
    };
}

async function child(n: number): Promise<void> {
    const t0 = process.hrtime.bigint();
    // Load everything the program uses before the clock starts: a fixed cost, not a per-node one.
    const support = await import("../test/support/program");
    await import("../components");
    await import("../components/config");
    const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
    // Compiled mode: V8's own stack traces, as a program compiled to JavaScript gets them. ts-node's source-map
    // support maps every stack the Pulumi SDK captures (one per resource promise), a per-resource cost.
    if (process.argv.includes("--compiled")) (Error as { prepareStackTrace?: unknown }).prepareStackTrace = undefined;

    let heapPeak = 0;
    const sampler = setInterval(() => (heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed)), 10);
    const start = process.hrtime.bigint();
    const resources: { type: string }[] = [];
    support.installProgramMocks(resources as never);
    support.setCliConfig(support.cliConfig(fleetConfig(n), ["falco-nodes:sshPrivateKey"]));
    const program = require(support.PROGRAM) as { nodes: Record<string, unknown> };
    const outputs = await support.resolveDeep(program.nodes);
    await support.settled(resources as never, 20);
    const evalMs = Number(process.hrtime.bigint() - start) / 1e6 - 20; // minus the final quiet period
    clearInterval(sampler);
    heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
    if (Object.keys(outputs).length !== n) throw new Error(`expected ${n} node outputs, got ${Object.keys(outputs).length}`);

    // Attribution: one bundle render for the fleet's default settings (FalcoHost renders each node's twice).
    const { renderBundle } = await import("../components/host/bundle");
    const { resolveHostSettings } = await import("../components/host/settings");
    const settings = resolveHostSettings((fleetConfig(n)["falco-nodes:falco"] ?? {}) as never);
    const b0 = process.hrtime.bigint();
    for (let k = 0; k < 20; k++) renderBundle(settings);
    const bundleMs = Number(process.hrtime.bigint() - b0) / 1e6 / 20;

    const result: Result = {
        bundleMs,
        nodes: n,
        resources: resources.length,
        loadMs,
        evalMs,
        maxRssMiB: process.resourceUsage().maxRSS / 1024,
        heapMiB: heapPeak / 2 ** 20,
    };
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

/** The two ways Pulumi can run the program: ts-node (`typescript: true`, source-mapped stacks) or compiled JS. */
const MODES = [
    { flag: [] as string[], title: "as `pulumi preview` runs index.ts (ts-node, source-mapped stack traces)" },
    { flag: ["--compiled"], title: "compiled to JavaScript (V8 stack traces, no source-map lookups)" },
];

function runChild(n: number, flag: string[]): Result {
    const r = spawnSync(process.execPath, ["-r", "ts-node/register/transpile-only", __filename, "--child", String(n), ...flag], {
        cwd: path.resolve(__dirname, ".."),
        encoding: "utf8",
        maxBuffer: 64 * 1024 * 1024,
    });
    const line = r.stdout.split("\n").find((l) => l.startsWith("RESULT "));
    if (r.status !== 0 || !line) {
        process.stderr.write(`fleet of ${n} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}\n`);
        process.exit(1);
    }
    return JSON.parse(line.slice("RESULT ".length));
}

function report(title: string, results: Result[]): void {
    const f = (x: number, d = 1) => x.toFixed(d).padStart(8);
    console.log(title);
    console.log(`  nodes  resources   eval ms  ms/node  load ms  peak RSS MiB  peak heap MiB`);
    for (const r of results)
        console.log(`  ${String(r.nodes).padStart(5)}  ${String(r.resources).padStart(9)}  ${f(r.evalMs, 0)} ${f(r.evalMs / r.nodes, 2)} ${f(r.loadMs, 0)}  ${f(r.maxRssMiB, 0)}      ${f(r.heapMiB, 0)}`);
    const [small, mid, large] = results;
    const perNodeGrowth = large.evalMs / large.nodes / (small.evalMs / small.nodes);
    const marginal = (large.evalMs - mid.evalMs) / (large.nodes - mid.nodes);
    const verdict = (ok: boolean) => (ok ? "ok" : "MISSED");
    console.log(`  marginal cost ${mid.nodes}->${large.nodes} nodes: ${marginal.toFixed(2)} ms/node; per-node time at ${large.nodes} vs ${small.nodes}: x${perNodeGrowth.toFixed(2)} (<= 1: linear)`);
    console.log(`  of which bundle rendering: ${large.bundleMs.toFixed(1)} ms per renderBundle call, 2 calls per node (FalcoHost)`);
    console.log(`  targets: <= 10 ms/node ${verdict(large.evalMs / large.nodes <= 10)}; ${large.nodes} nodes < 5 s ${verdict(large.evalMs < 5000)}; < 1 GiB ${verdict(large.maxRssMiB < 1024)}`);
    console.log("");
}

function parent(): void {
    console.log(`fleet: every ${AWS_EVERY}th node on AWS, the rest existing servers behind a bastion; index.ts under mocks\n`);
    for (const m of MODES) report(m.title, SIZES.map((n) => runChild(n, m.flag)));
}

const i = process.argv.indexOf("--child");
if (i >= 0)
    child(Number(process.argv[i + 1])).catch((e) => {
        console.error(e);
        process.exit(1);
    });
else parent();
