/** Moved to ../shared/paths (the rule sets read it too); re-exported so host code keeps its imports. */
export * from "../shared/paths";
