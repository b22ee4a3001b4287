/**
 * withoutPromiseStackTraces: the SDK's per-promise stacks are skipped, every other stack and the resources'
 * source positions are kept, nothing changes under PULUMI_DEBUG_PROMISE_LEAKS, and the program uses it.
 */
import * as assert from "assert";
import * as path from "path";
import * as pulumi from "@pulumi/pulumi";
import {
    isSdkPromiseCapture,
    PROMISE_LEAKS_ENV,
    SKIPPED_STACK_NOTE,
    withoutPromiseStackTraces,
} from "../../components/sdk/promiseStackTraces";
import { clearCliConfig, cliConfigForStackFile, REPO_ROOT, runProgram } from "../support/program";

/** The SDK's own promise wrapper: it stores `new Error().stack` on the promise as `_debugStackTrace`. */
const { debuggablePromise } = require("@pulumi/pulumi/runtime/debuggable") as {
    debuggablePromise: <T>(p: Promise<T>, ctx: string) => Promise<T>;
};
function sdkRecordedStack(): Promise<string> {
    const p = Promise.resolve(1);
    return debuggablePromise(p, "test").then(() => (p as unknown as { _debugStackTrace: string })._debugStackTrace);
}

const hasFrames = (stack: string | undefined) => /\n\s+at /.test(stack ?? "");

/** Replace the installed stack formatter for one test with a spy over it; restored afterwards. */
function spyOnStackFormatting(): { sdkPromiseStacks: () => number; restore: () => void } {
    const original = Error.prepareStackTrace;
    let sdk = 0;
    Error.prepareStackTrace = (error, frames) => {
        if (isSdkPromiseCapture(frames)) sdk++;
        return original ? original(error, frames) : `${error}\n${frames.map((f) => `    at ${f}`).join("\n")}`;
    };
    return { sdkPromiseStacks: () => sdk, restore: () => (Error.prepareStackTrace = original) };
}

describe("sdk: withoutPromiseStackTraces", () => {
    const noLeakDebugging: NodeJS.ProcessEnv = {};

    it("captures no frames while declaring, and restores the limit after, also when the callback throws", () => {
        const before = Error.stackTraceLimit;
        const inside = withoutPromiseStackTraces(() => ({ stack: new Error("inside").stack, limit: Error.stackTraceLimit }), noLeakDebugging);
        assert.strictEqual(inside.limit, 0);
        assert.ok(!hasFrames(inside.stack), `no frames inside: ${inside.stack}`);
        assert.match(inside.stack!, /inside/, "the message stays");
        assert.strictEqual(Error.stackTraceLimit, before);
        assert.throws(() => withoutPromiseStackTraces(() => { throw new Error("boom"); }, noLeakDebugging), /boom/);
        assert.strictEqual(Error.stackTraceLimit, before, "restored after a throw");
    });

    it("returns what the callback returns", () => {
        assert.deepStrictEqual(withoutPromiseStackTraces(() => ({ a: [1, 2] }), noLeakDebugging), { a: [1, 2] });
    });

    it("afterwards, the SDK's promise stacks are not formatted, while every other stack keeps its frames, source-mapped", async () => {
        withoutPromiseStackTraces(() => undefined, noLeakDebugging);
        assert.strictEqual(await sdkRecordedStack(), SKIPPED_STACK_NOTE);
        const mine = new Error("mine").stack!;
        assert.ok(hasFrames(mine), mine);
        assert.match(mine, /promiseStackTraces\.test\.ts:\d+/, "frames point at the TypeScript source");
        // The SDK's own errors from elsewhere in the SDK still format normally.
        const other = (() => new pulumi.RunError("run error"))();
        assert.ok(hasFrames(other.stack), other.stack);
    });

    it("leaves V8's native formatting (and Node's --enable-source-maps) alone when no formatter is installed", async () => {
        const installed = Error.prepareStackTrace;
        (Error as { prepareStackTrace?: unknown }).prepareStackTrace = undefined;
        try {
            withoutPromiseStackTraces(() => undefined, noLeakDebugging);
            assert.strictEqual((Error as { prepareStackTrace?: unknown }).prepareStackTrace, undefined);
            assert.ok(hasFrames(await sdkRecordedStack()), "the SDK's stacks are native ones then");
        } finally {
            Error.prepareStackTrace = installed;
        }
    });

    it("with PULUMI_DEBUG_PROMISE_LEAKS set, changes nothing", () => {
        const before = Error.stackTraceLimit;
        const inside = withoutPromiseStackTraces(() => ({ stack: new Error("x").stack, limit: Error.stackTraceLimit }), { [PROMISE_LEAKS_ENV]: "1" });
        assert.strictEqual(inside.limit, before);
        assert.ok(hasFrames(inside.stack), inside.stack);
    });

    it("recognises the SDK's capture by function and file, not by name alone", () => {
        const frame = (fn: string | null, file: string | undefined) => ({ getFunctionName: () => fn, getFileName: () => file }) as NodeJS.CallSite;
        const sdkFile = path.join("node_modules", "@pulumi", "pulumi", "runtime", "debuggable.js");
        assert.ok(isSdkPromiseCapture([frame("debuggablePromise", `/app/${sdkFile}`)]));
        assert.ok(!isSdkPromiseCapture([frame("debuggablePromise", "/app/src/debuggable.js")]), "same name, another file");
        assert.ok(!isSdkPromiseCapture([frame("registerResource", `/app/${sdkFile}`)]), "another function");
        assert.ok(!isSdkPromiseCapture([]), "no frames");
    });

    it("keeps the source positions the SDK records for each resource (the same as without it)", async () => {
        const positions: { name: string; uri: string; line: number }[] = [];
        pulumi.runtime.setMocks({ newResource: (a) => ({ id: `${a.name}-id`, state: a.inputs }), call: (a) => a.inputs }, "p", "s", true);
        const monitor = pulumi.runtime.getMonitor() as unknown as { registerResource: (req: any, cb: unknown) => unknown };
        const register = monitor.registerResource.bind(monitor);
        monitor.registerResource = (req, cb) => {
            const pos = req.getSourceposition();
            positions.push({ name: req.getName(), uri: pos?.getUri() ?? "", line: pos?.getLine() ?? 0 });
            return register(req, cb);
        };
        class Thing extends pulumi.CustomResource {
            constructor(name: string) {
                super("test:index:Thing", name, { value: 1 });
            }
        }
        // A named function, as a program's declarations are: V8 prints anonymous frames without the
        // parentheses the SDK's frame parser expects, so those get no position with or without the helper.
        function declareThing(name: string): Thing {
            return new Thing(name);
        }
        const plain = declareThing("plain");
        const fast = withoutPromiseStackTraces(() => declareThing("fast"), noLeakDebugging);
        await Promise.all([plain, fast].map((t) => new Promise((r) => t.urn.apply(r))));
        const at = (name: string) => positions.find((p) => p.name === name);
        assert.ok(at("plain")?.uri.endsWith("promiseStackTraces.test.ts"), `the control has a position: ${JSON.stringify(positions)}`);
        assert.deepStrictEqual(at("fast"), { ...at("plain"), name: "fast" }, "the same position as without the helper");
    });

    describe("the program", function () {
        this.timeout(120_000);
        after(clearCliConfig);
        const prod = cliConfigForStackFile(path.join(REPO_ROOT, "stacks", "Pulumi.prod.yaml"));

        it("declares its resources without formatting the SDK's promise stacks", async () => {
            const spy = spyOnStackFormatting();
            try {
                const run = await runProgram(prod);
                assert.ok(run.resources.length > 5, "the program declared resources");
                assert.strictEqual(spy.sdkPromiseStacks(), 0);
            } finally {
                spy.restore();
            }
        });

        it("formats them all with PULUMI_DEBUG_PROMISE_LEAKS set (the control: the spy sees them)", async () => {
            const spy = spyOnStackFormatting();
            process.env[PROMISE_LEAKS_ENV] = "1";
            try {
                const run = await runProgram(prod);
                assert.ok(spy.sdkPromiseStacks() > run.resources.length, `${spy.sdkPromiseStacks()} promise stacks for ${run.resources.length} resources`);
            } finally {
                delete process.env[PROMISE_LEAKS_ENV];
                spy.restore();
            }
        });
    });
});
