/**
 * The GitHub Actions workflows: valid by a real workflow linter (action-validator, GitHub's workflow schema),
 * and doing what the project promises: tests on every push (as root, with the reference data fetched and checked), a
 * policy-checked preview of every stack on pull requests (stacks with secrets behind a reviewed environment), dev
 * before prod on main with prod behind an approval, OIDC for Pulumi Cloud and AWS (no long-lived token), least
 * permissions, every action pinned to a reviewed commit.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { cliConfigForStackFile, REPO_ROOT } from "../support/program";

const WORKFLOWS = path.join(REPO_ROOT, ".github", "workflows");
const files = fs.readdirSync(WORKFLOWS).filter((f) => /\.ya?ml$/.test(f));
const load = (f: string) => YAML.parse(fs.readFileSync(path.join(WORKFLOWS, f), "utf8"));
const text = (f: string) => fs.readFileSync(path.join(WORKFLOWS, f), "utf8");
const PROJECT = YAML.parse(fs.readFileSync(path.join(REPO_ROOT, "Pulumi.yaml"), "utf8")).name as string;
const STACKS = fs
    .readdirSync(path.join(REPO_ROOT, "stacks"))
    .map((f) => /^Pulumi\.([^.]+)\.ya?ml$/.exec(f)?.[1])
    .filter((s): s is string => !!s);
/** Stacks whose preview or update has the CLI decrypt secrets (ESC environment or `secure:` values). */
const stackSecrets = (stack: string) => cliConfigForStackFile(path.join(REPO_ROOT, "stacks", `Pulumi.${stack}.yaml`)).secretKeys;

/**
 * The reviewed pins: action -> [full commit, release]. A bump is a change here too, with where the commit was
 * confirmed. Inputs used are checked against each action's action.yml (pulumi/actions, pulumi/auth-actions,
 * aws-actions/configure-aws-credentials, actions/checkout, actions/setup-node).
 * - aws-actions/configure-aws-credentials v6.2.4 = cbe3b392: the release commit "chore(main): release 6.2.4
 *   (#1942)", from Dependabot's 6.2.3 -> 6.2.4 compare view e6de0542...cbe3b392 (v6.2.3 = e6de054238d6...).
 *   The earlier pin e1253824 "v6.3.0" could not be confirmed upstream and is not used.
 * - pulumi/auth-actions v2.1.0 = 14141591: as pinned by other projects; not confirmed against upstream tags here.
 */
const REVIEWED_PINS: Record<string, [string, string]> = {
    "actions/checkout": ["3d3c42e5aac5ba805825da76410c181273ba90b1", "v7.0.1"],
    "actions/setup-node": ["820762786026740c76f36085b0efc47a31fe5020", "v7.0.0"],
    "pulumi/actions": ["8e5e406f4007fca908480587cb9893c07090f58d", "v7.0.0"],
    "pulumi/auth-actions": ["141415910c3beb54e03b48e9057c204c97b956f2", "v2.1.0"],
    "aws-actions/configure-aws-credentials": ["cbe3b392738ccf3f987d68400dafcf4b0624a56c", "v6.2.4"],
};

function actionValidator(file: string): { status: number | null; output: string } {
    const r = spawnSync("npx", ["--no-install", "action-validator", file], { cwd: REPO_ROOT, encoding: "utf8" });
    return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

type Step = { uses?: string; run?: string; with?: Record<string, unknown>; if?: string; env?: Record<string, string> };
type Job = {
    name?: string;
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
const indexOf = (job: Job, pred: (s: Step) => boolean) => job.steps.findIndex(pred);
/** `${{ vars.PULUMI_ORG }}/<project>/<stack>` -> stack (fully qualified: an OIDC team token has no default org). */
function stackOf(s: Step): string {
    const m = /^\$\{\{ vars\.PULUMI_ORG \}\}\/([^/]+)\/(.+)$/.exec(String(s.with?.["stack-name"] ?? ""));
    assert.ok(m, `stack-name ${s.with?.["stack-name"]} is not \${{ vars.PULUMI_ORG }}/<project>/<stack>`);
    assert.strictEqual(m[1], PROJECT, "the project is Pulumi.yaml's name");
    return m[2];
}
/** The environments the README's CI section lists, and whether each has required reviewers. */
function readmeEnvironments(): Map<string, boolean> {
    const readme = fs.readFileSync(path.join(REPO_ROOT, "README.md"), "utf8");
    const rows = [...readme.matchAll(/^\| `([a-z-]+)` \| (yes|no) \|/gm)];
    return new Map(rows.map((m) => [m[1], m[2] === "yes"]));
}

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
            it(`${f}: every action pinned to a reviewed full commit SHA, with its release in a comment`, () => {
                for (const [name, job] of jobs(wf))
                    for (const s of job.steps.filter((x) => x.uses)) {
                        const m = /^([\w.-]+\/[\w.-]+)@([0-9a-f]{40})$/.exec(s.uses!);
                        assert.ok(m, `${f} ${name}: ${s.uses} is not pinned by SHA`);
                        assert.ok(REVIEWED_PINS[m[1]], `${f} ${name}: ${m[1]} is not a reviewed action`);
                        assert.strictEqual(m[2], REVIEWED_PINS[m[1]][0], `${f} ${name}: ${m[1]} is not at the reviewed commit`);
                    }
                const lines = text(f).split("\n").filter((l) => /^\s*(- )?uses:/.test(l));
                assert.ok(lines.length > 0);
                for (const l of lines) {
                    const m = /uses: ([\w.-]+\/[\w.-]+)@[0-9a-f]{40} # (v[\d.]+)$/.exec(l);
                    assert.ok(m, `${f}: "${l.trim()}" has no "# vX.Y.Z" comment`);
                    assert.strictEqual(m[2], REVIEWED_PINS[m[1]][1], `${f}: ${m[1]}'s comment names another release`);
                }
            });
            it(`${f}: no long-lived secret at all (no secrets.* reference: OIDC for Pulumi Cloud and AWS)`, () => {
                // The parsed workflow: what runs, comments aside.
                const doc = JSON.stringify(wf);
                assert.doesNotMatch(doc, /secrets\./);
                assert.doesNotMatch(doc, /PULUMI_ACCESS_TOKEN/);
            });
            it(`${f}: every job runs Node >= 22, and a job that holds credentials restores no package cache`, () => {
                for (const [name, job] of jobs(wf)) {
                    const [node] = usesOf(job, "actions/setup-node");
                    assert.ok(node, `${f} ${name}: sets up Node`);
                    assert.ok(Number(node.with?.["node-version"]) >= 22, `${f} ${name}: node-version ${node.with?.["node-version"]}`);
                    if (job.permissions?.["id-token"] === "write") {
                        assert.strictEqual(node.with?.["package-manager-cache"], false, `${f} ${name}: package-manager-cache: false`);
                        assert.strictEqual(node.with?.cache, undefined, `${f} ${name}: no npm cache`);
                    }
                }
            });
            it(`${f}: Pulumi Cloud through OIDC: a team token from pulumi/auth-actions before every pulumi step, after npm ci`, () => {
                for (const [name, job] of jobs(wf)) {
                    const pulumiAt = indexOf(job, (s) => !!s.uses?.startsWith("pulumi/actions@"));
                    if (pulumiAt < 0) continue;
                    const authAt = indexOf(job, (s) => !!s.uses?.startsWith("pulumi/auth-actions@"));
                    assert.ok(authAt >= 0 && authAt < pulumiAt, `${f} ${name}: pulumi/auth-actions before pulumi/actions`);
                    const auth = job.steps[authAt];
                    assert.strictEqual(job.permissions?.["id-token"], "write", `${f} ${name}: OIDC needs id-token: write`);
                    assert.strictEqual(auth.with?.organization, "${{ vars.PULUMI_ORG }}");
                    // A team token scoped by the environment, not the organization's full access.
                    assert.strictEqual(auth.with?.["requested-token-type"], "urn:pulumi:token-type:access_token:team");
                    assert.strictEqual(auth.with?.scope, "team:${{ vars.PULUMI_TEAM }}");
                    assert.ok(Number(auth.with?.["token-expiration"]) > 0, `${f} ${name}: token-expiration`);
                    assert.notStrictEqual(auth.with?.["export-environment-variables"], false, "pulumi/actions reads the exported token");
                    assert.ok(job.environment, `${f} ${name}: the token's OIDC subject names a GitHub environment`);
                    // npm ci (and every install script) runs before any credential is in the job.
                    const npmAt = indexOf(job, (s) => !!s.run?.trim().startsWith("npm ci"));
                    const firstCredential = Math.min(
                        ...job.steps.map((s, i) => (/^(pulumi\/auth-actions|aws-actions\/configure-aws-credentials)@/.test(s.uses ?? "") ? i : Infinity)),
                    );
                    assert.ok(npmAt >= 0 && npmAt < firstCredential, `${f} ${name}: npm ci before the first credential`);
                }
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

    describe("ci", () => {
        const wf = load("ci.yml");
        const [, job] = jobs(wf)[0];
        const runs = job.steps.map((s) => (s.run ?? "").trim());
        /** The step whose script has a line that starts with `prefix` (comments aside). */
        const at = (prefix: string) => runs.findIndex((r) => r.split("\n").some((l) => l.trim().startsWith(prefix)));

        it("npm ci, the apt packages, the reference data, then the README's test command, on every push and pull request", () => {
            assert.ok("push" in wf.on && "pull_request" in wf.on);
            const test = at('sudo env "PATH=$PATH" npm run test:all');
            assert.ok(at("npm ci") >= 0 && at("sudo bash .ci/install-deps") >= 0 && at("node .ci/fetch-reference") >= 0 && test >= 0, JSON.stringify(runs));
            for (const before of ["npm ci", "sudo bash .ci/install-deps", "node .ci/fetch-reference"]) assert.ok(at(before) < test, `${before} before the tests`);
            assert.ok(fs.existsSync(path.join(REPO_ROOT, ".ci", "install-deps")));
            const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8"));
            assert.ok(pkg.scripts["test:all"], "package.json has test:all");
        });

        it("runs the tests as root: sudo, with the checkout handed to root first (npm runs scripts as the directory's owner)", () => {
            const test = at('sudo env "PATH=$PATH" npm run test:all');
            const lines = runs[test].split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));
            assert.deepStrictEqual(lines, ['sudo chown -R root:root "$GITHUB_WORKSPACE"', 'sudo env "PATH=$PATH" npm run test:all']);
            const back = at('sudo chown -R "$(id -u):$(id -g)" "$GITHUB_WORKSPACE"');
            assert.ok(back > test, "the checkout goes back to the runner user afterwards");
            assert.strictEqual(job.steps[back].if, "always()", "also when the tests failed");
        });

        it("the reference data it fetches is the data this suite runs against (the manifest matches ../shared/reference by sha256)", () => {
            // test/program/fetchReference.test.ts covers the script itself; here: what ci fetches is what passes here.
            const r = spawnSync(process.execPath, [path.join(REPO_ROOT, ".ci", "fetch-reference"), "--check"], { cwd: REPO_ROOT, encoding: "utf8" });
            assert.strictEqual(r.status, 0, r.stderr);
            assert.match(r.stdout, /all \d+ files match the manifest/);
        });
    });

    describe("preview", () => {
        const wf = load("preview.yml");
        const [, job] = jobs(wf).find(([, j]) => usesOf(j, "pulumi/actions").length)!;

        const matrix = job.strategy!.matrix.include ?? [];

        it("runs on pull requests, for every stack in stacks/, and only in this job", () => {
            assert.deepStrictEqual(Object.keys(wf.on), ["pull_request"]);
            assert.deepStrictEqual(matrix.map((e) => e.stack as string).sort(), [...STACKS].sort());
            assert.strictEqual(jobs(wf).filter(([, j]) => usesOf(j, "pulumi/actions").length).length, 1);
            assert.strictEqual(stackOf(usesOf(job, "pulumi/actions")[0]), "${{ matrix.stack }}");
        });

        it("previews with the policy pack and posts the diff on the PR", () => {
            const [p] = usesOf(job, "pulumi/actions");
            assert.strictEqual(p.with?.command, "preview");
            assert.strictEqual(p.with?.["comment-on-pr"], true);
            assert.strictEqual(p.with?.policyPacks, "policy");
            assert.ok(fs.existsSync(path.join(REPO_ROOT, "policy", "PulumiPolicy.yaml")), "the policy pack exists");
            assert.strictEqual(p.env?.PULUMI_ACCESS_TOKEN, undefined, "the token comes from pulumi/auth-actions");
            assert.strictEqual(job.permissions?.["pull-requests"], "write", "commenting needs pull-requests: write");
        });

        it("each stack previews in its own environment; a stack with secrets waits for a reviewer (prod, baremetal)", () => {
            assert.strictEqual(job.environment, "${{ matrix.environment }}");
            assert.ok(job.if?.includes("github.event.pull_request.head.repo.full_name == github.repository"), "no preview for forks");
            const documented = readmeEnvironments();
            const gated = STACKS.filter((s) => stackSecrets(s).length > 0);
            assert.ok(gated.includes("prod") && gated.includes("baremetal"), `stacks with secrets: ${gated}`);
            for (const e of matrix) {
                const env = e.environment as string;
                assert.strictEqual(env, `preview-${e.stack}`, `${e.stack}: its own preview environment (its OIDC subject)`);
                assert.ok(documented.has(env), `README's CI section lists ${env}`);
                if (gated.includes(e.stack as string)) assert.strictEqual(documented.get(env), true, `${env}: required reviewers (the PR's code runs with ${stackSecrets(e.stack as string).join(", ")})`);
            }
            // A preview never runs in a deploy environment (those hold the credentials that change things).
            const deployEnvs = jobs(load("deploy.yml")).map(([, j]) => (typeof j.environment === "string" ? j.environment : j.environment?.name));
            for (const e of matrix) assert.ok(!deployEnvs.includes(e.environment as string), `${e.environment} is a deploy environment`);
        });

        it("AWS only for the stacks that declare AWS nodes, through the read-only preview role", () => {
            const [aws] = usesOf(job, "aws-actions/configure-aws-credentials");
            assert.strictEqual(aws.if, "matrix.aws");
            assert.strictEqual(aws.with?.["role-to-assume"], "${{ vars.AWS_PREVIEW_ROLE_ARN }}");
            for (const e of matrix) {
                const nodes = JSON.parse(cliConfigForStackFile(path.join(REPO_ROOT, "stacks", `Pulumi.${e.stack}.yaml`)).config["falco-nodes:nodes"] ?? "[]");
                assert.strictEqual(e.aws, nodes.some((n: { kind?: string }) => n.kind === "aws"), `${e.stack}: aws`);
            }
        });

        it("one preview per stack and PR at a time", () => {
            assert.match(job.concurrency!.group, /matrix\.stack/);
            assert.match(job.concurrency!.group, /pull_request\.number/);
        });
    });

    describe("deploy", () => {
        const wf = load("deploy.yml");
        const all = jobs(wf);
        const upJob = (stack: string) => all.find(([, j]) => usesOf(j, "pulumi/actions").some((s) => stackOf(s) === stack));

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
            assert.strictEqual(readmeEnvironments().get("production"), true, "README: production has required reviewers");
        });

        it("the README's environment table lists exactly the environments the workflows use", () => {
            const used = new Set<string>();
            for (const [name, job] of all) {
                const env = typeof job.environment === "string" ? job.environment : job.environment?.name;
                assert.ok(env, `${name}: runs in a GitHub environment`);
                used.add(env);
            }
            for (const e of load("preview.yml").jobs.preview.strategy.matrix.include) used.add(e.environment);
            assert.deepStrictEqual([...readmeEnvironments().keys()].sort(), [...used].sort());
        });
    });
});
