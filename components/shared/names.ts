/**
 * The names the chart and this component give to objects, derived from the release name in one place so the
 * values, the Secrets, the protection policy and the outputs agree.
 *
 * The falco chart points Falco's `http_output` at `<falco fullname>-falcosidekick`, while the falcosidekick
 * sub-chart names its Service `<release>-falcosidekick`: the two agree only when the release name contains
 * "falco". We pin the sub-chart's `fullnameOverride` to what Falco expects, so alerts reach Falcosidekick
 * whatever the release is called (otherwise Falco posts to a name that does not resolve, silently).
 */

/** The falco chart's `falco.fullname` helper for a release without `fullnameOverride`/`nameOverride`. */
export function falcoFullname(releaseName: string): string {
    const full = releaseName.includes("falco") ? releaseName : `${releaseName}-falco`;
    return full.slice(0, 63).replace(/-+$/, "");
}

export interface ChartNames {
    /** Falco's objects (DaemonSet, ConfigMaps, ServiceAccount, Roles). */
    falco: string;
    /** Falcosidekick's Deployment and Service (pinned with `falcosidekick.fullnameOverride`). */
    sidekick: string;
    /** Falcosidekick-UI's Deployment and Service. */
    sidekickUi: string;
    /** Our Secret with the output credentials (`falcosidekick.config.existingSecret`). */
    outputsSecret: string;
    /** Our Secret with the UI login and the UI's Redis password (`falcosidekick.webui.existingSecret`). */
    webUiSecret: string;
    /** Our Secret with the Redis server's `--requirepass` (`falcosidekick.webui.redis.existingSecret`). */
    webUiRedisSecret: string;
    /** The protection ValidatingAdmissionPolicy and its binding. */
    protectionPolicy: string;
    protectionBinding: string;
}

export function chartNames(releaseName: string): ChartNames {
    const falco = falcoFullname(releaseName);
    const sidekick = `${falco}-falcosidekick`;
    return {
        falco,
        sidekick,
        sidekickUi: `${sidekick}-ui`,
        outputsSecret: `${sidekick}-outputs`,
        webUiSecret: `${sidekick}-ui-login`,
        webUiRedisSecret: `${sidekick}-ui-redis-auth`,
        protectionPolicy: `${releaseName}-protect-falco`,
        protectionBinding: `${releaseName}-protect-falco`,
    };
}

/** Port of the Falcosidekick Service (chart `service.port`). */
export const SIDEKICK_PORT = 2801;
/** Port of the Falcosidekick-UI Service (chart `webui.service.port`). */
export const SIDEKICK_UI_PORT = 2802;

/** Controllers that must be able to finish deletions and rotations the deployer started. */
export const CONTROLLER_IDENTITIES = [
    "system:kube-controller-manager",
    "system:serviceaccount:kube-system:generic-garbage-collector",
    "system:serviceaccount:kube-system:namespace-controller",
    "system:serviceaccount:kube-system:root-ca-cert-publisher",
] as const;
