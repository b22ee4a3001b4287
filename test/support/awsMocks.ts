/**
 * Pulumi mocks for AWS node tests, on top of `pulumiMocks.ts`: record every resource's inputs and every provider
 * call's arguments (`calls[].type` is the function token), and answer with just enough state (key material, IPs, AMI ids) for the components to wire through.
 *
 * Inputs are recorded as the engine would see them: secret values keep their secret wrapper, so a test can
 * tell a secret from a plain value (`isSecretValue`) and read either (`reveal`).
 */
import * as pulumi from "@pulumi/pulumi";
import { Recorded, recordResources } from "./pulumiMocks";

import { unwrapSecrets as reveal } from "./mocks";
/** Is this recorded input value a secret? / The value with every secret wrapper removed, at any depth. */
export { isSecretValue, unwrapSecrets as reveal } from "./mocks";

export interface AwsMockRecorder {
    resources: Recorded[];
    calls: Recorded[];
    /** Resources of one type, in registration order. */
    ofType(type: string): Recorded[];
    /** The single resource of `type` (fails the test when there are none or several). */
    one(type: string): Recorded;
}

/** Fake but well-formed OpenSSH ed25519 key material, distinct per resource name. */
export function fakeKeyPair(name: string): { publicKeyOpenssh: string; privateKeyOpenssh: string } {
    const pub = Buffer.from(`ed25519-public-${name}`).toString("base64");
    const priv = Buffer.from(`openssh-key-v1 private ${name} `.repeat(4)).toString("base64").replace(/(.{70})/g, "$1\n");
    return {
        publicKeyOpenssh: `ssh-ed25519 ${pub}\n`,
        privateKeyOpenssh: `-----BEGIN OPENSSH PRIVATE KEY-----\n${priv.trim()}\n-----END OPENSSH PRIVATE KEY-----\n`,
    };
}

export const FAKE_AMI_ID = "ami-0123456789abcdef0";
export const FAKE_VPC_ID = "vpc-0aaaabbbbccccdddd";
export const FAKE_PRIVATE_IP = "10.0.1.23";
export const FAKE_PUBLIC_IP = "198.51.100.7";
export const FAKE_ACCOUNT_ID = "123456789012";

/** Install the mocks (call in `before`/`beforeEach`: setMocks is process-wide). Built on pulumiMocks. */
export function setupAwsMocks(): AwsMockRecorder {
    const calls: Recorded[] = [];
    const resources = recordResources(
        {
            "tls:index/privateKey:PrivateKey": (inputs, name) => ({ ...inputs, ...fakeKeyPair(name) }),
            "aws:ec2/keyPair:KeyPair": (inputs, name) => ({ ...inputs, keyName: name }),
            "aws:ec2/instance:Instance": (inputs) => ({
                ...inputs,
                privateIp: FAKE_PRIVATE_IP,
                publicIp: reveal(inputs.associatePublicIpAddress) ? FAKE_PUBLIC_IP : "",
            }),
            "aws:iam/role:Role": (inputs, name) => ({ ...inputs, name, arn: `arn:aws:iam::123456789012:role/${name}` }),
            "aws:iam/instanceProfile:InstanceProfile": (inputs, name) => ({ ...inputs, name }),
            "command:remote:Command": (inputs) => ({ ...inputs, stdout: "", stderr: "" }),
        },
        {
            recordedCalls: calls,
            calls: {
                "aws:ec2/getAmi:getAmi": () => ({ id: FAKE_AMI_ID, imageId: FAKE_AMI_ID }),
                "aws:ec2/getSubnet:getSubnet": (inputs) => ({ id: inputs.id, vpcId: FAKE_VPC_ID }),
                "aws:index/getPartition:getPartition": () => ({ id: "aws", partition: "aws", dnsSuffix: "amazonaws.com" }),
                "aws:index/getCallerIdentity:getCallerIdentity": () => ({
                    id: FAKE_ACCOUNT_ID,
                    accountId: FAKE_ACCOUNT_ID,
                    arn: `arn:aws:iam::${FAKE_ACCOUNT_ID}:user/ci`,
                    userId: "AIDAEXAMPLE",
                }),
            },
        },
    );
    const ofType = (type: string) => resources.filter((r) => r.type === type);
    return {
        resources,
        calls,
        ofType,
        one(type) {
            const found = ofType(type);
            if (found.length !== 1) throw new Error(`expected one ${type}, found ${found.length}`);
            return found[0];
        },
    };
}

/** Resolve an output (mocks resolve every value, so this never hangs on unknowns). */
export function valueOf<T>(o: pulumi.Output<T>): Promise<T> {
    return new Promise((resolve) => o.apply((v) => resolve(v)));
}

/** Wait until no new resource has been registered for a moment: the component's children are all declared. */
export async function settled(recorder: AwsMockRecorder, quietMs = 30): Promise<void> {
    let count = -1;
    while (count !== recorder.resources.length) {
        count = recorder.resources.length;
        await new Promise((r) => setTimeout(r, quietMs));
    }
}
