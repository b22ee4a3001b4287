/**
 * FalcoHost: make one Linux host, reached over SSH, a hardened Falco node, and keep it one.
 *
 * The component only wires: it resolves the settings, renders the bundle (pure, `bundle.ts`) and hands the
 * self-contained install script to one `remote.Command` on stdin. All host logic lives in the bundle's
 * converge/uninstall script, so what `npm run render` shows a reviewer is exactly what runs.
 */
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { createHash } from "crypto";
import { CONVERGE_MARKER_ENV, CONVERGE_MARKER_VALUE } from "../rules";
import { falcoHostname, hostnameProblem, NodeIdentity } from "../shared/hostname";
import { Bundle, renderBundle } from "./bundle";
import { assertLoginKeepsAccess } from "./hardening";
import { UNIT_NAME } from "./paths";
import { HostSettings, HostSettingsError, httpOutputNeedsUrl, ResolvedHostSettings } from "./settings";
import { resolveHostSettingsMemo } from "./settingsMemo";

/** How to reach a bastion. Same fields as the host's connection, minus a further proxy. */
export interface SshProxyArgs {
    /** Address of the bastion. */
    host: pulumi.Input<string>;
    /** SSH port. Default 22. */
    port?: pulumi.Input<number>;
    /** Login user on the bastion. Default `root`... rarely right: set it. */
    user?: pulumi.Input<string>;
    /** Private key for the bastion (OpenSSH or PEM). Wrapped as a secret whatever you pass. */
    privateKey?: pulumi.Input<string>;
    /**
     * The bastion's public host key (`ssh-ed25519 AAAA...`), pinned: the connection fails if the bastion presents
     * another. Without it any key is accepted (a warning is logged). Not an `ssh-rsa` key: pinned, it makes the
     * SSH client offer only the SHA-1 `ssh-rsa` signature, which OpenSSH >= 8.8 and our sshd baseline refuse; pin
     * the host's ed25519 key (`/etc/ssh/ssh_host_ed25519_key.pub`) instead.
     */
    hostKey?: pulumi.Input<string>;
    /** Failed dials tolerated before giving up. Default 30 (a fresh host may still be booting). */
    dialErrorLimit?: pulumi.Input<number>;
    /** Seconds per dial attempt. Default 15. */
    perDialTimeout?: pulumi.Input<number>;
}

/** How to reach the host. */
export interface SshConnectionArgs extends SshProxyArgs {
    /** Reach the host through this bastion (ProxyJump). */
    proxy?: SshProxyArgs;
}

export interface FalcoHostArgs {
    /** SSH access to the host. A non-root `user` runs everything through `sudo -n` (passwordless sudo required). */
    connection: SshConnectionArgs;
    /** Falco, outputs, rules and hardening for this host (see `HostSettings`). Default: our secure defaults. */
    settings?: HostSettings;
    /**
     * The hostname this host's Falco reports in every alert and heartbeat (set as `FALCO_HOSTNAME` in the unit;
     * Falcosidekick's `hostname` label, which the central alert rules match). Default: this resource's name. Set
     * it when the name is not a hostname, or to keep the name a dashboard already knows; a DNS name either way.
     */
    hostname?: string;
    /** Secret values (e.g. an HTTP output URL with a token). Delivered on stdin into a 0600 file, never in a command. */
    secrets?: {
        /** HTTP output URL with a credential in it (Falcosidekick behind auth, a webhook). */
        httpOutputUrl?: pulumi.Input<string>;
    };
    /**
     * Uninstall from the host when this FalcoHost is deleted (destroy, or removed from the program). Default true.
     * False makes delete a no-op on the host: for hosts the same stack terminates right after (AwsFalcoNode's
     * instance), where an SSH uninstall is pointless and, with the host already unreachable, holds `destroy` up
     * for minutes of dial retries. Falco stays on a host that outlives the stack.
     */
    uninstallOnDelete?: boolean;
}

/** Defaults for hosts that are still booting (cloud instances take a minute or two to accept SSH). */
export const DEFAULT_DIAL_ERROR_LIMIT = 30;
export const DEFAULT_PER_DIAL_TIMEOUT = 15;

/** The converge script's last stdout line. */
export interface ConvergeReport {
    changed: boolean;
    version: string;
    driver: string;
    bundleHash: string;
    unit: string;
    restarted: boolean;
}

/** Parse the converge script's final JSON line; undefined while unknown (preview) or when absent. */
export function parseConvergeReport(stdout: string | undefined): ConvergeReport | undefined {
    const last = (stdout ?? "").trim().split("\n").pop();
    if (!last?.startsWith("{")) return undefined;
    try {
        return JSON.parse(last) as ConvergeReport;
    } catch {
        return undefined;
    }
}

/**
 * Who a converge or uninstall runs for, passed to the host script as arguments (all hex: no quoting needed).
 * The host records the owner and its claim count with the bundle it converged; an uninstall from another owner,
 * from a bundle the host has since replaced, or while a claim remains, removes nothing (scripts/converge.sh).
 */
export interface Ownership {
    /** sha256 of the FalcoHost's URN (`ownerOf`): another name, parent or stack is another owner. */
    owner: string;
    /** The bundle's plain hash: the host checks it against the bundle on stdin; readable in the preview diff. */
    bundleHash: string;
    /**
     * `create` only: take one more claim. The engine creates a replacement before it deletes the resource it
     * replaces, with the same owner (same URN) and possibly the same bundle; the claim keeps that delete from
     * uninstalling what the replacement just converged.
     */
    claim?: boolean;
}

const HEX = /^[0-9a-f]{64}$/;

/** The owner id of a FalcoHost: sha256 of its URN, hex. */
export function ownerOf(urn: string): string {
    return createHash("sha256").update(urn).digest("hex");
}

/**
 * `bash -s` reads the script from stdin; a non-root user gets there through non-interactive sudo. The marker
 * variable is set at exec, where Falco reads a process's environment, so the self-protection rules can tell
 * our own converge from tampering (see components/rules/selfProtection.ts for why that is only a filter).
 * Without `ownership` (an operator's manual run) converge leaves the recorded owner alone and uninstall
 * removes everything.
 */
export function remoteShell(user: string | undefined, action: "converge" | "uninstall", ownership?: Ownership): string {
    const args: string[] = [action];
    if (ownership) {
        for (const [k, v] of [["owner", ownership.owner], ["bundleHash", ownership.bundleHash]] as const)
            if (!HEX.test(v)) throw new Error(`remoteShell: ${k} must be 64 hex digits, got '${v}'`);
        args.push("--owner", ownership.owner, "--bundle", ownership.bundleHash);
        if (ownership.claim) args.push("--claim");
    }
    const shell = `env ${CONVERGE_MARKER_ENV}=${CONVERGE_MARKER_VALUE} bash -s -- ${args.join(" ")}`;
    return !user || user === "root" ? shell : `sudo -n ${shell}`;
}

/**
 * A pinned `ssh-rsa` host key makes the SSH client offer only the `ssh-rsa` (SHA-1) host key algorithm for that
 * key, which OpenSSH >= 8.8 and our sshd baseline refuse (test/e2e/engine.test.ts shows the real sshd doing so):
 * every converge would fail to connect. Returns the problem, or undefined for any other key.
 */
export function hostKeyProblem(hostKey: string | undefined, what: string): string | undefined {
    if (hostKey === undefined || hostKey.trim().split(/\s+/)[0] !== "ssh-rsa") return undefined;
    return (
        `${what}.hostKey is an ssh-rsa key: pinned, it limits the SSH client to the SHA-1 ssh-rsa signature, which ` +
        `OpenSSH 8.8+ and the hardened sshd refuse. Pin the host's ed25519 key instead (ssh-keyscan -t ed25519 <host>, ` +
        `or /etc/ssh/ssh_host_ed25519_key.pub on the host)`
    );
}

function connectionArgs(c: SshProxyArgs, what: string): command.types.input.remote.ProxyConnectionArgs {
    // A key known only later (an Output) is checked when it resolves: the Command is then never registered.
    const hostKey =
        c.hostKey === undefined || typeof c.hostKey === "string"
            ? c.hostKey
            : pulumi.output(c.hostKey).apply((k) => {
                  const problem = hostKeyProblem(k, what);
                  if (problem) throw new pulumi.RunError(problem);
                  return k;
              });
    return {
        host: c.host,
        port: c.port ?? 22,
        user: c.user ?? "root",
        privateKey: c.privateKey === undefined ? undefined : pulumi.secret(c.privateKey),
        hostKey,
        dialErrorLimit: c.dialErrorLimit ?? DEFAULT_DIAL_ERROR_LIMIT,
        perDialTimeout: c.perDialTimeout ?? DEFAULT_PER_DIAL_TIMEOUT,
    };
}

/**
 * Fleets mostly share settings, and rendering (rules, falco.yaml, tar + gzip, ~20 ms) is the bulk of a FalcoHost's
 * own cost at preview. Each host's unit carries its own hostname, so each host has a bundle of its own; what the
 * hosts share is rendered once (bundle.ts keeps the settings' files, tar.ts the compressed shared part), so a
 * host's own render is its unit, a small gzip member and the hash. Renders are memoized per resolved settings and
 * hostname. `resolveHostSettingsMemo` hands equal settings the same
 * object, so the lookup is by identity first and by content (the settings as JSON) only for a new object.
 * Bundles with secrets are memoized too, per settings and secret value: a fleet-wide HTTP output URL is one
 * render, not one per node. They live only in this process, as the secret itself does.
 */
interface Renders {
    /**
     * Rendered without secrets (with a stand-in URL when the host gets the secret one): the plain hash. By
     * hostname and whether there is a secret URL (bundle.ts renders what does not depend on the hostname once).
     */
    plain: Map<string, Bundle>;
    /** Rendered with the host's secrets, by hostname and secret value. */
    withSecrets: Map<string, Bundle>;
}
const MAX_RENDERS = 32;
const rendersBySettings = new WeakMap<ResolvedHostSettings, Renders>();
const rendersByContent = new Map<string, Renders>();
function rendersFor(settings: ResolvedHostSettings): Renders {
    let r = rendersBySettings.get(settings);
    if (!r) {
        const key = JSON.stringify(settings);
        r = rendersByContent.get(key);
        if (!r) {
            if (rendersByContent.size >= MAX_RENDERS) rendersByContent.clear();
            r = { plain: new Map(), withSecrets: new Map() };
            rendersByContent.set(key, r);
        }
        rendersBySettings.set(settings, r);
    }
    return r;
}
function renderPlainBundle(settings: ResolvedHostSettings, node: NodeIdentity, withSecretUrl: boolean): Bundle {
    const renders = rendersFor(settings);
    const key = `${node.hostname}\n${withSecretUrl}`;
    let bundle = renders.plain.get(key);
    if (!bundle) {
        // A stand-in secret: the plain hash never depends on secret values, only on where they go.
        bundle = renderBundle(settings, withSecretUrl ? { httpOutputUrl: "https://placeholder.invalid/" } : undefined, node);
        if (renders.plain.size >= MAX_RENDERS) renders.plain.clear();
        renders.plain.set(key, bundle);
    }
    return bundle;
}
function renderSecretBundle(settings: ResolvedHostSettings, node: NodeIdentity, httpOutputUrl: string): Bundle {
    const renders = rendersFor(settings);
    const key = `${node.hostname}\n${httpOutputUrl}`;
    let bundle = renders.withSecrets.get(key);
    if (!bundle) {
        bundle = renderBundle(settings, { httpOutputUrl }, node);
        if (renders.withSecrets.size >= MAX_RENDERS) renders.withSecrets.clear();
        renders.withSecrets.set(key, bundle);
    }
    return bundle;
}

/** Who the host is (the hostname its Falco reports); a name that cannot be one fails before anything is declared. */
export function nodeIdentity(name: string, hostname: string | undefined): NodeIdentity {
    const reported = falcoHostname(name, hostname);
    const problem = hostnameProblem(reported);
    if (problem)
        throw new Error(
            hostname === undefined
                ? `invalid hostname (FalcoHost ${name}): it defaults to the resource name, and ${problem}; set hostname to the name this host's Falco should report`
                : `invalid hostname (FalcoHost ${name}): ${problem}`,
        );
    return { hostname: reported };
}

/** Refuse ssh-rsa pins known now (a plain string), before anything is declared. */
function checkHostKeys(c: SshConnectionArgs): void {
    const problems = [
        typeof c.hostKey === "string" ? hostKeyProblem(c.hostKey, "connection") : undefined,
        typeof c.proxy?.hostKey === "string" ? hostKeyProblem(c.proxy.hostKey, "connection.proxy") : undefined,
    ].filter((p): p is string => p !== undefined);
    if (problems.length) throw new Error(problems.join("\n"));
}

export class FalcoHost extends pulumi.ComponentResource {
    /** sha256 of everything non-secret the host receives; changes exactly when the host must converge. */
    public readonly bundleHash: pulumi.Output<string>;
    /** Falco version the host reported after converging. */
    public readonly falcoVersion: pulumi.Output<string>;
    /** Driver in use on the host (`auto` resolved there). */
    public readonly driver: pulumi.Output<string>;
    /** Our systemd unit's name. */
    public readonly unitName: pulumi.Output<string>;
    /** The converge command (for `dependsOn` in your own program). */
    public readonly converge: command.remote.Command;

    constructor(name: string, args: FalcoHostArgs, opts?: pulumi.ComponentResourceOptions) {
        // An ssh-rsa pin or a name Falco cannot report fails before anything, this component included, is registered.
        checkHostKeys(args.connection);
        const node = nodeIdentity(name, args.hostname);
        super("falco-nodes:index:FalcoHost", name, {}, opts);

        // Bad settings fail here, at preview, naming the key: before any resource is declared.
        const settings = resolveHostSettingsMemo(args.settings ?? {});
        const hasSecretUrl = args.secrets?.httpOutputUrl !== undefined;
        const missingUrl = httpOutputNeedsUrl(settings, hasSecretUrl);
        if (missingUrl) throw new HostSettingsError([{ key: "outputs.http", message: missingUrl }]);
        assertLoginKeepsAccess(settings, args.connection.user);
        // Render without secrets: the plain hash (known at preview), and the script itself when there is no secret.
        const plain = renderPlainBundle(settings, node, hasSecretUrl);
        const installScript = hasSecretUrl
            ? pulumi
                  .secret(pulumi.output(args.secrets!.httpOutputUrl!))
                  .apply((httpOutputUrl) => renderSecretBundle(settings, node, httpOutputUrl))
            : pulumi.output(plain);

        const warnNoHostKey = (c: SshProxyArgs, what: string) => {
            if (c.hostKey === undefined)
                pulumi.log.warn(`${what} has no hostKey: any host key will be accepted (pin it to defeat man-in-the-middle)`, this);
        };
        warnNoHostKey(args.connection, "connection");
        if (args.connection.proxy) warnNoHostKey(args.connection.proxy, "connection.proxy");

        const connection: command.types.input.remote.ConnectionArgs = {
            ...connectionArgs(args.connection, "connection"),
            proxy: args.connection.proxy ? connectionArgs(args.connection.proxy, "connection.proxy") : undefined,
        };
        // The owner comes from this component's URN (known at preview), so the command strings are Outputs.
        const user = pulumi.output(args.connection.user ?? "root");
        const commandFor = (action: "converge" | "uninstall", claim = false): pulumi.Output<string> =>
            pulumi
                .all([user, this.urn])
                .apply(([u, urn]) => remoteShell(u, action, { owner: ownerOf(urn), bundleHash: plain.hash, claim }));

        this.converge = new command.remote.Command(
            `${name}-converge`,
            {
                connection,
                // The bundle hash is in these strings, so the preview diff shows a new bundle as an update of
                // create/update/delete. A changed bundle is an in-place update (the provider runs `update` with the
                // new stdin), never a replacement: nothing here is in `triggers`, the one input @pulumi/command
                // replaces on (see ignoreChanges below).
                create: commandFor("converge", true),
                update: commandFor("converge"),
                // Delete runs with the inputs in state: the last converged bundle on stdin, its owner and hash in
                // the string. The host script uninstalls only what that owner and bundle still hold.
                delete: args.uninstallOnDelete === false ? undefined : commandFor("uninstall"),
                // Always secret: it may carry the secrets drop-in, and its diff is unreadable anyway; the hash in
                // the command strings says when the plain part changes, `npm run render` shows what.
                stdin: pulumi.secret(installScript.apply((b) => b.installScript)),
                // The previous run's output is not needed on the host, and env passing needs AcceptEnv in sshd.
                addPreviousOutputInEnv: false,
                logging: command.types.enums.remote.Logging.StdoutAndStderr,
            },
            {
                parent: this,
                additionalSecretOutputs: ["stdin"],
                // @pulumi/command 1.2.1 registers replaceOnChanges ["triggers[*]"] (remote/command.js) and its
                // schema marks `triggers` replaceOnChanges (provider/pkg/provider/common/inputs.go). Earlier
                // falco-nodes versions put the bundle hash there; dropping it from a Command already in state would
                // still be a replacement (create, then the old uninstall with the old stdin). Ignoring `triggers`
                // keeps the old value in state (processIgnoreChanges, pulumi/pulumi
                // pkg/resource/deploy/step_generator.go), so the first up after the upgrade is an update too.
                ignoreChanges: ["triggers"],
            },
        );

        const report = this.converge.stdout.apply(parseConvergeReport);
        this.bundleHash = pulumi.output(plain.hash);
        this.falcoVersion = report.apply((r) => r?.version ?? settings.falcoVersion);
        this.driver = report.apply((r) => r?.driver ?? settings.driver);
        this.unitName = pulumi.output(UNIT_NAME);

        this.registerOutputs({
            bundleHash: this.bundleHash,
            falcoVersion: this.falcoVersion,
            driver: this.driver,
            unitName: this.unitName,
        });
    }
}
