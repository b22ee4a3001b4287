// The falco-nodes policy pack: `pulumi preview --policy-pack policy`. Only the entry point lives here, because
// `new PolicyPack` starts the policy server; the policies and their tests are in components/aws/policies.ts.
import { PolicyPack } from "@pulumi/policy";
import { falcoNodesPolicies } from "../components/aws/policies";

new PolicyPack("falco-nodes", { policies: falcoNodesPolicies, enforcementLevel: "mandatory" });
