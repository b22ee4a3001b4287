/**
 * A signed apt repository made at test time, laid out like Falco's (`<url> stable main`, key at
 * /repo/falcosecurity-packages.asc), holding the TEST STAND-IN falco packages. The signing key is a throwaway one,
 * generated per repository in a temporary GNUPGHOME and deleted by stop(). Served by the test process's HTTP server
 * (httpServer.ts); the guest reaches it at http://10.0.2.100/.
 */
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import { buildStandinDebs } from "./artifacts";
import { requireTools, runChecked } from "./exec";
import { startTestHttpServer, TestHttpServer } from "./httpServer";

export const APT_SUITE = "stable";
export const APT_COMPONENT = "main";
const REPO_PREFIX = "/packages/deb";
const KEY_PATH = "/repo/falcosecurity-packages.asc";

export interface AptRepo {
    /** Repository URL as the guest sees it, e.g. http://10.0.2.100/packages/deb (suite "stable", component "main"). */
    url: string;
    suite: string;
    component: string;
    /** Armored public key URL as the guest sees it (like https://falco.org/repo/falcosecurity-packages.asc). */
    keyUrl: string;
    /** The signing key's fingerprint: 40 upper-case hex digits, no spaces. */
    fingerprint: string;
    /** The armored public key itself. */
    publicKey: string;
    /** The .deb files currently published. */
    debPaths: string[];
    /** The HTTP server it is served from: pass `server.port` to startVm({ guestHttpPort }). */
    server: TestHttpServer;
    /** Replaces the published packages (e.g. add 0.44.2 mid-test) and re-signs the indexes. */
    publish(debPaths: readonly string[]): Promise<void>;
    /** Stops the server (if the repo started it) and deletes the repository and its key. */
    stop(): Promise<void>;
}

export interface AptRepoOptions {
    /** Packages to publish. Default: the stand-in falco at 0.44.1 and 0.44.2. */
    debs?: readonly string[];
    /** Serve from this server instead of starting one (it is then left running by stop()). */
    server?: TestHttpServer;
}

export async function startAptRepo(opts: AptRepoOptions = {}): Promise<AptRepo> {
    await requireTools(["gpg", "gpgconf", "apt-ftparchive", "gzip"]);
    const debs = opts.debs ?? (await buildStandinDebs());
    const work = fs.mkdtempSync(path.join(os.tmpdir(), "e2e-apt-"));
    const gnupgHome = path.join(work, "gnupg");
    const root = path.join(work, "www");
    const repoDir = path.join(root, "deb");
    fs.mkdirSync(gnupgHome, { mode: 0o700 });
    fs.mkdirSync(repoDir, { recursive: true });
    const env = { ...process.env, GNUPGHOME: gnupgHome };
    const gpg = (args: string[]): Promise<string> =>
        runChecked("gpg", ["--batch", "--no-tty", "--pinentry-mode", "loopback", "--passphrase", "", ...args], {
            env,
            timeoutMs: 60_000,
        });

    let server = opts.server;
    const ownServer = !server;
    try {
        await gpg(["--quick-gen-key", "falco-nodes e2e stand-in repository <e2e@invalid.example>", "ed25519", "sign", "never"]);
        const colons = await gpg(["--with-colons", "--list-keys"]);
        const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(colons)?.[1];
        if (!fingerprint) throw new Error(`no fingerprint in gpg output:\n${colons}`);
        const publicKey = await gpg(["--armor", "--export", fingerprint]);
        fs.mkdirSync(path.join(root, path.dirname(KEY_PATH)), { recursive: true });
        fs.writeFileSync(path.join(root, KEY_PATH), publicKey);

        const publish = async (paths: readonly string[]): Promise<void> => {
            const pool = path.join(repoDir, "pool", APT_COMPONENT, "f", "falco");
            const dists = path.join(repoDir, "dists", APT_SUITE);
            const bin = path.join(dists, APT_COMPONENT, "binary-amd64");
            fs.rmSync(path.join(repoDir, "pool"), { recursive: true, force: true });
            fs.rmSync(path.join(repoDir, "dists"), { recursive: true, force: true });
            fs.mkdirSync(pool, { recursive: true });
            fs.mkdirSync(bin, { recursive: true });
            for (const p of paths) fs.copyFileSync(p, path.join(pool, path.basename(p)));
            const packages = await runChecked("apt-ftparchive", ["packages", "pool"], { cwd: repoDir });
            fs.writeFileSync(path.join(bin, "Packages"), packages);
            await runChecked("gzip", ["-9kn", path.join(bin, "Packages")]);
            const set = (k: string, v: string): string[] => ["-o", `APT::FTPArchive::Release::${k}=${v}`];
            const release = await runChecked(
                "apt-ftparchive",
                [
                    ...set("Origin", "falco-nodes-e2e"),
                    ...set("Label", "falco-nodes e2e stand-in repository"),
                    ...set("Suite", APT_SUITE),
                    ...set("Codename", APT_SUITE),
                    ...set("Architectures", "amd64"),
                    ...set("Components", APT_COMPONENT),
                    "release",
                    ".",
                ],
                { cwd: dists },
            );
            fs.writeFileSync(path.join(dists, "Release"), release);
            await gpg(["--yes", "-u", fingerprint, "--clearsign", "-o", path.join(dists, "InRelease"), path.join(dists, "Release")]);
            await gpg(["--yes", "-u", fingerprint, "--armor", "--detach-sign", "-o", path.join(dists, "Release.gpg"), path.join(dists, "Release")]);
            repo.debPaths = [...paths];
        };

        server = server ?? (await startTestHttpServer());
        server.mountStatic(REPO_PREFIX, repoDir);
        server.mountStatic(KEY_PATH, path.join(root, KEY_PATH));
        const srv = server;
        const repo: AptRepo = {
            url: `${srv.guestBaseUrl}${REPO_PREFIX}`,
            suite: APT_SUITE,
            component: APT_COMPONENT,
            keyUrl: `${srv.guestBaseUrl}${KEY_PATH}`,
            fingerprint,
            publicKey,
            debPaths: [],
            server: srv,
            publish,
            async stop() {
                if (ownServer) await srv.stop();
                await runChecked("gpgconf", ["--kill", "all"], { env }).catch(() => undefined);
                fs.rmSync(work, { recursive: true, force: true });
            },
        };
        await publish(debs);
        return repo;
    } catch (e) {
        if (ownServer && server) await server.stop();
        await runChecked("gpgconf", ["--kill", "all"], { env }).catch(() => undefined);
        fs.rmSync(work, { recursive: true, force: true });
        throw e;
    }
}
