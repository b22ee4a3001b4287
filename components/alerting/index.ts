// Central alerting: the stack's Prometheus alert rules (rules.ts), their settings (settings.ts), and the
// Falcosidekick metric and Falco event names they count (falcosidekick.ts).
export * from "./falcosidekick";
export * from "./settings";
export * from "./rules";
