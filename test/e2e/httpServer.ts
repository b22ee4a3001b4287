/**
 * The one HTTP server a test VM can reach. It listens on 127.0.0.1 (a random port) inside the test process; the VM
 * reaches it as http://10.0.2.100/ through qemu's guestfwd (see vm.ts). It serves static directories mounted at
 * URL prefixes (the apt repository) and handler routes a test adds (e.g. a receiver for Falco's HTTP output).
 */
import * as fs from "fs";
import * as http from "http";
import * as net from "net";
import * as path from "path";

/** How the guest names the test host's HTTP server (qemu guestfwd address). */
export const GUEST_HTTP_HOST = "10.0.2.100";

export interface RequestRecord {
    method: string;
    url: string;
    status: number;
    at: Date;
}

export type RouteHandler = (req: http.IncomingMessage, body: Buffer, res: http.ServerResponse) => void;

export interface TestHttpServer {
    /** Loopback port on this machine; pass it to startVm({ guestHttpPort }). */
    port: number;
    /** Base URL as the guest sees it: http://10.0.2.100 */
    guestBaseUrl: string;
    /** Base URL from this machine: http://127.0.0.1:PORT */
    localBaseUrl: string;
    /** Every request served, in order (for assertions such as "the guest fetched the key"). */
    requests: RequestRecord[];
    /** Serves files under `dir` at URL prefix `prefix` (e.g. "/packages/deb"). GET and HEAD only. */
    mountStatic(prefix: string, dir: string): void;
    /** Handles requests whose path starts with `prefix` (longest prefix wins over static mounts too). */
    route(prefix: string, handler: RouteHandler): void;
    stop(): Promise<void>;
}

export async function startTestHttpServer(): Promise<TestHttpServer> {
    const mounts = new Map<string, { dir?: string; handler?: RouteHandler }>();
    const requests: RequestRecord[] = [];
    const sockets = new Set<net.Socket>();

    const server = http.createServer((req, res) => {
        const chunks: Buffer[] = [];
        req.on("data", (c: Buffer) => chunks.push(c));
        req.on("end", () => {
            res.on("finish", () =>
                requests.push({ method: req.method ?? "", url: req.url ?? "", status: res.statusCode, at: new Date() }),
            );
            try {
                dispatch(req, Buffer.concat(chunks), res);
            } catch (e) {
                res.statusCode = 500;
                res.end(String(e));
            }
        });
    });
    server.on("connection", (s) => {
        sockets.add(s);
        s.on("close", () => sockets.delete(s));
    });

    function dispatch(req: http.IncomingMessage, body: Buffer, res: http.ServerResponse): void {
        const urlPath = decodeURIComponent(new URL(req.url ?? "/", "http://x").pathname);
        const prefix = [...mounts.keys()]
            .filter((p) => urlPath === p || urlPath.startsWith(p.endsWith("/") ? p : `${p}/`))
            .sort((a, b) => b.length - a.length)[0];
        const mount = prefix === undefined ? undefined : mounts.get(prefix);
        if (!mount) return notFound(res);
        if (mount.handler) return mount.handler(req, body, res);
        if (req.method !== "GET" && req.method !== "HEAD") {
            res.statusCode = 405;
            return void res.end();
        }
        const rel = urlPath.slice(prefix!.length).replace(/^\/+/, "");
        const file = path.resolve(mount.dir!, rel);
        if (file !== mount.dir && !file.startsWith(mount.dir! + path.sep)) return notFound(res);
        let st: fs.Stats;
        try {
            st = fs.statSync(file);
        } catch {
            return notFound(res);
        }
        if (!st.isFile()) return notFound(res);
        res.statusCode = 200;
        res.setHeader("Content-Length", st.size);
        res.setHeader("Last-Modified", st.mtime.toUTCString());
        res.setHeader("Content-Type", contentType(file));
        if (req.method === "HEAD") return void res.end();
        fs.createReadStream(file).pipe(res);
    }

    await new Promise<void>((resolve, reject) => {
        server.once("error", reject);
        server.listen(0, "127.0.0.1", () => resolve());
    });
    const port = (server.address() as net.AddressInfo).port;

    return {
        port,
        guestBaseUrl: `http://${GUEST_HTTP_HOST}`,
        localBaseUrl: `http://127.0.0.1:${port}`,
        requests,
        mountStatic(prefix, dir) {
            mounts.set(normalizePrefix(prefix), { dir: path.resolve(dir) });
        },
        route(prefix, handler) {
            mounts.set(normalizePrefix(prefix), { handler });
        },
        stop() {
            return new Promise((resolve) => {
                server.close(() => resolve());
                for (const s of sockets) s.destroy();
            });
        },
    };
}

function normalizePrefix(p: string): string {
    const withSlash = p.startsWith("/") ? p : `/${p}`;
    return withSlash.length > 1 ? withSlash.replace(/\/+$/, "") : withSlash;
}

function notFound(res: http.ServerResponse): void {
    res.statusCode = 404;
    res.end("not found\n");
}

function contentType(file: string): string {
    if (file.endsWith(".deb")) return "application/vnd.debian.binary-package";
    if (file.endsWith(".gz")) return "application/gzip";
    if (file.endsWith(".asc") || file.endsWith(".gpg")) return "application/pgp-keys";
    return "text/plain; charset=utf-8";
}
