// AWS nodes: hardened EC2 instances converged by FalcoHost, and the policies that hold any stack to the same rules.
export * from "./ami";
export * from "./node";
export * from "./policies";
export * from "./securityGroup";
export * from "./tags";
export * from "./userdata";
