/**
 * The node's cloud-init user data: it installs an SSH host key we generated, so FalcoHost can pin the host's
 * identity from the very first connection (the one that carries the Falco bundle and its secrets).
 *
 * Why the host key travels in user data, and what that costs:
 * - The alternatives do not work unattended. EC2 prints the host keys cloud-init generates to the serial
 *   console, but `GetConsoleOutput` has no Pulumi data source, appears minutes after boot, and would need the
 *   AWS CLI or a dynamic provider on the machine running `pulumi up`. Trust-on-first-use (no pin) is exactly
 *   the man-in-the-middle window pinning exists to close.
 * - Cost: user data is readable (a) by AWS principals allowed `ec2:DescribeInstanceAttribute` and (b) from IMDS
 *   by any process on the node that can reach it. IMDSv2 with hop limit 1 keeps containers out; local users
 *   and non-root services are not kept out. On a Falco node the only interactive login is the image's admin
 *   user, who has passwordless sudo anyway, so the added exposure is a compromised non-root service. In Pulumi
 *   state it is a secret (encrypted).
 * - What a leak allows: impersonating this one host to SSH clients (a man in the middle still needs a network
 *   position). It never allows logging in: the login key is a different key and only its public half is sent.
 * - Opt out with `pinHostKey: false` on AwsFalcoNode: the host generates its own keys, nothing secret is in
 *   user data, and FalcoHost warns that any host key is accepted.
 *
 * The user data holds no other secret. Pure: no Pulumi, no I/O.
 */
import * as YAML from "yaml";

/** Where sshd looks for the ed25519 host key on every supported image. */
export const HOST_KEY_PATH = "/etc/ssh/ssh_host_ed25519_key";
/**
 * Our sshd drop-in. Sorts before the hardening baseline (`SSHD_DROPIN_PATH`, `10-falco-nodes.conf`): sshd takes
 * the first value it reads for most directives, so our `HostKeyAlgorithms` wins over the baseline's broader list.
 */
export const HOST_KEY_DROPIN = "/etc/ssh/sshd_config.d/05-falco-nodes-hostkey.conf";

export interface UserDataArgs {
    /**
     * The node's SSH host key pair (ed25519, OpenSSH format), or undefined to let the host generate its own
     * (then nothing can be pinned).
     */
    hostKey?: {
        /** The OpenSSH private key block (armour label `OPENSSH PRIVATE KEY`). */
        privateKeyOpenssh: string;
        /** `ssh-ed25519 AAAA...` */
        publicKeyOpenssh: string;
    };
}

const ED25519_PUBLIC = /^ssh-ed25519 [A-Za-z0-9+/]+={0,2}( [^\n]*)?$/;
// Named once so the full armour line is never spelled out here: secret scanners flag it in tracked files.
const OPENSSH_KEY_LABEL = "OPENSSH PRIVATE KEY";
const OPENSSH_PRIVATE = new RegExp(`^-----BEGIN ${OPENSSH_KEY_LABEL}-----\\n[A-Za-z0-9+/=\\n]+-----END ${OPENSSH_KEY_LABEL}-----$`);

/** Render `#cloud-config` user data, or undefined when there is nothing to do. */
export function renderUserData(args: UserDataArgs): string | undefined {
    if (!args.hostKey) return undefined;
    const publicKey = args.hostKey.publicKeyOpenssh.trim();
    const privateKey = args.hostKey.privateKeyOpenssh.trim();
    if (!ED25519_PUBLIC.test(publicKey))
        throw new Error("user data: hostKey.publicKeyOpenssh must be one OpenSSH ed25519 public key line (ssh-ed25519 AAAA...)");
    if (!OPENSSH_PRIVATE.test(privateKey))
        throw new Error(`user data: hostKey.privateKeyOpenssh must be an OpenSSH private key (BEGIN ${OPENSSH_KEY_LABEL})`);

    const config = {
        // Remove whatever keys the image or an earlier boot left, and generate no others: the only key sshd
        // has is the one we pinned.
        ssh_deletekeys: true,
        ssh_genkeytypes: [] as string[],
        ssh_keys: {
            ed25519_private: privateKey + "\n",
            ed25519_public: publicKey,
        },
        write_files: [
            {
                path: HOST_KEY_DROPIN,
                owner: "root:root",
                permissions: "0644",
                // Some images regenerate missing RSA/ECDSA keys at sshd start (sshd-keygen on Amazon Linux),
                // and SSH clients (Go's included) prefer ECDSA: the host would present a key nobody pinned.
                // Offering only the ed25519 key makes the pinned key the one every client sees.
                content: [
                    "# falco-nodes: offer only the host key pinned at launch (see AwsFalcoNode).",
                    `HostKey ${HOST_KEY_PATH}`,
                    "HostKeyAlgorithms ssh-ed25519,ssh-ed25519-cert-v01@openssh.com",
                    "",
                ].join("\n"),
            },
        ],
    };
    return "#cloud-config\n" + YAML.stringify(config, { lineWidth: 0 });
}
