import { strict as assert } from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { renderBundle } from "../../components/host/bundle";
import { FALCO_MAIN_CONFIG, SECRET_PLACEHOLDER_PREFIX, UNIT_PATH } from "../../components/host/paths";
import { loadStackHostSettings, main } from "../../scripts/render";
import * as YAML from "yaml";
import { renderRuleFiles } from "../../components/rules";
import { decodePayload } from "../support/payload";

const REPO = path.resolve(__dirname, "..", "..");

function capture() {
    const out: string[] = [];
    const err: string[] = [];
    return { io: { out: (l: string) => out.push(l), err: (l: string) => err.push(l) }, out, err };
}

describe("render CLI", () => {
    let tmp: string;
    beforeEach(() => {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-render-"));
    });
    afterEach(() => fs.rmSync(tmp, { recursive: true, force: true }));

    const writeStack = (name: string, yaml: string): string => {
        const dir = path.join(tmp, "stacks");
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, `Pulumi.${name}.yaml`), yaml);
        return dir;
    };

    it("writes every file, the scripts and bundle.json for each node of the dev stack", () => {
        const c = capture();
        const out = path.join(tmp, "out");
        assert.equal(main(["--stack", "dev", "--out", out], c.io), 0, c.err.join("\n"));
        const hosts = loadStackHostSettings(path.join(REPO, "stacks", "Pulumi.dev.yaml"));
        assert.deepEqual(hosts.map((h) => [h.name, h.hostname]), [["dev-1", "dev-1"]]);
        // What FalcoHost renders for the node: its settings and the hostname its Falco reports.
        const bundle = renderBundle(hosts[0].resolved, undefined, { hostname: hosts[0].hostname });
        const dir = path.join(out, "dev-1");
        for (const f of bundle.files) {
            const p = path.join(dir, "files", f.path);
            assert.equal(fs.readFileSync(p, "utf8"), f.content, f.path);
            assert.equal((fs.statSync(p).mode & 0o777).toString(8), f.mode.slice(1), f.path);
        }
        for (const script of ["install.sh", "uninstall.sh"]) {
            const p = path.join(dir, script);
            assert.equal(fs.statSync(p).mode & 0o777, 0o700);
            const sc = spawnSync("shellcheck", ["-x", "--severity=style", p], { encoding: "utf8" });
            assert.equal(sc.status, 0, sc.stdout);
        }
        assert.equal(fs.readFileSync(path.join(dir, "install.sh"), "utf8"), bundle.installScript);
        const summary = JSON.parse(fs.readFileSync(path.join(dir, "bundle.json"), "utf8"));
        assert.equal(summary.hash, bundle.hash);
        assert.deepEqual(summary.params, bundle.params);
        assert.deepEqual(summary.files.map((f: { path: string; mode: string }) => [f.path, f.mode]), bundle.files.map((f) => [f.path, f.mode]));
        assert.equal(summary.needsSecrets, false);
        assert.match(c.out.join("\n"), new RegExp(`dev-1: ${bundle.files.length} files, bundle ${bundle.hash.slice(0, 12)}`));
    });

    it("writes the chart values for a stack with the cluster on, with the hosts' rules and no secret in them", () => {
        const c = capture();
        const out = path.join(tmp, "out");
        assert.equal(main(["--stack", "prod", "--out", out], c.io), 0, c.err.join("\n"));
        const file = path.join(out, "cluster", "values.yaml");
        const values = YAML.parse(fs.readFileSync(file, "utf8"));
        const hosts = loadStackHostSettings(path.join(REPO, "stacks", "Pulumi.prod.yaml"));
        const expected = Object.fromEntries(renderRuleFiles(hosts[0].resolved).map((r) => [r.fileName, r.content]));
        assert.deepEqual(values.customRules, expected);
        // Credentials are referenced by Secret name, never inlined; the chart's default UI login is never used.
        assert.ok(values.falcosidekick.config.existingSecret, "outputs secret not referenced");
        assert.ok(!/hooks\.slack\.com|admin:admin|secure:/.test(fs.readFileSync(file, "utf8")));
        // The dev stack has no cluster: no values.
        const devOut = path.join(tmp, "dev");
        assert.equal(main(["--stack", "dev", "--out", devOut], capture().io), 0);
        assert.ok(!fs.existsSync(path.join(devOut, "cluster")));
    });

    it("fails naming the key, and writes nothing, for bad fleet or node settings", () => {
        const stacksDir = writeStack(
            "bad",
            [
                "config:",
                "  falco-nodes:falco:",
                "    driver: warp",
                "  falco-nodes:nodes:",
                "    - name: n1",
                "      kind: existing",
                "      ssh: {host: 10.0.0.5, user: deploy, hostKey: ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx}",
                "      falco:",
                "        webserver: {port: 0}",
            ].join("\n"),
        );
        const c = capture();
        const out = path.join(tmp, "out");
        assert.equal(main(["--stack", "bad", "--stacks-dir", stacksDir, "--out", out], c.io), 1);
        const err = c.err.join("\n");
        assert.match(err, /falco-nodes:falco\.driver: must be one of: modern_ebpf, kmod, auto/);
        assert.match(err, /falco-nodes:nodes\[0\]\.falco\.webserver\.port/);
        assert.match(err, /nothing was written/);
        assert.equal(fs.existsSync(out), false);
    });

    it("renders a node that needs a secret with a placeholder, never the encrypted value", async () => {
        const stacksDir = writeStack(
            "sec",
            [
                "config:",
                "  falco-nodes:httpOutputUrl:",
                "    secure: v1:c2VjcmV0LWNpcGhlcnRleHQ=",
                "  falco-nodes:ssh: {allowUnpinnedHostKeys: true, user: deploy}",
                "  falco-nodes:falco:",
                "    outputs: {http: {enabled: true}}",
                "  falco-nodes:nodes:",
                "    - {name: n1, kind: existing, ssh: {host: 10.0.0.5}, falco: {driver: auto}}",
            ].join("\n"),
        );
        const c = capture();
        const out = path.join(tmp, "out");
        assert.equal(main(["--stack", "sec", "--stacks-dir", stacksDir, "--out", out], c.io), 0, c.err.join("\n"));
        const dir = path.join(out, "n1");
        const summary = JSON.parse(fs.readFileSync(path.join(dir, "bundle.json"), "utf8"));
        assert.equal(summary.needsSecrets, true);
        assert.match(c.out.join("\n"), /needs secrets/);
        const payload = await decodePayload(fs.readFileSync(path.join(dir, "install.sh"), "utf8"));
        assert.ok([...payload.entries.values()].some((b) => b.includes(SECRET_PLACEHOLDER_PREFIX)));
        for (const f of fs.readdirSync(dir, { recursive: true }) as string[]) {
            const p = path.join(dir, f);
            if (fs.statSync(p).isFile()) assert.ok(!fs.readFileSync(p, "utf8").includes("c2VjcmV0"), f);
        }
        // driver auto: both unit variants, side by side.
        assert.ok(fs.existsSync(path.join(dir, "files", `${UNIT_PATH}.modern_ebpf`)));
        assert.ok(fs.existsSync(path.join(dir, "files", `${UNIT_PATH}.kmod`)));
    });

    it("replaces its own earlier output but refuses to delete anything else", () => {
        const out = path.join(tmp, "out");
        assert.equal(main(["--stack", "dev", "--out", out], capture().io), 0);
        fs.writeFileSync(path.join(out, "dev-1", "files", "stale"), "x");
        assert.equal(main(["--stack", "dev", "--out", out], capture().io), 0);
        assert.equal(fs.existsSync(path.join(out, "dev-1", "files", "stale")), false);
        assert.ok(fs.existsSync(path.join(out, "dev-1", "files", FALCO_MAIN_CONFIG)));

        const foreign = path.join(tmp, "foreign");
        fs.mkdirSync(path.join(foreign, "dev-1"), { recursive: true });
        fs.writeFileSync(path.join(foreign, "dev-1", "precious"), "keep");
        const c = capture();
        assert.equal(main(["--stack", "dev", "--out", foreign], c.io), 1);
        assert.match(c.err.join("\n"), /not an earlier render/);
        assert.equal(fs.readFileSync(path.join(foreign, "dev-1", "precious"), "utf8"), "keep");
    });

    it("rejects bad usage with exit code 2", () => {
        for (const argv of [[], ["--stack"], ["--stack", "../etc"], ["--bogus", "x"]]) {
            const c = capture();
            assert.equal(main(argv, c.io), 2, argv.join(" "));
            assert.match(c.err.join("\n"), /usage: npm run render/);
        }
        const c = capture();
        assert.equal(main(["--stack", "nosuchstack", "--out", path.join(tmp, "o")], c.io), 1);
        assert.match(c.err.join("\n"), /no stack file/);
    });

    it("runs as `npm run render`", () => {
        const out = path.join(tmp, "npm-out");
        const r = spawnSync("npm", ["run", "--silent", "render", "--", "--stack", "dev", "--out", out], { cwd: REPO, encoding: "utf8", timeout: 120_000 });
        assert.equal(r.status, 0, r.stderr);
        assert.ok(fs.existsSync(path.join(out, "dev-1", "install.sh")));
    });
});
