/**
 * The seed guide's example rule, opt-in (`rules.builtin: [..., "app-config-example"]`): alert when anything
 * opens a file below `/app/config/` for writing. A template for "this directory only changes on deploy".
 */
import { BASE_MACROS } from "./base";
import { FalcoRuleItem, WHO_FIELDS, falcoString } from "./types";

export const APP_CONFIG_DIR = "/app/config/";
export const APP_CONFIG_RULE = "Write below app config dir";

export function appConfigExampleRuleItems(): FalcoRuleItem[] {
    return [
        {
            rule: APP_CONFIG_RULE,
            desc: `A file below ${APP_CONFIG_DIR} was opened for writing. Application config should only change on deploy.`,
            condition: `${BASE_MACROS.openWrite}\nand fd.name startswith ${falcoString(APP_CONFIG_DIR)}`,
            output: `File below ${APP_CONFIG_DIR} opened for writing | file=%fd.name evt_type=%evt.type ${WHO_FIELDS}`,
            priority: "WARNING",
            tags: ["falco-nodes", "app_config_example", "host", "filesystem", "mitre_persistence"],
        },
    ];
}
