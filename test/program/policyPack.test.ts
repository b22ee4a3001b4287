/**
 * The policy pack loads the way the Pulumi CLI loads it, with the SDK's own harness and nothing modelled.
 *
 * How the CLI starts a Node.js pack (pulumi/pulumi `sdk/go/common/resource/plugin/analyzer_plugin.go`,
 * `NewPolicyAnalyzer`, read at commit 0476da2458): it runs the `pulumi-analyzer-policy` shim with its working
 * directory set to the pack's directory and the arguments `<engine address> .`; the shim runs
 * `@pulumi/pulumi/cmd/run-policy-pack` (resolved from that directory), and the CLI reads the first line of its
 * stdout as the port of the pack's gRPC server. `run-policy-pack` drops the engine address, registers ts-node
 * with type checking on (reading the pack directory's tsconfig.json) and requires the program; `new PolicyPack`
 * (`@pulumi/policy` policy.js) reads `${process.cwd()}/package.json` for the pack's version and then prints the
 * port (server.js `serve`). Without policy/package.json the harness exits 32 with "Cannot find module
 * '.../policy/package.json'".
 *
 * Here the same harness file runs with the same working directory and arguments; once the port line is printed,
 * a gRPC client calls GetAnalyzerInfo, as the CLI does next, and the pack must answer with our name, the version
 * from policy/package.json and every policy of components/aws/policies.ts.
 */
import * as assert from "assert";
import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { falcoNodesPolicies } from "../../components/aws/policies";
import { REPO_ROOT } from "../support/program";

const POLICY_DIR = path.join(REPO_ROOT, "policy");
const HARNESS = path.join(REPO_ROOT, "node_modules", "@pulumi", "pulumi", "cmd", "run-policy-pack");
/** The CLI passes its engine address first; the harness discards it before loading the pack. */
const ENGINE_ADDRESS = "127.0.0.1:1";

interface Started {
    port: number;
    stderr: string;
}

/** Start the harness on policy/ and resolve with the port it prints, or reject with its output if it exits first. */
function startPack(child: ChildProcess, timeoutMs: number): Promise<Started> {
    return new Promise((resolve, reject) => {
        let stdout = "";
        let stderr = "";
        const timer = setTimeout(() => reject(new Error(`no port line within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`)), timeoutMs);
        child.stdout!.on("data", (d: Buffer) => {
            stdout += d.toString();
            const nl = stdout.indexOf("\n");
            if (nl >= 0) {
                clearTimeout(timer);
                const line = stdout.slice(0, nl).trim();
                if (/^[0-9]+$/.test(line)) resolve({ port: Number(line), stderr });
                else reject(new Error(`the first stdout line is not a port: ${JSON.stringify(line)}\nstderr: ${stderr}`));
            }
        });
        child.stderr!.on("data", (d: Buffer) => (stderr += d.toString()));
        child.on("exit", (code, signal) => {
            clearTimeout(timer);
            reject(new Error(`run-policy-pack exited (${code ?? signal}) before printing a port\nstdout: ${stdout}\nstderr: ${stderr}`));
        });
    });
}

interface AnalyzerInfo {
    name: string;
    version: string;
    policies: { name: string; enforcementLevel: number }[];
}

/** GetAnalyzerInfo over gRPC, with the SDK's generated client for the Analyzer service. */
function getAnalyzerInfo(port: number): Promise<AnalyzerInfo> {
    // The SDK's own generated stubs and gRPC library (the ones @pulumi/policy serves with).
    const grpc = require("@grpc/grpc-js");
    const analyzerGrpc = require("@pulumi/pulumi/proto/analyzer_grpc_pb");
    const { Empty } = require("google-protobuf/google/protobuf/empty_pb");
    const client = new analyzerGrpc.AnalyzerClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());
    return new Promise((resolve, reject) => {
        client.getAnalyzerInfo(new Empty(), (err: Error | null, info: any) => {
            client.close();
            if (err) return reject(err);
            resolve({
                name: info.getName(),
                version: info.getVersion(),
                policies: info.getPoliciesList().map((p: any) => ({ name: p.getName(), enforcementLevel: p.getEnforcementlevel() })),
            });
        });
    });
}

describe("policy pack: the SDK's run-policy-pack harness loads policy/", function () {
    this.timeout(240_000);
    let child: ChildProcess | undefined;
    let started: Started;

    before(async () => {
        assert.ok(fs.existsSync(path.join(HARNESS, "index.js")), `${HARNESS} is the SDK's harness; install the dependencies first`);
        child = spawn(process.execPath, [HARNESS, ENGINE_ADDRESS, "."], { cwd: POLICY_DIR, stdio: ["ignore", "pipe", "pipe"] });
        // ts-node type-checks the pack and the components it imports first: allow for a slow, shared machine.
        started = await startPack(child, 200_000);
    });
    after(() => {
        if (child && child.exitCode === null) child.kill("SIGTERM");
    });

    it("starts: prints the port of its gRPC server as its first stdout line", () => {
        assert.ok(started.port > 0 && started.port < 65536, `port ${started.port}`);
        assert.strictEqual(child!.exitCode, null, "the pack keeps serving");
    });

    it("answers GetAnalyzerInfo with our pack, the version from policy/package.json and every policy, mandatory", async () => {
        const pkg = JSON.parse(fs.readFileSync(path.join(POLICY_DIR, "package.json"), "utf8"));
        const info = await getAnalyzerInfo(started.port);
        assert.strictEqual(info.name, "falco-nodes");
        assert.strictEqual(info.version, pkg.version);
        assert.deepStrictEqual(info.policies.map((p) => p.name).sort(), falcoNodesPolicies.map((p) => p.name).sort());
        // pulumi/pulumi proto/pulumi/analyzer.proto: EnforcementLevel ADVISORY = 0, MANDATORY = 1.
        for (const p of info.policies) assert.strictEqual(p.enforcementLevel, 1, `${p.name} is mandatory`);
    });
});
