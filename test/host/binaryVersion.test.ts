/**
 * converge's `binary_version`, run on its own (sourcing the static script only defines functions), over what a
 * real Falco 0.44.1 prints for `--version` (shared/reference/falco/outputs/version.*): the text form, and the JSON
 * form a host config with `json_output: true` makes it print. Reading only the text form made every converge
 * after the first fail on a real host ("reports Falco version 'none'").
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";
import { CONVERGE_SCRIPT } from "../../components/host/installScript";
import { referencePath } from "../support/reference";
import { standinBinary } from "../support/standin";
import { tempDir } from "../support/systemd";

describe("converge.sh: binary_version reads the version Falco reports", () => {
    let dir: string;
    let cleanup: () => void;
    let script: string;
    before(() => {
        ({ dir, cleanup } = tempDir("falco-nodes-version-"));
        script = path.join(dir, "converge.sh");
        fs.writeFileSync(script, CONVERGE_SCRIPT);
    });
    after(() => cleanup());

    const versionOf = (binary: string) => {
        const r = spawnSync("bash", ["-c", 'source "$1"; binary_version "$2"', "test", script, binary], { encoding: "utf8" });
        assert.equal(r.status, 0, r.stderr);
        return r.stdout;
    };
    /** A binary that prints one captured output whatever it is asked, and records its arguments. */
    const printing = (name: string, rc = 0) => {
        const out = referencePath("falco", "outputs", `${name}.stdout`);
        const err = referencePath("falco", "outputs", `${name}.stderr`);
        const bin = path.join(dir, name);
        fs.writeFileSync(bin, `#!/bin/bash\nprintf '%s\\n' "$*" >"$0.args"\ncat '${out}'\ncat '${err}' >&2\nexit ${rc}\n`, { mode: 0o755 });
        return bin;
    };

    it("reads the text form (`-c /dev/null`), and asks with -c /dev/null so the host's config cannot change it", () => {
        const bin = printing("version.noconfig");
        assert.equal(versionOf(bin), "0.44.1");
        assert.equal(fs.readFileSync(`${bin}.args`, "utf8"), "-c /dev/null --version\n");
    });

    it("reads the JSON form too (a binary that ignores -c and honours json_output: true)", () => {
        assert.equal(versionOf(printing("version.json_output")), "0.44.1");
    });

    it("is empty when the binary fails or prints no version", () => {
        assert.equal(versionOf(printing("version.json_output", 1)), "");
        assert.equal(versionOf(printing("dryrun.ok")), "");
        assert.equal(versionOf(path.join(dir, "missing")), "");
    });

    it("reads the stand-in's version while /etc-like config with json_output: true would make `--version` JSON", () => {
        const standin = standinBinary("0.44.1");
        assert.equal(versionOf(standin), "0.44.1");
        // The premise: with such a config, a plain `--version` is JSON (as real Falco's, outputs/version.json_output.*).
        const config = path.join(dir, "json.yaml");
        fs.writeFileSync(config, "json_output: true\n");
        const plain = spawnSync(standin, ["-c", config, "--version"], { encoding: "utf8" });
        assert.match(plain.stdout, /^\{"default_driver_version":.*"falco_version":"0\.44\.1"/);
    });
});
