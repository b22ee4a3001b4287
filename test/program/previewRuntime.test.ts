/**
 * How `pulumi preview` / `pulumi up` compile the program: Pulumi.yaml's runtime options, through the language
 * host's rules (ported in test/support/pulumiRunner.ts), into @pulumi/pulumi's own runner (cmd/run/run.js), which
 * registers ts-node. The program must run transpile-only there (`npm test` type-checks it with tsc), and run the
 * same way it is tested (the compiler options the runner would otherwise override).
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { cliConfigForStackFile, REPO_ROOT } from "../support/program";
import { languageHostEnv, mocksPreload, runnerCommand } from "../support/pulumiRunner";

const readJsonc = (file: string) => {
    // tsconfig files allow comments; the runner reads them with TypeScript's own parser (tsutils.loadTypeScriptCompilerOptions).
    const ts = require("typescript") as typeof import("typescript");
    return ts.parseConfigFileTextToJson(file, fs.readFileSync(file, "utf8")).config;
};

describe("preview runtime: how the Pulumi CLI runs index.ts", function () {
    // Each case starts a Node process with ts-node (the type-checking control takes ~10 s on an idle 2-core machine).
    this.timeout(300_000);
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-runtime-"));
    const preload = mocksPreload();
    after(() => {
        fs.rmSync(dir, { recursive: true, force: true });
        fs.rmSync(preload, { force: true });
    });

    /** Run `program` through the runner with the language-host environment for `projectYaml`. */
    function throughRunner(program: string, projectYaml?: string, extraEnv: Record<string, string> = {}) {
        const cmd = runnerCommand(program, [], preload, projectYaml);
        const env: Record<string, string | undefined> = { ...process.env, ...cmd.env, ...extraEnv };
        // Only what the language host sets: nothing inherited from this test process decides the mode.
        delete env.PULUMI_NODEJS_TRANSPILE_ONLY;
        if (!cmd.env.PULUMI_NODEJS_TSCONFIG_PATH) delete env.PULUMI_NODEJS_TSCONFIG_PATH;
        const started = Date.now();
        const r = spawnSync(cmd.command, cmd.args, { cwd: REPO_ROOT, env, encoding: "utf8" });
        return { status: r.status, out: `${r.stdout}${r.stderr}`, ms: Date.now() - started };
    }

    // A program with a type error that runs fine as JavaScript: transpile-only runs it, type checking refuses it.
    const typeError = path.join(dir, "typeError.ts");
    fs.writeFileSync(typeError, 'const n: number = "not a number";\nconsole.log(`RAN ${n}`);\n');

    it("Pulumi.yaml points the language host at tsconfig.pulumi.json, which turns noCheck on", () => {
        const { env } = languageHostEnv();
        assert.strictEqual(env.PULUMI_NODEJS_TYPESCRIPT, "true");
        assert.strictEqual(env.PULUMI_NODEJS_TSCONFIG_PATH, "tsconfig.pulumi.json");
        const cfg = readJsonc(path.join(REPO_ROOT, "tsconfig.pulumi.json"));
        // run.js reads this file's own compilerOptions (no `extends`): noCheck must be here, not inherited.
        assert.strictEqual(cfg.compilerOptions.noCheck, true);
        assert.strictEqual(cfg.extends, "./tsconfig.json");
    });

    it("repeats the compiler options the runner would override, with tsconfig.json's values (the program runs as tested)", () => {
        const own = readJsonc(path.join(REPO_ROOT, "tsconfig.pulumi.json")).compilerOptions;
        const base = readJsonc(path.join(REPO_ROOT, "tsconfig.json")).compilerOptions;
        // run.js (non-ESM path): { target: "ES2020", module/moduleResolution: "nodenext", sourceMap, ...own }.
        for (const key of ["target", "module", "moduleResolution", "sourceMap"]) assert.deepStrictEqual(own[key], base[key], key);
        // And `npm test` still type-checks: tsconfig.json itself does not skip checking.
        assert.notStrictEqual(base.noCheck, true);
    });

    it("the runner transpiles only: a type error does not stop the program", () => {
        const r = throughRunner(typeError);
        assert.match(r.out, /RAN not a number/, r.out);
        assert.doesNotMatch(r.out, /TSError/);
    });

    it("control: without the tsconfig option the same runner type-checks and refuses it", () => {
        const project = path.join(dir, "Pulumi.yaml");
        const doc = YAML.parse(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8"));
        delete doc.runtime.options.tsconfig;
        fs.writeFileSync(project, YAML.stringify(doc));
        assert.strictEqual(languageHostEnv(project).env.PULUMI_NODEJS_TSCONFIG_PATH, undefined);
        const r = throughRunner(typeError, project);
        assert.match(r.out, /TSError: ⨯ Unable to compile TypeScript:[\s\S]*TS2322/, r.out);
        assert.doesNotMatch(r.out, /RAN/);
    });

    it("index.ts runs under the runner with the dev stack's config, as preview runs it", () => {
        const c = cliConfigForStackFile(path.join(REPO_ROOT, "stacks", "Pulumi.dev.yaml"));
        const r = throughRunner(path.join(REPO_ROOT, "index.ts"), undefined, {
            PULUMI_CONFIG: JSON.stringify(c.config),
            PULUMI_CONFIG_SECRET_KEYS: JSON.stringify(c.secretKeys),
        });
        assert.strictEqual(r.status, 0, r.out);
        assert.doesNotMatch(r.out, /^error:/m, r.out);
        // The control: the runner does report a program that fails (here: a node of an unknown kind).
        const bad = throughRunner(path.join(REPO_ROOT, "index.ts"), undefined, {
            PULUMI_CONFIG: JSON.stringify({ "falco-nodes:nodes": JSON.stringify([{ name: "n1", kind: "mainframe" }]) }),
            PULUMI_CONFIG_SECRET_KEYS: "[]",
        });
        assert.match(bad.out, /^error:[\s\S]*falco-nodes:nodes/m, bad.out);
    });
});
