/**
 * `npm run render -- --stack <name> [--out <dir>] [--stacks-dir <dir>]`: write, per node of a stack, exactly
 * what converge would put on the host, for review without Pulumi, a cloud or a host:
 *
 *   <out>/<node>/files/<absolute path>   every file of the bundle, with its mode (the two unit variants of
 *                                        `driver: auto` as <unit>.modern_ebpf and <unit>.kmod)
 *   <out>/<node>/install.sh              the self-contained converge script (0700): `sudo bash install.sh`
 *   <out>/<node>/uninstall.sh            the uninstall script (0700)
 *   <out>/<node>/bundle.json             hash, params and the file list with modes and groups
 *   <out>/cluster/values.yaml            the falcosecurity/falco chart values, when the stack enables the cluster
 *                                        (secrets are referenced by Secret name, never inlined)
 *   <out>/<node>/k8s-audit/              for a node with the k8sAudit webhook: audit-policy.yaml and
 *                                        audit-webhook.kubeconfig for the API servers of a self-managed cluster
 *                                        (kube-apiserver --audit-policy-file / --audit-webhook-config-file)
 *   <out>/alerts/falco-nodes.rules.yaml  the stack's Prometheus alert rules (every node expected to report), for a
 *                                        Prometheus's rule_files (docs/alerting.md); absent with alerting.enabled false
 *
 * Secrets in the stack file (`secure:` values) are never decrypted: bundles that need one carry a placeholder,
 * and their install.sh refuses to run (converge those with `pulumi up`). Bad settings: exit 1 with every
 * problem and its key, and nothing is written. Default `--out`: `out/<stack>`.
 */
import * as fs from "fs";
import * as path from "path";
import { Bundle, renderBundle } from "../components/host/bundle";
import { SECRET_PLACEHOLDER_PREFIX } from "../components/host/paths";
import { HostSettings, HostSettingsError, ResolvedHostSettings, resolveHostSettings } from "../components/host/settings";
import { DEFAULT_OS } from "../components/aws/ami";
import { nodeHostSettings } from "../components/aws/node";
import * as YAML from "yaml";
import { renderAuditPolicy, renderAuditWebhookKubeconfig, renderClusterValues } from "../components/cluster";
import { auditWebhookServerUrl } from "../components/host/k8sAudit";
import { renderAlertRulesFile } from "../components/alerting";
import { findProjectDir, parseStackConfig, projectFileReader, readStackFile, StackConfigError, stackFileSource } from "../components/config";

export interface StackHost {
    /** Node name (`falco-nodes:nodes[].name`). */
    name: string;
    /** The hostname its Falco reports (`FALCO_HOSTNAME` in its unit; the alert rules expect the same). */
    hostname: string;
    /** The fleet's `falco-nodes:falco` with the node's `falco` overrides merged in. */
    settings: HostSettings;
    /** The same, every default filled in. */
    resolved: ResolvedHostSettings;
}

export interface RenderedNode {
    name: string;
    bundle: Bundle;
    /** The API server's files for a node with the k8sAudit webhook (file name -> text), and what to do with them. */
    k8sAudit?: K8sAuditFiles;
}

/** Where the webhook kubeconfig expects the CA of a node's listener certificate, on each API server host. */
export const AUDIT_WEBHOOK_CA_DIR = "/etc/kubernetes/falco-nodes";

export interface K8sAuditFiles {
    files: Record<string, string>;
    /** One line for the person running the render: where the files go, what to fill in. */
    note: string;
}

/**
 * The self-managed API server's audit files for a node with the k8sAudit webhook, or undefined. `address` is how
 * the API servers reach the node: `k8sAudit.listenAddress` when set, else the existing node's SSH address; an AWS
 * node's address is known only after `pulumi up` (a placeholder host, `<node>.falco-node.invalid`, says so).
 */
export function renderK8sAuditFiles(name: string, s: ResolvedHostSettings, sshHost?: string): K8sAuditFiles | undefined {
    const k = s.k8sAudit;
    if (!k.enabled || k.variant !== "webhook") return undefined;
    const address = k.listenAddress || sshHost || `${name}.falco-node.invalid`;
    const server = auditWebhookServerUrl(s, address);
    const ca = k.tls.certificatePath ? `${AUDIT_WEBHOOK_CA_DIR}/${name}-ca.crt` : undefined;
    const todo = [
        ...(address.endsWith(".falco-node.invalid") ? [`replace ${address} with the node's address`] : []),
        ...(ca ? [`copy the CA of the listener's certificate to ${ca} on every API server`] : []),
    ];
    return {
        files: {
            "audit-policy.yaml": renderAuditPolicy(),
            "audit-webhook.kubeconfig": renderAuditWebhookKubeconfig({ server, certificateAuthorityFile: ca }),
        },
        note:
            "kube-apiserver --audit-policy-file=audit-policy.yaml --audit-webhook-config-file=audit-webhook.kubeconfig" +
            (todo.length ? `; ${todo.join("; ")}` : ""),
    };
}

export interface Io {
    out(line: string): void;
    err(line: string): void;
}

const REPO_ROOT = findProjectDir(path.resolve(__dirname, ".."));
const STACK_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const USAGE = "usage: npm run render -- --stack <name> [--out <dir>] [--stacks-dir <dir>]";

/** A stack file parsed as the program parses it, but without requiring secrets (a render never needs their values). */
function loadStack(file: string, projectDir: string) {
    const stack = readStackFile(file, projectDir);
    return parseStackConfig(stackFileSource(stack), {
        readFile: projectFileReader(stack.projectDir),
        secretsMayBeExternal: true,
    });
}

/**
 * Every node's host settings from a stack file, validated as the program validates them. AWS nodes get their
 * OS's package source as `AwsFalcoNode` gives it. Throws `StackConfigError` naming each bad key.
 */
export function loadStackHostSettings(file: string, projectDir = REPO_ROOT): StackHost[] {
    return loadStack(file, projectDir).nodes.map((n, i) => {
        const settings = n.kind === "aws" ? nodeHostSettings(n.aws.os ?? DEFAULT_OS, n.falco) : n.falco;
        return { name: n.name, hostname: n.hostname, settings, resolved: resolveHostSettings(settings, `falco-nodes:nodes[${i}].falco.`) };
    });
}

/** The chart values of the stack's in-cluster layer, or undefined when it is off. Secrets count as present. */
export function renderStackClusterValues(file: string, projectDir = REPO_ROOT): Record<string, unknown> | undefined {
    const config = loadStack(file, projectDir);
    if (!config.cluster) return undefined;
    return renderClusterValues(config.cluster, config.clusterSecretPresence) as Record<string, unknown>;
}

/** Write the chart values below `outDir/cluster`, replacing an earlier render. */
export function writeClusterValues(outDir: string, values: Record<string, unknown>): string {
    const file = path.join(outDir, "cluster", "values.yaml");
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const header = "# falcosecurity/falco chart values rendered by falco-nodes (npm run render); secrets are Secret references.\n";
    fs.writeFileSync(file, header + YAML.stringify(values), { mode: 0o644 });
    return file;
}

/** Where the alert rules land below the stack's output directory. */
export const ALERT_RULES_FILE = path.join("alerts", "falco-nodes.rules.yaml");

/** The stack's alert rule file (see components/alerting/rules.ts), or undefined when alerting is off. */
export function renderStackAlertRules(file: string, stack: string, projectDir = REPO_ROOT): string | undefined {
    const { alerting } = loadStack(file, projectDir);
    if (!alerting.settings.enabled) return undefined;
    return renderAlertRulesFile({ stack, nodes: alerting.nodes, settings: alerting.settings, sidekickJob: alerting.sidekickJob });
}

/** Write the alert rules below `outDir`, replacing an earlier render; with none, remove an earlier file. */
export function writeAlertRules(outDir: string, rules: string | undefined): string | undefined {
    const target = path.join(outDir, ALERT_RULES_FILE);
    if (rules === undefined) {
        fs.rmSync(target, { force: true });
        return undefined;
    }
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.writeFileSync(target, rules, { mode: 0o644 });
    return target;
}

/** Render every node's bundle without secrets. Pure apart from reading the stack file. */
export function renderStack(file: string, projectDir = REPO_ROOT): RenderedNode[] {
    const sshHosts = new Map(loadStack(file, projectDir).nodes.map((n) => [n.name, n.kind === "existing" ? n.ssh.host : undefined]));
    return loadStackHostSettings(file, projectDir).map((h) => ({
        name: h.name,
        bundle: renderBundle(h.resolved, undefined, { hostname: h.hostname }),
        k8sAudit: renderK8sAuditFiles(h.name, h.resolved, sshHosts.get(h.name)),
    }));
}

/** Where a bundle file lands under `<node>/files`: unit variants of `driver: auto` get their driver as suffix. */
export function renderedFilePath(file: Bundle["files"][number]): string {
    const variant = /^unit-(modern_ebpf|kmod)$/.exec(file.group)?.[1];
    return path.join("files", file.path + (variant ? `.${variant}` : ""));
}

function bundleSummary(name: string, b: Bundle) {
    return {
        node: name,
        hash: b.hash,
        unitName: b.unitName,
        // A placeholder means: this install.sh refuses to run; converge with `pulumi up`, which has the secrets.
        needsSecrets: b.files.some((f) => f.content.includes(SECRET_PLACEHOLDER_PREFIX)),
        params: b.params,
        files: b.files.map((f) => ({ path: f.path, mode: f.mode, group: f.group, secret: f.secret, rendered: renderedFilePath(f) })),
    };
}

/** Write the rendered nodes below `outDir`, replacing earlier renders of the same nodes. */
export function writeRendered(outDir: string, nodes: RenderedNode[]): void {
    for (const { name, bundle, k8sAudit } of nodes) {
        const dir = path.join(outDir, name);
        if (fs.existsSync(dir)) {
            // Only ever delete what an earlier render wrote.
            if (!fs.existsSync(path.join(dir, "bundle.json")))
                throw new Error(`${dir} exists and is not an earlier render (no bundle.json): remove it or choose another --out`);
            fs.rmSync(dir, { recursive: true, force: true });
        }
        for (const f of bundle.files) {
            const target = path.join(dir, renderedFilePath(f));
            fs.mkdirSync(path.dirname(target), { recursive: true });
            fs.writeFileSync(target, f.content, { mode: parseInt(f.mode, 8) });
        }
        fs.writeFileSync(path.join(dir, "install.sh"), bundle.installScript, { mode: 0o700 });
        fs.writeFileSync(path.join(dir, "uninstall.sh"), bundle.uninstallScript, { mode: 0o700 });
        fs.writeFileSync(path.join(dir, "bundle.json"), JSON.stringify(bundleSummary(name, bundle), null, 2) + "\n", { mode: 0o644 });
        if (k8sAudit) {
            fs.mkdirSync(path.join(dir, "k8s-audit"), { recursive: true });
            for (const [file, text] of Object.entries(k8sAudit.files))
                fs.writeFileSync(path.join(dir, "k8s-audit", file), text, { mode: 0o644 });
        }
    }
}

function parseArgs(argv: string[]): { stack: string; out?: string; stacksDir?: string } {
    const opts: Record<string, string> = {};
    for (let i = 0; i < argv.length; i++) {
        const m = /^--(stack|out|stacks-dir)(?:=(.*))?$/.exec(argv[i]);
        if (!m) throw new UsageError(`unknown argument ${argv[i]}`);
        const value = m[2] ?? argv[++i];
        if (value === undefined || value === "") throw new UsageError(`--${m[1]} needs a value`);
        opts[m[1]] = value;
    }
    if (!opts.stack) throw new UsageError("--stack is required");
    if (!STACK_NAME.test(opts.stack)) throw new UsageError(`--stack ${JSON.stringify(opts.stack)} is not a stack name`);
    return { stack: opts.stack, out: opts.out, stacksDir: opts["stacks-dir"] };
}

class UsageError extends Error {}

const consoleIo: Io = { out: (l) => process.stdout.write(l + "\n"), err: (l) => process.stderr.write(l + "\n") };

/** The CLI. Returns the exit code: 0 rendered, 1 bad stack or settings (nothing written), 2 bad usage. */
export function main(argv: string[], io: Io = consoleIo): number {
    let args: ReturnType<typeof parseArgs>;
    try {
        args = parseArgs(argv);
    } catch (e) {
        io.err(`${(e as Error).message}\n${USAGE}`);
        return 2;
    }
    const file = path.resolve(args.stacksDir ?? path.join(REPO_ROOT, "stacks"), `Pulumi.${args.stack}.yaml`);
    const outDir = path.resolve(args.out ?? path.join("out", args.stack));
    if (!fs.existsSync(file)) {
        io.err(`no stack file ${file}`);
        return 1;
    }
    let nodes: RenderedNode[];
    let clusterValues: Record<string, unknown> | undefined;
    let alertRules: string | undefined;
    try {
        nodes = renderStack(file);
        clusterValues = renderStackClusterValues(file);
        alertRules = renderStackAlertRules(file, args.stack);
    } catch (e) {
        // Bad input of any kind (a setting, a stack file YAML rejects, such as a duplicate key) is a message, not
        // a stack trace: the trace shows only with FALCO_NODES_DEBUG=1.
        const shown = path.relative(process.cwd(), file) || file;
        const message = e instanceof Error ? e.message : String(e);
        io.err(message.includes(file) ? message.split(file).join(shown) : `${shown}: ${message}`);
        if (!(e instanceof StackConfigError || e instanceof HostSettingsError) && process.env.FALCO_NODES_DEBUG === "1" && e instanceof Error)
            io.err(e.stack ?? "");
        io.err("nothing was written");
        return 1;
    }
    if (!nodes.length) io.err(`${file}: the stack has no nodes (falco-nodes:nodes): nothing to render`);
    try {
        writeRendered(outDir, nodes);
        if (clusterValues) io.out(`${writeClusterValues(outDir, clusterValues)}: chart values`);
        const rulesFile = writeAlertRules(outDir, alertRules);
        if (rulesFile) io.out(`${rulesFile}: Prometheus alert rules for ${nodes.length} node${nodes.length === 1 ? "" : "s"}`);
    } catch (e) {
        io.err((e as Error).message);
        return 1;
    }
    for (const { name, bundle, k8sAudit } of nodes) {
        const summary = bundleSummary(name, bundle);
        io.out(`${path.join(outDir, name)}: ${bundle.files.length} files, bundle ${bundle.hash.slice(0, 12)}` +
            (summary.needsSecrets ? " (needs secrets: install.sh refuses to run; converge with pulumi up)" : ""));
        if (k8sAudit) io.out(`${path.join(outDir, name, "k8s-audit")}: ${k8sAudit.note}`);
    }
    return 0;
}

if (require.main === module) process.exitCode = main(process.argv.slice(2));
