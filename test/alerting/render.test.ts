/**
 * `npm run render` writes the stack's alert rules to out/<stack>/alerts/, following the node list, and nothing
 * for a stack with alerting off or bad alerting settings.
 */
import { strict as assert } from "assert";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import * as YAML from "yaml";
import { ALERT_NAMES } from "../../components/alerting";
import { UNIT_PATH } from "../../components/host/paths";
import { ALERT_RULES_FILE, main } from "../../scripts/render";
import { unitLines } from "../support/systemd";

const HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx";

describe("render CLI: alert rules", () => {
    let tmp: string;
    beforeEach(() => {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-render-alerts-"));
    });
    afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

    const io = () => {
        const out: string[] = [];
        const err: string[] = [];
        return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
    };
    function render(nodes: (string | { name: string; hostname: string })[], alerting?: Record<string, unknown>) {
        const dir = path.join(tmp, "stacks");
        fs.mkdirSync(dir, { recursive: true });
        const config: Record<string, unknown> = {
            "falco-nodes:ssh": { user: "deploy" },
            "falco-nodes:nodes": nodes.map((n) => {
                const { name, hostname } = typeof n === "string" ? { name: n, hostname: undefined } : n;
                return { name, kind: "existing", ssh: { host: `${name}.example.net`, hostKey: HOST_KEY }, ...(hostname ? { hostname } : {}) };
            }),
        };
        if (alerting) config["falco-nodes:alerting"] = alerting;
        fs.writeFileSync(path.join(dir, "Pulumi.lab.yaml"), YAML.stringify({ config }));
        const c = io();
        const code = main(["--stack", "lab", "--stacks-dir", dir, "--out", path.join(tmp, "out")], c.io);
        return { code, ...c, file: path.join(tmp, "out", ALERT_RULES_FILE) };
    }
    const nodesIn = (file: string) =>
        [...new Set(YAML.parse(fs.readFileSync(file, "utf8")).groups.flatMap((g: any) => g.rules.map((r: any) => r.labels.node)).filter(Boolean))].sort();

    it("writes the rules of every node, and follows the node list on the next render", () => {
        const first = render(["web-1", "web-2"]);
        assert.equal(first.code, 0, first.err.join("\n"));
        assert.deepEqual(nodesIn(first.file), ["web-1", "web-2"]);
        assert.ok(first.out.some((l) => l.includes(ALERT_RULES_FILE) && l.includes("2 nodes")), first.out.join("\n"));
        const text = fs.readFileSync(first.file, "utf8");
        assert.match(text, /^# Prometheus alert rules for the falco-nodes stack lab/);
        assert.ok(text.includes(ALERT_NAMES.silent));

        const second = render(["web-1"]);
        assert.equal(second.code, 0);
        assert.deepEqual(nodesIn(second.file), ["web-1"]);
    });

    it("expects each node under exactly the hostname its rendered unit makes Falco report", () => {
        const r = render(["web-1", { name: "edge-1", hostname: "edge-1.eu-west-1.example.net" }]);
        assert.equal(r.code, 0, r.err.join("\n"));
        const rules = YAML.parse(fs.readFileSync(r.file, "utf8")).groups.flatMap((g: any) => g.rules).filter((x: any) => x.labels.node);
        for (const node of ["web-1", "edge-1"]) {
            const unit = fs.readFileSync(path.join(tmp, "out", node, "files", UNIT_PATH), "utf8");
            const env = unitLines(unit).filter((l) => l.key === "Environment").map((l) => l.value);
            assert.equal(env.length, 1, unit);
            const reported = /^"FALCO_HOSTNAME=(.*)"$/.exec(env[0])![1];
            const labels = new Set(rules.filter((x: any) => x.labels.node === node).map((x: any) => x.labels.hostname));
            assert.deepEqual([...labels], [reported], node);
        }
        assert.ok(fs.readFileSync(path.join(tmp, "out", "edge-1", "files", UNIT_PATH), "utf8").includes("FALCO_HOSTNAME=edge-1.eu-west-1.example.net"));
    });

    it("writes none with alerting off, and removes an earlier file", () => {
        assert.equal(render(["web-1"]).code, 0);
        const off = render(["web-1"], { enabled: false });
        assert.equal(off.code, 0, off.err.join("\n"));
        assert.equal(fs.existsSync(off.file), false);
    });

    it("bad alerting settings: exit 1 naming the key, nothing written", () => {
        const bad = render(["web-1"], { canaryWindow: "a while" });
        assert.equal(bad.code, 1);
        assert.match(bad.err.join("\n"), /falco-nodes:alerting\.canaryWindow: must be a duration/);
        assert.equal(fs.existsSync(path.join(tmp, "out")), false);
    });
});
