/**
 * The running program's side of the stack config: a parser source over the config the CLI passed in, and the
 * secret values, read only through `Config.requireSecret` so they stay Pulumi secrets from the first moment.
 */
import * as pulumi from "@pulumi/pulumi";
import {
    CLUSTER_SECRET_KEYS,
    CONFIG_NAMESPACE,
    objectConfigSource,
    SECRET_KEYS,
    SecretKey,
    StackConfig,
    StackConfigSource,
} from "./stackConfig";

/** Which keys the CLI marked secret (`PULUMI_CONFIG_SECRET_KEYS`), as the SDK's own config store holds them. */
function secretKeys(): string[] {
    // The SDK's `isConfigSecret` is internal; the same list is what the CLI exports to the program.
    const internal = require("@pulumi/pulumi/runtime/config") as { isConfigSecret?: (k: string) => boolean };
    const all = Object.keys(pulumi.runtime.allConfig());
    if (typeof internal.isConfigSecret === "function") return all.filter((k) => internal.isConfigSecret!(k));
    const env = process.env["PULUMI_CONFIG_SECRET_KEYS"];
    return env ? (JSON.parse(env) as string[]) : [];
}

/** The program's config as a parser source. Secret values are visible to the SDK but never read from here. */
export function programConfigSource(): StackConfigSource {
    return objectConfigSource(pulumi.runtime.allConfig(), secretKeys());
}

/** The secrets the stack sets, as Pulumi secret outputs (absent ones are undefined). */
export type StackSecrets = { [K in SecretKey]?: pulumi.Output<string> };

export function readStackSecrets(cfg: StackConfig, config = new pulumi.Config(CONFIG_NAMESPACE)): StackSecrets {
    const out: StackSecrets = {};
    for (const k of SECRET_KEYS) if (cfg.secrets[k]) out[k] = config.requireSecret(k);
    return out;
}

/** The cluster's secrets, in `FalcoClusterSecrets` shape. */
export function clusterSecrets(secrets: StackSecrets): { [K in (typeof CLUSTER_SECRET_KEYS)[number]]?: pulumi.Output<string> } {
    return Object.fromEntries(CLUSTER_SECRET_KEYS.filter((k) => secrets[k] !== undefined).map((k) => [k, secrets[k]]));
}
