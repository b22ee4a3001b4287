/**
 * Unit drift (the host script in the sandbox, systemd faked as test/support/hostSandbox.ts describes): a unit file
 * that shadows ours, a drop-in outside our drop-in directory and an LD_PRELOAD in systemd's manager environment
 * change what systemd runs as Falco without touching a file converge manages; converge compares
 * `systemctl show -p FragmentPath -p DropInPaths -p ExecStart` and `show-environment` with what it installed,
 * moves the foreign files to the state's quarantine, unsets the variable, reports it and restarts Falco.
 */
import * as assert from "assert";
import * as fs from "fs";
import { renderBundle } from "../../components/host/bundle";
import { STATE_DIR, UNIT_DROPIN_DIR } from "../../components/host/paths";
import { resolveHostSettings } from "../../components/host/settings";
import { useSandbox } from "../support/hostSandbox";

describe("unit drift (host script in the sandbox)", function () {
    const sandbox = useSandbox();


    it("quarantines a shadowing unit and a foreign drop-in, unsets LD_PRELOAD, reports and restarts; keeps local drop-ins", () => {
        const sb = sandbox();
        const b = renderBundle(resolveHostSettings({ install: { source: "preinstalled", binaryPath: sb.falco } }));
        assert.equal(sb.run(b.installScript).status, 0);
        const shadow = "/etc/systemd/system.control/falco-nodes.service";
        const prefix = "/etc/systemd/system/falco-.service.d/tamper.conf";
        const local = `${UNIT_DROPIN_DIR}/50-local.conf`;
        sb.write(shadow, "[Service]\nExecStart=/bin/true\n");
        sb.write(prefix, "[Service]\nEnvironment=TAMPER=1\n");
        sb.write(local, "[Service]\nNice=5\n");
        fs.writeFileSync(`${sb.state}/manager-env`, "LANG=C.UTF-8\nLD_PRELOAD=/tmp/x.so\n");
        const r = sb.run(b.installScript);
        assert.equal(r.status, 0, r.stderr);
        assert.match(r.stderr, /drift: systemd reads \/etc\/systemd\/system.control\/falco-nodes.service/);
        assert.match(r.stderr, /drift: systemd reads \/etc\/systemd\/system\/falco-.service.d\/tamper.conf/);
        assert.match(r.stderr, /drift: systemd's manager environment sets LD_PRELOAD: unsetting it/);
        assert.equal(r.report?.restarted, true);
        assert.equal(sb.stat(shadow), undefined);
        assert.equal(sb.stat(prefix), undefined);
        assert.ok(sb.read(`${STATE_DIR}/quarantine/_etc_systemd_system.control_falco-nodes.service`)?.includes("/bin/true"));
        assert.ok(sb.read(local), "a drop-in in our own drop-in directory is the documented place for local changes");
        assert.doesNotMatch(fs.readFileSync(`${sb.state}/manager-env`, "utf8"), /LD_PRELOAD/);
        const again = sb.run(b.installScript);
        assert.equal(again.status, 0, again.stderr);
        assert.doesNotMatch(again.stderr, /drift/);
        assert.equal(again.report?.restarted, false);
    });
});
