/**
 * The hostname a node's Falco reports (components/shared/hostname.ts): the one function the unit and the alert
 * rules both take it from, and what may be one.
 */
import * as assert from "assert";
import * as fc from "fast-check";
import { falcoHostname, HOSTNAME_PATTERN, hostnameProblem } from "../../components/shared/hostname";
import { systemdQuotedWord } from "../../components/host/systemdQuote";

describe("the hostname a node's Falco reports", () => {
    it("is the node's own hostname when it has one, else its name", () => {
        assert.strictEqual(falcoHostname("edge-1"), "edge-1");
        assert.strictEqual(falcoHostname("edge-1", "edge-1.eu-west-1.example.net"), "edge-1.eu-west-1.example.net");
    });

    it("accepts DNS names (and the underscores Pulumi resource names carry)", () => {
        for (const ok of ["web-1", "WEB-1", "a", "ip-10-0-1-23.eu-west-1.compute.internal", "ami-ubuntu-2404-x86_64", `${"a".repeat(63)}.b`])
            assert.strictEqual(hostnameProblem(ok), undefined, ok);
    });

    it("refuses what is not one, saying what is", () => {
        const bad = ["", "web 1", "-web", "web-", "web..1", ".web", "web.", "_web", "web/1", 'we"b', "we%b", "we\\b", "web\nx", "é", `${"a".repeat(64)}`, `${"a.".repeat(127)}a`];
        for (const b of bad) assert.match(hostnameProblem(b) ?? "", /is not a hostname: use letters, digits/, JSON.stringify(b));
        assert.match(hostnameProblem(42) ?? "", /must be a string/);
    });

    it("anything it accepts is a plain word: no quoting, escaping or specifier in systemd, nothing to escape in PromQL", () => {
        fc.assert(
            fc.property(fc.string({ unit: fc.constantFrom(..."aZ09-_.%\\\" $\n"), maxLength: 40 }), (s) => {
                if (!HOSTNAME_PATTERN.test(s)) return;
                assert.strictEqual(systemdQuotedWord(s), `"${s}"`);
                assert.strictEqual(JSON.stringify(s), `"${s}"`);
            }),
            { numRuns: 500, seed: 17 },
        );
    });
});
