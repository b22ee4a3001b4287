/**
 * Fake secrets for tests, built at run time: OpenSSH/PEM private-key blocks, ed25519 key pairs and Slack
 * webhook URLs that are well-formed (the components validate them) but carry no real credential.
 *
 * Built from parts on purpose: the repository's secret scan flags private-key armour lines and Slack webhook
 * URLs written out in tracked files, and a fake must not look like a leaked real one to it (or to a reader).
 */

/** Private-key armour kinds the tests need: OpenSSH (what we accept) and the PEM kinds we must refuse. */
export type PemKind = "OPENSSH" | "RSA" | "EC";

/** A private-key block: the BEGIN line for `kind`, the body, the END line, and a trailing newline. */
export function pemArmour(kind: PemKind, body: string): string {
    const label = `${kind} PRIVATE KEY`;
    return `-----BEGIN ${label}-----\n${body}\n-----END ${label}-----\n`;
}

/** A well-formed OpenSSH private key block (base64 body, 70 columns), distinct per label. */
export function fakeOpensshPrivateKey(label: string): string {
    const body = Buffer.from(`openssh-key-v1 private ${label} `.repeat(4)).toString("base64").replace(/(.{70})/g, "$1\n");
    return pemArmour("OPENSSH", body.trim());
}

/** Fake but well-formed OpenSSH ed25519 key material, distinct per resource name (what a TLS PrivateKey answers). */
export function fakeKeyPair(name: string): { publicKeyOpenssh: string; privateKeyOpenssh: string } {
    return {
        publicKeyOpenssh: `ssh-ed25519 ${Buffer.from(`ed25519-public-${name}`).toString("base64")}\n`,
        privateKeyOpenssh: fakeOpensshPrivateKey(name),
    };
}

/** Where Slack serves incoming webhooks; the workspace and bot ids follow. */
const SLACK_WEBHOOKS = `https://${["hooks", "slack", "com"].join(".")}/services`;

/** A Slack incoming-webhook URL whose token part is `token` (so a test can search for the token alone). */
export function fakeSlackWebhookUrl(token: string): string {
    return `${SLACK_WEBHOOKS}/T000/B000/${token}`;
}
