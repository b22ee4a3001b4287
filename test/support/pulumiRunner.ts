/**
 * Run a TypeScript file the way `pulumi preview` / `pulumi up` run `index.ts`: through @pulumi/pulumi's own runner
 * (node_modules/@pulumi/pulumi/cmd/run, which registers ts-node in cmd/run/run.js `run`), with the environment the
 * Node.js language host derives from Pulumi.yaml's `runtime.options`, and Pulumi mocks in place of the engine.
 *
 * The language host (pulumi/pulumi sdk/nodejs/cmd/pulumi-language-nodejs/main.go) is Go and not available here;
 * `languageHostEnv` ports the part of it that decides how the program is compiled:
 * - `parseOptions`: `typescript` (boolean, default true), `tsconfig` (string), `nodeargs` (string); any other type is
 *   an error ("typescript option must be a boolean", "tsconfigpath option must be a string", ...);
 * - `Run`: `PULUMI_NODEJS_TYPESCRIPT=true` when typescript, `PULUMI_NODEJS_TSCONFIG_PATH=<tsconfig>` when set, and
 *   `nodeargs` split with shlex before the runner's own arguments.
 * run.js then reads `PULUMI_NODEJS_TRANSPILE_ONLY`, or else `compilerOptions.noCheck` of that tsconfig, for ts-node's
 * `transpileOnly`; without either, ts-node type-checks every file it loads.
 *
 * The engine is replaced by `pulumi.runtime.setMocks` in a file preloaded with `node -r` (the runner needs a monitor
 * for the Stack resource before the program runs). With a mock monitor, the runner's final
 * `signalAndWaitForShutdown` logs "Error while signaling shutdown" (the mocks do not implement it): harmless.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { REPO_ROOT } from "./program";

const RUNNER = path.join(REPO_ROOT, "node_modules", "@pulumi", "pulumi", "cmd", "run");

/** What the language host's `parseOptions` + `Run` make of Pulumi.yaml's `runtime.options`. */
export function languageHostEnv(projectYaml = path.join(REPO_ROOT, "Pulumi.yaml")): { env: Record<string, string>; nodeargs: string[] } {
    const runtime = YAML.parse(fs.readFileSync(projectYaml, "utf8")).runtime;
    const options: Record<string, unknown> = typeof runtime === "object" && runtime !== null ? (runtime.options ?? {}) : {};
    let typescript = true;
    if ("typescript" in options) {
        if (typeof options.typescript !== "boolean") throw new Error("typescript option must be a boolean");
        typescript = options.typescript;
    }
    let tsconfig = "";
    if ("tsconfig" in options) {
        if (typeof options.tsconfig !== "string") throw new Error("tsconfigpath option must be a string");
        tsconfig = options.tsconfig;
    }
    let nodeargs = "";
    if ("nodeargs" in options) {
        if (typeof options.nodeargs !== "string") throw new Error("nodeargs option must be a string");
        nodeargs = options.nodeargs;
    }
    const env: Record<string, string> = {};
    if (typescript) env.PULUMI_NODEJS_TYPESCRIPT = "true";
    if (tsconfig !== "") env.PULUMI_NODEJS_TSCONFIG_PATH = tsconfig;
    // shlex.Split for the simple case: whitespace-separated words (no quoting is used in this project).
    return { env, nodeargs: nodeargs.split(/\s+/).filter(Boolean) };
}

/** A file for `node -r` that puts Pulumi mocks in place of the engine (the same @pulumi/pulumi the program loads). */
export function mocksPreload(): string {
    const file = path.join(os.tmpdir(), `falco-nodes-runner-mocks-${process.pid}.js`);
    const sdk = require.resolve("@pulumi/pulumi", { paths: [REPO_ROOT] });
    fs.writeFileSync(
        file,
        `// Written by test/support/pulumiRunner.ts: Pulumi mocks instead of the engine, before @pulumi/pulumi's runner starts.
const runtime = require(${JSON.stringify(sdk)}).runtime;
runtime.setMocks(
    { newResource: (a) => ({ id: a.name + "_id", state: a.inputs }), call: (a) => a.inputs },
    "falco-nodes", "runner", true);
globalThis[${JSON.stringify(RUNNER_MONITOR)}] = runtime.getMonitor();
`,
    );
    return file;
}

const RUNNER_MONITOR = "__falcoNodesRunnerMonitor";

/**
 * For a program run through the runner that installs mocks of its own (bench/program.ts): the runner registered the
 * Stack resource with the preload's mock monitor, and `setMocks` starts a new MockMonitor that does not know it, so
 * the stack's final registerResourceOutputs fails with "unknown resource ...pulumi:pulumi:Stack..." (MockMonitor
 * keeps its registrations in `resources`, @pulumi/pulumi runtime/mocks.js). Call after `setMocks`: copies them over.
 */
export function adoptRunnerRegistrations(): void {
    const previous = (globalThis as Record<string, unknown>)[RUNNER_MONITOR] as { resources?: Map<string, unknown> } | undefined;
    if (!previous?.resources) return;
    const pulumi = require("@pulumi/pulumi") as typeof import("@pulumi/pulumi");
    const current = pulumi.runtime.getMonitor() as unknown as { resources?: Map<string, unknown> } | undefined;
    if (!current?.resources) throw new Error("the current monitor is not a MockMonitor: call after setMocks");
    for (const [urn, r] of previous.resources) if (!current.resources.has(urn)) current.resources.set(urn, r);
}

/**
 * `[node, args]` that run `program` (with `programArgs`) through @pulumi/pulumi's runner, as the language host starts
 * it (`node [nodeargs] <runner> --monitor=... <program> <args>`), plus the mocks preload.
 */
export function runnerCommand(program: string, programArgs: string[], preload: string, projectYaml?: string): { command: string; args: string[]; env: Record<string, string> } {
    const host = languageHostEnv(projectYaml);
    return {
        command: process.execPath,
        args: [...host.nodeargs, "-r", preload, RUNNER, "--monitor=127.0.0.1:0", "--project=falco-nodes", "--stack=runner", "--dry-run", program, ...programArgs],
        env: host.env,
    };
}
