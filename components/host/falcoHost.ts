/**
 * FalcoHost: make one Linux host, reached over SSH, a hardened Falco node, and keep it one.
 *
 * The component only wires: it resolves the settings, renders the bundle (pure, `bundle.ts`) and hands the
 * self-contained install script to one `remote.Command` on stdin. All host logic lives in the bundle's
 * converge/uninstall script, so what `npm run render` shows a reviewer is exactly what runs.
 */
import * as command from "@pulumi/command";
import * as pulumi from "@pulumi/pulumi";
import { CONVERGE_MARKER_ENV, CONVERGE_MARKER_VALUE } from "../rules";
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
     * another. Without it any key is accepted (a warning is logged).
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
    /** Secret values (e.g. an HTTP output URL with a token). Delivered on stdin into a 0600 file, never in a command. */
    secrets?: {
        /** HTTP output URL with a credential in it (Falcosidekick behind auth, a webhook). */
        httpOutputUrl?: pulumi.Input<string>;
    };
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
 * `bash -s` reads the script from stdin; a non-root user gets there through non-interactive sudo. The marker
 * variable is set at exec, where Falco reads a process's environment, so the self-protection rules can tell
 * our own converge from tampering (see components/rules/selfProtection.ts for why that is only a filter).
 */
export function remoteShell(user: string | undefined, action: "converge" | "uninstall"): string {
    const shell = `env ${CONVERGE_MARKER_ENV}=${CONVERGE_MARKER_VALUE} bash -s -- ${action}`;
    return !user || user === "root" ? shell : `sudo -n ${shell}`;
}

function connectionArgs(c: SshProxyArgs): command.types.input.remote.ProxyConnectionArgs {
    return {
        host: c.host,
        port: c.port ?? 22,
        user: c.user ?? "root",
        privateKey: c.privateKey === undefined ? undefined : pulumi.secret(c.privateKey),
        hostKey: c.hostKey,
        dialErrorLimit: c.dialErrorLimit ?? DEFAULT_DIAL_ERROR_LIMIT,
        perDialTimeout: c.perDialTimeout ?? DEFAULT_PER_DIAL_TIMEOUT,
    };
}

/**
 * Fleets mostly share settings, and rendering (tar + gzip, ~20 ms) is the bulk of a FalcoHost's own cost at
 * preview: renders are memoized per resolved settings. `resolveHostSettingsMemo` hands equal settings the same
 * object, so the lookup is by identity first and by content (the settings as JSON) only for a new object.
 * Bundles with secrets are memoized too, per settings and secret value: a fleet-wide HTTP output URL is one
 * render, not one per node. They live only in this process, as the secret itself does.
 */
interface Renders {
    /** Rendered without secrets (with a stand-in URL when the host gets the secret one): the plain hash. */
    plain: Map<boolean, Bundle>;
    /** Rendered with the host's secrets, by secret value. */
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
function renderPlainBundle(settings: ResolvedHostSettings, withSecretUrl: boolean): Bundle {
    const renders = rendersFor(settings);
    let bundle = renders.plain.get(withSecretUrl);
    if (!bundle) {
        // A stand-in secret: the plain hash never depends on secret values, only on where they go.
        bundle = renderBundle(settings, withSecretUrl ? { httpOutputUrl: "https://placeholder.invalid/" } : undefined);
        renders.plain.set(withSecretUrl, bundle);
    }
    return bundle;
}
function renderSecretBundle(settings: ResolvedHostSettings, httpOutputUrl: string): Bundle {
    const renders = rendersFor(settings);
    let bundle = renders.withSecrets.get(httpOutputUrl);
    if (!bundle) {
        bundle = renderBundle(settings, { httpOutputUrl });
        if (renders.withSecrets.size >= MAX_RENDERS) renders.withSecrets.clear();
        renders.withSecrets.set(httpOutputUrl, bundle);
    }
    return bundle;
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
        super("falco-nodes:index:FalcoHost", name, {}, opts);

        // Bad settings fail here, at preview, naming the key: before any resource is declared.
        const settings = resolveHostSettingsMemo(args.settings ?? {});
        const hasSecretUrl = args.secrets?.httpOutputUrl !== undefined;
        const missingUrl = httpOutputNeedsUrl(settings, hasSecretUrl);
        if (missingUrl) throw new HostSettingsError([{ key: "outputs.http", message: missingUrl }]);
        assertLoginKeepsAccess(settings, args.connection.user);
        // Render without secrets: the plain hash (known at preview), and the script itself when there is no secret.
        const plain = renderPlainBundle(settings, hasSecretUrl);
        const installScript = hasSecretUrl
            ? pulumi
                  .secret(pulumi.output(args.secrets!.httpOutputUrl!))
                  .apply((httpOutputUrl) => renderSecretBundle(settings, httpOutputUrl))
            : pulumi.output(plain);

        const warnNoHostKey = (c: SshProxyArgs, what: string) => {
            if (c.hostKey === undefined)
                pulumi.log.warn(`${what} has no hostKey: any host key will be accepted (pin it to defeat man-in-the-middle)`, this);
        };
        warnNoHostKey(args.connection, "connection");
        if (args.connection.proxy) warnNoHostKey(args.connection.proxy, "connection.proxy");

        const connection: command.types.input.remote.ConnectionArgs = {
            ...connectionArgs(args.connection),
            proxy: args.connection.proxy ? connectionArgs(args.connection.proxy) : undefined,
        };
        // A plain user (the usual case) gives plain command strings: an Output would cost the SDK a promise
        // and a stack trace per command at every preview, for the same value.
        const user = args.connection.user ?? "root";
        const shell = (action: "converge" | "uninstall"): pulumi.Input<string> =>
            typeof user === "string" ? remoteShell(user, action) : pulumi.output(user).apply((u) => remoteShell(u, action));

        this.converge = new command.remote.Command(
            `${name}-converge`,
            {
                connection,
                create: shell("converge"),
                update: shell("converge"),
                // Delete gets the same stdin (the last converged bundle): the script uninstalls what it installed.
                delete: shell("uninstall"),
                // Always secret: it may carry the secrets drop-in, and its diff is unreadable anyway; the hash
                // in `triggers` says when it changes, `npm run render` shows what.
                stdin: pulumi.secret(installScript.apply((b) => b.installScript)),
                triggers: [plain.hash, ...(hasSecretUrl ? [installScript.apply((b) => pulumi.secret(b.secretsHash ?? ""))] : [])],
                // The previous run's output is not needed on the host, and env passing needs AcceptEnv in sshd.
                addPreviousOutputInEnv: false,
                logging: command.types.enums.remote.Logging.StdoutAndStderr,
            },
            { parent: this, additionalSecretOutputs: ["stdin"] },
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
