/**
 * Pulumi mocks for component tests: records every resource registration (type, name, inputs) and answers with
 * the inputs as the resource's state, so tests assert on what a component declares without any engine,
 * provider plugin or cloud.
 *
 * Usage: `let mocks: Mocks; before(() => (mocks = setupMocks()));` (in `before`, not at file load: `setMocks`
 * is process-wide, and mocha loads every test file before running any), `mocks.reset()` in `beforeEach`, build
 * the component, `await outputOf(...)` something that depends on the resources of interest, then inspect
 * `mocks.resources`. (test/support/pulumiMocks.ts is the same idea with per-type state tables.)
 */
import * as pulumi from "@pulumi/pulumi";

export interface Recorded {
    /** Type token, e.g. `kubernetes:core/v1:Secret` or `kubernetes:helm.sh/v4:Chart`. */
    type: string;
    name: string;
    /** Inputs as the engine received them; secrets stay wrapped (see `isSecretValue`, `unwrapSecrets`). */
    inputs: any;
    /** False for component resources (local or remote, e.g. helm.v4.Chart). */
    custom: boolean;
    provider?: string;
}

export interface MockOptions {
    project?: string;
    stack?: string;
    /** Run as `pulumi preview` (unknowns stay unknown). Default false. */
    preview?: boolean;
    /** Extra state for a resource, merged over its inputs (e.g. a RandomPassword's `result`). */
    stateFor?: (r: Recorded) => Record<string, unknown> | undefined;
}

export interface Mocks {
    resources: Recorded[];
    reset(): void;
    /** Every recorded resource of a type (optionally with a name). */
    ofType(type: string, name?: string): Recorded[];
    /** The single recorded resource of a type; throws when there is not exactly one. */
    one(type: string, name?: string): Recorded;
}

export function setupMocks(opts: MockOptions = {}): Mocks {
    const resources: Recorded[] = [];
    void pulumi.runtime.setMocks(
        {
            newResource(args: pulumi.runtime.MockResourceArgs): pulumi.runtime.MockResourceResult {
                const rec: Recorded = {
                    type: args.type,
                    name: args.name,
                    inputs: args.inputs,
                    custom: args.custom ?? true,
                    provider: args.provider,
                };
                resources.push(rec);
                const state: Record<string, unknown> = { ...args.inputs, ...(opts.stateFor?.(rec) ?? {}) };
                return { id: args.custom === false ? undefined : `${args.name}-id`, state };
            },
            call(args: pulumi.runtime.MockCallArgs): pulumi.runtime.MockCallResult {
                return args.inputs;
            },
        },
        opts.project ?? "falco-nodes",
        opts.stack ?? "test",
        opts.preview ?? false,
    );
    const ofType = (type: string, name?: string) =>
        resources.filter((r) => r.type === type && (name === undefined || r.name === name));
    return {
        resources,
        reset: () => void resources.splice(0, resources.length),
        ofType,
        one(type, name) {
            const found = ofType(type, name);
            if (found.length !== 1)
                throw new Error(`expected one ${type}${name ? ` named ${name}` : ""}, found ${found.length}: ${resources.map((r) => `${r.type} ${r.name}`).join(", ")}`);
            return found[0];
        },
    };
}

/** The value of an output (resolves once the mocked engine has answered). */
export function outputOf<T>(o: pulumi.Output<T>): Promise<T> {
    return new Promise((resolve) => o.apply((v) => (resolve(v), v)));
}

/** Whether an output is marked secret. */
export function isSecretOutput<T>(o: pulumi.Output<T>): Promise<boolean> {
    return pulumi.isSecret(o);
}

/** Whether a recorded input value is a secret (the engine's wire envelope for secrets). */
export function isSecretValue(v: unknown): v is { value: unknown } {
    return typeof v === "object" && v !== null && (v as Record<string, unknown>)[pulumi.runtime.specialSigKey] === pulumi.runtime.specialSecretSig;
}

/** A recorded input with every secret envelope replaced by its value. */
export function unwrapSecrets(v: unknown): any {
    if (isSecretValue(v)) return unwrapSecrets(v.value);
    if (Array.isArray(v)) return v.map(unwrapSecrets);
    if (typeof v === "object" && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, unwrapSecrets(x)]));
    return v;
}

/** Paths (`a.b[0]`) of every secret envelope inside a recorded input. */
export function secretPaths(v: unknown, at = ""): string[] {
    if (isSecretValue(v)) return [at || "(root)"];
    if (Array.isArray(v)) return v.flatMap((x, i) => secretPaths(x, `${at}[${i}]`));
    if (typeof v === "object" && v !== null) return Object.entries(v).flatMap(([k, x]) => secretPaths(x, at ? `${at}.${k}` : k));
    return [];
}
