/**
 * The `falcosecurity/falco` chart values (with the `falcosidekick` sub-chart's under `falcosidekick:`), and the
 * data of the Secrets those values point at. Pure functions of resolved settings: no Pulumi, no I/O.
 *
 * The chart has no values schema, so Helm silently ignores a misspelled key; every key path set here is checked
 * against the chart's own values.yaml in test/cluster/values.test.ts (for Falcosidekick: chart 0.12.1, the one falco
 * 9.1.0 deploys). Secrets never appear in the values: the values only name the Secrets (`config.existingSecret`,
 * `webui.existingSecret`, `webui.redis.existingSecret`) this component creates.
 */
import * as path from "path";
import { chartNames, SIDEKICK_PORT, SIDEKICK_UI_PORT } from "./names";
import type { RuleFile } from "../rules/types";
import type { ResolvedClusterSettings } from "./settings";

export type { RuleFile };

/**
 * What the UI's Redis gets as `webui.redis.password` in the chart values: not the password, a fixed marker. The
 * falcosidekick chart mounts `webui.redis.existingSecret` into Redis, and renders the UI's
 * `FALCOSIDEKICK_UI_REDIS_PASSWORD`, only `if .Values.webui.redis.password` (falcosecurity/charts
 * charts/falcosidekick/templates/deployment-ui.yaml and secrets-ui.yaml), so the value must be non-empty. The real
 * password is only in our Secrets: `REDIS_ARGS=--requirepass ...` for Redis; `FALCOSIDEKICK_UI_REDIS_PASSWORD` for
 * the UI and `REDIS_PASSWORD` for its `wait-redis` init container (whose `ping-redis.sh` runs `redis-cli -a
 * ${REDIS_PASSWORD} ping` in the chart versions that have it, configmap-ui.yaml) in the UI login Secret, which both
 * containers' envFrom list after the chart's own `-ui` Secret, so ours wins. The stored chart sources differ between
 * versions (a `nc -z` wait in one, `ping-redis.sh` in another) and none is pinned to 0.12.1 here: the keys cover both.
 */
export const REDIS_PASSWORD_PLACEHOLDER = "in-secret-webui-redis-existingSecret";

/** Which of our Secrets exist, i.e. which names the values must reference. */
export interface ChartSecretRefs {
    /** Our Secret with output credentials exists (at least one credential was given). */
    outputsSecret: boolean;
    /** Our Secret with the UI login exists (the UI is on). */
    webUiSecret: boolean;
}

export type ChartValues = Record<string, unknown>;

/** Name of a rule file inside `/etc/falco/rules.d` (Falco >= 0.41 loads only `.yaml`/`.yml` from a directory). */
export function ruleFileKey(fileName: string): string {
    const base = path.posix.basename(fileName);
    if (!/^[A-Za-z0-9._-]+$/.test(base)) throw new Error(`rule file name ${JSON.stringify(fileName)} is not a valid ConfigMap key`);
    return /\.ya?ml$/.test(base) ? base : `${base}.yaml`;
}

/** `customRules`: file name -> YAML text, exactly the hosts' rule files. */
export function renderCustomRules(ruleFiles: RuleFile[]): Record<string, string> {
    const out: Record<string, string> = {};
    for (const f of ruleFiles) {
        const key = ruleFileKey(f.fileName);
        if (key in out) throw new Error(`two rule files map to the same name ${key}`);
        out[key] = f.content;
    }
    return out;
}

function renderSidekickValues(s: ResolvedClusterSettings, refs: ChartSecretRefs): ChartValues {
    const names = chartNames(s.releaseName);
    const sk = s.sidekick;
    if (!sk.enabled) return { enabled: false };

    // Non-secret output settings go in plain values (visible in preview and policy checks); the chart puts
    // them in its own Secret, and our Secret, listed after it in the pod's envFrom, adds the credentials.
    const config: ChartValues = {};
    if (refs.outputsSecret) config.existingSecret = names.outputsSecret;
    if (sk.slack) {
        config.slack = {
            minimumpriority: sk.slack.minimumPriority,
            outputformat: sk.slack.outputFormat,
            ...(sk.slack.channel ? { channel: sk.slack.channel } : {}),
            ...(sk.slack.username ? { username: sk.slack.username } : {}),
        };
    }
    if (sk.webhook) {
        config.webhook = {
            minimumpriority: sk.webhook.minimumPriority,
            method: sk.webhook.method,
            checkcert: sk.webhook.checkCert,
        };
    }
    if (sk.elasticsearch) {
        const es = sk.elasticsearch;
        config.elasticsearch = {
            hostport: es.hostPort,
            index: es.index,
            suffix: es.suffix,
            minimumpriority: es.minimumPriority,
            checkcert: es.checkCert,
            ...(es.username ? { username: es.username } : {}),
        };
    }
    if (sk.prometheus.extraLabels.length) config.prometheus = { extralabels: sk.prometheus.extraLabels.join(",") };

    return {
        enabled: true,
        fullnameOverride: names.sidekick,
        replicaCount: sk.replicas,
        priorityClassName: s.priorityClass.name,
        config,
        serviceMonitor: { enabled: sk.prometheus.serviceMonitor },
        webui: {
            enabled: sk.webUi.enabled,
            // Empty, so the chart's own UI Secret carries no user at all (its default is admin:admin); the login
            // comes only from our Secret (`existingSecret`).
            user: "",
            disableauth: false,
            ...(sk.webUi.enabled
                ? {
                      replicaCount: sk.webUi.replicas,
                      ...(refs.webUiSecret
                          ? {
                                existingSecret: names.webUiSecret,
                                // The chart's Redis has no password by default: anyone in the cluster could read or
                                // rewrite the stored alerts. Ours comes from a Secret (see REDIS_PASSWORD_PLACEHOLDER).
                                redis: { existingSecret: names.webUiRedisSecret, password: REDIS_PASSWORD_PLACEHOLDER },
                            }
                          : {}),
                  }
                : {}),
        },
    };
}

/**
 * The chart's falcoctl init container pulls `falco-rules:5` (a moving tag) at every pod start, and its rules then
 * replace the image's `/etc/falco` (an emptyDir mounted there when `rulesfile` is an allowed type: falcosecurity/charts
 * charts/falco/templates/pod-template.tpl). Unless rule updates are wanted, no rules artifact is installed: Falco
 * loads the default rules its image ships (pinned with the image the chart pins, as the hosts' come with the
 * package) and ours from the `customRules` ConfigMap. The init container still installs the plugins the chart adds
 * to its refs (the container plugin, pinned by tag in the chart's values).
 */
function renderFalcoctlValues(s: ResolvedClusterSettings): ChartValues {
    if (s.followRuleUpdates) return { artifact: { install: { enabled: true }, follow: { enabled: true } } };
    return {
        artifact: { install: { enabled: true }, follow: { enabled: false } },
        config: { artifact: { allowedTypes: ["plugin"], install: { refs: [] } } },
    };
}

/** The falco chart values for these settings and the hosts' rule files. */
export function renderChartValues(s: ResolvedClusterSettings, ruleFiles: RuleFile[], refs: ChartSecretRefs): ChartValues {
    const falco: ChartValues = {
        priority: s.minimumPriority,
        // JSON alerts for log pipelines even without Falcosidekick (which forces it on anyway).
        json_output: true,
    };
    if (s.rules.defaultRules === false) {
        // Only our rule files: the chart's default list starts with falco_rules.yaml.
        falco.rules_files = ["/etc/falco/rules.d"];
    }
    return {
        driver: {
            kind: s.driver,
            ...(s.driver === "modern_ebpf" ? { modernEbpf: { leastPrivileged: s.leastPrivileged } } : {}),
        },
        // Flush Falco's output line by line so alerts reach `kubectl logs` and log shippers immediately.
        tty: true,
        // Each pod's Falco reports its Kubernetes node's name (FALCO_HOSTNAME from spec.nodeName: falcosecurity/charts
        // charts/falco/templates/pod-template.tpl, falco-9.1.0), stated so a chart default change cannot move it. The
        // hosts report their own names (components/shared/hostname.ts); docs/alerting.md says why the two must differ.
        falcoHostnameEnv: true,
        podPriorityClassName: s.priorityClass.name,
        resources: { requests: { ...s.resources.requests }, limits: { ...s.resources.limits } },
        tolerations: s.tolerations.map((t) => ({ ...t })),
        customRules: renderCustomRules(ruleFiles),
        falcoctl: renderFalcoctlValues(s),
        falco,
        falcosidekick: renderSidekickValues(s, refs),
    };
}

/** Plain credential values, once Pulumi has resolved them (inside an `apply`). */
export interface ResolvedOutputSecrets {
    slackWebhookUrl?: string;
    webhookAddress?: string;
    webhookCustomHeaders?: string;
    elasticsearchPassword?: string;
}

/**
 * Data of our outputs Secret: the environment variables Falcosidekick reads (its config keys upper-cased, `.`
 * -> `_`, the names the chart's own Secret uses). Only credentials: everything else is in the chart values.
 */
export function renderOutputsSecretData(s: ResolvedClusterSettings, secrets: ResolvedOutputSecrets): Record<string, string> {
    const data: Record<string, string> = {};
    const sk = s.sidekick;
    if (sk.slack && secrets.slackWebhookUrl) data.SLACK_WEBHOOKURL = secrets.slackWebhookUrl;
    if (sk.webhook && secrets.webhookAddress) data.WEBHOOK_ADDRESS = secrets.webhookAddress;
    if (sk.webhook && secrets.webhookCustomHeaders) data.WEBHOOK_CUSTOMHEADERS = secrets.webhookCustomHeaders;
    if (sk.elasticsearch && secrets.elasticsearchPassword) data.ELASTICSEARCH_PASSWORD = secrets.elasticsearchPassword;
    return data;
}

/**
 * Data of our UI login Secret: `FALCOSIDEKICK_UI_USER=<login>:<password>` and `FALCOSIDEKICK_UI_REDIS_PASSWORD`, what
 * Falcosidekick-UI reads (the names the chart's own `-ui` Secret uses, charts/falcosidekick/templates/secrets-ui.yaml),
 * and `REDIS_PASSWORD` for the UI's `wait-redis` init container (see REDIS_PASSWORD_PLACEHOLDER).
 */
export function renderWebUiSecretData(s: ResolvedClusterSettings, password: string, redisPassword: string): Record<string, string> {
    // Checked here because a given password is only known at deploy time; the UI splits login:password on ':'.
    if (password.length < 12) throw new Error("secrets.webUiPassword must be at least 12 characters");
    if (/[:\s]/.test(password)) throw new Error("secrets.webUiPassword must not contain ':' or whitespace");
    const redis = checkedRedisPassword(redisPassword);
    return { FALCOSIDEKICK_UI_USER: `${s.sidekick.webUi.login}:${password}`, FALCOSIDEKICK_UI_REDIS_PASSWORD: redis, REDIS_PASSWORD: redis };
}

/** The generated Redis password: letters and digits only, since it lands in Redis's argument list. */
function checkedRedisPassword(p: string): string {
    if (!/^[A-Za-z0-9]{24,}$/.test(p)) throw new Error("the UI's Redis password must be at least 24 letters and digits");
    return p;
}

/**
 * Data of our Redis Secret: `REDIS_ARGS`, which the redis-stack image appends to `redis-server`'s arguments (the
 * chart's own `-ui-redis` Secret uses the same key). The password is then in Redis's argument list inside its
 * container, readable to whoever can exec there (denied by the protection policy).
 */
export function renderWebUiRedisSecretData(redisPassword: string): Record<string, string> {
    const redis = checkedRedisPassword(redisPassword);
    // REDIS_PASSWORD too, as the chart's own `-ui-redis` Secret has it.
    return { REDIS_ARGS: `--requirepass ${redis}`, REDIS_PASSWORD: redis };
}

/** In-cluster addresses, for outputs and for pointing hosts' `http_output` at the cluster's Falcosidekick. */
export function serviceAddresses(s: ResolvedClusterSettings): { sidekick?: string; webUi?: string } {
    const names = chartNames(s.releaseName);
    return {
        sidekick: s.sidekick.enabled ? `http://${names.sidekick}.${s.namespace}.svc:${SIDEKICK_PORT}` : undefined,
        webUi: s.sidekick.webUi.enabled ? `http://${names.sidekickUi}.${s.namespace}.svc:${SIDEKICK_UI_PORT}` : undefined,
    };
}
