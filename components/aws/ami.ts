/**
 * Which machine image a Falco node boots, and what follows from the choice (login user, Falco package format).
 *
 * Pure: `amiFilter` returns the arguments for `aws.ec2.getAmi`, so the lookup per OS and architecture is tested
 * without AWS. Images come only from the vendors' own AWS accounts (owner ids below): a name filter alone would
 * also match look-alike public images anyone can publish.
 */
import { InstallSource } from "../host/settings";

/** Operating systems a node can run. All ship cloud-init, systemd and a kernel >= 5.8 with BTF (modern_ebpf). */
export const OperatingSystem = {
    /** Ubuntu 24.04 LTS (noble), Canonical's image. The default: newest LTS kernel, longest support. */
    Ubuntu2404: "ubuntu-24.04",
    /** Ubuntu 22.04 LTS (jammy), Canonical's image. */
    Ubuntu2204: "ubuntu-22.04",
    /** Debian 12 (bookworm), the Debian cloud team's image. */
    Debian12: "debian-12",
    /** Amazon Linux 2023, Amazon's standard (not minimal) image. Falco comes from the rpm repository. */
    AmazonLinux2023: "al2023",
} as const;
export type OperatingSystem = (typeof OperatingSystem)[keyof typeof OperatingSystem];

/** CPU architectures, named as EC2 names them (`aws ec2 describe-images --filters Name=architecture`). */
export const Architecture = {
    X86_64: "x86_64",
    Arm64: "arm64",
} as const;
export type Architecture = (typeof Architecture)[keyof typeof Architecture];

export const DEFAULT_OS: OperatingSystem = OperatingSystem.Ubuntu2404;
export const DEFAULT_ARCHITECTURE: Architecture = Architecture.X86_64;

/** The vendors' image-publishing AWS accounts (commercial partition). */
export const AMI_OWNERS = {
    /** Canonical. */
    canonical: "099720109477",
    /** Debian (the Debian cloud team's official account). */
    debian: "136693071363",
    /** Amazon (account id behind the `amazon` alias for Amazon Linux images). */
    amazon: "137112412989",
} as const;

/** Arguments for `aws.ec2.getAmi`. */
export interface AmiFilter {
    owners: string[];
    filters: { name: string; values: string[] }[];
    mostRecent: boolean;
}

/** Image name pattern per OS; `{arch}` is the vendor's spelling of the architecture. */
function namePattern(os: OperatingSystem, arch: Architecture): { owner: string; name: string } {
    // Canonical and Debian say amd64 where EC2 says x86_64; Amazon uses EC2's names.
    const debArch = arch === Architecture.X86_64 ? "amd64" : "arm64";
    switch (os) {
        case OperatingSystem.Ubuntu2404:
            // Canonical publishes noble only under `hvm-ssd-gp3` (gp3 root volume by default).
            return { owner: AMI_OWNERS.canonical, name: `ubuntu/images/hvm-ssd-gp3/ubuntu-noble-24.04-${debArch}-server-*` };
        case OperatingSystem.Ubuntu2204:
            // Jammy's long-standing path is `hvm-ssd`; we set gp3 on the root volume ourselves anyway.
            return { owner: AMI_OWNERS.canonical, name: `ubuntu/images/hvm-ssd/ubuntu-jammy-22.04-${debArch}-server-*` };
        case OperatingSystem.Debian12:
            // `debian-12-amd64-<date>-<build>`; backports images are `debian-12-backports-...` and do not match.
            return { owner: AMI_OWNERS.debian, name: `debian-12-${debArch}-*` };
        case OperatingSystem.AmazonLinux2023:
            // `al2023-ami-2023.x...-kernel-6.x-<arch>`; the minimal image (`al2023-ami-minimal-...`) does not match:
            // it lacks packages the converge script relies on.
            return { owner: AMI_OWNERS.amazon, name: `al2023-ami-2023.*-${arch}` };
    }
}

/** Unknown OS/architecture strings (e.g. from stack config) fail here with the accepted values. */
export function assertOperatingSystem(os: string, key = "os"): asserts os is OperatingSystem {
    const all = Object.values(OperatingSystem) as string[];
    if (!all.includes(os)) throw new Error(`invalid ${key} '${os}': must be one of ${all.join(", ")}`);
}
export function assertArchitecture(arch: string, key = "architecture"): asserts arch is Architecture {
    const all = Object.values(Architecture) as string[];
    if (!all.includes(arch)) throw new Error(`invalid ${key} '${arch}': must be one of ${all.join(", ")}`);
}

/** The `getAmi` query for the newest vendor image of `os` on `arch`. */
export function amiFilter(os: OperatingSystem = DEFAULT_OS, arch: Architecture = DEFAULT_ARCHITECTURE): AmiFilter {
    assertOperatingSystem(os);
    assertArchitecture(arch);
    const { owner, name } = namePattern(os, arch);
    return {
        owners: [owner],
        filters: [
            { name: "name", values: [name] },
            { name: "architecture", values: [arch] },
            { name: "virtualization-type", values: ["hvm"] },
            { name: "root-device-type", values: ["ebs"] },
            { name: "state", values: ["available"] },
        ],
        mostRecent: true,
    };
}

/** The image's default login user (cloud-init creates it with passwordless sudo and our key). */
export function sshUserFor(os: OperatingSystem): string {
    switch (os) {
        case OperatingSystem.Ubuntu2404:
        case OperatingSystem.Ubuntu2204:
            return "ubuntu";
        case OperatingSystem.Debian12:
            return "admin";
        case OperatingSystem.AmazonLinux2023:
            return "ec2-user";
    }
}

/** Falco's package repository that fits the OS's package manager. */
export function installSourceFor(os: OperatingSystem): InstallSource {
    return os === OperatingSystem.AmazonLinux2023 ? InstallSource.Rpm : InstallSource.Apt;
}

/** A sensible burstable default per architecture: 2 vCPU / 4 GiB is ample for Falco plus the OS. */
export function defaultInstanceType(arch: Architecture): string {
    return arch === Architecture.Arm64 ? "t4g.medium" : "t3.medium";
}
