/**
 * The e2e TEST STAND-IN falco (test/e2e/standin/falco-standin.c: NOT Falco) compiled for this machine, for the
 * tests that run it outside the VM: the sandbox's preinstalled binary and the stand-in's own conformance test
 * against what a real Falco 0.44.1 printed (test/standin/). Built once per source and version, under the OS's
 * temporary directory; the VM suite builds its packages itself (test/e2e/artifacts.ts).
 */
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

export const STANDIN_SOURCE = path.join(__dirname, "..", "e2e", "standin", "falco-standin.c");

/** Path of a stand-in `falco` binary reporting `version`; compiled on first use (static, as the package's is). */
export function standinBinary(version = "0.44.1"): string {
    const source = fs.readFileSync(STANDIN_SOURCE);
    const key = crypto.createHash("sha256").update(source).update(version).digest("hex").slice(0, 16);
    const dir = path.join(os.tmpdir(), `falco-nodes-standin-${key}`);
    const bin = path.join(dir, "falco");
    if (fs.existsSync(bin)) return bin;
    fs.mkdirSync(dir, { recursive: true });
    const tmp = `${bin}.${process.pid}`;
    const cc = spawnSync("gcc", ["-static", "-O2", "-Wall", "-Wextra", "-Werror", `-DSTANDIN_VERSION="${version}"`, "-o", tmp, STANDIN_SOURCE], {
        encoding: "utf8",
    });
    if (cc.status !== 0) throw new Error(`building the falco stand-in failed (gcc ${cc.status}):\n${cc.stderr}${cc.error ?? ""}`);
    fs.renameSync(tmp, bin);
    return bin;
}
