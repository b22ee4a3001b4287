/**
 * `#` comment lines for the config files we render (unit, sysctl, sshd, logrotate all use `#`), so every
 * reason written in the data reads the same on the host.
 */

/** Longest comment line, in columns. */
export const COMMENT_WIDTH = 100;

/**
 * Word-wrap `text` into comment lines of at most COMMENT_WIDTH columns: the first line starts with `first`, the
 * others with `rest` (so a bullet's continuation lines can be indented). A single word longer than the width
 * gets a line of its own.
 */
export function commentLines(text: string, first = "# ", rest = first): string[] {
    const lines: string[] = [];
    let line = "";
    for (const word of text.split(/\s+/).filter(Boolean)) {
        const prefix = lines.length ? rest : first;
        if (line && prefix.length + line.length + 1 + word.length > COMMENT_WIDTH) {
            lines.push(prefix + line);
            line = word;
        } else line = line ? `${line} ${word}` : word;
    }
    if (line) lines.push((lines.length ? rest : first) + line);
    return lines;
}
