/**
 * A throwaway "other program" that installs the packed falco-nodes tarball, offline, the way a user's program
 * would get it from a registry: `npm ci` from a lockfile that pins every dependency to the versions this
 * repository's lockfile already put in the npm cache. Nothing is linked to this repository's node_modules
 * (npm prunes through links), so the consumer sees only what the tarball declares and ships.
 */
import { spawnSync } from "child_process";
import * as crypto from "crypto";
import * as fs from "fs";
import * as path from "path";
import { REPO_ROOT } from "./program";

export function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): string {
    const r = spawnSync(cmd, args, { cwd, encoding: "utf8", env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}) in ${cwd}:\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
}

/**
 * Write a consumer project in `dir` depending on the tarball (and on `extraDeps`, names of this repository's
 * dependencies the consumer uses directly), with a lockfile built from this repository's.
 */
export function writeConsumer(dir: string, tarball: string, extraDeps: string[]): void {
    const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8"));
    const lock = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package-lock.json"), "utf8"));
    const tgz = path.basename(tarball);
    fs.copyFileSync(tarball, path.join(dir, tgz));
    const integrity = "sha512-" + crypto.createHash("sha512").update(fs.readFileSync(tarball)).digest("base64");
    const dependencies: Record<string, string> = { [pkg.name]: `file:${tgz}` };
    for (const d of extraDeps) dependencies[d] = pkg.dependencies[d];
    const packages: Record<string, unknown> = { "": { name: "consumer", version: "1.0.0", dependencies } };
    for (const [k, v] of Object.entries(lock.packages as Record<string, { dev?: boolean }>)) if (k && !v.dev) packages[k] = v;
    packages[`node_modules/${pkg.name}`] = {
        version: pkg.version,
        resolved: `file:${tgz}`,
        integrity,
        license: pkg.license,
        dependencies: pkg.dependencies,
    };
    fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true, dependencies }, null, 2));
    fs.writeFileSync(path.join(dir, "package-lock.json"), JSON.stringify({ name: "consumer", version: "1.0.0", lockfileVersion: 3, requires: true, packages }, null, 2));
}

/** Install the consumer from its lockfile, from the npm cache only. */
export function installConsumer(dir: string): void {
    run("npm", ["ci", "--offline", "--no-audit", "--no-fund", "--ignore-scripts"], dir);
}
