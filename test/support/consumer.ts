/**
 * A throwaway "other program" that installs the packed falco-nodes tarball the way a user's program gets the
 * package: from a file for falco-nodes itself, everything else by version from the npm registry (or npm's cache),
 * next to the consumer's own pins, which may differ from this repository's. Nothing is linked to this
 * repository's node_modules (npm prunes through links), so the consumer sees only what the tarball declares.
 */
import { spawnSync } from "child_process";
import * as fs from "fs";
import * as path from "path";

export function run(cmd: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): string {
    const r = spawnSync(cmd, args, { cwd, encoding: "utf8", env: { ...process.env, ...env }, maxBuffer: 64 * 1024 * 1024 });
    if (r.status !== 0) throw new Error(`${cmd} ${args.join(" ")} failed (${r.status}) in ${cwd}:\n${r.stdout}\n${r.stderr}`);
    return r.stdout;
}

/** Write a consumer project in `dir` that depends on the tarball and on `pins` (name -> exact version). */
export function writeConsumer(dir: string, tarball: string, pins: Record<string, string>): void {
    const tgz = path.basename(tarball);
    fs.copyFileSync(tarball, path.join(dir, tgz));
    const dependencies = { "falco-nodes": `file:${tgz}`, ...pins };
    fs.writeFileSync(path.join(dir, "package.json"), JSON.stringify({ name: "consumer", version: "1.0.0", private: true, dependencies }, null, 2));
}

/** `npm install` in the consumer: npm's cache first, the registry for what it lacks; no install scripts. */
export function installConsumer(dir: string): void {
    run("npm", ["install", "--prefer-offline", "--no-audit", "--no-fund", "--ignore-scripts"], dir);
}
