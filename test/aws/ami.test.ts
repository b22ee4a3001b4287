import * as assert from "assert";
import {
    AMI_OWNERS,
    amiFilter,
    Architecture,
    DEFAULT_OS,
    defaultInstanceType,
    installSourceFor,
    OperatingSystem,
    sshUserFor,
} from "../../components/aws/ami";

/** EC2's name filter is a glob (`*` any run, `?` one char): the same matching, to test patterns on real names. */
function globMatches(glob: string, name: string): boolean {
    const re = glob.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".");
    return new RegExp(`^${re}$`).test(name);
}

// Real image names as the vendors publish them (aws ec2 describe-images), and look-alikes that must not match.
const EXAMPLES: Record<OperatingSystem, Record<Architecture, { match: string[]; reject: string[] }>> = {
    "ubuntu-24.04": {
        x86_64: {
            match: ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250115"],
            reject: [
                "ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-20250115",
                "ubuntu-pro-server/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-pro-server-20250115",
                "ubuntu-minimal/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-minimal-20250115",
            ],
        },
        arm64: {
            match: ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-arm64-server-20250115"],
            reject: ["ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-amd64-server-20250115"],
        },
    },
    "ubuntu-22.04": {
        x86_64: {
            match: ["ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240927"],
            reject: ["ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-arm64-server-20240927", "ubuntu/images/hvm-ssd/ubuntu-focal-20.04-amd64-server-20240927"],
        },
        arm64: {
            match: ["ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-arm64-server-20240927"],
            reject: ["ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-amd64-server-20240927"],
        },
    },
    "debian-12": {
        x86_64: {
            match: ["debian-12-amd64-20250112-1990"],
            reject: ["debian-12-arm64-20250112-1990", "debian-12-backports-amd64-20240201-1644", "debian-11-amd64-20250112-1990"],
        },
        arm64: {
            match: ["debian-12-arm64-20250112-1990"],
            reject: ["debian-12-amd64-20250112-1990", "debian-12-backports-arm64-20240201-1644"],
        },
    },
    al2023: {
        x86_64: {
            match: ["al2023-ami-2023.6.20250107.0-kernel-6.1-x86_64", "al2023-ami-2023.7.20250414.0-kernel-6.12-x86_64"],
            reject: ["al2023-ami-minimal-2023.6.20250107.0-kernel-6.1-x86_64", "al2023-ami-2023.6.20250107.0-kernel-6.1-arm64", "amzn2-ami-kernel-5.10-hvm-2.0.20250108.0-x86_64-gp2"],
        },
        arm64: {
            match: ["al2023-ami-2023.6.20250107.0-kernel-6.1-arm64"],
            reject: ["al2023-ami-minimal-2023.6.20250107.0-kernel-6.1-arm64", "al2023-ami-2023.6.20250107.0-kernel-6.1-x86_64"],
        },
    },
};

const OWNER: Record<OperatingSystem, string> = {
    "ubuntu-24.04": AMI_OWNERS.canonical,
    "ubuntu-22.04": AMI_OWNERS.canonical,
    "debian-12": AMI_OWNERS.debian,
    al2023: AMI_OWNERS.amazon,
};

describe("aws/ami", () => {
    it("uses the vendors' real owner account ids", () => {
        assert.deepStrictEqual(AMI_OWNERS, { canonical: "099720109477", debian: "136693071363", amazon: "137112412989" });
    });

    for (const os of Object.values(OperatingSystem))
        for (const arch of Object.values(Architecture))
            it(`${os} on ${arch}: only the vendor's account, newest image, name matches real ${arch} names only`, () => {
                const f = amiFilter(os, arch);
                assert.deepStrictEqual(f.owners, [OWNER[os]]);
                assert.strictEqual(f.mostRecent, true);
                const filter = (n: string) => f.filters.find((x) => x.name === n)?.values;
                assert.deepStrictEqual(filter("architecture"), [arch]);
                assert.deepStrictEqual(filter("virtualization-type"), ["hvm"]);
                assert.deepStrictEqual(filter("root-device-type"), ["ebs"]);
                const names = filter("name");
                assert.ok(names && names.length === 1);
                for (const name of EXAMPLES[os][arch].match) assert.ok(globMatches(names[0], name), `${names[0]} should match ${name}`);
                for (const name of EXAMPLES[os][arch].reject) assert.ok(!globMatches(names[0], name), `${names[0]} must not match ${name}`);
            });

    it("defaults to Ubuntu 24.04 on x86_64", () => {
        assert.strictEqual(DEFAULT_OS, "ubuntu-24.04");
        assert.deepStrictEqual(amiFilter(), amiFilter("ubuntu-24.04", "x86_64"));
    });

    it("rejects unknown OS and architecture names with the accepted values", () => {
        assert.throws(() => amiFilter("centos-7" as OperatingSystem), /invalid os 'centos-7': must be one of ubuntu-24.04, ubuntu-22.04, debian-12, al2023/);
        assert.throws(() => amiFilter("debian-12", "amd64" as Architecture), /invalid architecture 'amd64': must be one of x86_64, arm64/);
    });

    it("knows each image's login user and Falco package source", () => {
        assert.strictEqual(sshUserFor("ubuntu-24.04"), "ubuntu");
        assert.strictEqual(sshUserFor("ubuntu-22.04"), "ubuntu");
        assert.strictEqual(sshUserFor("debian-12"), "admin");
        assert.strictEqual(sshUserFor("al2023"), "ec2-user");
        assert.strictEqual(installSourceFor("al2023"), "rpm");
        for (const os of ["ubuntu-24.04", "ubuntu-22.04", "debian-12"] as const) assert.strictEqual(installSourceFor(os), "apt");
    });

    it("picks an instance type of the right architecture", () => {
        assert.match(defaultInstanceType("arm64"), /^[a-z]+[0-9]+g[a-z]*\./);
        assert.doesNotMatch(defaultInstanceType("x86_64"), /^[a-z]+[0-9]+g[a-z]*\./);
    });
});
