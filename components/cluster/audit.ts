/**
 * What a self-managed cluster's API server needs to send its audit events to a falco-nodes host (`k8sAudit`,
 * webhook variant): an audit policy (`--audit-policy-file`) and the webhook's kubeconfig
 * (`--audit-webhook-config-file`). EKS needs neither: there the host reads the CloudWatch audit log.
 *
 * The policy sends what the rules need and no more: changes to workloads, RBAC, namespaces and admission
 * policies with their bodies (the upstream k8saudit rules read `requestObject`), exec/attach/port-forward as
 * metadata (the command is in the URI), and Secrets, ConfigMaps and token requests as metadata only: their
 * contents (credentials) must never leave the control plane for a log pipeline. Reads and the chattiest
 * system traffic (leases, events, health probes) are not sent at all. Trade-off, stated: upstream's rule
 * "Create/Modify Configmap With Private Credentials" needs ConfigMap bodies and will not fire with this policy.
 *
 * Pure: plain objects serialised by the `yaml` library.
 */
import * as YAML from "yaml";

type GroupResources = { group: string; resources?: string[] };

export interface AuditPolicyRule {
    level: "None" | "Metadata" | "Request" | "RequestResponse";
    users?: string[];
    userGroups?: string[];
    verbs?: string[];
    resources?: GroupResources[];
    namespaces?: string[];
    nonResourceURLs?: string[];
    omitStages?: string[];
}

export interface AuditPolicy {
    apiVersion: "audit.k8s.io/v1";
    kind: "Policy";
    omitStages: string[];
    omitManagedFields: boolean;
    rules: AuditPolicyRule[];
}

/** The audit policy as an object; rules are evaluated in order, the first match decides. */
export function buildAuditPolicy(): AuditPolicy {
    return {
        apiVersion: "audit.k8s.io/v1",
        kind: "Policy",
        // One event per request (ResponseStarted still comes for exec/attach, which the rules want).
        omitStages: ["RequestReceived"],
        // managedFields double an object's size and no rule reads them.
        omitManagedFields: true,
        rules: [
            // Health probes and discovery: constant, and nothing to detect there.
            { level: "None", nonResourceURLs: ["/healthz*", "/livez*", "/readyz*", "/version", "/metrics", "/openapi*"] },
            // Leader-election heartbeats and Events: most of an idle cluster's writes, none of them tampering.
            { level: "None", resources: [{ group: "coordination.k8s.io", resources: ["leases"] }] },
            { level: "None", resources: [{ group: "", resources: ["events"] }, { group: "events.k8s.io", resources: ["events"] }] },
            {
                level: "None",
                users: ["system:kube-proxy"],
                verbs: ["watch"],
                resources: [{ group: "", resources: ["endpoints", "services"] }, { group: "discovery.k8s.io", resources: ["endpointslices"] }],
            },
            // A shell in a pod (Falco's included): the command is in the request URI, so metadata is enough.
            // The kubelet API through the API server: exec there is a GET too, so before the read-only rule below.
            { level: "Metadata", resources: [{ group: "", resources: ["pods/exec", "pods/attach", "pods/portforward", "nodes/proxy"] }] },
            // Upstream's "EphemeralContainers Created" reads the container from the request body.
            { level: "RequestResponse", resources: [{ group: "", resources: ["pods/ephemeralcontainers"] }] },
            // Credentials: who touched which, never what they contain (bodies would copy secrets into the log).
            {
                level: "Metadata",
                resources: [
                    { group: "", resources: ["secrets", "configmaps", "serviceaccounts/token"] },
                    { group: "authentication.k8s.io", resources: ["tokenreviews"] },
                ],
            },
            // Everything else read-only: the bulk of the traffic; the rules look at changes.
            { level: "None", verbs: ["get", "list", "watch"] },
            // Changes the rules read in full: workloads, RBAC, namespaces, admission policies (the tamper rules'
            // targets), services (upstream's NodePort rule).
            {
                level: "RequestResponse",
                resources: [
                    { group: "", resources: ["pods", "namespaces", "services", "serviceaccounts"] },
                    { group: "apps", resources: ["daemonsets", "deployments", "deployments/scale", "replicasets", "statefulsets", "statefulsets/scale"] },
                    { group: "batch", resources: ["jobs", "cronjobs"] },
                    { group: "rbac.authorization.k8s.io" },
                    { group: "admissionregistration.k8s.io" },
                ],
            },
            // Any other change: who did what to which object.
            { level: "Metadata" },
        ],
    };
}

/** The file for the API server's `--audit-policy-file`. */
export function renderAuditPolicy(): string {
    const doc = new YAML.Document(buildAuditPolicy());
    doc.commentBefore =
        " Kubernetes audit policy for falco-nodes' k8sAudit (rendered by `npm run render`): pass it to kube-apiserver\n" +
        " with --audit-policy-file. Bodies of Secrets, ConfigMaps and token requests are never logged.";
    return doc.toString({ lineWidth: 0 });
}

export interface AuditWebhookKubeconfigArgs {
    /** The falco-nodes host's listener as the API server reaches it, e.g. `https://10.0.0.5:9765/k8s-audit`. */
    server: string;
    /**
     * The CA that signed the listener's certificate, as a file path on the API server's host
     * (`certificate-authority`). Required for an https server: without it the API server would trust whatever
     * its system roots trust. Not used with http.
     */
    certificateAuthorityFile?: string;
    /** The same CA as PEM text, embedded (`certificate-authority-data`) instead of a file. */
    certificateAuthorityPem?: string;
}

const SERVER = /^(https?):\/\/(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+)(:[0-9]{1,5})?\/[A-Za-z0-9._~\/-]*$/;
const PEM_CERT = /^-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+\/=\r\n]+-----END CERTIFICATE-----\r?\n?$/;

/** The webhook's kubeconfig (a `v1` `Config`) as an object; throws naming the argument when one is wrong. */
export function buildAuditWebhookKubeconfig(args: AuditWebhookKubeconfigArgs): Record<string, unknown> {
    const m = SERVER.exec(args.server);
    if (!m) throw new Error(`audit webhook server ${JSON.stringify(args.server)} must be an http(s) URL with a path, such as https://10.0.0.5:9765/k8s-audit`);
    const https = m[1] === "https";
    if (args.certificateAuthorityFile !== undefined && args.certificateAuthorityPem !== undefined)
        throw new Error("give the audit webhook's CA as certificateAuthorityFile or certificateAuthorityPem, not both");
    if (!https && (args.certificateAuthorityFile ?? args.certificateAuthorityPem) !== undefined)
        throw new Error("a CA only applies to an https audit webhook server");
    if (https && args.certificateAuthorityFile === undefined && args.certificateAuthorityPem === undefined)
        throw new Error("an https audit webhook server needs the CA that signed its certificate (certificateAuthorityFile or certificateAuthorityPem)");
    if (args.certificateAuthorityFile !== undefined && !/^\/[A-Za-z0-9._\/-]+$/.test(args.certificateAuthorityFile))
        throw new Error("certificateAuthorityFile must be an absolute path of letters, digits, . _ / -");
    if (args.certificateAuthorityPem !== undefined && !PEM_CERT.test(args.certificateAuthorityPem))
        throw new Error("certificateAuthorityPem must be one PEM certificate (-----BEGIN CERTIFICATE----- ...)");
    const cluster: Record<string, unknown> = { server: args.server };
    if (args.certificateAuthorityFile) cluster["certificate-authority"] = args.certificateAuthorityFile;
    if (args.certificateAuthorityPem) cluster["certificate-authority-data"] = Buffer.from(args.certificateAuthorityPem).toString("base64");
    return {
        apiVersion: "v1",
        kind: "Config",
        clusters: [{ name: "falco", cluster }],
        // The k8saudit listener authenticates nobody (the firewall admits only the API servers): no credentials.
        users: [{ name: "kube-apiserver", user: {} }],
        contexts: [{ name: "falco", context: { cluster: "falco", user: "kube-apiserver" } }],
        "current-context": "falco",
        preferences: {},
    };
}

/** The file for the API server's `--audit-webhook-config-file`. */
export function renderAuditWebhookKubeconfig(args: AuditWebhookKubeconfigArgs): string {
    const doc = new YAML.Document(buildAuditWebhookKubeconfig(args));
    doc.commentBefore =
        " Audit webhook backend for falco-nodes' k8sAudit (rendered by `npm run render`): pass it to kube-apiserver\n" +
        " with --audit-webhook-config-file (and --audit-policy-file). One webhook per API server: point it at the one\n" +
        " falco-nodes host with k8sAudit enabled.";
    return doc.toString({ lineWidth: 0 });
}
