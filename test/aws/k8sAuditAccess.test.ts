import * as assert from "assert";
import { eksAuditLogGroupName, eksAuditLogPolicy, k8sAuditIngressRules } from "../../components/aws/k8sAuditAccess";
import { AwsFalcoNode, AwsFalcoNodeArgs } from "../../components/aws/node";
import { checkNoWorldOpenSsh } from "../../components/aws/policies";
import { HostSettings, resolveHostSettings } from "../../components/host/settings";
import { FAKE_ACCOUNT_ID, type Mocks, outputOf, settled, setupCloudMocks, unwrapSecrets } from "../support/mocks";
import { TEST_K8SAUDIT_DIGESTS } from "../support/k8sAuditDigests";

const T = {
    sg: "aws:ec2/securityGroup:SecurityGroup",
    instance: "aws:ec2/instance:Instance",
    role: "aws:iam/role:Role",
    rolePolicy: "aws:iam/rolePolicy:RolePolicy",
    attachment: "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
    profile: "aws:iam/instanceProfile:InstanceProfile",
};

const BASE: AwsFalcoNodeArgs = { subnetId: "subnet-0abc", sshCidrs: ["203.0.113.7/32"] };
const EKS: HostSettings = { k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, variant: "eks", eks: { clusterName: "prod", region: "eu-west-1" } } };
const WEBHOOK: HostSettings = { k8sAudit: { enabled: true, pluginDigests: TEST_K8SAUDIT_DIGESTS, allowedSources: ["10.0.0.10/32", "10.0.0.11/32", "fd00::10/128"], port: 9765 } };

describe("k8sAudit on AWS (pure)", () => {
    it("grants exactly FilterLogEvents on the cluster's log group and its streams", () => {
        const doc = eksAuditLogPolicy({ partition: "aws", region: "eu-west-1", accountId: FAKE_ACCOUNT_ID, clusterName: "prod" });
        const group = `arn:aws:logs:eu-west-1:${FAKE_ACCOUNT_ID}:log-group:${eksAuditLogGroupName("prod")}`;
        assert.deepStrictEqual(doc.Statement, [
            { Sid: "ReadEksAuditLog", Effect: "Allow", Action: ["logs:FilterLogEvents"], Resource: [group, `${group}:*`] },
        ]);
        const text = JSON.stringify(doc);
        assert.doesNotMatch(text, /logs:\*|"\*"|Describe\*|Get\*/, "no wildcard action or resource");
    });

    it("refuses values that would widen the ARN", () => {
        assert.throws(() => eksAuditLogPolicy({ partition: "aws", region: "eu-west-1", accountId: "*", clusterName: "prod" }), /accountId/);
        assert.throws(() => eksAuditLogPolicy({ partition: "aws", region: "eu-west-1", accountId: FAKE_ACCOUNT_ID, clusterName: "*" }), /clusterName/);
    });

    it("opens the webhook port to the allowed sources only, and nothing for eks or when off", () => {
        assert.deepStrictEqual(k8sAuditIngressRules(resolveHostSettings(WEBHOOK)), [
            {
                description: "Kubernetes audit webhook (Falco k8saudit) from the API servers only",
                protocol: "tcp",
                fromPort: 9765,
                toPort: 9765,
                cidrBlocks: ["10.0.0.10/32", "10.0.0.11/32"],
                ipv6CidrBlocks: ["fd00::10/128"],
            },
        ]);
        assert.deepStrictEqual(k8sAuditIngressRules(resolveHostSettings(EKS)), []);
        assert.deepStrictEqual(k8sAuditIngressRules(resolveHostSettings()), []);
    });
});

describe("AwsFalcoNode with k8sAudit (mocks)", () => {
    let mocks: Mocks;
    beforeEach(() => {
        mocks = setupCloudMocks({ strictCalls: true });
    });
    async function build(name: string, extra: Partial<AwsFalcoNodeArgs>): Promise<AwsFalcoNode> {
        const node = new AwsFalcoNode(name, { ...BASE, ...extra });
        await outputOf(node.falcoVersion);
        await settled(mocks);
        return node;
    }

    it("eks: attaches the audit log policy to a role and profile of its own", async () => {
        await build("eks", { settings: EKS, k8sAuditEksLogAccess: true });
        const role = unwrapSecrets(mocks.one(T.role).inputs);
        assert.deepStrictEqual(JSON.parse(role.assumeRolePolicy).Statement[0].Principal, { Service: "ec2.amazonaws.com" });
        const policy = unwrapSecrets(mocks.one(T.rolePolicy).inputs);
        assert.strictEqual(policy.role, "eks-node-id", "attached to the node's role (the mock id of role eks-node)");
        assert.deepStrictEqual(
            JSON.parse(policy.policy),
            eksAuditLogPolicy({ partition: "aws", region: "eu-west-1", accountId: FAKE_ACCOUNT_ID, clusterName: "prod" }),
        );
        assert.strictEqual(mocks.ofType(T.attachment).length, 0, "no SSM policy unless asked");
        assert.strictEqual(unwrapSecrets(mocks.one(T.instance).inputs).iamInstanceProfile, unwrapSecrets(mocks.one(T.profile).inputs).role);
    });

    it("eks with ssmAccess: one role carries both", async () => {
        await build("both", { settings: EKS, k8sAuditEksLogAccess: true, ssmAccess: true });
        assert.strictEqual(mocks.ofType(T.role).length, 1);
        assert.strictEqual(mocks.ofType(T.attachment).length, 1);
        assert.strictEqual(mocks.ofType(T.rolePolicy).length, 1);
        assert.match(unwrapSecrets(mocks.one(T.role).inputs).description, /Systems Manager access, EKS audit log read/);
    });

    it("eks without the flag: no credentials on the node", async () => {
        await build("eks-plain", { settings: EKS });
        assert.strictEqual(mocks.ofType(T.role).length, 0);
        assert.strictEqual(mocks.ofType(T.rolePolicy).length, 0);
    });

    it("refuses the flag with your own profile or without the eks variant, before declaring anything", () => {
        assert.throws(() => new AwsFalcoNode("x", { ...BASE, settings: EKS, k8sAuditEksLogAccess: true, iamInstanceProfile: "mine" }), /not together with iamInstanceProfile/);
        assert.throws(() => new AwsFalcoNode("y", { ...BASE, settings: WEBHOOK, k8sAuditEksLogAccess: true }), /only for settings\.k8sAudit with enabled: true and variant: eks/);
        assert.throws(() => new AwsFalcoNode("z", { ...BASE, settings: EKS, k8sAuditSourceSecurityGroupIds: ["sg-1"] }), /variant webhook/);
        assert.strictEqual(mocks.resources.length, 0);
    });

    it("webhook: the security group admits the port from the API servers (and listed groups) only", async () => {
        await build("hook", { settings: WEBHOOK, k8sAuditSourceSecurityGroupIds: ["sg-0controlplane"] });
        const sg = unwrapSecrets(mocks.one(T.sg).inputs);
        const hook = sg.ingress.filter((r: any) => r.fromPort === 9765);
        assert.strictEqual(hook.length, 2);
        assert.deepStrictEqual(hook[0].cidrBlocks, ["10.0.0.10/32", "10.0.0.11/32"]);
        assert.deepStrictEqual(hook[0].ipv6CidrBlocks, ["fd00::10/128"]);
        assert.deepStrictEqual(hook[1].securityGroups, ["sg-0controlplane"]);
        for (const r of sg.ingress) for (const c of [...(r.cidrBlocks ?? []), ...(r.ipv6CidrBlocks ?? [])]) assert.ok(!/\/0$/.test(c), c);
        assert.deepStrictEqual(checkNoWorldOpenSsh(T.sg, sg), []);
    });

    it("without k8sAudit the security group is SSH only", async () => {
        await build("plain", {});
        const sg = unwrapSecrets(mocks.one(T.sg).inputs);
        assert.deepStrictEqual(sg.ingress.map((r: any) => r.fromPort), [22]);
    });
});
