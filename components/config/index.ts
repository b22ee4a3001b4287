// Stack configuration: the typed `falco-nodes:*` keys, their parser, and readers for a running program and a stack file.
export * from "./merge";
export * from "./stackConfig";
export * from "./stackFile";
export * from "./programConfig";
