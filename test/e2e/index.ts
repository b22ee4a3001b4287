/** The e2e harness's public API, for the suites under test/e2e/ (see README.md). */
export type { AptRepo, AptRepoOptions } from "./aptRepo";
export { startAptRepo } from "./aptRepo";
export type { DebianRelease, DebianSuite } from "./artifacts";
export { buildStandinDebs, DEBIAN_RELEASES, e2eDebian, ensureBaseImage, STANDIN_VERSIONS } from "./artifacts";
export type { RunResult } from "./exec";
export { run, shQuote, sleep, waitFor } from "./exec";
export type { TestHttpServer } from "./httpServer";
export { GUEST_HTTP_HOST, startTestHttpServer } from "./httpServer";
export type { FileInfo, SshOptions, Vm, VmOptions } from "./vm";
export { startVm } from "./vm";
