import * as assert from "assert";
import { isWorldCidr, securityGroupRules } from "../../components/aws/securityGroup";

describe("aws/securityGroup", () => {
    it("opens nothing by default, egress to everywhere (package downloads)", () => {
        const r = securityGroupRules({});
        assert.deepStrictEqual(r.ingress, []);
        assert.strictEqual(r.egress.length, 1);
        assert.deepStrictEqual(r.egress[0].cidrBlocks, ["0.0.0.0/0"]);
        assert.deepStrictEqual(r.egress[0].ipv6CidrBlocks, ["::/0"]);
        assert.strictEqual(r.egress[0].protocol, "-1");
    });

    it("allows SSH (tcp/22 only) from the listed CIDRs, split by family", () => {
        const r = securityGroupRules({ sshCidrs: ["203.0.113.7/32", "2001:db8::/64", "10.0.0.0/16"] });
        assert.strictEqual(r.ingress.length, 1);
        const [rule] = r.ingress;
        assert.deepStrictEqual([rule.protocol, rule.fromPort, rule.toPort], ["tcp", 22, 22]);
        assert.deepStrictEqual(rule.cidrBlocks, ["203.0.113.7/32", "10.0.0.0/16"]);
        assert.deepStrictEqual(rule.ipv6CidrBlocks, ["2001:db8::/64"]);
    });

    for (const world of ["0.0.0.0/0", "::/0", "10.0.0.0/0"])
        it(`refuses world-open SSH ${world} with a clear error, accepts it only with allowWorldSsh`, () => {
            assert.throws(
                () => securityGroupRules({ sshCidrs: ["203.0.113.7/32", world] }),
                (e: Error) => e.message.includes(`invalid sshCidrs: ${world} opens SSH to the whole internet`) && e.message.includes("allowWorldSsh: true"),
            );
            const r = securityGroupRules({ sshCidrs: [world], allowWorldSsh: true });
            const blocks = [...(r.ingress[0].cidrBlocks ?? []), ...(r.ingress[0].ipv6CidrBlocks ?? [])];
            assert.deepStrictEqual(blocks, [world]);
        });

    it("rejects entries that are not CIDRs, naming the index", () => {
        assert.throws(() => securityGroupRules({ sshCidrs: ["203.0.113.7"] }), /invalid sshCidrs\[0\] '203\.0\.113\.7': must be an IPv4 or IPv6 CIDR/);
        assert.throws(() => securityGroupRules({ sshCidrs: ["10.0.0.0/8", "300.1.1.1/32"] }), /invalid sshCidrs\[1\]/);
        assert.throws(() => securityGroupRules({ egressCidrs: ["10.0.0.0/33"] }), /invalid egressCidrs\[0\]/);
        assert.throws(() => securityGroupRules({ sshCidrs: ["10.0.0.0/8; rm -rf /"] }), /invalid sshCidrs\[0\]/);
    });

    it("can restrict egress (e.g. to a package mirror) or drop it", () => {
        assert.deepStrictEqual(securityGroupRules({ egressCidrs: ["10.1.0.0/16"] }).egress[0].cidrBlocks, ["10.1.0.0/16"]);
        assert.strictEqual(securityGroupRules({ egressCidrs: ["10.1.0.0/16"] }).egress[0].ipv6CidrBlocks, undefined);
        assert.deepStrictEqual(securityGroupRules({ egressCidrs: [] }).egress, []);
    });

    it("knows a world CIDR when it sees one", () => {
        for (const c of ["0.0.0.0/0", "::/0", "::0/0", "1.2.3.4/00"]) assert.ok(isWorldCidr(c), c);
        for (const c of ["0.0.0.0/1", "10.0.0.0/8", "::/1", "2001:db8::/0x"]) assert.ok(!isWorldCidr(c), c);
    });
});
