/**
 * .ci/fetch-reference: how a machine without ../shared/reference (a GitHub runner) gets the reference data the tests
 * read. Its manifest must describe exactly the reference folder this suite runs against, by sha256; every URL must
 * be a raw file at one of the full commits the reference README names; and the script must write the same bytes,
 * refuse anything else, and write nothing when one file is wrong. Offline here: `--mirror` serves the URLs from a
 * directory laid out like raw.githubusercontent.com.
 */
import * as assert from "assert";
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { REPO_ROOT } from "../support/program";
import { referencePath } from "../support/reference";

const SCRIPT = path.join(REPO_ROOT, ".ci", "fetch-reference");
const RAW = "https://raw.githubusercontent.com/";
interface Entry {
    path: string;
    sha256: string;
    url?: string;
    fixture?: string;
    extract?: string;
}
const manifest = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, ".ci", "reference-manifest.json"), "utf8")) as { files: Entry[] };
const sha256 = (b: Buffer | string) => crypto.createHash("sha256").update(b).digest("hex");

function walk(dir: string, root = dir, out: string[] = []): string[] {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) walk(p, root, out);
        else out.push(path.relative(root, p).split(path.sep).join("/"));
    }
    return out;
}

function fetchReference(args: string[]) {
    const r = spawnSync(process.execPath, [SCRIPT, ...args], { encoding: "utf8" });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/**
 * The header Falco keeps a schema in, in the form of upstream's userspace/engine/rule_json_schema.h and
 * userspace/falco/config_json_schema.h (falcosecurity/falco): licence comment, `#define LONG_STRING_CONST(...)
 * #__VA_ARGS__`, then `const char <name>[] = LONG_STRING_CONST(` with the JSON indented by 4 (tabs in places), and
 * `);  // LONG_STRING_CONST macro`.
 */
function falcoSchemaHeader(json: string, name: string): string {
    const body = JSON.stringify(JSON.parse(json), null, 4).replace(/\n {16}"type"/g, '\n\t                "type"');
    return [
        "// SPDX-License-Identifier: Apache-2.0",
        "/*",
        "Copyright (C) 2024 The Falco Authors.",
        "*/",
        "",
        "#pragma once",
        "",
        "#define LONG_STRING_CONST(...) #__VA_ARGS__",
        "",
        `const char ${name}[] = LONG_STRING_CONST(`,
        "",
        body,
        "",
        ");  // LONG_STRING_CONST macro",
        "",
    ].join("\n");
}

/** A raw.githubusercontent.com look-alike holding, at each manifest URL, what upstream serves there. */
function buildMirror(): string {
    const mirror = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-mirror-"));
    for (const e of manifest.files.filter((x) => x.url)) {
        const file = path.join(mirror, e.url!.slice(RAW.length));
        fs.mkdirSync(path.dirname(file), { recursive: true });
        const ref = fs.readFileSync(referencePath(e.path), "utf8");
        fs.writeFileSync(file, e.extract ? falcoSchemaHeader(ref, path.basename(e.url!, ".h").replace("_json_schema", "_schema_string")) : ref);
    }
    return mirror;
}

describe(".ci/fetch-reference", function () {
    this.timeout(60_000);
    const tmp: string[] = [];
    const scratch = (prefix: string) => {
        const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
        tmp.push(d);
        return d;
    };
    after(() => tmp.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));

    it("the manifest lists every file of ../shared/reference (its README aside) with that file's sha256", () => {
        const onDisk = walk(referencePath()).filter((p) => p !== "README.md").sort();
        assert.deepStrictEqual(manifest.files.map((e) => e.path).sort(), onDisk);
        for (const e of manifest.files) assert.strictEqual(sha256(fs.readFileSync(referencePath(e.path))), e.sha256, e.path);
        const r = fetchReference(["--check", referencePath()]);
        assert.strictEqual(r.status, 0, r.stderr);
    });

    it("every URL is a raw file at a full commit the reference README names; the rest are committed copies of the captured outputs", () => {
        const readme = fs.readFileSync(referencePath("README.md"), "utf8");
        const pinned = new Set(readme.match(/\b[0-9a-f]{40}\b/g));
        for (const e of manifest.files) {
            assert.ok(!!e.url !== !!e.fixture, `${e.path}: exactly one of url and fixture`);
            if (e.url) {
                const m = /^https:\/\/raw\.githubusercontent\.com\/falcosecurity\/(falco|rules|charts)\/([0-9a-f]{40})\//.exec(e.url);
                assert.ok(m, `${e.path}: ${e.url} is not a pinned raw URL`);
                assert.ok(pinned.has(m[2]), `${e.path}: commit ${m[2]} is not one the reference README lists`);
            } else {
                // Only what has no upstream file: the outputs of a real Falco 0.44.1.
                assert.match(e.path, /^falco\/(fields\.txt|events\.md|outputs\/)/);
                assert.strictEqual(e.fixture, `test/fixtures/reference-captured/${e.path}`);
                assert.strictEqual(sha256(fs.readFileSync(path.join(REPO_ROOT, e.fixture!))), e.sha256, `${e.fixture} differs from the reference`);
            }
        }
    });

    it("fetches every file, byte for byte, and a second run changes nothing", () => {
        const mirror = buildMirror();
        tmp.push(mirror);
        const dest = path.join(scratch("falco-nodes-ref-"), "reference");
        const r = fetchReference(["--dest", dest, "--mirror", mirror]);
        assert.strictEqual(r.status, 0, r.stderr);
        assert.match(r.stdout, new RegExp(`wrote ${manifest.files.length} of ${manifest.files.length} files`));
        for (const e of manifest.files) assert.ok(fs.readFileSync(path.join(dest, e.path)).equals(fs.readFileSync(referencePath(e.path))), e.path);
        assert.strictEqual(fetchReference(["--check", dest]).status, 0);
        const again = fetchReference(["--dest", dest, "--mirror", mirror]);
        assert.strictEqual(again.status, 0, again.stderr);
        assert.match(again.stdout, /already match/);
    });

    it("refuses a file with another sha256, names it, and writes nothing", () => {
        const mirror = buildMirror();
        tmp.push(mirror);
        const victim = manifest.files.find((e) => e.path === "falco/falco_rules.yaml")!;
        fs.appendFileSync(path.join(mirror, victim.url!.slice(RAW.length)), "\n- macro: planted\n  condition: always_true\n");
        const dest = path.join(scratch("falco-nodes-ref-"), "reference");
        const r = fetchReference(["--dest", dest, "--mirror", mirror]);
        assert.notStrictEqual(r.status, 0);
        assert.match(r.stderr, /falco\/falco_rules\.yaml from https:\/\/raw\.githubusercontent\.com\/falcosecurity\/rules\/c72713ee/);
        assert.ok(r.stderr.includes(`expected ${victim.sha256}`), r.stderr);
        assert.ok(!fs.existsSync(dest), "nothing is written when one file is wrong");
    });

    it("a schema header that changed shape is an error, not a guess", () => {
        const mirror = buildMirror();
        tmp.push(mirror);
        const schema = manifest.files.find((e) => e.path === "falco/rules.schema.json")!;
        fs.writeFileSync(path.join(mirror, schema.url!.slice(RAW.length)), 'const char* rule_schema_string = R"({"type": "array"})";\n');
        const r = fetchReference(["--dest", path.join(scratch("falco-nodes-ref-"), "reference"), "--mirror", mirror]);
        assert.notStrictEqual(r.status, 0);
        assert.match(r.stderr, /rule_json_schema\.h: no `= LONG_STRING_CONST\(<json>\);` in it/);
    });

    it("--check fails on a missing or edited file and names it", () => {
        const dest = path.join(scratch("falco-nodes-ref-"), "reference");
        fs.cpSync(referencePath(), dest, { recursive: true });
        fs.rmSync(path.join(dest, "falco", "fields.txt"));
        fs.appendFileSync(path.join(dest, "charts", "falco-values.yaml"), "# edited\n");
        const r = fetchReference(["--check", dest]);
        assert.strictEqual(r.status, 1);
        assert.match(r.stderr, /falco\/fields\.txt: missing or not sha256/);
        assert.match(r.stderr, /charts\/falco-values\.yaml: missing or not sha256/);
    });
});
