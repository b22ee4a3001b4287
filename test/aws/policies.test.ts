import * as assert from "assert";
import type { PolicyResource, ResourceValidationArgs, ResourceValidationPolicy, StackValidationPolicy } from "@pulumi/policy";
import {
    checkEbsEncrypted,
    checkFalcoNodesHaveFalcoHost,
    checkImdsResource,
    checkNoWorldOpenSsh,
    checkPublicIp,
    coversPort,
    ebsEncrypted,
    falcoNodeHasFalcoHost,
    falcoNodesPolicies,
    imdsV2Required,
    noPublicIpWithoutTag,
    noWorldOpenSsh,
    TYPES,
    urnType,
} from "../../components/aws/policies";

const INSTANCE = TYPES.instance;
const GOOD_INSTANCE = {
    associatePublicIpAddress: false,
    metadataOptions: { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1, instanceMetadataTags: "disabled" },
    rootBlockDevice: { encrypted: true, volumeType: "gp3", volumeSize: 20 },
    tags: { Name: "n1" },
};

/** Run a resource policy the way the policy server would, collecting its violations. */
function violations(policy: ResourceValidationPolicy, type: string, props: Record<string, any>): string[] {
    const found: string[] = [];
    const args = {
        type,
        props,
        urn: `urn:pulumi:test::falco-nodes::${type}::r`,
        name: "r",
        opts: { protect: false, ignoreChanges: [], aliases: [], customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 }, additionalSecretOutputs: [] },
        stackTags: new Map<string, string>(),
        isType: () => false,
        asType: () => undefined,
        getConfig: () => ({}),
        notApplicable: () => {
            throw new Error("not applicable");
        },
    } as unknown as ResourceValidationArgs;
    const validate = policy.validateResource!;
    for (const v of Array.isArray(validate) ? validate : [validate]) v(args, (m) => found.push(m));
    return found;
}

describe("aws/policies", () => {
    it("are all mandatory, uniquely named, and include the stack policy", () => {
        const names = falcoNodesPolicies.map((p) => p.name);
        assert.deepStrictEqual(names, ["ec2-imdsv2-required", "ebs-encrypted", "no-world-open-ssh", "no-public-ip-without-tag", "falco-node-has-falcohost"]);
        for (const p of falcoNodesPolicies) assert.strictEqual(p.enforcementLevel, "mandatory", p.name);
    });

    it("a compliant instance passes every resource policy", () => {
        for (const p of [imdsV2Required, ebsEncrypted, noWorldOpenSsh, noPublicIpWithoutTag])
            assert.deepStrictEqual(violations(p, INSTANCE, GOOD_INSTANCE), [], p.name);
    });

    describe("ec2-imdsv2-required", () => {
        it("flags optional tokens, a missing block, and a hop limit above 1", () => {
            assert.match(violations(imdsV2Required, INSTANCE, { ...GOOD_INSTANCE, metadataOptions: { ...GOOD_INSTANCE.metadataOptions, httpTokens: "optional" } })[0], /httpTokens to "required"/);
            assert.strictEqual(violations(imdsV2Required, INSTANCE, { ...GOOD_INSTANCE, metadataOptions: undefined }).length, 2);
            assert.match(violations(imdsV2Required, INSTANCE, { ...GOOD_INSTANCE, metadataOptions: { ...GOOD_INSTANCE.metadataOptions, httpPutResponseHopLimit: 2 } })[0], /HopLimit to 1/);
        });
        it("accepts a disabled metadata endpoint, checks launch templates, ignores other types", () => {
            assert.deepStrictEqual(checkImdsResource(INSTANCE, { metadataOptions: { httpEndpoint: "disabled" } }), []);
            assert.strictEqual(checkImdsResource(TYPES.launchTemplate, { metadataOptions: { httpTokens: "optional" } }).length, 2);
            assert.deepStrictEqual(checkImdsResource(TYPES.launchTemplate, { metadataOptions: { httpTokens: "required", httpPutResponseHopLimit: 1 } }), []);
            assert.deepStrictEqual(checkImdsResource(TYPES.volume, {}), []);
        });
    });

    describe("ebs-encrypted", () => {
        it("flags an unencrypted or unspecified root volume and unencrypted extra volumes", () => {
            assert.match(violations(ebsEncrypted, INSTANCE, { ...GOOD_INSTANCE, rootBlockDevice: { encrypted: false } })[0], /rootBlockDevice.encrypted/);
            assert.strictEqual(violations(ebsEncrypted, INSTANCE, { ...GOOD_INSTANCE, rootBlockDevice: undefined }).length, 1);
            const extra = { ...GOOD_INSTANCE, ebsBlockDevices: [{ deviceName: "/dev/sdf", encrypted: true }, { deviceName: "/dev/sdg" }] };
            assert.deepStrictEqual(violations(ebsEncrypted, INSTANCE, extra).length, 1);
            assert.match(checkEbsEncrypted(INSTANCE, extra)[0], /ebsBlockDevices\[1\]/);
        });
        it("checks aws.ebs.Volume", () => {
            assert.strictEqual(violations(ebsEncrypted, TYPES.volume, { size: 10 }).length, 1);
            assert.deepStrictEqual(violations(ebsEncrypted, TYPES.volume, { size: 10, encrypted: true }), []);
        });
    });

    describe("no-world-open-ssh", () => {
        const sg = (ingress: object[]) => ({ ingress });
        it("flags SSH from 0.0.0.0/0 or ::/0 in a security group, by port range or all protocols", () => {
            for (const rule of [
                { protocol: "tcp", fromPort: 22, toPort: 22, cidrBlocks: ["0.0.0.0/0"] },
                { protocol: "tcp", fromPort: 22, toPort: 22, ipv6CidrBlocks: ["::/0"] },
                { protocol: "tcp", fromPort: 0, toPort: 65535, cidrBlocks: ["0.0.0.0/0"] },
                { protocol: "6", fromPort: 20, toPort: 25, cidrBlocks: ["0.0.0.0/0"] },
                { protocol: "-1", fromPort: 0, toPort: 0, cidrBlocks: ["0.0.0.0/0"] },
                { protocol: "tcp", fromPort: 3389, toPort: 3389, cidrBlocks: ["0.0.0.0/0"] },
            ])
                assert.strictEqual(violations(noWorldOpenSsh, TYPES.securityGroup, sg([rule])).length, 1, JSON.stringify(rule));
        });
        it("allows SSH from specific CIDRs, other ports from anywhere, and world egress", () => {
            for (const rule of [
                { protocol: "tcp", fromPort: 22, toPort: 22, cidrBlocks: ["203.0.113.7/32"] },
                { protocol: "tcp", fromPort: 443, toPort: 443, cidrBlocks: ["0.0.0.0/0"] },
                { protocol: "udp", fromPort: 0, toPort: 65535, cidrBlocks: ["0.0.0.0/0"] },
                { protocol: "tcp", fromPort: 22, toPort: 22, securityGroups: ["sg-123"] },
            ])
                assert.deepStrictEqual(violations(noWorldOpenSsh, TYPES.securityGroup, sg([rule])), [], JSON.stringify(rule));
            assert.deepStrictEqual(violations(noWorldOpenSsh, TYPES.securityGroup, { egress: [{ protocol: "-1", fromPort: 0, toPort: 0, cidrBlocks: ["0.0.0.0/0"] }] }), []);
        });
        it("checks standalone aws.ec2.SecurityGroupRule and aws.vpc.SecurityGroupIngressRule", () => {
            const rule = { type: "ingress", protocol: "tcp", fromPort: 22, toPort: 22, cidrBlocks: ["0.0.0.0/0"] };
            assert.strictEqual(violations(noWorldOpenSsh, TYPES.securityGroupRule, rule).length, 1);
            assert.deepStrictEqual(violations(noWorldOpenSsh, TYPES.securityGroupRule, { ...rule, type: "egress" }), []);
            assert.strictEqual(violations(noWorldOpenSsh, TYPES.ingressRule, { ipProtocol: "-1", cidrIpv4: "0.0.0.0/0" }).length, 1);
            assert.strictEqual(violations(noWorldOpenSsh, TYPES.ingressRule, { ipProtocol: "tcp", fromPort: 22, toPort: 22, cidrIpv6: "::/0" }).length, 1);
            assert.deepStrictEqual(violations(noWorldOpenSsh, TYPES.ingressRule, { ipProtocol: "tcp", fromPort: 22, toPort: 22, cidrIpv4: "10.0.0.0/8" }), []);
            assert.deepStrictEqual(violations(noWorldOpenSsh, TYPES.ingressRule, { ipProtocol: "tcp", fromPort: 80, toPort: 80, cidrIpv4: "0.0.0.0/0" }), []);
        });
        it("reads port ranges the way AWS does", () => {
            assert.ok(coversPort({ protocol: "all", fromPort: undefined, toPort: undefined, cidrs: [] }, 22));
            assert.ok(coversPort({ protocol: "TCP", fromPort: undefined, toPort: undefined, cidrs: [] }, 22));
            assert.ok(!coversPort({ protocol: "tcp", fromPort: 23, toPort: 1024, cidrs: [] }, 22));
            assert.ok(!coversPort({ protocol: "icmp", fromPort: -1, toPort: -1, cidrs: [] }, 22));
            assert.deepStrictEqual(checkNoWorldOpenSsh(TYPES.volume, { ingress: [{ protocol: "-1", cidrBlocks: ["0.0.0.0/0"] }] }), []);
        });
    });

    describe("no-public-ip-without-tag", () => {
        it("flags a public IP (requested or left to the subnet) without the approval tag", () => {
            assert.match(violations(noPublicIpWithoutTag, INSTANCE, { ...GOOD_INSTANCE, associatePublicIpAddress: true })[0], /falco-nodes:public-ip=approved/);
            assert.match(violations(noPublicIpWithoutTag, INSTANCE, { ...GOOD_INSTANCE, associatePublicIpAddress: undefined })[0], /unset/);
            assert.strictEqual(checkPublicIp(INSTANCE, { associatePublicIpAddress: true, tags: { "falco-nodes:public-ip": "yes" } }).length, 1);
        });
        it("accepts it with the tag, and an explicit false without", () => {
            assert.deepStrictEqual(violations(noPublicIpWithoutTag, INSTANCE, { ...GOOD_INSTANCE, associatePublicIpAddress: true, tags: { "falco-nodes:public-ip": "approved" } }), []);
            assert.deepStrictEqual(checkPublicIp(INSTANCE, { associatePublicIpAddress: false }), []);
            assert.deepStrictEqual(checkPublicIp(TYPES.securityGroup, {}), []);
        });
    });

    describe("falco-node-has-falcohost", () => {
        const base = "urn:pulumi:test::falco-nodes::";
        const nodeUrn = `${base}falco-nodes:index:AwsFalcoNode::n1`;
        const resource = (type: string, name: string, parent?: PolicyResource): PolicyResource => {
            const chain = parent ? `${parent.urn.split("::")[2]}$${type}` : type;
            return {
                type,
                name,
                urn: `${base}${chain}::${name}`,
                props: {},
                opts: { protect: false, ignoreChanges: [], aliases: [], customTimeouts: { createSeconds: 0, updateSeconds: 0, deleteSeconds: 0 }, additionalSecretOutputs: [], parent: parent?.urn },
                parent,
                dependencies: [],
                propertyDependencies: {},
                isType: () => false,
                asType: () => undefined,
            } as unknown as PolicyResource;
        };
        const stack = (withHost: boolean, withCommand: boolean) => {
            const node = resource(TYPES.awsFalcoNode, "n1");
            const instance = resource(TYPES.instance, "n1-instance", node);
            const all = [node, instance];
            if (withHost) {
                const host = resource(TYPES.falcoHost, "n1", node);
                all.push(host);
                if (withCommand) all.push(resource(TYPES.remoteCommand, "n1-converge", host));
            }
            return { all, instance };
        };
        const run = (resources: PolicyResource[]) => {
            const found: [string, string | undefined][] = [];
            (falcoNodeHasFalcoHost as StackValidationPolicy).validateStack(
                { resources, stackTags: new Map(), getConfig: () => ({}) as any, notApplicable: () => { throw new Error(); } },
                (m, urn) => found.push([m, urn]),
            );
            return found;
        };

        it("passes a node whose FalcoHost has its converge command", () => {
            const { all } = stack(true, true);
            assert.strictEqual(urnType(all[1].urn), TYPES.instance);
            assert.strictEqual(urnType(nodeUrn), TYPES.awsFalcoNode);
            assert.deepStrictEqual(run(all), []);
        });
        it("flags the instance when the FalcoHost or its command is missing", () => {
            for (const [withHost, withCommand] of [[false, false], [true, false]]) {
                const { all, instance } = stack(withHost, withCommand);
                const found = run(all);
                assert.strictEqual(found.length, 1);
                assert.strictEqual(found[0][1], instance.urn);
                assert.match(found[0][0], /no FalcoHost/);
            }
        });
        it("does not count another node's FalcoHost, and ignores instances outside AwsFalcoNode", () => {
            const a = stack(false, false);
            const b = stack(true, true).all.map((r) => ({ ...r, urn: r.urn.replace("::n1", "::n2"), opts: { ...r.opts, parent: r.opts.parent?.replace("::n1", "::n2") }, parent: undefined }));
            assert.strictEqual(checkFalcoNodesHaveFalcoHost([...a.all, ...b]).length, 1);
            const bare = resource(TYPES.instance, "bare");
            assert.deepStrictEqual(checkFalcoNodesHaveFalcoHost([bare]), []);
        });
    });
});
