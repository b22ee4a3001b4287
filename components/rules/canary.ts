/**
 * The detection canary: one harmless, unmistakable action, and the rule that reports it. Opening the canary file
 * `CANARY_DIR/<token>` for reading raises "Falco-nodes detection canary" with that token in its output. Converge
 * triggers it after every start or restart and waits for the alert in Falco's own output (no alert: Falco is
 * unhealthy and the previous files come back), and a systemd timer triggers it periodically, so the canary alert
 * is an end-to-end heartbeat (kernel, driver, rules, outputs) that central alerting can watch, where `/healthz`
 * only proves the webserver answers (falco#3968: it says `ok` while event sources are stalled).
 *
 * The token is derived from what the rules are rendered from (so it changes with every rule set, and a converge
 * with nothing to do renders the same one): an alert carrying it proves the rules of *this* bundle are loaded, not an older set.
 * Its priority is the configured minimum (`outputs.minimumPriority`), the lowest that still reaches the outputs.
 */
import { createHash } from "crypto";
import { RuleSetInputs } from "../shared/ruleInputs";
import { FalcoPriority, FalcoRuleItem, falcoString } from "./types";

/** The rule's name (the alerting helper expects exactly this). */
export const CANARY_RULE = "Falco-nodes detection canary";
/** Where the canary files live: a runtime directory, recreated by the timer's service and by converge. */
export const CANARY_DIR = "/run/falco-nodes-canary";

type CanaryInputs = RuleSetInputs;

/**
 * The per-bundle token: 16 hex digits of the sha256 of everything the rule files are rendered from (no secret is
 * among them). Only those: a change elsewhere (sshd, sysctl) must not rewrite the rules and restart Falco.
 */
export function canaryToken(s: CanaryInputs): string {
    // The artifacts' digests (k8sAudit.pluginDigests, when the settings carry them) decide which bytes falcoctl
    // fetches, not what a rule file of ours says: left out, so pinning a digest does not change the token.
    const { pluginDigests: _digests, ...k8sAudit } = s.k8sAudit as CanaryInputs["k8sAudit"] & { pluginDigests?: unknown };
    const inputs = [s.driver, s.install.binaryPath, s.rules, k8sAudit, s.outputs.minimumPriority];
    return createHash("sha256").update(JSON.stringify(inputs)).digest("hex").slice(0, 16);
}

export function canaryPath(s: CanaryInputs): string {
    return `${CANARY_DIR}/${canaryToken(s)}`;
}

/** The text the canary alert's output carries (what converge and central alerting look for). */
export function canaryMarker(s: CanaryInputs): string {
    return `falco_nodes_canary=${canaryToken(s)}`;
}

export function canaryRuleItems(s: CanaryInputs): FalcoRuleItem[] {
    return [
        {
            rule: CANARY_RULE,
            desc:
                `The detection canary: ${canaryPath(s)} was opened for reading, as converge and the canary timer do. ` +
                "Its alert proves that events reach the rules and the rules' alerts reach the outputs; its absence " +
                "(central alerting watches for it) means Falco is blind or mute.",
            condition: [
                "evt.type in (open, openat, openat2)",
                "and evt.is_open_read = true",
                "and fd.num >= 0",
                `and fd.name = ${falcoString(canaryPath(s))}`,
                "and container.id = host",
            ].join("\n"),
            output: `Falco-nodes detection canary | ${canaryMarker(s)} process=%proc.name parent=%proc.pname command=%proc.cmdline`,
            priority: s.outputs.minimumPriority.toUpperCase() as FalcoPriority,
            tags: ["falco-nodes", "canary", "host"],
        },
    ];
}
