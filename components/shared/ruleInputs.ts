/**
 * The settings the rule sets (components/rules) read, and the enums they share with the host and cluster
 * settings. Here rather than in host/settings.ts so the rule sets depend on plain data only: they can be read,
 * rendered and tested without the host or cluster components (which import the rules, not the reverse).
 * `ResolvedHostSettings` satisfies `RuleSetInputs` as it is.
 */

/** The kernel driver Falco uses to capture events. */
export const Driver = {
    /** CO-RE eBPF, built into Falco; needs kernel >= 5.8 with BTF (`/sys/kernel/btf/vmlinux`). Least privilege. */
    ModernEbpf: "modern_ebpf",
    /** The kernel module. Works on old kernels; needs full root privileges (it loads a module). */
    Kmod: "kmod",
    /** Decide on the host at converge time: `modern_ebpf` when the kernel is >= 5.8 with BTF, else `kmod`. */
    Auto: "auto",
} as const;
export type Driver = (typeof Driver)[keyof typeof Driver];

/** The project's own rule sets, switchable by name. */
export const BuiltinRuleSet = {
    /** Tampering with Falco itself: stopping/masking the unit, signals, edits to config, unit or binary, driver loads. */
    SelfProtection: "self-protection",
    /** The seed guide's example: writes below `/app/config/`. Opt-in. */
    AppConfigExample: "app-config-example",
} as const;
export type BuiltinRuleSet = (typeof BuiltinRuleSet)[keyof typeof BuiltinRuleSet];

/** Where a host's Kubernetes audit events come from. */
export const K8sAuditVariant = {
    /**
     * The API server posts audit events to this host (`k8saudit` plugin, an HTTP(S) listener): self-managed
     * clusters (kubeadm, k3s, ...), configured with the audit policy and webhook kubeconfig `npm run render` writes.
     */
    Webhook: "webhook",
    /** The host polls the EKS cluster's CloudWatch audit log (`k8saudit-eks` plugin). Needs AWS credentials. */
    Eks: "eks",
} as const;
export type K8sAuditVariant = (typeof K8sAuditVariant)[keyof typeof K8sAuditVariant];

/** What the rule sets need to know about a host: a structural subset of `ResolvedHostSettings`. */
export interface RuleSetInputs {
    driver: Driver;
    install: { binaryPath: string };
    /** The lowest priority Falco reports: the canary rule's priority. */
    outputs: { minimumPriority: string };
    rules: { builtin: readonly BuiltinRuleSet[]; custom: Readonly<Record<string, string>> };
    k8sAudit: {
        enabled: boolean;
        variant: K8sAuditVariant;
        firewall: boolean;
        tamperRules: boolean;
        tls: { certificatePath?: string };
        falcoNamespace: string;
        falcoReleaseName: string;
        trustedUsers: readonly string[];
    };
}

/** Whether converge installs the nftables allowlist for the k8saudit webhook (so the rules watch it). */
export function firewallEnabled(s: Pick<RuleSetInputs, "k8sAudit">): boolean {
    const k = s.k8sAudit;
    return k.enabled && k.variant === K8sAuditVariant.Webhook && k.firewall;
}
