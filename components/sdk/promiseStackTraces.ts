/**
 * Keeps the Pulumi SDK's debugging stack traces from dominating a large program's run time.
 *
 * Why: the Node.js SDK (3.270) records `new Error().stack` on every promise it wraps with `debuggablePromise`,
 * which is several promises per output property of every resource (an `aws.ec2.Instance` has about sixty
 * properties). Reading `.stack` formats the trace on the spot, and under ts-node (how `pulumi preview` runs a
 * TypeScript program) every frame is source-mapped. The SDK only ever prints those strings when
 * `PULUMI_DEBUG_PROMISE_LEAKS` is set, yet at 500 nodes they were two thirds of the program's time
 * (`npm run bench` shows both figures).
 *
 * What this changes, and only when `PULUMI_DEBUG_PROMISE_LEAKS` is not set (with it set, nothing changes):
 * - while the callback runs (a program's synchronous resource declarations), V8 captures no stack frames,
 *   so an error thrown from inside it carries its message and no frames;
 * - afterwards, when a stack formatter is installed (as under `pulumi up`: source-map-support, ts-node), a stack
 *   captured inside the SDK's `debuggablePromise` is not formatted: it reads as a one-line note saying how to get
 *   it back. Every other stack keeps its frames, source-mapped as before.
 * Resource source positions, which the engine shows in diagnostics, are unaffected: the SDK raises the limit
 * itself while it records them.
 */

/** The SDK's own switch for printing the stacks it records on promises; when set, we leave them alone. */
export const PROMISE_LEAKS_ENV = "PULUMI_DEBUG_PROMISE_LEAKS";

/** What a skipped promise stack reads as, should anything print it. */
export const SKIPPED_STACK_NOTE = `Error (stack not recorded; set ${PROMISE_LEAKS_ENV}=1 to record promise stacks)`;

/** The SDK function whose captures we skip, and the file it lives in (checked together, so a name clash elsewhere can't match). */
const SDK_CAPTURER = "debuggablePromise";
const SDK_CAPTURER_FILE = /[\\/]@pulumi[\\/]pulumi[\\/]runtime[\\/]debuggable\.[cm]?js$/;

type PrepareStackTrace = (error: Error, frames: NodeJS.CallSite[]) => unknown;
/** Marks our filter, so installing twice wraps once. */
const FILTER_MARK = Symbol.for("falco-nodes.promiseStackFilter");

/** Is this capture the SDK recording a promise's stack? (Its first frame is `debuggablePromise` in the SDK.) */
export function isSdkPromiseCapture(frames: readonly NodeJS.CallSite[]): boolean {
    const top = frames[0];
    return top !== undefined && top.getFunctionName() === SDK_CAPTURER && SDK_CAPTURER_FILE.test(top.getFileName() ?? "");
}

/**
 * Wraps the stack formatter installed now (source-map-support, which Pulumi's runner always loads, or ts-node's),
 * skipping only the SDK's promise captures. With none installed we leave V8's (or Node's `--enable-source-maps`)
 * native formatting alone: wrapping it would mean re-implementing it, and losing the source maps.
 */
function installPromiseStackFilter(): void {
    const current = Error.prepareStackTrace as (PrepareStackTrace & { [FILTER_MARK]?: true }) | undefined;
    if (current === undefined || current[FILTER_MARK]) return;
    const filter: PrepareStackTrace & { [FILTER_MARK]?: true } = (error, frames) =>
        isSdkPromiseCapture(frames) ? SKIPPED_STACK_NOTE : current(error, frames);
    filter[FILTER_MARK] = true;
    Error.prepareStackTrace = filter;
}

/**
 * Runs `declare` (your resource declarations) without the SDK's per-promise stack traces, and returns what it
 * returns. Use it around the part of a program that declares many resources; with `PULUMI_DEBUG_PROMISE_LEAKS`
 * set it just calls `declare`.
 */
export function withoutPromiseStackTraces<T>(declare: () => T, env: NodeJS.ProcessEnv = process.env): T {
    if (env[PROMISE_LEAKS_ENV]) return declare();
    installPromiseStackFilter();
    const limit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
        return declare();
    } finally {
        Error.stackTraceLimit = limit;
    }
}
