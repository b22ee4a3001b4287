/**
 * Decode an assembled host script's payload with tar-stream (an independent tar reader, so the tests also check
 * that the hand-written ustar encoder produces archives others can read).
 */
import * as tar from "tar-stream";
import * as zlib from "zlib";
import { splitScript } from "../../components/host/installScript";

export interface DecodedPayload {
    /** Every entry's name -> content. */
    entries: Map<string, Buffer>;
    /** Entry headers in archive order. */
    headers: tar.Header[];
    params: Record<string, string>;
    /** manifest.tsv rows. */
    manifest: { group: string; mode: string; path: string; file: string }[];
    /** Content of the payload file behind `path` (the first row with that path). */
    content(path: string, group?: string): string | undefined;
}

export async function decodePayload(script: string): Promise<DecodedPayload> {
    const gz = splitScript(script).payload;
    const raw = zlib.gunzipSync(gz);
    const entries = new Map<string, Buffer>();
    const headers: tar.Header[] = [];
    await new Promise<void>((resolve, reject) => {
        const extract = tar.extract();
        extract.on("entry", (header, stream, next) => {
            const chunks: Buffer[] = [];
            headers.push(header);
            stream.on("data", (c) => chunks.push(c as Buffer));
            stream.on("end", () => {
                entries.set(header.name, Buffer.concat(chunks));
                next();
            });
            stream.resume();
        });
        extract.on("finish", resolve);
        extract.on("error", reject);
        extract.end(raw);
    });
    const params: Record<string, string> = {};
    for (const [name, value] of entries) if (name.startsWith("params/")) params[name.slice(7)] = value.toString("utf8");
    const manifest = (entries.get("manifest.tsv")?.toString("utf8") ?? "")
        .split("\n")
        .filter(Boolean)
        .map((line) => {
            const [group, mode, path, file] = line.split("\t");
            return { group, mode, path, file };
        });
    return {
        entries,
        headers,
        params,
        manifest,
        content(path: string, group?: string) {
            const row = manifest.find((r) => r.path === path && (group === undefined || r.group === group));
            return row ? entries.get(row.file)?.toString("utf8") : undefined;
        },
    };
}
