"""A minimal terminal screen, enough to replay what rich's Live writes: text, \\r, \\n, cursor
up/down/column, erase line, and colour codes (ignored)."""

import re

_TOKEN = re.compile(r"\x1b\[([?0-9;]*)([A-Za-z])|\r|\n|[^\x1b\r\n]+")


def screen(output: str) -> list[str]:
    """The lines on screen after `output` has been written to an empty terminal."""
    rows, row, col = [""], 0, 0
    for match in _TOKEN.finditer(output):
        text = match.group(0)
        if text == "\r":
            col = 0
        elif text == "\n":
            row, col = row + 1, 0
        elif match.group(2):
            args, command = match.group(1), match.group(2)
            count = int(args) if args.isdigit() else 1
            if command == "A":
                row = max(0, row - count)
            elif command == "B":
                row += count
            elif command == "G":
                col = count - 1
            elif command == "K":
                while len(rows) <= row:
                    rows.append("")
                rows[row] = "" if args == "2" else rows[row][:col]
            continue  # m (colours), ?25l/h (cursor visibility): nothing on screen
        else:
            while len(rows) <= row:
                rows.append("")
            line = rows[row].ljust(col)
            rows[row] = line[:col] + text + line[col + len(text) :]
            col += len(text)
        while len(rows) <= row:
            rows.append("")
    return [r.rstrip() for r in rows]
