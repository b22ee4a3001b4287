/**
 * Quoting for values we put into unit files, written against how systemd reads them back.
 *
 * systemd/systemd `src/core/load-fragment.c`, `config_parse_environ`: an `Environment=` value is split into words
 * by `extract_first_word(..., EXTRACT_CUNESCAPE|EXTRACT_UNQUOTE)` (double quotes group a word; inside them a
 * backslash starts a C escape, so `\\` and `\"` stand for themselves), then each word goes through specifier
 * expansion (`unit_env_printf`: `%%` is one `%`, any other `%x` is a specifier) and must be a valid assignment
 * (`env_assignment_is_valid`). `$` is not expanded in `Environment=` (only in Exec lines). A line ends the
 * directive, so a value cannot span lines.
 *
 * Pure: no I/O.
 */

/** A name `env_name_is_valid` accepts and a shell could export: letters, digits, `_`, not starting with a digit. */
const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/**
 * One double-quoted word of a unit file whose unquoted, unescaped and specifier-expanded form is `value`
 * exactly. Refuses control characters (a newline would end the directive; the others have no place in the values
 * we render) rather than escaping them.
 */
export function systemdQuotedWord(value: string): string {
    // eslint-disable-next-line no-control-regex
    if (/[\x00-\x1f\x7f]/.test(value)) throw new Error(`systemd value ${JSON.stringify(value)} has a control character`);
    let out = '"';
    for (const ch of value) {
        if (ch === "\\" || ch === '"') out += `\\${ch}`;
        else if (ch === "%") out += "%%";
        else out += ch;
    }
    return out + '"';
}

/** The value of an `Environment=` line setting `name` to `value`, as one quoted word. */
export function environmentAssignment(name: string, value: string): string {
    if (!ENV_NAME.test(name)) throw new Error(`not an environment variable name: ${JSON.stringify(name)}`);
    return systemdQuotedWord(`${name}=${value}`);
}
