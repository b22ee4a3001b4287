/**
 * The syscall side of the rule model: turns an strace of a tamper row (recorded on the e2e VM by
 * test/e2e/recordTamperTraces.test.ts) into the events a real Falco 0.44 would evaluate, and extracts the fields our
 * rules read, the way falcosecurity/libs does:
 * - event types and parameter names as in events.md (`falco --list-events`); the exit event of each syscall;
 * - `evt.arg.<name>`: the parameter rendered as libsinsp renders it (`sinsp_evt::get_param_as_str`): an FD as the
 *   file's path, a PID as the target's comm, a SIGTYPE as its name, flags by name, and an FSRELPATH resolved
 *   against its dirfd (`sinsp_evt::get_base_dir`: the dirfd's path, or the cwd for AT_FDCWD);
 * - `fs.path.name/source/target` as `userspace/libsinsp/sinsp_filtercheck_fspath.cpp` extracts them: only when the
 *   syscall succeeded, from the raw path argument, a relative path prefixed with the thread's cwd (not the dirfd),
 *   and for link/linkat `source` = the new name, `target` = the old one;
 * - `fd.name`, `fd.num`, `fd.typechar` of the fd an open returned (strace -y prints its path), and for a connected
 *   unix socket the socktuple form `<src>-><dst> <path>` (event.cpp, PT_SOCKTUPLE with AF_UNIX);
 * - `evt.is_open_write` / `evt.is_open_read`: the open flags include O_WRONLY or O_RDWR / O_RDONLY or O_RDWR;
 * - process fields from the process tree the trace shows (clone/fork/vfork return values, execve): `proc.name` is
 *   the comm (basename of the executed file, 15 bytes), `proc.exepath` the canonical path the recorder resolved
 *   (execve's `trusted_exepath`), `proc.args`, `proc.cmdline`, `proc.env[...]`, the parent and ancestors.
 * What strace cannot show is taken from the fixture: each executable's canonical path, and for a process the
 * kernel started (module autoload) its parent's comm, exe and ppid. The VM runs no container engine, so every
 * process has `container.id` "host" (the container plugin's value outside containers), unless a row evaluates a
 * process as a node would run it (`ProcRewrite`: another parent, the program a stand-in stands for, a container).
 */
import * as fs from "fs";
import * as path from "path";
import { Extractor, FieldValue } from "./falcoCondition";

export interface TraceFixture {
    id: string;
    /** sha256 of the snippet the trace was recorded from. */
    snippetSha256?: string;
    snippetOutput: string;
    exepaths: Record<string, string>;
    kernelParent?: { comm: string; exe: string; ppid: number } | string;
}

interface Proc {
    pid: number;
    parent?: Proc;
    comm: string;
    exepath: string;
    argv: string[];
    env: string[];
    cwd: string;
    /** Set for a process the row evaluates as in a container (TraceOptions.rewrite): its children inherit it. */
    container?: ContainerContext;
}

/** What Falco's container plugin reports for a process in a container (fields.txt: container.id, container.image.repository). */
export interface ContainerContext {
    id: string;
    imageRepository: string;
    /** proc.is_exe_upper_layer: the executable comes from the container's writable layer, not from the image. */
    exeUpperLayer?: boolean;
}

export interface SyscallEvent {
    type: string;
    pid: number;
    res: number;
    /** Raw strace arguments. */
    args: string[];
    /** The return value's fd annotation (`3</etc/x>` -> `/etc/x`). */
    retPath?: string;
    proc: Proc;
    cwd: string;
    /** The process table when the event happened (for PID parameters). */
    comms: Map<number, string>;
    line: string;
}

// --- strace argument syntax ---------------------------------------------------------------------------------

/** Splits `a, "b, c", {x=1, y=[2, 3]}` into top-level arguments. */
export function splitArgs(s: string): string[] {
    const out: string[] = [];
    let depth = 0;
    let cur = "";
    let inStr = false;
    for (let i = 0; i < s.length; i++) {
        const c = s[i];
        if (inStr) {
            cur += c;
            if (c === "\\") cur += s[++i] ?? "";
            else if (c === '"') inStr = false;
            continue;
        }
        if (c === '"') inStr = true;
        else if ("([{<".includes(c)) depth++;
        else if (")]}>".includes(c)) depth--;
        if (c === "," && depth === 0) {
            out.push(cur.trim());
            cur = "";
            continue;
        }
        cur += c;
    }
    if (cur.trim()) out.push(cur.trim());
    return out;
}

/** A C string literal as strace prints it (`"a\nb"`, maybe followed by `...`), unescaped. */
export function cString(arg: string): string {
    const m = /^"((?:[^"\\]|\\.)*)"/.exec(arg);
    if (!m) return arg;
    return m[1].replace(/\\(x[0-9a-fA-F]{2}|[0-7]{1,3}|.)/g, (_, e: string) => {
        if (e[0] === "x") return String.fromCharCode(parseInt(e.slice(1), 16));
        if (/^[0-7]+$/.test(e)) return String.fromCharCode(parseInt(e, 8));
        return ({ n: "\n", t: "\t", r: "\r", v: "\v", f: "\f" } as Record<string, string>)[e] ?? e;
    });
}

/** `["a", "b"]` -> [a, b]. */
function cStringArray(arg: string): string[] {
    const inner = arg.replace(/^\[/, "").replace(/\](\s*\/\*.*\*\/)?$/, "");
    return splitArgs(inner).filter((a) => a.startsWith('"')).map(cString);
}

/** `3</etc/falco>` -> /etc/falco; `AT_FDCWD</tmp>` -> /tmp. */
function fdPath(arg: string): string | undefined {
    const m = /^(?:-?\d+|AT_FDCWD)<(.*)>$/.exec(arg);
    return m ? m[1] : undefined;
}
const fdNum = (arg: string): number => (arg.startsWith("AT_FDCWD") ? -100 : parseInt(arg, 10));

/** Lexical normalisation (std::filesystem::path::lexically_normal, as libsinsp applies to resolved paths). */
function normalize(p: string): string {
    return path.posix.normalize(p).replace(/(.)\/$/, "$1");
}

// --- trace to events -----------------------------------------------------------------------------------------

/**
 * "As on a Kubernetes node": what a recorded process would be on a node, for a process the VM cannot run the way a
 * node runs it (the VM has no container runtime, no kubelet, no Cilium). Applies to every process whose canonical
 * executable is `exepath` as recorded, at its exec (and only where its parent is not such a process itself):
 * - `parentName`/`parentExepath`: the parent a node gives it (containerd's shim starting runc, dockerd or systemd
 *   starting modprobe) instead of the shell that ran it;
 * - `as`: the program the recorded one stands in for (its canonical path and comm): a stand-in that makes the same
 *   calls as the real program (a copy of systemctl making kubelet's go-systemd calls);
 * - `container`: the process (and its children) run in a container, with that container's fields.
 */
export interface ProcRewrite {
    exepath: string;
    parentName?: string;
    parentExepath?: string;
    as?: { exepath: string; name: string };
    container?: ContainerContext;
}

export interface TraceOptions {
    /** The runc row's original form: one rewrite that only gives a parent. */
    reparent?: { exepath: string; parentName: string; parentExepath: string };
    rewrite?: ProcRewrite[];
}

/** The events of one recorded row, in order. */
export function traceEvents(strace: string, fixture: TraceFixture, opts: TraceOptions = {}): SyscallEvent[] {
    const procs = new Map<number, Proc>();
    const pending = new Map<number, string>();
    const rewrites: ProcRewrite[] = [...(opts.rewrite ?? []), ...(opts.reparent ? [opts.reparent] : [])];
    const events: SyscallEvent[] = [];
    const kp = typeof fixture.kernelParent === "string" ? { comm: fixture.kernelParent, exe: "", ppid: 2 } : fixture.kernelParent;
    const kthreadd: Proc = { pid: 2, comm: "kthreadd", exepath: "", argv: [], env: [], cwd: "/" };
    // The kworker's comm is task->comm ("kworker/u4:1"); /proc/<pid>/comm appends the workqueue ("+events_unbound").
    const rootParent: Proc = kp
        ? { pid: -1, parent: kp.ppid === 2 ? kthreadd : undefined, comm: kp.comm.split("+")[0], exepath: kp.exe, argv: [], env: [], cwd: "/" }
        : { pid: -1, comm: "strace", exepath: "/usr/bin/strace", argv: [], env: [], cwd: "/tmp" };
    // Falco evaluates an event against the process tree as it is then: a parent that execs later must not change it.
    const snapshot = (p: Proc): Proc => ({ ...p, parent: p.parent && snapshot(p.parent) });
    const comms = () => new Map([...procs.values()].map((p) => [p.pid, p.comm]));

    // Who forked whom, first: a vfork child (and often a fork child) runs, and execs, before strace prints the
    // parent's return value, so the tree must be known before the events are replayed.
    // A CLONE_THREAD child is a thread of its creator's process: Falco's proc.* fields of a thread are those of
    // its process (the thread group), so the model gives both the same process.
    const parentOf = new Map<number, number>();
    const threadOf = new Map<number, number>();
    const cloneFlags = new Map<number, string>();
    for (const m of strace.matchAll(/^(\d+)\s+(clone3?\(.*|<\.\.\. clone3? resumed>.*|v?fork\(.*|<\.\.\. v?fork resumed>.*)$/gm)) {
        const pid = Number(m[1]);
        if (/ <unfinished \.\.\.>$/.test(m[2])) {
            cloneFlags.set(pid, m[2]);
            continue;
        }
        const whole = m[2].startsWith("<...") ? (cloneFlags.get(pid) ?? "") + m[2] : m[2];
        const ret = /\)\s+=\s+(\d+)$/.exec(whole);
        if (!ret) continue;
        (/CLONE_THREAD/.test(whole) ? threadOf : parentOf).set(Number(ret[1]), pid);
    }
    const procOf = (pid: number): Proc => {
        let p = procs.get(pid);
        if (!p && threadOf.has(pid)) {
            p = procOf(threadOf.get(pid)!);
            procs.set(pid, p);
        }
        if (!p) {
            const parent = parentOf.has(pid) ? procs.get(parentOf.get(pid)!) : undefined;
            // Before its first exec a child is a copy of its parent (comm, exe, argv, env, cwd).
            p = parent
                ? { ...parent, pid, parent }
                : { pid, parent: rootParent, comm: "", exepath: "", argv: [], env: [], cwd: kp ? "/" : "/tmp" };
            procs.set(pid, p);
        }
        return p;
    };

    for (const raw of strace.split("\n")) {
        let m = /^(\d+)\s+(.*)$/.exec(raw);
        if (!m) continue;
        const pid = Number(m[1]);
        let body = m[2];
        const unfinished = / <unfinished \.\.\.>$/.exec(body);
        if (unfinished) {
            pending.set(pid, body.slice(0, unfinished.index));
            continue;
        }
        const resumed = /^<\.\.\. ([a-z0-9_]+) resumed>(.*)$/.exec(body);
        if (resumed) {
            body = (pending.get(pid) ?? `${resumed[1]}(`) + resumed[2];
            pending.delete(pid);
        }
        m = /^([a-z0-9_]+)\((.*)\)\s+=\s+(-?\d+|\?)(?:<(.*?)>)?(?:\s+([A-Z0-9_]+)\s*\(.*\))?.*$/.exec(body);
        if (!m) continue;
        const [, type, argText, ret, retAnnot] = m;
        const res = ret === "?" ? 0 : Number(ret);
        const args = splitArgs(argText);
        const proc = procOf(pid);
        for (const a of args) if (a.startsWith("AT_FDCWD<")) proc.cwd = fdPath(a)!;

        if (["clone", "clone3", "fork", "vfork"].includes(type) && res > 0 && !procs.has(res)) procOf(res);
        if ((type === "execve" || type === "execveat") && res === 0) {
            const file = cString(args[type === "execve" ? 0 : 1]);
            proc.argv = cStringArray(args[type === "execve" ? 1 : 2]);
            proc.env = cStringArray(args[type === "execve" ? 2 : 3]);
            proc.comm = path.posix.basename(file).slice(0, 15);
            // /proc/self/exe (runc re-executing itself as `runc init`) is the process's own executable (the comm
            // is the kernel's basename of the path, "exe"); the recorder's readlink of that path named its own.
            if (file !== "/proc/self/exe") proc.exepath = fixture.exepaths[file] ?? file;
            const recorded = proc.exepath;
            for (const rw of rewrites) {
                if (recorded !== rw.exepath || proc.parent?.exepath === rw.exepath || proc.parent?.exepath === rw.as?.exepath) continue;
                if (rw.parentExepath)
                    proc.parent = {
                        pid: -2, parent: proc.parent, comm: (rw.parentName ?? path.posix.basename(rw.parentExepath)).slice(0, 15),
                        exepath: rw.parentExepath, argv: [], env: [], cwd: "/", container: rw.container,
                    };
                if (rw.as) {
                    proc.exepath = rw.as.exepath;
                    proc.comm = rw.as.name.slice(0, 15);
                }
                if (rw.container) proc.container = rw.container;
            }
        }
        if (type === "chdir" && res === 0) proc.cwd = normalize(path.posix.resolve(proc.cwd, cString(args[0])));
        if (type === "fchdir" && res === 0) proc.cwd = fdPath(args[0]) ?? proc.cwd;
        events.push({ type, pid, res, args, retPath: retAnnot, proc: snapshot(proc), cwd: proc.cwd, comms: comms(), line: raw });
    }
    resolveHandleOpens(events);
    return events;
}

/**
 * open_by_handle_at: Falco's exit event carries the opened file's path (events.md: `FSPATH path`, read from the
 * kernel's file at the syscall's exit), but strace 6.1 prints no path for the fd it returns. strace -y prints the
 * fd's path (from /proc/<pid>/fd, the same kernel file) wherever the fd is an argument later, so the path is taken
 * from the process's next call on that fd number (the row's snippet closes the fd for that purpose), provided the
 * number was not reused by another open in between.
 */
function resolveHandleOpens(events: SyscallEvent[]): void {
    events.forEach((e, k) => {
        if (e.type !== "open_by_handle_at" || e.res < 0 || e.retPath !== undefined) return;
        const fdArg = new RegExp(`^${e.res}<(.*)>$`);
        for (const later of events.slice(k + 1)) {
            if (later.pid !== e.pid) continue;
            if (OPENS.has(later.type) && later.res === e.res) return;
            const hit = later.args.map((a) => fdArg.exec(a)).find(Boolean);
            if (hit) {
                e.retPath = hit[1];
                return;
            }
        }
    });
}

// --- fields --------------------------------------------------------------------------------------------------

/** For each syscall: the Falco parameter name of each strace argument position (events.md names), and the dirfd position of FSRELPATH ones. */
const PARAMS: Record<string, { names: (string | null)[]; relTo?: Record<string, number> }> = {
    open: { names: ["name", "flags", "mode"] },
    openat: { names: ["dirfd", "name", "flags", "mode"], relTo: { name: 0 } },
    openat2: { names: ["dirfd", "name", null, null], relTo: { name: 0 } },
    creat: { names: ["name", "mode"] },
    open_by_handle_at: { names: ["mountfd", null, "flags"] },
    unlink: { names: ["path"] },
    unlinkat: { names: ["dirfd", "name", "flags"], relTo: { name: 0 } },
    mkdir: { names: ["path", "mode"] },
    mkdirat: { names: ["dirfd", "path", "mode"], relTo: { path: 0 } },
    rmdir: { names: ["path"] },
    rename: { names: ["oldpath", "newpath"] },
    renameat: { names: ["olddirfd", "oldpath", "newdirfd", "newpath"], relTo: { oldpath: 0, newpath: 2 } },
    renameat2: { names: ["olddirfd", "oldpath", "newdirfd", "newpath", "flags"], relTo: { oldpath: 0, newpath: 2 } },
    link: { names: ["oldpath", "newpath"] },
    linkat: { names: ["olddir", "oldpath", "newdir", "newpath", "flags"], relTo: { oldpath: 0, newpath: 2 } },
    symlink: { names: ["target", "linkpath"] },
    symlinkat: { names: ["target", "linkdirfd", "linkpath"], relTo: { linkpath: 1 } },
    chmod: { names: ["filename", "mode"] },
    fchmod: { names: ["fd", "mode"] },
    fchmodat: { names: ["dirfd", "filename", "mode"], relTo: { filename: 0 } },
    chown: { names: ["path", "uid", "gid"] },
    lchown: { names: ["path", "uid", "gid"] },
    fchown: { names: ["fd", "uid", "gid"] },
    fchownat: { names: ["dirfd", "pathname", "uid", "gid", "flags"], relTo: { pathname: 0 } },
    mount: { names: ["dev", "dir", "type", "flags", null] },
    kill: { names: ["pid", "sig"] },
    tkill: { names: ["tid", "sig"] },
    tgkill: { names: ["pid", "tid", "sig"] },
    pidfd_open: { names: ["pid", "flags"] },
    bpf: { names: ["cmd", null, null] },
    init_module: { names: ["img", "length", "uargs"] },
    finit_module: { names: ["fd", "uargs", "flags"] },
    delete_module: { names: ["name", "flags"] },
    connect: { names: ["fd", "addr", null] },
    execve: { names: ["filename", "args", "env"] },
};

/** Generic events in Falco's table (events.md: only ID/nativeID): no argument reaches a rule. */
const GENERIC = new Set(["truncate", "ftruncate", "pidfd_send_signal", "clone3", "fchdir"]);
const OPENS = new Set(["open", "openat", "openat2", "creat", "open_by_handle_at"]);

/** The value of `evt.arg.<name>` for `e`, rendered as libsinsp renders it. */
function evtArg(e: SyscallEvent, name: string): string | undefined {
    if (GENERIC.has(e.type)) return undefined;
    if (name === "res") return String(e.res);
    if (name === "fd" && OPENS.has(e.type)) return e.res >= 0 ? e.retPath : undefined;
    if (name === "path" && e.type === "open_by_handle_at") return e.res >= 0 ? e.retPath : undefined;
    const spec = PARAMS[e.type];
    if (!spec) return undefined;
    const k = spec.names.indexOf(name);
    if (k < 0 || e.args[k] === undefined) return undefined;
    const a = e.args[k];
    const rel = spec.relTo?.[name];
    if (rel !== undefined) {
        const p = cString(a);
        if (p.startsWith("/")) return normalize(p);
        const base = fdNum(e.args[rel]) === -100 ? e.cwd : fdPath(e.args[rel]);
        return base === undefined ? undefined : normalize(`${base}/${p}`);
    }
    if (/^(-?\d+|AT_FDCWD)</.test(a)) return fdPath(a);
    if (a.startsWith('"')) return cString(a);
    if (["pid", "tid"].includes(name)) return e.comms.get(Number(a)) ?? a;
    return a;
}

/** fs.path.* (sinsp_filtercheck_fspath.cpp): success only, the raw path argument, relative to the cwd. */
function fsPath(e: SyscallEvent, which: "name" | "source" | "target"): string | undefined {
    const ok = OPENS.has(e.type) ? e.res >= 0 : e.res === 0;
    if (!ok) return undefined;
    const raw = (param: string): string | undefined => {
        const spec = PARAMS[e.type];
        const k = spec?.names.indexOf(param) ?? -1;
        if (k < 0 || e.args[k] === undefined) return undefined;
        const a = e.args[k];
        return a.startsWith('"') ? cString(a) : fdPath(a);
    };
    const table: Record<string, Partial<Record<typeof which, string>>> = {
        mkdir: { name: "path" }, mkdirat: { name: "path" }, rmdir: { name: "path" }, unlink: { name: "path" }, unlinkat: { name: "name" },
        open: { name: "name" }, openat: { name: "name" }, openat2: { name: "name" }, fchmodat: { name: "filename" }, chmod: { name: "filename" },
        chown: { name: "path" }, lchown: { name: "path" }, fchownat: { name: "pathname" },
        rename: { source: "oldpath", target: "newpath" }, renameat: { source: "oldpath", target: "newpath" }, renameat2: { source: "oldpath", target: "newpath" },
        link: { source: "newpath", target: "oldpath" }, linkat: { source: "newpath", target: "oldpath" },
        symlink: { source: "linkpath", target: "target" }, symlinkat: { source: "linkpath", target: "target" },
        mount: { source: "dev", target: "dir" },
    };
    if (which === "name" && (e.type === "fchmod" || e.type === "fchown")) return fdPath(e.args[0]);
    const param = table[e.type]?.[which];
    if (!param) return undefined;
    const v = raw(param);
    if (v === undefined) return undefined;
    return v.startsWith("/") ? normalize(v) : normalize(`${e.cwd}/${v}`);
}

function ancestor(p: Proc, n: number): Proc | undefined {
    let a: Proc | undefined = p;
    for (let k = 0; k < n && a; k++) a = a.parent;
    return a;
}

/** The field extractor for one event (throws on a field the model does not know). */
export function syscallExtractor(e: SyscallEvent): Extractor {
    const p = e.proc;
    return (field): FieldValue => {
        let m = /^evt\.(?:arg|rawarg)\.([a-z_0-9]+)$/.exec(field);
        if (m) return evtArg(e, m[1]);
        m = /^proc\.(aname|aexepath|apid)\[(\d+)\]$/.exec(field);
        if (m) {
            const a = ancestor(p, Number(m[2]));
            if (!a) return undefined;
            return m[1] === "aname" ? a.comm : m[1] === "aexepath" ? a.exepath : String(a.pid);
        }
        m = /^proc\.env\[(.+)\]$/.exec(field);
        if (m) {
            const hit = p.env.find((v) => v.startsWith(`${m![1]}=`));
            return hit === undefined ? undefined : hit.slice(m[1].length + 1);
        }
        const isOpen = OPENS.has(e.type);
        const unixPeer = e.type === "connect" && e.res === 0 ? /sun_path="([^"]*)"/.exec(e.args[1] ?? "")?.[1] : undefined;
        switch (field) {
            case "evt.type":
                return e.type;
            case "evt.res":
                return String(e.res);
            case "evt.is_open_write": {
                if (!isOpen) return undefined;
                if (e.type === "creat") return "true";
                const flags = e.type === "openat2" ? (/flags=([A-Z_|]+)/.exec(e.args[2])?.[1] ?? "") : (evtArg(e, "flags") ?? "");
                return /\bO_(WRONLY|RDWR)\b/.test(flags) ? "true" : "false";
            }
            case "evt.is_open_read": {
                if (!isOpen || e.type === "creat") return isOpen ? "false" : undefined;
                const flags = e.type === "openat2" ? (/flags=([A-Z_|]+)/.exec(e.args[2])?.[1] ?? "") : (evtArg(e, "flags") ?? "");
                return /\bO_(RDONLY|RDWR)\b/.test(flags) ? "true" : "false";
            }
            case "fd.num":
                if (isOpen) return String(e.res);
                if (e.type === "connect") return String(parseInt(e.args[0], 10));
                return undefined;
            case "fd.name":
                if (isOpen) return e.res >= 0 ? e.retPath : undefined;
                if (unixPeer !== undefined) return `0->0 ${unixPeer}`;
                if (e.type === "fchmod" || e.type === "fchown") return fdPath(e.args[0]);
                return undefined;
            case "fd.typechar":
                if (isOpen) return /O_DIRECTORY/.test(e.args.join(" ")) ? "d" : "f";
                if (unixPeer !== undefined) return "u";
                return undefined;
            case "fs.path.name":
                return fsPath(e, "name");
            case "fs.path.source":
                return fsPath(e, "source");
            case "fs.path.target":
                return fsPath(e, "target");
            case "proc.name":
                return p.comm;
            case "proc.exepath":
                return p.exepath;
            case "proc.args":
                return p.argv.slice(1).join(" ");
            case "proc.cmdline":
                return [p.comm, ...p.argv.slice(1)].join(" ");
            case "proc.pid":
                return String(p.pid);
            case "proc.pname":
                return p.parent?.comm;
            case "proc.pexepath":
                return p.parent?.exepath;
            case "proc.ppid":
                return p.parent ? String(p.parent.pid) : undefined;
            case "container.id":
                return p.container?.id ?? "host";
            case "container.image.repository":
                // The plugin has no image for host processes (the field is empty there).
                return p.container?.imageRepository;
            case "proc.is_exe_upper_layer":
                return String(p.container?.exeUpperLayer === true);
            default:
                throw new Error(`the syscall model does not extract ${field}`);
        }
    };
}

export const TAMPER_FIXTURE_DIR = path.join(__dirname, "..", "fixtures", "tamper");

/** The recorded fixture of a row, or undefined when none was recorded. */
export function loadTrace(id: string): { strace: string; fixture: TraceFixture } | undefined {
    const base = path.join(TAMPER_FIXTURE_DIR, id);
    if (!fs.existsSync(`${base}.strace`)) return undefined;
    return { strace: fs.readFileSync(`${base}.strace`, "utf8"), fixture: JSON.parse(fs.readFileSync(`${base}.json`, "utf8")) };
}
