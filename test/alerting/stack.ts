/** A stack of existing servers as the alerting tests declare it, parsed as the program parses its config. */
import { objectConfigSource, parseStackConfig, StackConfig } from "../../components/config";

export const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICGs/MbsDJVGgX3toQvta8TevR8slzykb4it4nBZjqrW";

/** One `kind: existing` node, with optional `falco` overrides. */
export function existingNode(name: string, falco?: Record<string, unknown>) {
    return { name, kind: "existing", ssh: { host: `${name}.example.net`, user: "deploy", hostKey: HOST_KEY }, ...(falco ? { falco } : {}) };
}

/** `values` (full `falco-nodes:` keys) plus the SSH key secret existing nodes need. */
export function parseStack(values: Record<string, unknown>): StackConfig {
    return parseStackConfig(objectConfigSource({ ...values, "falco-nodes:sshPrivateKey": "k" }, ["falco-nodes:sshPrivateKey"]));
}
