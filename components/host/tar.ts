/**
 * A deterministic gzip'd tar of small files: the bundle's payload.
 *
 * Written here rather than with tar-stream's `pack()` because that API is stream-based and asynchronous, while
 * `renderBundle` must stay a pure synchronous function. The format is plain POSIX ustar (regular files only,
 * names under 100 bytes), which GNU tar, busybox tar and tar-stream all read (the tests unpack it with both
 * GNU tar and tar-stream). Deterministic: entries sorted by name, mtime 0, uid/gid 0 `root`, fixed modes,
 * gzip header with mtime 0 and a fixed OS byte, so the same input gives the same bytes on any machine.
 */
import { createHash } from "crypto";
import * as zlib from "zlib";

export interface TarEntry {
    /** Relative path inside the archive (`params/falco_version`): no leading `/`, no `..`, < 100 bytes. */
    name: string;
    content: string | Buffer;
}

const BLOCK = 512;

function octal(value: number, width: number): string {
    // width includes the terminating NUL
    return value.toString(8).padStart(width - 1, "0") + "\0";
}

function header(name: string, size: number): Buffer {
    const h = Buffer.alloc(BLOCK, 0);
    h.write(name, 0, 100, "utf8");
    h.write(octal(0o600, 8), 100, "ascii"); // mode: the script unpacks into a private 0700 directory
    h.write(octal(0, 8), 108, "ascii"); // uid
    h.write(octal(0, 8), 116, "ascii"); // gid
    h.write(octal(size, 12), 124, "ascii");
    h.write(octal(0, 12), 136, "ascii"); // mtime
    h.write("        ", 148, "ascii"); // checksum field counts as spaces while summing
    h.write("0", 156, "ascii"); // regular file
    h.write("ustar\0", 257, "ascii");
    h.write("00", 263, "ascii");
    h.write("root", 265, "ascii");
    h.write("root", 297, "ascii");
    h.write(octal(0, 8), 329, "ascii");
    h.write(octal(0, 8), 337, "ascii");
    let sum = 0;
    for (const byte of h) sum += byte;
    h.write(sum.toString(8).padStart(6, "0") + "\0 ", 148, "ascii");
    return h;
}

/** Entries as tar blocks, sorted by name, without the end-of-archive marker. */
function tarBlocks(entries: TarEntry[], names = new Set<string>()): Buffer {
    const parts: Buffer[] = [];
    for (const entry of [...entries].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
        if (!/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(entry.name) || entry.name.split("/").includes("..") ||
            Buffer.byteLength(entry.name) >= 100)
            throw new Error(`tar entry name ${JSON.stringify(entry.name)} is not a short plain relative path`);
        if (names.has(entry.name)) throw new Error(`duplicate tar entry ${entry.name}`);
        names.add(entry.name);
        const content = typeof entry.content === "string" ? Buffer.from(entry.content, "utf8") : entry.content;
        parts.push(header(entry.name, content.length), content);
        const pad = (BLOCK - (content.length % BLOCK)) % BLOCK;
        if (pad) parts.push(Buffer.alloc(pad, 0));
    }
    return Buffer.concat(parts);
}

const END_OF_ARCHIVE = Buffer.alloc(2 * BLOCK, 0);

/** The uncompressed tar. */
export function deterministicTar(entries: TarEntry[]): Buffer {
    return Buffer.concat([tarBlocks(entries), END_OF_ARCHIVE]);
}

function gzip(data: Buffer): Buffer {
    const gz = zlib.gzipSync(data, { level: 6 });
    // Node writes mtime 0 already; the OS byte depends on the platform zlib was built for: pin it to Unix (3).
    gz[9] = 3;
    return gz;
}

/** The gzip'd tar, byte-identical for the same entries. */
export function deterministicTarGz(entries: TarEntry[]): Buffer {
    return gzip(deterministicTar(entries));
}

/** Compressed `shared` parts by content: most hosts of a fleet share all but a few small files. */
const MAX_SHARED = 32;
const sharedMembers = new Map<string, Buffer>();

/**
 * One tar archive of `shared` and `own` entries, as two gzip members: the `shared` entries (compressed once per
 * content and kept), then the `own` ones with the end-of-archive marker. A gzip file is a series of members that
 * decompress to their concatenation (RFC 1952, 2.2), which is how gzip(1), and so `tar -xz`, and zlib's gunzip
 * read it: one archive with every entry. Byte-identical for the same entries in the same split.
 */
export function deterministicTarGzSplit(shared: TarEntry[], own: TarEntry[]): Buffer {
    const names = new Set<string>();
    const sharedTar = tarBlocks(shared, names);
    const ownTar = tarBlocks(own, names);
    const key = createHash("sha256").update(sharedTar).digest("hex");
    let member = sharedMembers.get(key);
    if (!member) {
        member = gzip(sharedTar);
        if (sharedMembers.size >= MAX_SHARED) sharedMembers.clear();
        sharedMembers.set(key, member);
    }
    return Buffer.concat([member, gzip(Buffer.concat([ownTar, END_OF_ARCHIVE]))]);
}
