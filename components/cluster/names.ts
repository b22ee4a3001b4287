/** Moved to ../shared/names (the k8s_audit tamper rules read it too); re-exported so cluster code keeps its imports. */
export * from "../shared/names";
