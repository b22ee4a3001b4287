/**
 * Digests for `k8sAudit.pluginDigests` in tests: NOT upstream's. They are sha256 sums of made-up labels, so a test
 * can pin every artifact without a registry; nothing can be pulled with them (falcosecurity's real digests were
 * not reachable where this suite is written: no ghcr.io). test/host/k8sAuditRegistry.test.ts pushes real artifacts
 * to a local registry and pins the digests the registry gives for them instead.
 */
import { createHash } from "crypto";
import type { K8sAuditPluginDigests } from "../../components/host/settings";

const fake = (label: string) => `sha256:${createHash("sha256").update(`falco-nodes test digest ${label}`).digest("hex")}`;

export const TEST_K8SAUDIT_DIGESTS: Required<K8sAuditPluginDigests> = {
    k8saudit: fake("k8saudit"),
    k8sauditEks: fake("k8saudit-eks"),
    json: fake("json"),
    rules: fake("k8saudit-rules"),
};

/** Another made-up digest, for an upgrade (a new version, or the same tag re-pushed). */
export const TEST_K8SAUDIT_NEXT_DIGEST = fake("next");
