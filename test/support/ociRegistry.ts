/**
 * A real OCI registry for tests: Debian's `docker-registry` (distribution/distribution 2.8, the registry v2 behind
 * Docker Hub and ghcr-compatible mirrors), serving HTTPS on 127.0.0.1 inside a network namespace of its own that
 * has nothing but loopback: whatever runs in it (`exec`, or a HostSandbox run given `netns`) reaches this registry
 * and no other network at all.
 *
 * Artifacts are pushed the way falcoctl pushes them (falcosecurity/falcoctl pkg/oci/pusher/pusher.go: one tar.gz
 * layer with its Falco media type and an `org.opencontainers.image.title` annotation, a JSON config blob with the
 * artifact's config media type, an OCI image manifest; for a plugin, an OCI image index listing one manifest per
 * platform, packIndex), over the distribution API's real push endpoints with curl: `POST .../blobs/uploads/` then
 * `PUT <location>&digest=...` for each blob, `PUT .../manifests/<tag or digest>` for each manifest.
 */
import { ChildProcess, spawn, spawnSync, SpawnSyncReturns } from "child_process";
import { createHash } from "crypto";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";

/** falcosecurity/falcoctl pkg/oci/constants.go. */
export const FALCO_MEDIA_TYPES = {
    pluginConfig: "application/vnd.cncf.falco.plugin.config.v1+json",
    pluginLayer: "application/vnd.cncf.falco.plugin.layer.v1+tar.gz",
    rulesfileConfig: "application/vnd.cncf.falco.rulesfile.config.v1+json",
    rulesfileLayer: "application/vnd.cncf.falco.rulesfile.layer.v1+tar.gz",
} as const;
const OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json";
const OCI_INDEX = "application/vnd.oci.image.index.v1+json";
const REGISTRY_BINARY = "/usr/bin/docker-registry";

const sha256 = (data: Buffer | string) => `sha256:${createHash("sha256").update(data).digest("hex")}`;

/** Whether this machine can run it: root (network namespaces), docker-registry, openssl, curl, tar. */
export function ociRegistryAvailable(): boolean {
    if (process.getuid?.() !== 0 || !fs.existsSync(REGISTRY_BINARY)) return false;
    return ["openssl", "curl", "tar", "nsenter", "ip"].every((t) => spawnSync("sh", ["-c", `command -v ${t}`]).status === 0);
}

export interface PushedArtifact {
    /** `127.0.0.1:<port>/<repo>`. */
    repository: string;
    tag: string;
    /** The digest the registry serves for the tag (the image index for a plugin). */
    digest: string;
    /** Per platform (`linux/amd64`), the manifest's digest. */
    manifests: Record<string, string>;
    /** Per platform, the layer's digest. */
    layers: Record<string, string>;
}

export class LocalOciRegistry {
    readonly dir: string;
    /** The network namespace file (`nsenter --net=`, HostSandbox `netns`). */
    readonly netns: string;
    /** The CA certificate that signed the registry's certificate (trust it as a system CA would be). */
    readonly caFile: string;
    readonly port: number;
    readonly host: string;
    private process: ChildProcess | undefined;

    constructor(port = 5443) {
        this.dir = fs.mkdtempSync(path.join(os.tmpdir(), "falco-nodes-oci-"));
        this.port = port;
        this.host = `127.0.0.1:${port}`;
        this.netns = path.join(this.dir, "netns");
        this.caFile = path.join(this.dir, "ca.pem");
        fs.writeFileSync(this.netns, "");
        this.check(spawnSync("unshare", [`--net=${this.netns}`, "true"], { encoding: "utf8" }), "unshare --net");
        this.check(this.exec("ip", ["link", "set", "lo", "up"]), "ip link set lo up");
        this.makeCertificates();
        fs.writeFileSync(
            path.join(this.dir, "config.yml"),
            [
                "version: 0.1",
                "log: {level: warn}",
                "storage:",
                `  filesystem: {rootdirectory: ${path.join(this.dir, "storage")}}`,
                "  delete: {enabled: false}",
                "http:",
                `  addr: 127.0.0.1:${port}`,
                `  tls: {certificate: ${path.join(this.dir, "server.pem")}, key: ${path.join(this.dir, "server.key")}}`,
                "",
            ].join("\n"),
        );
    }

    /** Start the registry and wait until its API answers. */
    async start(): Promise<void> {
        const logFile = fs.openSync(path.join(this.dir, "registry.log"), "a");
        this.process = spawn("nsenter", [`--net=${this.netns}`, REGISTRY_BINARY, "serve", path.join(this.dir, "config.yml")], {
            stdio: ["ignore", logFile, logFile],
        });
        fs.closeSync(logFile);
        for (let i = 0; i < 100; i++) {
            if (this.curl(["-o", "/dev/null", `${this.url}/v2/`]).status === 0) return;
            if (this.process.exitCode !== null) break;
            await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error(`docker-registry did not come up: ${fs.readFileSync(path.join(this.dir, "registry.log"), "utf8")}`);
    }

    get url(): string {
        return `https://${this.host}`;
    }

    /** Run a command inside the registry's network namespace. */
    exec(cmd: string, args: string[], options: { env?: NodeJS.ProcessEnv; input?: string } = {}): SpawnSyncReturns<string> {
        return spawnSync("nsenter", [`--net=${this.netns}`, cmd, ...args], { encoding: "utf8", timeout: 120_000, ...options });
    }

    /** Push a Falco plugin as falcoctl does: one manifest per platform, an image index under the tag. */
    pushPlugin(repo: string, tag: string, files: Record<string, Record<string, string>>, config: object): PushedArtifact {
        const manifests: Record<string, string> = {};
        const layers: Record<string, string> = {};
        const entries = Object.entries(files).map(([platform, content]) => {
            const [osName, architecture] = platform.split("/");
            const m = this.pushManifestFor(repo, FALCO_MEDIA_TYPES.pluginConfig, FALCO_MEDIA_TYPES.pluginLayer, `${repo.split("/").pop()}-${tag}-${osName}-${architecture}.tar.gz`, content, config);
            manifests[platform] = m.digest;
            layers[platform] = m.layer;
            return { mediaType: OCI_MANIFEST, digest: m.digest, size: m.size, platform: { architecture, os: osName } };
        });
        const index = Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: OCI_INDEX, manifests: entries }));
        const digest = this.putManifest(repo, tag, OCI_INDEX, index);
        return { repository: `${this.host}/${repo}`, tag, digest, manifests, layers };
    }

    /** Push a Falco rules file as falcoctl does: a single manifest under the tag. */
    pushRulesfile(repo: string, tag: string, content: Record<string, string>, config: object): PushedArtifact {
        const m = this.pushManifestFor(repo, FALCO_MEDIA_TYPES.rulesfileConfig, FALCO_MEDIA_TYPES.rulesfileLayer, `${repo.split("/").pop()}-${tag}.tar.gz`, content, config);
        const digest = this.putManifest(repo, tag, OCI_MANIFEST, m.bytes);
        return { repository: `${this.host}/${repo}`, tag, digest, manifests: { any: digest }, layers: { any: m.layer } };
    }

    /** The file the registry stores blob `digest` in (distribution's filesystem driver layout), to tamper with it. */
    blobPath(digest: string): string {
        const hex = digest.replace(/^sha256:/, "");
        return path.join(this.dir, "storage", "docker/registry/v2/blobs/sha256", hex.slice(0, 2), hex, "data");
    }

    stop(): void {
        if (this.process && this.process.exitCode === null) this.process.kill("SIGTERM");
        spawnSync("umount", [this.netns]);
        fs.rmSync(this.dir, { recursive: true, force: true });
    }

    private pushManifestFor(repo: string, configType: string, layerType: string, title: string, content: Record<string, string>, config: object) {
        const layer = this.tarGz(content);
        const configBytes = Buffer.from(JSON.stringify(config));
        const layerDigest = this.pushBlob(repo, layer);
        const configDigest = this.pushBlob(repo, configBytes);
        const bytes = Buffer.from(
            JSON.stringify({
                schemaVersion: 2,
                mediaType: OCI_MANIFEST,
                config: { mediaType: configType, digest: configDigest, size: configBytes.length },
                layers: [{ mediaType: layerType, digest: layerDigest, size: layer.length, annotations: { "org.opencontainers.image.title": title } }],
            }),
        );
        const digest = this.putManifest(repo, sha256(bytes), OCI_MANIFEST, bytes);
        return { digest, size: bytes.length, bytes, layer: layerDigest };
    }

    /** tar.gz of the given files (name: content), owned by root, as a release tarball would be. */
    private tarGz(content: Record<string, string>): Buffer {
        const src = fs.mkdtempSync(path.join(this.dir, "layer-"));
        for (const [name, text] of Object.entries(content)) fs.writeFileSync(path.join(src, name), text, { mode: 0o644 });
        const out = `${src}.tar.gz`;
        this.check(spawnSync("tar", ["-czf", out, "--owner=0", "--group=0", "-C", src, ...Object.keys(content)], { encoding: "utf8" }), "tar");
        return fs.readFileSync(out);
    }

    private pushBlob(repo: string, data: Buffer): string {
        const digest = sha256(data);
        const file = path.join(this.dir, `blob-${digest.slice(7, 19)}`);
        fs.writeFileSync(file, data);
        const start = this.curl(["-X", "POST", "-D", "-", "-o", "/dev/null", `${this.url}/v2/${repo}/blobs/uploads/`]);
        this.check(start, `start upload to ${repo}`);
        const location = /^location: *(\S+)/im.exec(start.stdout)?.[1];
        if (!location) throw new Error(`no Location in the upload response: ${start.stdout}`);
        const target = new URL(location, this.url);
        target.searchParams.set("digest", digest);
        this.check(
            this.curl(["-X", "PUT", "-H", "Content-Type: application/octet-stream", "--data-binary", `@${file}`, "-o", "/dev/null", target.toString()]),
            `upload ${digest}`,
        );
        return digest;
    }

    private putManifest(repo: string, reference: string, mediaType: string, bytes: Buffer): string {
        const file = path.join(this.dir, `manifest-${Date.now()}-${Math.random().toString(36).slice(2)}`);
        fs.writeFileSync(file, bytes);
        const r = this.curl(["-X", "PUT", "-D", "-", "-o", "/dev/null", "-H", `Content-Type: ${mediaType}`, "--data-binary", `@${file}`, `${this.url}/v2/${repo}/manifests/${reference}`]);
        this.check(r, `put manifest ${repo}:${reference}`);
        const served = /^docker-content-digest: *(\S+)/im.exec(r.stdout)?.[1];
        if (served !== sha256(bytes)) throw new Error(`the registry stored ${repo}:${reference} as ${served}, not ${sha256(bytes)}`);
        return served;
    }

    private curl(args: string[]): SpawnSyncReturns<string> {
        return this.exec("curl", ["-fsS", "--max-time", "30", "--cacert", this.caFile, ...args]);
    }

    private makeCertificates(): void {
        const d = (f: string) => path.join(this.dir, f);
        const run = (args: string[]) => this.check(spawnSync("openssl", args, { encoding: "utf8" }), `openssl ${args[0]}`);
        run(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", d("ca.key"), "-out", d("ca.pem"), "-days", "2", "-subj", "/CN=falco-nodes test CA"]);
        run(["req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", d("server.key"), "-out", d("server.csr"), "-subj", "/CN=127.0.0.1"]);
        fs.writeFileSync(d("ext.cnf"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n");
        run(["x509", "-req", "-in", d("server.csr"), "-CA", d("ca.pem"), "-CAkey", d("ca.key"), "-CAcreateserial", "-out", d("server.pem"), "-days", "2", "-extfile", d("ext.cnf")]);
    }

    private check(r: SpawnSyncReturns<string>, what: string): void {
        if (r.status !== 0) throw new Error(`${what} failed (${r.status}): ${r.stderr}${r.error ?? ""}`);
    }
}

/** What `pushK8sAuditArtifacts` put in each plugin build's one file, for `platform` (`linux/amd64`). */
export const pluginBuildContent = (lib: string, platform: string) => `${lib} for ${platform}\n`;

/**
 * k8sAudit's three artifacts at their default versions below `prefix`, laid out as falcosecurity/plugins is
 * (`plugin/k8saudit`, `plugin/json`, `ruleset/k8saudit`): each plugin with a build for `linux/<goarch>` and a
 * decoy for another architecture, which falcoctl must not pick; the rules file holding `rules`.
 */
export function pushK8sAuditArtifacts(
    registry: LocalOciRegistry,
    prefix: string,
    goarch: string,
    versions: { k8saudit: string; json: string; rules: string },
    rules: string,
): { k8saudit: PushedArtifact; json: PushedArtifact; rules: PushedArtifact } {
    const other = goarch === "amd64" ? "arm64" : "amd64";
    const builds = (lib: string) => ({
        [`linux/${goarch}`]: { [lib]: pluginBuildContent(lib, `linux/${goarch}`) },
        [`linux/${other}`]: { [lib]: pluginBuildContent(lib, `linux/${other}`) },
    });
    return {
        k8saudit: registry.pushPlugin(`${prefix}/plugin/k8saudit`, versions.k8saudit, builds("libk8saudit.so"), { name: "k8saudit", version: versions.k8saudit }),
        json: registry.pushPlugin(`${prefix}/plugin/json`, versions.json, builds("libjson.so"), { name: "json", version: versions.json }),
        rules: registry.pushRulesfile(`${prefix}/ruleset/k8saudit`, versions.rules, { "k8s_audit_rules.yaml": rules }, { name: "k8saudit-rules", version: versions.rules }),
    };
}
