/**
 * Where the upstream reference data lives: `<repo>/../shared/reference` (CI clones the repo with `shared/`
 * beside it). Tests validate what we render against these files, never against our own idea of them.
 */
import * as path from "path";

const repoRoot = path.resolve(__dirname, "..", "..");

export function referencePath(...parts: string[]): string {
    return path.resolve(repoRoot, "..", "shared", "reference", ...parts);
}
