#!/usr/bin/env node
// `npm run build`: compile the components to dist/ (JavaScript and .d.ts) and copy the files they read at run
// time (the converge script), so the package works without TypeScript or this repository. Starts from an empty
// dist/, so a deleted module never lingers in a published package.
"use strict";
const fs = require("fs");
const path = require("path");
const { spawnSync } = require("child_process");

const root = path.resolve(__dirname, "..");
const dist = path.join(root, "dist");
/** Non-TypeScript files the compiled modules read next to themselves (components/<dir> -> dist/<dir>). */
const ASSETS = ["host/scripts"];

fs.rmSync(dist, { recursive: true, force: true });
const tsc = spawnSync(process.execPath, [require.resolve("typescript/bin/tsc"), "-p", path.join(root, "tsconfig.build.json")], {
    cwd: root,
    stdio: "inherit",
});
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
for (const a of ASSETS) fs.cpSync(path.join(root, "components", a), path.join(dist, a), { recursive: true });
