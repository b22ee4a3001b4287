/**
 * The GitHub Actions workflows: valid by a real workflow linter (action-validator, GitHub's workflow schema),
 * and doing what the project promises: tests on every push, a policy-checked preview of every stack on pull
 * requests, dev before prod on main with prod behind an approval, OIDC for AWS, least permissions, pinned actions.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { REPO_ROOT } from "../support/program";

const WORKFLOWS = path.join(REPO_ROOT, ".github", "workflows");
const files = fs.readdirSync(WORKFLOWS).filter((f) => /\.ya?ml$/.test(f));
const load = (f: string) => YAML.parse(fs.readFileSync(path.join(WORKFLOWS, f), "utf8"));

function actionValidator(file: string): { status: number | null; output: string } {
    const r = spawnSync("npx", ["--no-install", "action-validator", file], { cwd: REPO_ROOT, encoding: "utf8" });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

type Step = { uses?: string; run?: string; with?: Record<string, unknown>; if?: string; env?: Record<string, string> };
type Job = {
    permissions?: Record<string, string>;
    steps: Step[];
    needs?: string | string[];
    environment?: string | { name: string };
    concurrency?: { group: string; "cancel-in-progress"?: boolean };
    strategy?: { matrix: { include?: Record<string, unknown>[]; stack?: string[] } };
    if?: string;
};
const jobs = (wf: any): [string, Job][] => Object.entries(wf.jobs as Record<string, Job>);
const usesOf = (job: Job, action: string) => job.steps.filter((s) => s.uses?.startsWith(`${action}@`));

describe("workflows", function () {
    this.timeout(120_000);

    it("ci, preview and deploy exist", () => {
        for (const f of ["ci.yml", "preview.yml", "deploy.yml"]) assert.ok(files.includes(f), `.github/workflows/${f} is missing`);
    });

    describe("action-validator", () => {
        for (const f of files)
            it(`${f} passes`, () => {
                const r = actionValidator(path.join(".github", "workflows", f));
                assert.strictEqual(r.status, 0, r.output);
            });

        // The linter must be able to fail, or the test above proves nothing.
        const breakages: [string, (wf: any) => void][] = [
            ["a misspelled runs-on", (wf) => { const [, job] = jobs(wf)[0]; (job as any).runs_on = (job as any)["runs-on"]; delete (job as any)["runs-on"]; }],
            ["an invalid permission level", (wf) => { jobs(wf)[0][1].permissions = { contents: "readwrite" }; }],
            ["an unknown trigger", (wf) => { wf.on = { pull_requests: {} }; }],
        ];
        for (const [what, breakIt] of breakages)
            it(`fails a copy of deploy.yml with ${what}`, () => {
                const wf = load("deploy.yml");
                breakIt(wf);
                const dir = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-wf-"));
                const file = path.join(dir, "broken.yml");
                fs.writeFileSync(file, YAML.stringify(wf));
                try {
                    const r = actionValidator(file);
                    assert.notStrictEqual(r.status, 0, `action-validator accepted a workflow with ${what}`);
                } finally {
                    fs.rmSync(dir, { recursive: true, force: true });
                }
            });
    });

    describe("every workflow", () => {
        for (const f of files) {
            const wf = load(f);
            it(`${f}: every action pinned to a full commit SHA`, () => {
                for (const [name, job] of jobs(wf))
                    for (const s of job.steps.filter((x) => x.uses))
                        assert.match(s.uses!, /^[\w.-]+\/[\w.-]+@[0-9a-f]{40}$/, `${f} ${name}: ${s.uses} is not pinned by SHA`);
            });
            it(`${f}: nothing by default, each job names its permissions, none asks for write on contents`, () => {
                const top = wf.permissions;
                assert.ok(top !== undefined && (Object.keys(top).length === 0 || Object.values(top).every((v) => v === "read")), `${f}: top-level permissions must be {} or read-only`);
                for (const [name, job] of jobs(wf)) {
                    assert.ok(job.permissions, `${f} ${name}: declares permissions`);
                    assert.notStrictEqual(job.permissions!.contents, "write", `${f} ${name}: contents write`);
                }
            });
            it(`${f}: no long-lived AWS keys; AWS only through OIDC role assumption`, () => {
                for (const [name, job] of jobs(wf)) {
                    for (const s of usesOf(job, "aws-actions/configure-aws-credentials")) {
                        assert.ok(s.with?.["role-to-assume"], `${f} ${name}: role-to-assume`);
                        assert.strictEqual(s.with?.["aws-access-key-id"], undefined);
                        assert.strictEqual(job.permissions?.["id-token"], "write", `${f} ${name}: OIDC needs id-token: write`);
                    }
                    for (const s of job.steps) assert.ok(!JSON.stringify(s).includes("AWS_SECRET_ACCESS_KEY"), `${f} ${name}: static AWS key`);
                }
            });
            it(`${f}: checkout does not leave the token in the workspace`, () => {
                for (const [, job] of jobs(wf))
                    for (const s of usesOf(job, "actions/checkout")) assert.strictEqual(s.with?.["persist-credentials"], false);
            });
        }
    });

    it("ci: npm ci, the apt packages, then the README's test command, on every push and pull request", () => {
        const wf = load("ci.yml");
        assert.ok("push" in wf.on && "pull_request" in wf.on);
        const [, job] = jobs(wf)[0];
        const runs = job.steps.filter((s) => s.run).map((s) => s.run!.trim());
        const at = (prefix: string) => runs.findIndex((r) => r.startsWith(prefix));
        assert.ok(at("npm ci") >= 0 && at("sudo bash .ci/install-deps") >= 0 && at("npm run test:all") >= 0, JSON.stringify(runs));
        assert.ok(at("npm run test:all") > at("npm ci") && at("npm run test:all") > at("sudo bash .ci/install-deps"));
        assert.ok(fs.existsSync(path.join(REPO_ROOT, ".ci", "install-deps")));
        const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8"));
        assert.ok(pkg.scripts["test:all"], "package.json has test:all");
    });

    describe("preview", () => {
        const wf = load("preview.yml");
        const [, job] = jobs(wf).find(([, j]) => usesOf(j, "pulumi/actions").length)!;

        it("runs on pull requests, for every stack in stacks/", () => {
            assert.deepStrictEqual(Object.keys(wf.on), ["pull_request"]);
            const stacks = fs
                .readdirSync(path.join(REPO_ROOT, "stacks"))
                .map((f) => /^Pulumi\.([^.]+)\.ya?ml$/.exec(f)?.[1])
                .filter((s): s is string => !!s);
            const matrix = (job.strategy!.matrix.include ?? []).map((e) => e.stack as string);
            assert.deepStrictEqual([...matrix].sort(), [...stacks].sort());
        });

        it("previews with the policy pack and posts the diff on the PR", () => {
            const [p] = usesOf(job, "pulumi/actions");
            assert.strictEqual(p.with?.command, "preview");
            assert.strictEqual(p.with?.["comment-on-pr"], true);
            assert.strictEqual(p.with?.policyPacks, "policy");
            assert.ok(fs.existsSync(path.join(REPO_ROOT, "policy", "PulumiPolicy.yaml")), "the policy pack exists");
            assert.strictEqual(p.env?.PULUMI_ACCESS_TOKEN, "${{ secrets.PULUMI_ACCESS_TOKEN }}");
            assert.strictEqual(job.permissions?.["pull-requests"], "write", "commenting needs pull-requests: write");
        });

        it("one preview per stack and PR at a time", () => {
            assert.match(job.concurrency!.group, /matrix\.stack/);
            assert.match(job.concurrency!.group, /pull_request\.number/);
        });
    });

    describe("deploy", () => {
        const wf = load("deploy.yml");
        const all = jobs(wf);
        const upJob = (stack: string) => all.find(([, j]) => usesOf(j, "pulumi/actions").some((s) => s.with?.["stack-name"] === stack));

        it("runs on main only (and by hand)", () => {
            assert.deepStrictEqual(wf.on.push.branches, ["main"]);
            assert.deepStrictEqual(Object.keys(wf.on).sort(), ["push", "workflow_dispatch"]);
        });

        it("deploys every stack with pulumi up and the policy pack, one update per stack at a time, never cancelled", () => {
            for (const stack of ["dev", "baremetal", "prod"]) {
                const found = upJob(stack);
                assert.ok(found, `no pulumi up for ${stack}`);
                const [name, job] = found;
                const [p] = usesOf(job, "pulumi/actions");
                assert.strictEqual(p.with?.command, "up");
                assert.strictEqual(p.with?.policyPacks, "policy");
                assert.ok(job.concurrency?.group.includes(stack), `${name}: concurrency group per stack`);
                assert.strictEqual(job.concurrency?.["cancel-in-progress"], false, `${name}: an update is never cancelled midway`);
            }
        });

        it("dev before prod, prod behind the production environment's approval", () => {
            const [devName] = upJob("dev")!;
            const [, prod] = upJob("prod")!;
            const needs = ([] as string[]).concat(prod.needs ?? []);
            assert.ok(needs.includes(devName), "prod needs dev");
            const env = typeof prod.environment === "string" ? prod.environment : prod.environment?.name;
            assert.strictEqual(env, "production");
        });
    });
});
