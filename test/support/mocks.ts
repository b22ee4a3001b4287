/**
 * Pulumi mocks for every test: records each resource registration (type, name, inputs) and each provider call
 * (function token, arguments), and answers with the inputs as the resource's state, plus what the test adds
 * per type (`state`) and per call (`calls`), so tests assert on what would be sent to the providers without
 * any engine, provider plugin or cloud.
 *
 * Usage: `let mocks: Mocks; before(() => (mocks = setupMocks()));` (in `before`, not at file load: `setMocks`
 * is process-wide, and mocha loads every test file before running any), `mocks.reset()` in `beforeEach`, build
 * the component, `await outputOf(...)` something that depends on the resources of interest (or `settled`),
 * then inspect `mocks.resources`. `setupCloudMocks` adds the answers AWS, TLS, the command provider and random
 * would give (`CLOUD_STATE`, `CLOUD_CALLS`): the AWS node tests and the program's run use the same ones.
 *
 * Inputs are recorded as the engine sees them: secrets keep their wire envelope, so a test can tell a secret
 * from a plain value (`isSecretValue`), find them (`secretPaths`) and read through them (`unwrapSecrets`).
 *
 * Each registration also records its URN and the resource options the SDK sent with it (`options`:
 * replaceOnChanges, deleteBeforeReplace, ignoreChanges, aliases...), read from the RegisterResourceRequest the
 * SDK's mock monitor receives (@pulumi/pulumi runtime/mocks.js MockMonitor.registerResource, which itself passes
 * none of them on), so a test can decide update vs replace from what was really registered (test/support/engine.ts).
 * URNs follow the engine's rule, not the mock monitor's: the parent's full qualified type chain is kept
 * (pulumi/pulumi pkg/resource/deploy/deployment.go generateURN, sdk/go/common/resource/urn.go NewURN); the mock
 * monitor's newUrn keeps only the parent's last type.
 */
import * as pulumi from "@pulumi/pulumi";
import { fakeKeyPair } from "./fakeSecrets";

export interface Recorded {
    /** Type token, e.g. `kubernetes:core/v1:Secret` or `kubernetes:helm.sh/v4:Chart`. */
    type: string;
    name: string;
    /** Inputs as the engine received them; secrets stay wrapped (see `isSecretValue`, `unwrapSecrets`). */
    inputs: any;
    /** False for component resources (local or remote, e.g. helm.v4.Chart). */
    custom: boolean;
    provider?: string;
    /** The URN the engine gives this registration. */
    urn: string;
    /** The parent's URN ("" for none). */
    parent: string;
    /** Resource options as sent in the RegisterResourceRequest. */
    options: RegisteredOptions;
}

/** An alias as the SDK sends it: a URN, or a spec the engine completes (`collapseAliasToUrn`). */
export type RegisteredAlias =
    | { urn: string }
    | { name: string; type: string; stack: string; project: string; parentUrn: string; noParent: boolean };

/** The options of a RegisterResourceRequest (pulumi/pulumi proto/pulumi/resource.proto) that decide steps. */
export interface RegisteredOptions {
    replaceOnChanges: string[];
    /** undefined when not set (`deleteBeforeReplaceDefined` false): the provider's answer then decides. */
    deleteBeforeReplace?: boolean;
    ignoreChanges: string[];
    aliases: RegisteredAlias[];
    protect?: boolean;
    retainOnDelete?: boolean;
    deletedWith: string;
    dependencies: string[];
}

/** The root stack's type: never part of a child's type chain. */
export const ROOT_STACK_TYPE = "pulumi:pulumi:Stack";

/** A URN's qualified type (the parents' types and its own, joined by `$`). */
export function qualifiedType(urn: string): string {
    return urn.split("::")[2];
}

/**
 * The engine's URN for a registration: pulumi/pulumi pkg/resource/deploy/deployment.go generateURN (the parent's
 * full qualified type, unless there is none or it is the root stack) and sdk/go/common/resource/urn.go NewURN.
 */
export function engineUrn(stack: string, project: string, parent: string, type: string, name: string): string {
    const parentType = parent && qualifiedType(parent) !== ROOT_STACK_TYPE ? qualifiedType(parent) : "";
    return `urn:pulumi:${stack}::${project}::${parentType ? `${parentType}$` : ""}${type}::${name}`;
}

/** What of the SDK's RegisterResourceRequest (generated protobuf) the recorder reads. */
interface RegisterRequest {
    getType(): string;
    getName(): string;
    getParent(): string;
    getReplaceonchangesList(): string[];
    getDeletebeforereplace(): boolean;
    getDeletebeforereplacedefined(): boolean;
    getIgnorechangesList(): string[];
    getAliasesList(): {
        hasSpec(): boolean;
        getUrn(): string;
        getSpec(): { getName(): string; getType(): string; getStack(): string; getProject(): string; getParenturn(): string; getNoparent(): boolean } | undefined;
    }[];
    getAliasurnsList(): string[];
    getProtect?(): boolean;
    hasProtect?(): boolean;
    getRetainondelete?(): boolean;
    hasRetainondelete?(): boolean;
    getDeletedwith(): string;
    getDependenciesList(): string[];
}

function optionsOf(req: RegisterRequest): RegisteredOptions {
    const aliases: RegisteredAlias[] = req.getAliasesList().map((a) => {
        const spec = a.hasSpec() ? a.getSpec() : undefined;
        if (!spec) return { urn: a.getUrn() };
        return {
            name: spec.getName(),
            type: spec.getType(),
            stack: spec.getStack(),
            project: spec.getProject(),
            parentUrn: spec.getParenturn(),
            noParent: spec.getNoparent(),
        };
    });
    for (const urn of req.getAliasurnsList()) aliases.push({ urn });
    return {
        replaceOnChanges: req.getReplaceonchangesList(),
        deleteBeforeReplace: req.getDeletebeforereplacedefined() ? req.getDeletebeforereplace() : undefined,
        ignoreChanges: req.getIgnorechangesList(),
        aliases,
        protect: req.hasProtect?.() ? req.getProtect?.() : undefined,
        retainOnDelete: req.hasRetainondelete?.() ? req.getRetainondelete?.() : undefined,
        deletedWith: req.getDeletedwith(),
        dependencies: req.getDependenciesList(),
    };
}

export interface RecordedCall {
    /** Function token, e.g. `aws:ec2/getAmi:getAmi`. */
    token: string;
    inputs: any;
}

/** Per resource type: state the "provider" returns on top of the inputs (e.g. a key's generated material). */
export type StateAnswers = Record<string, (inputs: Record<string, any>, name: string) => Record<string, unknown>>;
/** Per function token (e.g. `aws:ec2/getAmi:getAmi`): the result of an invoke. */
export type CallAnswers = Record<string, (inputs: Record<string, any>) => Record<string, unknown>>;

export interface MockOptions {
    project?: string;
    stack?: string;
    /** Run as `pulumi preview` (unknowns stay unknown). Default false. */
    preview?: boolean;
    /** Extra state per resource type, merged over its inputs. Default none. */
    state?: StateAnswers;
    /** Invoke results per function token. Default none. */
    calls?: CallAnswers;
    /**
     * Throw `unexpected call <token>` for a call without an answer. Default false: the call answers with its
     * arguments. Set it where every invoke a component makes should be one the test knows about.
     */
    strictCalls?: boolean;
    /** Record resources into this list (a caller's own) instead of a new one. */
    into?: Recorded[];
}

export interface Mocks {
    resources: Recorded[];
    calls: RecordedCall[];
    /** Forget what was recorded so far (the mocks stay installed). */
    reset(): void;
    /** Every recorded resource of a type (optionally with a name), in registration order. */
    ofType(type: string, name?: string): Recorded[];
    /** The single recorded resource of a type; throws when there is not exactly one. */
    one(type: string, name?: string): Recorded;
}

/** Install the mocks and return the (live) record. A later call replaces the mocks and starts a new record. */
export function setupMocks(opts: MockOptions = {}): Mocks {
    const resources: Recorded[] = opts.into ?? [];
    const calls: RecordedCall[] = [];
    const project = opts.project ?? "falco-nodes";
    const stack = opts.stack ?? "test";
    // Set by the monitor wrapper below for the one newResource call its registerResource makes synchronously.
    let registering: { urn: string; parent: string; options: RegisteredOptions } | undefined;
    void pulumi.runtime.setMocks(
        {
            newResource(args: pulumi.runtime.MockResourceArgs): pulumi.runtime.MockResourceResult {
                const reg = registering ?? { urn: engineUrn(stack, project, "", args.type, args.name), parent: "", options: optionsOf(EMPTY_REQUEST) };
                registering = undefined;
                resources.push({
                    type: args.type,
                    name: args.name,
                    inputs: args.inputs,
                    custom: args.custom ?? true,
                    provider: args.provider,
                    ...reg,
                });
                const state = { ...args.inputs, ...(opts.state?.[args.type]?.(args.inputs, args.name) ?? {}) };
                return { id: args.custom === false ? undefined : `${args.name}-id`, state };
            },
            call(args: pulumi.runtime.MockCallArgs): pulumi.runtime.MockCallResult {
                calls.push({ token: args.token, inputs: args.inputs });
                const answer = opts.calls?.[args.token];
                if (answer) return answer(args.inputs);
                if (opts.strictCalls) throw new Error(`unexpected call ${args.token}`);
                return args.inputs;
            },
        },
        project,
        stack,
        opts.preview ?? false,
    );
    // The mock monitor (runtime/mocks.js MockMonitor) is what getMonitor() returns once setMocks ran.
    const monitor = pulumi.runtime.getMonitor() as unknown as {
        newUrn(parent: string, type: string, name: string): string;
        registerResource(req: RegisterRequest, callback: (...a: unknown[]) => void): Promise<void>;
    };
    monitor.newUrn = (parent, type, name) => engineUrn(stack, project, parent, type, name);
    const register = monitor.registerResource.bind(monitor);
    monitor.registerResource = (req, callback) => {
        const parent = req.getParent();
        registering = { urn: engineUrn(stack, project, parent, req.getType(), req.getName()), parent, options: optionsOf(req) };
        // MockMonitor.registerResource calls mocks.newResource before its first await: `registering` is for it.
        const done = register(req, callback);
        registering = undefined;
        return done;
    };
    const ofType = (type: string, name?: string) =>
        resources.filter((r) => r.type === type && (name === undefined || r.name === name));
    return {
        resources,
        calls,
        reset() {
            resources.splice(0, resources.length);
            calls.splice(0, calls.length);
        },
        ofType,
        one(type, name) {
            const found = ofType(type, name);
            if (found.length !== 1)
                throw new Error(`expected one ${type}${name ? ` named ${name}` : ""}, found ${found.length}: ${resources.map((r) => `${r.type} ${r.name}`).join(", ")}`);
            return found[0];
        },
    };
}

const EMPTY_REQUEST: RegisterRequest = {
    getType: () => "",
    getName: () => "",
    getParent: () => "",
    getReplaceonchangesList: () => [],
    getDeletebeforereplace: () => false,
    getDeletebeforereplacedefined: () => false,
    getIgnorechangesList: () => [],
    getAliasesList: () => [],
    getAliasurnsList: () => [],
    getDeletedwith: () => "",
    getDependenciesList: () => [],
};

export const FAKE_AMI_ID = "ami-0123456789abcdef0";
export const FAKE_VPC_ID = "vpc-0aaaabbbbccccdddd";
export const FAKE_PRIVATE_IP = "10.0.1.23";
export const FAKE_PUBLIC_IP = "198.51.100.7";
export const FAKE_ACCOUNT_ID = "123456789012";
/** What a RandomPassword's `result` is under the cloud answers. */
export const FAKE_RANDOM_PASSWORD = "generated-password";

/** What AWS, TLS, the command provider and random answer for the resources we declare: just enough to wire through. */
export const CLOUD_STATE: StateAnswers = {
    "tls:index/privateKey:PrivateKey": (_inputs, name) => fakeKeyPair(name),
    "aws:ec2/keyPair:KeyPair": (_inputs, name) => ({ keyName: name }),
    "aws:ec2/instance:Instance": (inputs) => ({
        privateIp: FAKE_PRIVATE_IP,
        publicIp: unwrapSecrets(inputs.associatePublicIpAddress) ? FAKE_PUBLIC_IP : "",
    }),
    "aws:iam/role:Role": (_inputs, name) => ({ name, arn: `arn:aws:iam::${FAKE_ACCOUNT_ID}:role/${name}` }),
    "aws:iam/instanceProfile:InstanceProfile": (_inputs, name) => ({ name, arn: `arn:aws:iam::${FAKE_ACCOUNT_ID}:instance-profile/${name}` }),
    "command:remote:Command": () => ({ stdout: "", stderr: "" }),
    "random:index/randomPassword:RandomPassword": () => ({ result: FAKE_RANDOM_PASSWORD }),
};

/** What the AWS data sources answer. */
export const CLOUD_CALLS: CallAnswers = {
    "aws:ec2/getAmi:getAmi": () => ({ id: FAKE_AMI_ID, imageId: FAKE_AMI_ID }),
    "aws:ec2/getSubnet:getSubnet": (inputs) => ({ id: inputs.id, vpcId: FAKE_VPC_ID }),
    "aws:index/getPartition:getPartition": () => ({ id: "aws", partition: "aws", dnsSuffix: "amazonaws.com" }),
    "aws:index/getCallerIdentity:getCallerIdentity": () => ({
        id: FAKE_ACCOUNT_ID,
        accountId: FAKE_ACCOUNT_ID,
        arn: `arn:aws:iam::${FAKE_ACCOUNT_ID}:user/ci`,
        userId: "AIDAEXAMPLE",
    }),
};

/** `setupMocks` with the cloud answers (`CLOUD_STATE`, `CLOUD_CALLS`); `opts.state` / `opts.calls` override per type / token. */
export function setupCloudMocks(opts: MockOptions = {}): Mocks {
    return setupMocks({ ...opts, state: { ...CLOUD_STATE, ...opts.state }, calls: { ...CLOUD_CALLS, ...opts.calls } });
}

/** The value of an output (resolves once the mocked engine has answered). */
export function outputOf<T>(o: pulumi.Output<T>): Promise<T> {
    return new Promise((resolve) => o.apply((v) => (resolve(v), v)));
}

/** Wait until no new resource has been registered for `quietMs`: every child of a component is declared. */
export async function settled(recorded: { resources: readonly unknown[] } | readonly unknown[], quietMs = 30): Promise<void> {
    const list = "resources" in recorded ? recorded.resources : recorded;
    let count = -1;
    while (count !== list.length) {
        count = list.length;
        await new Promise((r) => setTimeout(r, quietMs));
    }
}

/** Whether an output is marked secret. */
export function isSecretOutput<T>(o: pulumi.Output<T>): Promise<boolean> {
    return pulumi.isSecret(o);
}

/** Whether a recorded input value is a secret (the engine's wire envelope for secrets). */
export function isSecretValue(v: unknown): v is { value: unknown } {
    return typeof v === "object" && v !== null && (v as Record<string, unknown>)[pulumi.runtime.specialSigKey] === pulumi.runtime.specialSecretSig;
}

/** A recorded input with every secret envelope replaced by its value, at any depth. */
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
