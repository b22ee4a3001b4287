/**
 * `npm run bench`: how the program's cost grows with the fleet. Evaluates index.ts under Pulumi mocks (as
 * `pulumi preview` would, minus the engine) for fleets of 10, 100 and 500 nodes and prints time per node and
 * peak memory. Targets: linear growth, <= 10 ms per node, 500 nodes in under 5 s and under 1 GiB.
 *
 * What preview runs: each measuring process is started the way the Pulumi CLI starts index.ts, through
 * @pulumi/pulumi's own runner (cmd/run, which registers ts-node) with the environment the language host derives
 * from Pulumi.yaml's runtime options (test/support/pulumiRunner.ts): ts-node with tsconfig.pulumi.json, so
 * transpile-only. A last measurement starts one process the way preview ran before that option (tsconfig.json:
 * ts-node type-checks every file it loads) and prints what the type check cost.
 *
 * Each fleet size runs in its own process, so peak memory is that run's alone. The time covers evaluating the
 * program (config parsing, validation, rendering every node's bundle, declaring every resource) until all
 * stack outputs are known; loading the modules is measured apart, since it does not grow with the fleet.
 * Figures only: nothing here fails on a slow machine.
 *
 * What is ours and what is Pulumi's: the SDK spends a fixed amount per resource whatever the program does. A
 * separate "floor" process declares the same number of resources of the same types, and the same invokes, with
 * trivial inputs under the same mocks and the same stack-trace policy; ours = the program's time minus that floor.
 *
 * The third mode runs the program with `PULUMI_DEBUG_PROMISE_LEAKS=1`, which turns off index.ts's
 * `withoutPromiseStackTraces`: the SDK then formats a stack trace for every promise it wraps (four per output
 * property of a custom resource; an `aws.ec2.Instance` has ~60), source-mapped under ts-node. Its figures are
 * what that policy saves.
 *
 * `npm run bench -- --fleet rich` adds what a production fleet typically has: a site rule file (~60 KB of
 * rules in `falco.rules.custom`) and the HTTP output with the secret URL on every node.
 */
import { spawnSync } from "child_process";
import * as os from "os";
import * as path from "path";
import type * as Pulumi from "@pulumi/pulumi";
import * as YAML from "yaml";
import { adoptRunnerRegistrations, mocksPreload, runnerCommand } from "../test/support/pulumiRunner";

const SIZES = [10, 100, 500];
/** Every fifth node is an AWS node (more resources each); the rest are existing servers behind a bastion. */
const AWS_EVERY = 5;
const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGs/MbsDJVGgX3toQvta8TevR8slzykb4it4nBZjqrW";

interface Result {
    nodes: number;
    /** One `renderBundle` call, measured alone. */
    bundleMs: number;
    /** Distinct bundle hashes among the nodes: FalcoHost renders once per distinct settings. */
    distinctBundles: number;
    resources: number;
    /** Resources registered, by type token; invokes, by token (what the floor process repeats). */
    types: Record<string, number>;
    invokes: Record<string, number>;
    loadMs: number;
    evalMs: number;
    /** CPU time (user + system, all threads) over the same span: less sensitive than wall time to a busy machine. */
    cpuMs: number;
    maxRssMiB: number;
    heapMiB: number;
}

const RICH = process.argv.includes("rich");

/** A site rule file of about 60 KB: what `falco-nodes:ruleFiles` typically adds (valid Falco rules YAML). */
function siteRules(): string {
    const items = Array.from({ length: 120 }, (_, i) => ({
        rule: `Site rule ${i}: unexpected outbound connection from service ${i}`,
        desc: `An outbound connection from the site service ${i} to an address outside its allowlist; investigate the process tree.`,
        condition: `evt.type = connect and evt.dir = < and proc.name = svc${i} and not fd.sip in (10.0.0.1, 10.0.0.2, 10.0.0.3) and fd.typechar = 4`,
        output: `Unexpected connection from svc${i} (user=%user.name command=%proc.cmdline connection=%fd.name container=%container.id)`,
        priority: "WARNING",
        tags: ["site", "network", `svc${i}`],
    }));
    return YAML.stringify(items, { lineWidth: 0 });
}

/** A stack config with `n` nodes, in the shape the CLI passes (values as the stack file would hold them). */
function fleetConfig(n: number): Record<string, unknown> {
    const nodes = Array.from({ length: n }, (_, i) =>
        i % AWS_EVERY === AWS_EVERY - 1
            ? { name: `aws-${i}`, kind: "aws" }
            : { name: `host-${i}`, kind: "existing", ssh: { host: `10.${Math.floor(i / 250)}.${i % 250}.10`, hostKey: HOST_KEY }, ...(i % 7 === 0 ? { falco: { driver: "kmod" } } : {}) },
    );
    const rules = { builtin: ["self-protection", "app-config-example"], ...(RICH ? { custom: { site: siteRules() } } : {}) };
    return {
        "falco-nodes:falco": RICH ? { rules, outputs: { http: { enabled: true } } } : { rules },
        "falco-nodes:ssh": { user: "deploy", bastion: { host: "bastion.example.net", user: "jump", hostKey: HOST_KEY } },
        "falco-nodes:aws": { subnetId: "subnet-0123456789abcdef0", sshSourceSecurityGroupIds: ["sg-0123456789abcdef0"] },
        "falco-nodes:nodes": nodes,
    };
}

/**
 * Compiled mode: stack traces as Pulumi's runner gives a JavaScript program (its own `source-map-support`, which
 * maps frames of files that ship source maps, as the SDK's do), instead of ts-node's in-memory maps.
 */
function applyMode(): void {
    if (!process.argv.includes("--compiled")) return;
    (Error as { prepareStackTrace?: unknown }).prepareStackTrace = undefined;
    const runnersOwn = require.resolve("source-map-support", { paths: [require.resolve("@pulumi/pulumi")] });
    (require(runnersOwn) as { install: () => void }).install();
}

/** Count the invokes the program makes, by token, through the mock monitor (the floor repeats them). */
function countInvokes(pulumi: typeof Pulumi): Record<string, number> {
    const invokes: Record<string, number> = {};
    const monitor = pulumi.runtime.getMonitor() as unknown as { mocks?: { call: (a: { token: string }) => unknown } };
    const mocks = monitor?.mocks;
    if (mocks) {
        const call = mocks.call.bind(mocks);
        mocks.call = (a) => {
            invokes[a.token] = (invokes[a.token] ?? 0) + 1;
            return call(a);
        };
    }
    return invokes;
}

async function child(n: number): Promise<void> {
    const t0 = process.hrtime.bigint();
    // Load everything the program uses before the clock starts: a fixed cost, not a per-node one.
    const support = await import("../test/support/program");
    await import("../components");
    await import("../components/config");
    const pulumi = await import("@pulumi/pulumi");
    const loadMs = Number(process.hrtime.bigint() - t0) / 1e6;
    applyMode();

    let heapPeak = 0;
    const sampler = setInterval(() => (heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed)), 10);
    const start = process.hrtime.bigint();
    const cpu0 = process.cpuUsage();
    const resources: { type: string }[] = [];
    support.installProgramMocks(resources as never);
    adoptRunnerRegistrations();
    const invokes = countInvokes(pulumi);
    const secrets = ["falco-nodes:sshPrivateKey", ...(RICH ? ["falco-nodes:httpOutputUrl"] : [])];
    support.setCliConfig(support.cliConfig(fleetConfig(n), secrets));
    const program = require(support.PROGRAM) as { nodes: Record<string, unknown> };
    const outputs = await support.resolveDeep(program.nodes);
    await support.settled(resources as never, 20);
    const evalMs = Number(process.hrtime.bigint() - start) / 1e6 - 20; // minus the final quiet period
    const cpu = process.cpuUsage(cpu0);
    clearInterval(sampler);
    heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
    if (Object.keys(outputs).length !== n) throw new Error(`expected ${n} node outputs, got ${Object.keys(outputs).length}`);

    // Attribution: one host's bundle render (the fleet's settings, a hostname of its own: what each FalcoHost pays
    // once the shared part is rendered), and how many distinct bundles the fleet has.
    const { renderBundle } = await import("../components/host/bundle");
    const { resolveHostSettings } = await import("../components/host/settings");
    const settings = resolveHostSettings((fleetConfig(n)["falco-nodes:falco"] ?? {}) as never);
    const b0 = process.hrtime.bigint();
    for (let k = 0; k < 20; k++) renderBundle(settings, undefined, { hostname: `bench-${k}` });
    const bundleMs = Number(process.hrtime.bigint() - b0) / 1e6 / 20;
    const distinctBundles = new Set(Object.values(outputs as Record<string, { bundleHash: string }>).map((o) => o.bundleHash)).size;

    const types: Record<string, number> = {};
    for (const r of resources) types[r.type] = (types[r.type] ?? 0) + 1;
    const result: Result = {
        bundleMs,
        distinctBundles,
        nodes: n,
        resources: resources.length,
        types,
        invokes,
        loadMs,
        evalMs,
        cpuMs: (cpu.user + cpu.system) / 1000,
        maxRssMiB: process.resourceUsage().maxRSS / 1024,
        heapMiB: heapPeak / 2 ** 20,
    };
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

/** What the floor process measured: per resource type (and for the invokes), count and time. */
interface FloorResult {
    /** Everything at once, as the program declares it. */
    totalMs: number;
    cpuMs: number;
    /** A sample of each resource type (and of each invoke) declared on its own: the cost of one. */
    groups: { what: string; count: number; ms: number }[];
    /** Types the floor does not know how to declare (declared as bare custom resources: an underestimate). */
    unknownTypes: string[];
}

/**
 * The SDK's own cost for the program's resources: the same types and counts, and the same invokes, with
 * trivial inputs and no rendering, under the same mocks and mode.
 */
async function floorChild(types: Record<string, number>, invokes: Record<string, number>): Promise<void> {
    const support = await import("../test/support/program");
    const pulumi = await import("@pulumi/pulumi");
    const aws = await import("@pulumi/aws");
    const tls = await import("@pulumi/tls");
    const command = await import("@pulumi/command");
    const { withoutPromiseStackTraces } = await import("../components/sdk/promiseStackTraces");
    applyMode();
    const resources: { type: string }[] = [];
    support.installProgramMocks(resources as never);
    adoptRunnerRegistrations();
    support.setCliConfig(support.cliConfig({}, []));

    type Declare = (name: string) => Pulumi.Resource;
    const declare: Record<string, Declare> = {
        "command:remote:Command": (name) => new command.remote.Command(name, { connection: { host: "h" }, create: "true" }),
        "tls:index/privateKey:PrivateKey": (name) => new tls.PrivateKey(name, { algorithm: "ED25519" }),
        "aws:ec2/instance:Instance": (name) => new aws.ec2.Instance(name, { ami: "ami-0", instanceType: "t3.micro" }),
        "aws:ec2/keyPair:KeyPair": (name) => new aws.ec2.KeyPair(name, { publicKey: "k" }),
        "aws:ec2/securityGroup:SecurityGroup": (name) => new aws.ec2.SecurityGroup(name, {}),
        "aws:iam/role:Role": (name) => new aws.iam.Role(name, { assumeRolePolicy: "{}" }),
        "aws:iam/rolePolicy:RolePolicy": (name) => new aws.iam.RolePolicy(name, { role: "r", policy: "{}" }),
        "aws:iam/rolePolicyAttachment:RolePolicyAttachment": (name) => new aws.iam.RolePolicyAttachment(name, { role: "r", policyArn: "arn" }),
        "aws:iam/instanceProfile:InstanceProfile": (name) => new aws.iam.InstanceProfile(name, {}),
    };
    class Component extends pulumi.ComponentResource {
        constructor(name: string) {
            super("floor:index:Component", name, {});
            this.registerOutputs({});
        }
    }
    class Bare extends pulumi.CustomResource {
        constructor(type: string, name: string) {
            super(type, name, {});
        }
    }
    const component: Declare = (name) => new Component(name);
    const unknownTypes: string[] = [];
    const makers = Object.entries(types).map(([type, count]) => {
        const isComponent = type.startsWith("falco-nodes:");
        let make = isComponent ? component : declare[type];
        if (!make) {
            unknownTypes.push(type);
            make = (name) => new Bare(type, name);
        }
        const what = isComponent ? `component ${type.split(":").pop()}` : type.split(":").pop()!;
        const prefix = type.replace(/[^A-Za-z0-9]/g, "-");
        return { what, count, make: (i: number) => make(`${prefix}-${i}`).urn };
    });
    for (const [token, count] of Object.entries(invokes))
        makers.push({ what: `invoke ${token.split(":").pop()}`, count, make: () => pulumi.runtime.invokeOutput(token, {}, {}) });
    const settle = (outs: Pulumi.Output<unknown>[]) => new Promise<void>((r) => pulumi.all(outs).apply(() => r()));

    // The total: everything declared at once, interleaved as a program declares node after node, then awaited.
    const start = process.hrtime.bigint();
    const cpu0 = process.cpuUsage();
    const outs: Pulumi.Output<unknown>[] = [];
    const most = Math.max(...makers.map((m) => m.count));
    // Under the program's own stack-trace policy (index.ts declares its resources the same way).
    withoutPromiseStackTraces(() => {
        for (let i = 0; i < most; i++) for (const m of makers) if (i < m.count) outs.push(m.make(i));
    });
    await settle(outs);
    await support.settled(resources as never, 20);
    const totalMs = Number(process.hrtime.bigint() - start) / 1e6 - 20;
    const cpu = process.cpuUsage(cpu0);

    // The breakdown: a sample of each kind on its own, awaited before the next.
    const groups: FloorResult["groups"] = [];
    for (const m of makers) {
        const count = Math.min(m.count, 50);
        const g0 = process.hrtime.bigint();
        await settle(withoutPromiseStackTraces(() => Array.from({ length: count }, (_, i) => m.make(m.count + i))));
        groups.push({ what: m.what, count, ms: Number(process.hrtime.bigint() - g0) / 1e6 });
    }
    const result: FloorResult = { totalMs, cpuMs: (cpu.user + cpu.system) / 1000, groups, unknownTypes };
    process.stdout.write(`RESULT ${JSON.stringify(result)}\n`);
}

/** The ways Pulumi can run the program: ts-node (`typescript: true`) or compiled JS; and without our stack policy. */
interface Mode {
    flag: string[];
    /** Through @pulumi/pulumi's runner with Pulumi.yaml's runtime options, as the CLI runs index.ts. */
    runner?: boolean;
    /** Extra environment for the child processes; `null` removes a variable the language host would set. */
    env?: Record<string, string | null>;
    title: string;
}
const MODES: Mode[] = [
    { flag: [], runner: true, title: "as `pulumi preview` runs index.ts (@pulumi/pulumi's runner, ts-node transpile-only via tsconfig.pulumi.json)" },
    { flag: ["--compiled"], title: "compiled to JavaScript (the runner's source-map-support, as for a JavaScript program)" },
    {
        flag: [],
        runner: true,
        env: { PULUMI_DEBUG_PROMISE_LEAKS: "1" },
        title: "as preview runs it, with the SDK's promise stack traces (PULUMI_DEBUG_PROMISE_LEAKS=1: withoutPromiseStackTraces off)",
    },
];
/** Preview as it ran without Pulumi.yaml's `tsconfig` option: ts-node with tsconfig.json, which type-checks. */
const TYPE_CHECKING: Mode = { flag: [], runner: true, env: { PULUMI_NODEJS_TSCONFIG_PATH: null }, title: "type-checking" };

let preload: string | undefined;
process.on("exit", () => preload && require("fs").rmSync(preload, { force: true }));

function runChild<T>(args: string[], mode: Mode): T {
    const childArgs = [...args, ...mode.flag, ...(RICH ? ["--fleet", "rich"] : [])];
    let command = process.execPath;
    let argv = ["-r", "ts-node/register/transpile-only", __filename, ...childArgs];
    const env: Record<string, string | undefined> = { ...process.env };
    if (mode.runner) {
        const cmd = runnerCommand(__filename, childArgs, (preload ??= mocksPreload()));
        ({ command, args: argv } = cmd);
        // Only what the language host sets decides how the runner compiles.
        delete env.PULUMI_NODEJS_TRANSPILE_ONLY;
        delete env.PULUMI_NODEJS_TSCONFIG_PATH;
        Object.assign(env, cmd.env);
    }
    for (const [k, v] of Object.entries(mode.env ?? {})) if (v === null) delete env[k];
    else env[k] = v;
    const r = spawnSync(command, argv, {
        cwd: path.resolve(__dirname, ".."),
        env,
        encoding: "utf8",
        maxBuffer: 64 * 1024 * 1024,
    });
    const line = r.stdout.split("\n").find((l) => l.startsWith("RESULT "));
    if (r.status !== 0 || !line) {
        process.stderr.write(`${args.join(" ")} failed (exit ${r.status}):\n${r.stdout}\n${r.stderr}\n`);
        process.exit(1);
    }
    return JSON.parse(line.slice("RESULT ".length));
}

function report(title: string, results: Result[], floor: FloorResult): number {
    const f = (x: number, d = 1) => x.toFixed(d).padStart(8);
    console.log(title);
    console.log(`  nodes  resources   eval ms  ms/node   cpu ms  load ms  peak RSS MiB  peak heap MiB`);
    for (const r of results)
        console.log(`  ${String(r.nodes).padStart(5)}  ${String(r.resources).padStart(9)}  ${f(r.evalMs, 0)} ${f(r.evalMs / r.nodes, 2)} ${f(r.cpuMs, 0)} ${f(r.loadMs, 0)}  ${f(r.maxRssMiB, 0)}      ${f(r.heapMiB, 0)}`);
    const [small, mid, large] = results;
    const perNodeGrowth = large.evalMs / large.nodes / (small.evalMs / small.nodes);
    const marginal = (large.evalMs - mid.evalMs) / (large.nodes - mid.nodes);
    const verdict = (ok: boolean) => (ok ? "ok" : "MISSED");
    console.log(`  marginal cost ${mid.nodes}->${large.nodes} nodes: ${marginal.toFixed(2)} ms/node; per-node time at ${large.nodes} vs ${small.nodes}: x${perNodeGrowth.toFixed(2)} (<= 1: linear)`);
    const invokes = Object.values(large.invokes).reduce((a, b) => a + b, 0);
    console.log(`  SDK floor at ${large.nodes} nodes (the same ${large.resources} resources and ${invokes} invokes, trivial inputs): ${floor.totalMs.toFixed(0)} ms = ${(floor.totalMs / large.nodes).toFixed(2)} ms/node (cpu ${floor.cpuMs.toFixed(0)} ms)`);
    console.log(`    each: ${floor.groups.map((g) => `${g.what} ${(g.ms / g.count).toFixed(2)} ms`).join(", ")}`);
    if (floor.unknownTypes.length) console.log(`    (floor underestimated: no trivial declaration for ${floor.unknownTypes.join(", ")}; add them to floorChild)`);
    const ours = large.evalMs - floor.totalMs;
    const oursCpu = large.cpuMs - floor.cpuMs;
    console.log(`  ours = eval - floor: ${ours.toFixed(0)} ms = ${(ours / large.nodes).toFixed(2)} ms/node (${((100 * ours) / large.evalMs).toFixed(0)}% of eval); by cpu time ${(oursCpu / large.nodes).toFixed(2)} ms/node`);
    const renders = large.distinctBundles * (RICH ? 2 : 1);
    console.log(`  of which bundle rendering: ${renders} renders x ${large.bundleMs.toFixed(1)} ms (FalcoHost renders once per host, whose unit carries its hostname; the part hosts share once per distinct settings${RICH ? "; and once more with the secret URL" : ""})`);
    console.log(`  targets: <= 10 ms/node ${verdict(large.evalMs / large.nodes <= 10)}; ${large.nodes} nodes < 5 s ${verdict(large.evalMs < 5000)}; < 1 GiB ${verdict(large.maxRssMiB < 1024)}`);
    console.log("");
    return large.evalMs / large.nodes;
}

function parent(): void {
    const busy = os.loadavg()[0];
    if (busy > os.cpus().length / 2)
        console.log(`note: load average ${busy.toFixed(1)} on ${os.cpus().length} CPUs before starting; wall times will be inflated (cpu ms less so)\n`);
    console.log(`fleet: every ${AWS_EVERY}th node on AWS, the rest existing servers behind a bastion${RICH ? "; a 60 KB site rule file and the HTTP output with its secret URL on every node" : ""}; index.ts under mocks\n`);
    const perNode: number[] = [];
    for (const m of MODES) {
        const results = SIZES.map((n) => runChild<Result>(["--child", String(n)], m));
        // ours = program - floor is a difference of two timings: at the largest size, run both twice, in
        // turn, and keep the faster of each, so a busy moment on the machine does not decide it.
        const large = results.length - 1;
        const floorArgs = ["--floor", JSON.stringify({ types: results[large].types, invokes: results[large].invokes })];
        let floor = runChild<FloorResult>(floorArgs, m);
        const again = runChild<Result>(["--child", String(SIZES[large])], m);
        if (again.evalMs < results[large].evalMs) results[large] = again;
        const floorAgain = runChild<FloorResult>(floorArgs, m);
        if (floorAgain.totalMs < floor.totalMs) floor = floorAgain;
        perNode.push(report(m.title, results, floor));
    }
    const [tsNode, , withStacks] = perNode;
    console.log(`withoutPromiseStackTraces at ${SIZES[SIZES.length - 1]} nodes as preview runs it: ${tsNode.toFixed(2)} ms/node vs ${withStacks.toFixed(2)} with the SDK's promise stacks (x${(withStacks / tsNode).toFixed(1)})`);

    // The type check is a fixed cost of loading (ts-node checks each file as it is required), not a per-node one:
    // one process at the smallest size, against the same size as preview runs it now.
    const timed = (mode: Mode) => {
        const t0 = Date.now();
        const r = runChild<Result>(["--child", String(SIZES[0])], mode);
        return { ...r, wallMs: Date.now() - t0 };
    };
    const checked = timed(TYPE_CHECKING);
    const now = timed(MODES[0]);
    console.log(
        `type checking (preview without tsconfig.pulumi.json), one ${SIZES[0]}-node run start to end: ${(checked.wallMs / 1000).toFixed(1)} s vs ${(now.wallMs / 1000).toFixed(1)} s transpile-only, ` +
            `${((checked.wallMs - now.wallMs) / 1000).toFixed(1)} s more on every preview and up (peak RSS ${checked.maxRssMiB.toFixed(0)} vs ${now.maxRssMiB.toFixed(0)} MiB; ` +
            `it also checks this bench's harness, a little more than index.ts needs)`,
    );
}

const exit = (e: unknown) => {
    console.error(e);
    process.exit(1);
};
const childAt = process.argv.indexOf("--child");
const floorAt = process.argv.indexOf("--floor");
if (childAt >= 0) child(Number(process.argv[childAt + 1])).catch(exit);
else if (floorAt >= 0) {
    const { types, invokes } = JSON.parse(process.argv[floorAt + 1]) as { types: Record<string, number>; invokes: Record<string, number> };
    floorChild(types, invokes).catch(exit);
} else parent();
