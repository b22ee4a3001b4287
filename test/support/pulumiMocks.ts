/**
 * Pulumi mocks for unit tests: every resource the program declares is recorded with its type, name and
 * resolved inputs, so tests assert on what would be sent to the providers. No CLI, no plugins, no cloud.
 */
import * as pulumi from "@pulumi/pulumi";

export interface Recorded {
    type: string;
    name: string;
    inputs: Record<string, any>;
}

/** Per resource type: the state the "provider" returns (defaults to the inputs). */
export type StateFor = Record<string, (inputs: Record<string, any>, name: string) => Record<string, any>>;
/** Per function token (e.g. `aws:ec2/getAmi:getAmi`): the result of an invoke. */
export type CallResults = Record<string, (inputs: Record<string, any>) => Record<string, any>>;

/**
 * Install mocks and return the (live) list of recorded resources. Call once per suite; a later call
 * replaces the mocks and starts a new list.
 */
export function recordResources(state: StateFor = {}, opts: { preview?: boolean; calls?: CallResults; recordedCalls?: Recorded[] } = {}): Recorded[] {
    const recorded: Recorded[] = [];
    pulumi.runtime.setMocks(
        {
            newResource(args: pulumi.runtime.MockResourceArgs) {
                recorded.push({ type: args.type, name: args.name, inputs: args.inputs });
                const out = state[args.type]?.(args.inputs, args.name) ?? args.inputs;
                return { id: `${args.name}-id`, state: out };
            },
            call(args: pulumi.runtime.MockCallArgs) {
                opts.recordedCalls?.push({ type: args.token, name: args.token, inputs: args.inputs });
                const f = opts.calls?.[args.token];
                if (!f) throw new Error(`unexpected call ${args.token}`);
                return f(args.inputs);
            },
        },
        "falco-nodes",
        "test",
        opts.preview ?? false,
    );
    return recorded;
}

/** The value of an output, once known (one definition for every mock flavour). */
export { outputOf } from "./mocks";
