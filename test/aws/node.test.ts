import * as assert from "assert";
import * as pulumi from "@pulumi/pulumi";
import * as YAML from "yaml";
import { amiFilter, Architecture, OperatingSystem } from "../../components/aws/ami";
import { AwsFalcoNode, AwsFalcoNodeArgs, nodeHostSettings } from "../../components/aws/node";
import type { PolicyResource } from "@pulumi/policy";
import { checkEbsEncrypted, checkFalcoNodesHaveFalcoHost, checkImdsResource, checkNoWorldOpenSsh, checkPublicIp } from "../../components/aws/policies";
import { AWS_FALCO_NODE_TYPE } from "../../components/aws/tags";
import { UNIT_PATH } from "../../components/host/paths";
import { destroy, initialState, Step } from "../support/engine";
import { fakeKeyPair } from "../support/fakeSecrets";
import { decodePayload } from "../support/payload";
import { unitLines } from "../support/systemd";
import {
    FAKE_AMI_ID,
    FAKE_PRIVATE_IP,
    FAKE_PUBLIC_IP,
    FAKE_VPC_ID,
    isSecretValue,
    type Mocks,
    outputOf,
    settled,
    setupCloudMocks,
    unwrapSecrets,
} from "../support/mocks";

const T = {
    instance: "aws:ec2/instance:Instance",
    sg: "aws:ec2/securityGroup:SecurityGroup",
    keyPair: "aws:ec2/keyPair:KeyPair",
    tlsKey: "tls:index/privateKey:PrivateKey",
    command: "command:remote:Command",
    role: "aws:iam/role:Role",
    attachment: "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    profile: "aws:iam/instanceProfile:InstanceProfile",
    falcoHost: "falco-nodes:index:FalcoHost",
};

const BASE: AwsFalcoNodeArgs = { subnetId: "subnet-0abc", sshCidrs: ["203.0.113.7/32"] };

describe("AwsFalcoNode", () => {
    let mocks: Mocks;
    beforeEach(() => {
        mocks = setupCloudMocks({ strictCalls: true });
    });

    /** Build a node and wait until all its children are declared. */
    async function build(name: string, extra: Partial<AwsFalcoNodeArgs> = {}): Promise<AwsFalcoNode> {
        const node = new AwsFalcoNode(name, { ...BASE, ...extra });
        await outputOf(node.falcoVersion);
        await settled(mocks);
        return node;
    }
    const instanceInputs = () => unwrapSecrets(mocks.one(T.instance).inputs);
    const sgInputs = () => unwrapSecrets(mocks.one(T.sg).inputs);
    const connection = () => mocks.one(T.command).inputs.connection;
    // The SDK lifts a nested secret to the top-level input: the whole connection is secret when the key is.

    describe("hardening defaults", () => {
        it("requires IMDSv2 with hop limit 1 and metadata tags off (EC2.8, AutoScaling.4)", async () => {
            await build("imds");
            assert.deepStrictEqual(instanceInputs().metadataOptions, {
                httpEndpoint: "enabled",
                httpTokens: "required",
                httpPutResponseHopLimit: 1,
                instanceMetadataTags: "disabled",
            });
        });

        it("encrypts a gp3 root volume that goes with the instance (EC2.3)", async () => {
            await build("root");
            const root = instanceInputs().rootBlockDevice;
            assert.strictEqual(root.encrypted, true);
            assert.strictEqual(root.volumeType, "gp3");
            assert.strictEqual(root.volumeSize, 20);
            assert.strictEqual(root.deleteOnTermination, true);
            assert.strictEqual(root.kmsKeyId, undefined, "account default key unless one is given");
        });

        it("uses the given KMS key and size", async () => {
            await build("kms", { kmsKeyId: "arn:aws:kms:eu-west-1:123456789012:key/abcd", rootVolumeSizeGiB: 50 });
            const root = instanceInputs().rootBlockDevice;
            assert.strictEqual(root.kmsKeyId, "arn:aws:kms:eu-west-1:123456789012:key/abcd");
            assert.strictEqual(root.volumeSize, 50);
            assert.strictEqual(root.encrypted, true);
        });

        it("has no public IP, detailed monitoring, EBS optimization and ownership tags (EC2.9)", async () => {
            await build("net", { tags: { team: "sec" } });
            const i = instanceInputs();
            assert.strictEqual(i.associatePublicIpAddress, false);
            assert.strictEqual(i.monitoring, true);
            assert.strictEqual(i.ebsOptimized, true);
            assert.deepStrictEqual(i.tags, { team: "sec", Name: "net", "falco-nodes:node": "net" });
            assert.strictEqual(i.subnetId, "subnet-0abc");
            assert.strictEqual(i.instanceType, "t3.medium");
        });

        it("opens only SSH, only from the listed CIDRs, in the subnet's VPC (EC2.13, EC2.53/54)", async () => {
            await build("sg", { sshCidrs: ["203.0.113.7/32", "2001:db8::/64"] });
            const sg = sgInputs();
            assert.strictEqual(sg.vpcId, FAKE_VPC_ID);
            assert.strictEqual(sg.ingress.length, 1);
            const [rule] = sg.ingress;
            assert.deepStrictEqual([rule.protocol, rule.fromPort, rule.toPort], ["tcp", 22, 22]);
            assert.deepStrictEqual(rule.cidrBlocks, ["203.0.113.7/32"]);
            assert.deepStrictEqual(rule.ipv6CidrBlocks, ["2001:db8::/64"]);
            const all = sg.ingress.flatMap((r: any) => [...(r.cidrBlocks ?? []), ...(r.ipv6CidrBlocks ?? [])]);
            assert.ok(!all.includes("0.0.0.0/0") && !all.includes("::/0"));
            const i = instanceInputs();
            assert.deepStrictEqual(i.vpcSecurityGroupIds, ["sg-sg-id"]);
        });

        it("passes every policy in the pack", async () => {
            await build("policy");
            const i = instanceInputs();
            const problems = [
                ...checkImdsResource(T.instance, i),
                ...checkEbsEncrypted(T.instance, i),
                ...checkPublicIp(T.instance, i),
                ...checkNoWorldOpenSsh(T.sg, sgInputs()),
            ];
            assert.deepStrictEqual(problems, []);
        });

        it("satisfies the stack policy: its instance has a FalcoHost with a converge command (real URNs)", async () => {
            const node = await build("stackpolicy");
            const urns = await Promise.all([node.urn, node.instance.urn, node.falcoHost.urn, node.falcoHost.converge.urn].map(outputOf));
            const [nodeR, instanceR, hostR, commandR] = urns.map((urn, i) => ({
                urn,
                type: [AWS_FALCO_NODE_TYPE, T.instance, T.falcoHost, T.command][i],
                name: urn.split("::").pop()!,
                props: {},
                opts: { parent: undefined as string | undefined },
            }));
            instanceR.opts.parent = nodeR.urn;
            hostR.opts.parent = nodeR.urn;
            commandR.opts.parent = hostR.urn;
            const all = [nodeR, instanceR, hostR, commandR] as unknown as PolicyResource[];
            assert.deepStrictEqual(checkFalcoNodesHaveFalcoHost(all), []);
            assert.strictEqual(checkFalcoNodesHaveFalcoHost(all.slice(0, 2)).length, 1, "without its FalcoHost the instance is reported");
        });

        it("creates no IAM role or instance profile unless asked", async () => {
            await build("noiam");
            assert.strictEqual(mocks.ofType(T.role).length + mocks.ofType(T.profile).length, 0);
            assert.strictEqual(instanceInputs().iamInstanceProfile, undefined);
        });
    });

    describe("image lookup", () => {
        for (const os of Object.values(OperatingSystem))
            for (const arch of Object.values(Architecture))
                it(`${os} on ${arch}: looks up the vendor image and logs in as the image's user`, async () => {
                    await build(`ami-${os}-${arch}`.replace(/\./g, ""), { os, architecture: arch });
                    const lookups = mocks.calls.filter((c) => c.token === "aws:ec2/getAmi:getAmi");
                    assert.strictEqual(lookups.length, 1);
                    const { owners, filters, mostRecent } = lookups[0].inputs;
                    assert.deepStrictEqual({ owners, filters, mostRecent }, amiFilter(os, arch));
                    assert.strictEqual(instanceInputs().ami, FAKE_AMI_ID);
                    assert.strictEqual(instanceInputs().instanceType, arch === "arm64" ? "t4g.medium" : "t3.medium");
                    const expectedUser = { "ubuntu-24.04": "ubuntu", "ubuntu-22.04": "ubuntu", "debian-12": "admin", al2023: "ec2-user" }[os];
                    assert.strictEqual(unwrapSecrets(connection()).user, expectedUser);
                });

        it("uses an explicit AMI without a lookup", async () => {
            await build("explicit", { ami: "ami-0feedfacecafebeef" });
            assert.strictEqual(mocks.calls.filter((c) => c.token === "aws:ec2/getAmi:getAmi").length, 0);
            assert.strictEqual(instanceInputs().ami, "ami-0feedfacecafebeef");
        });

        it("installs Falco from rpm on Amazon Linux unless a source was chosen", () => {
            assert.strictEqual(nodeHostSettings("al2023", undefined).install?.source, "rpm");
            assert.strictEqual(nodeHostSettings("debian-12", { driver: "kmod" }).install?.source, "apt");
            assert.strictEqual(nodeHostSettings("debian-12", { driver: "kmod" }).driver, "kmod");
            const chosen = nodeHostSettings("al2023", { install: { source: "package-file", packageFile: "/opt/falco.rpm" } });
            assert.deepStrictEqual(chosen.install, { source: "package-file", packageFile: "/opt/falco.rpm" });
        });
    });

    describe("keys", () => {
        it("generates an ed25519 login key, kept secret, that reaches FalcoHost's converge command", async () => {
            const node = await build("keys");
            const tlsKeys = mocks.ofType(T.tlsKey);
            assert.deepStrictEqual(tlsKeys.map((k) => [k.name, k.inputs.algorithm]), [["keys-login", "ED25519"], ["keys-host", "ED25519"]]);
            const login = fakeKeyPair("keys-login");
            assert.ok(await pulumi.isSecret(node.sshPrivateKey), "the login key output is secret");
            assert.strictEqual(await outputOf(node.sshPrivateKey), login.privateKeyOpenssh);
            const conn = connection();
            assert.ok(isSecretValue(conn), "the converge command gets the key as a secret");
            assert.strictEqual(unwrapSecrets(conn).privateKey, login.privateKeyOpenssh);
            assert.strictEqual(unwrapSecrets(mocks.one(T.keyPair).inputs).publicKey, login.publicKeyOpenssh);
            assert.strictEqual(instanceInputs().keyName, "keys-login");
            assert.strictEqual(unwrapSecrets(conn).host, FAKE_PRIVATE_IP);
        });

        it("pins the generated host key, delivered in secret user data that holds no login key", async () => {
            const node = await build("pin");
            const host = fakeKeyPair("pin-host");
            assert.strictEqual(unwrapSecrets(connection()).hostKey, host.publicKeyOpenssh.trim());
            assert.strictEqual(await outputOf(node.hostPublicKey), host.publicKeyOpenssh.trim());
            const raw = mocks.one(T.instance).inputs.userData;
            assert.ok(isSecretValue(raw), "user data carries a private key: secret in state");
            const doc = YAML.parse(unwrapSecrets(raw));
            assert.strictEqual(doc.ssh_keys.ed25519_private, host.privateKeyOpenssh);
            assert.strictEqual(doc.ssh_keys.ed25519_public, host.publicKeyOpenssh.trim());
            assert.ok(!unwrapSecrets(raw).includes(fakeKeyPair("pin-login").privateKeyOpenssh.split("\n")[1]));
        });

        it("uses a key you bring instead of generating one", async () => {
            const mine = fakeKeyPair("mine");
            const node = await build("byok", { sshKey: { privateKey: mine.privateKeyOpenssh, publicKey: mine.publicKeyOpenssh } });
            assert.deepStrictEqual(mocks.ofType(T.tlsKey).map((k) => k.name), ["byok-host"]);
            assert.ok(isSecretValue(connection()));
            assert.strictEqual(unwrapSecrets(connection()).privateKey, mine.privateKeyOpenssh);
            assert.strictEqual(unwrapSecrets(mocks.one(T.keyPair).inputs).publicKey, mine.publicKeyOpenssh);
            assert.ok(await pulumi.isSecret(node.sshPrivateKey));
        });
    });

    describe("opt-outs are explicit and visible", () => {
        it("publicIp: a public address, the approval tag, and converge over it", async () => {
            const node = await build("pub", { publicIp: true });
            const i = instanceInputs();
            assert.strictEqual(i.associatePublicIpAddress, true);
            assert.strictEqual(i.tags["falco-nodes:public-ip"], "approved");
            assert.deepStrictEqual(checkPublicIp(T.instance, i), [], "the policy accepts the approved address");
            assert.strictEqual(unwrapSecrets(connection()).host, FAKE_PUBLIC_IP);
            assert.strictEqual(await outputOf(node.publicIp), FAKE_PUBLIC_IP);
            // The approval is not on the other resources (it approves the instance's address only).
            assert.strictEqual(sgInputs().tags["falco-nodes:public-ip"], undefined);
        });

        it("allowWorldSsh: accepted only when set, and the policy still reports it", async () => {
            assert.throws(
                () => new AwsFalcoNode("world", { ...BASE, sshCidrs: ["0.0.0.0/0"] }),
                /invalid sshCidrs: 0\.0\.0\.0\/0 opens SSH to the whole internet.*allowWorldSsh: true/s,
            );
            await settled(mocks);
            assert.strictEqual(mocks.resources.length, 0, "nothing is declared for a refused node");
            await build("world2", { sshCidrs: ["0.0.0.0/0"], allowWorldSsh: true });
            assert.deepStrictEqual(sgInputs().ingress[0].cidrBlocks, ["0.0.0.0/0"]);
            assert.strictEqual(checkNoWorldOpenSsh(T.sg, sgInputs()).length, 1);
        });

        it("detailedMonitoring: false turns monitoring off", async () => {
            await build("mon", { detailedMonitoring: false });
            assert.strictEqual(instanceInputs().monitoring, false);
        });

        it("pinHostKey: false sends no user data and pins nothing", async () => {
            const node = await build("nopin", { pinHostKey: false });
            assert.strictEqual(instanceInputs().userData, undefined);
            assert.strictEqual(unwrapSecrets(connection()).hostKey, undefined);
            assert.deepStrictEqual(mocks.ofType(T.tlsKey).map((k) => k.name), ["nopin-login"]);
            assert.strictEqual(await outputOf(node.hostPublicKey), undefined);
        });
    });

    describe("access", () => {
        it("ssmAccess: a role with AmazonSSMManagedInstanceCore on an instance profile", async () => {
            await build("ssm", { ssmAccess: true });
            const role = unwrapSecrets(mocks.one(T.role).inputs);
            assert.deepStrictEqual(JSON.parse(role.assumeRolePolicy).Statement, [
                { Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" },
            ]);
            const attachment = unwrapSecrets(mocks.one(T.attachment).inputs);
            assert.strictEqual(attachment.policyArn, "arn:aws:iam::aws:policy/AmazonSSMManagedInstanceCore");
            assert.strictEqual(attachment.role, "ssm-ssm");
            assert.strictEqual(unwrapSecrets(mocks.one(T.profile).inputs).role, "ssm-ssm");
            assert.strictEqual(instanceInputs().iamInstanceProfile, "ssm-ssm");
        });

        it("bastion and source security groups: SSH from the group, converge through the bastion", async () => {
            await build("bastion", {
                sshCidrs: [],
                sshSourceSecurityGroupIds: ["sg-bastion"],
                bastion: { host: "bastion.example.com", user: "jump", hostKey: "ssh-ed25519 AAAAbastion" },
            });
            const ingress = sgInputs().ingress;
            assert.strictEqual(ingress.length, 1);
            assert.deepStrictEqual([ingress[0].fromPort, ingress[0].toPort, ingress[0].securityGroups], [22, 22, ["sg-bastion"]]);
            assert.strictEqual(ingress[0].cidrBlocks, undefined);
            const proxy = unwrapSecrets(connection()).proxy;
            assert.strictEqual(proxy.host, "bastion.example.com");
            assert.strictEqual(proxy.user, "jump");
            assert.strictEqual(proxy.hostKey, "ssh-ed25519 AAAAbastion");
            assert.strictEqual(unwrapSecrets(connection()).host, FAKE_PRIVATE_IP);
        });

        it("extra security groups are attached beside the node's own", async () => {
            await build("extra", { securityGroupIds: ["sg-shared"] });
            assert.deepStrictEqual(instanceInputs().vpcSecurityGroupIds, ["extra-sg-id", "sg-shared"]);
        });
    });

    describe("the hostname its Falco reports", () => {
        const env = async () =>
            unitLines((await decodePayload(unwrapSecrets(mocks.one(T.command).inputs).stdin as string)).content(UNIT_PATH)!)
                .filter((l) => l.key === "Environment")
                .map((l) => l.value);

        it("is the node's name, not the EC2 hostname (ip-10-...) nobody knows before launch", async () => {
            await build("edge-1");
            assert.deepStrictEqual(await env(), ['"FALCO_HOSTNAME=edge-1"']);
        });

        it("or the hostname it is given; one that cannot be refuses before the instance is declared", async () => {
            await build("edge-2", { hostname: "edge-2.prod.example.net" });
            assert.deepStrictEqual(await env(), ['"FALCO_HOSTNAME=edge-2.prod.example.net"']);
            const before = mocks.resources.length;
            assert.throws(() => new AwsFalcoNode("edge-3", { ...BASE, hostname: "edge 3" }), /invalid hostname \(FalcoHost edge-3\): "edge 3" is not a hostname/);
            assert.strictEqual(mocks.resources.length, before, "nothing registered");
        });
    });

    describe("destroy", () => {
        it("runs no SSH uninstall before the stack terminates the instance", async () => {
            await build("gone");
            // pulumi destroy with the inputs in state (test/support/engine.ts ports the engine's delete steps);
            // pulumi-command's remote Command Delete runs nothing when `delete` is unset
            // (provider/pkg/provider/remote/commandController.go Delete: `if props.Delete == nil { return nil }`).
            const steps = destroy(initialState(mocks.resources)).steps;
            const ofType = (t: string) => steps.filter((s): s is Extract<Step, { op: "delete" }> => s.type === t);
            const [cmd] = ofType(T.command);
            assert.ok(cmd, "the converge command is deleted");
            assert.strictEqual(cmd.inputs.delete, undefined, "no uninstall command to run");
            assert.match(String(cmd.inputs.create), /converge --owner/, "converging is unchanged");
            const [instance] = ofType(T.instance);
            assert.ok(steps.indexOf(cmd) < steps.indexOf(instance), "the command goes first, then the instance is terminated");
        });

        it("a FalcoHost on its own still uninstalls (only AwsFalcoNode opts out)", async () => {
            const { FalcoHost } = await import("../../components/host/falcoHost");
            const host = new FalcoHost("byo", { connection: { host: "10.0.0.9", user: "admin", hostKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIByo" } });
            await outputOf(host.falcoVersion);
            await settled(mocks);
            const [cmd] = destroy(initialState(mocks.resources)).steps.filter((s) => s.type === T.command) as Extract<Step, { op: "delete" }>[];
            assert.match(String(cmd.inputs.delete), /bash -s -- uninstall --owner/);
        });
    });

    describe("bad arguments fail before anything is declared, naming the fix", () => {
        const cases: [string, Partial<AwsFalcoNodeArgs>, RegExp][] = [
            ["no SSH path", { sshCidrs: [] }, /no SSH path to the node: set sshCidrs/],
            ["bad CIDR", { sshCidrs: ["10.0.0.1"] }, /invalid sshCidrs\[0\]/],
            ["bad os", { os: "windows" as OperatingSystem }, /invalid os 'windows'/],
            ["bad arch", { architecture: "i386" as Architecture }, /invalid architecture 'i386'/],
            ["tiny root volume", { rootVolumeSizeGiB: 4 }, /invalid rootVolumeSizeGiB 4: must be a whole number of GiB from 8 to 16384/],
            ["two profiles", { ssmAccess: true, iamInstanceProfile: "mine" }, /invalid iamInstanceProfile: not together with ssmAccess/],
            ["reserved tag", { tags: { "falco-nodes:public-ip": "approved" } }, /invalid tags.falco-nodes:public-ip: the falco-nodes: prefix is reserved/],
            ["bad user", { sshUser: "root; rm -rf /" }, /invalid sshUser/],
        ];
        for (const [what, extra, error] of cases)
            it(what, async () => {
                assert.throws(() => new AwsFalcoNode("bad", { ...BASE, ...extra }), error);
                await settled(mocks);
                assert.strictEqual(mocks.resources.length, 0);
            });
    });
});
