"""The console's words: unique prefixes, Tab's candidates and `?`'s help,
all read from the command table (console.py's COMMANDS: name -> (scope,
usage, summary, details)) and its usage lines, so a new command or argument
completes without another table.

    resolve(word, choices)          the one choice ``word`` starts (or is);
                                    None when none does; raises Ambiguous
    candidates(commands, before, names)
                                    the words Tab may put at the end of
                                    ``before`` (the line up to the cursor)
    context_help(commands, order, before, names)
                                    what `?` shows there

A usage line names its arguments: ``quarantine force|release COMPONENT``
has a word to choose (force or release) then a COMPONENT, which
``names(kind)`` lists (the session knows the device's components, sensors,
alerts). Optional arguments are in brackets.
"""


class Ambiguous(ValueError):
    def __init__(self, word, matches):
        super().__init__("%r is ambiguous: %s" % (word, ", ".join(matches)))
        self.word = word
        self.matches = matches


def resolve(word, choices):
    if word in choices:
        return word
    matches = [c for c in choices if c.startswith(word)]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise Ambiguous(word, sorted(matches))
    return None


def arguments(usage):
    """[(choices, kind), ...] per argument of a usage line: ``choices`` the
    literal words (force, release), or ``kind`` the placeholder (COMPONENT)."""
    found = []
    for word in usage.split()[1:]:
        word = word.strip("[]")
        if word.isupper():
            found.append(((), word))
        else:
            found.append((tuple(word.split("|")), None))
    return found


def required(usage):
    """How many arguments a usage line cannot do without."""
    return len([w for w in usage.split()[1:] if not w.startswith("[")])


def candidates(commands, before, names):
    """Words to complete the last (maybe empty) word of ``before`` with."""
    words = before.lstrip(" ").split(" ")
    if len(words) == 1:
        return sorted(commands)
    try:
        command = resolve(words[0].lower(), commands)
    except Ambiguous:
        return []
    if command is None:
        return []
    args = arguments(commands[command][1])
    position = len([w for w in words[1:-1] if w])  # arguments before the one being typed
    if position >= len(args):
        return []
    choices, kind = args[position]
    return list(choices) if choices else _names(commands, kind, names)


def _names(commands, kind, names):
    if kind == "COMMAND":
        return sorted(commands)
    return sorted(names(kind))


def context_help(commands, order, before, names):
    """Right after part of a command: the commands it may start, with their
    summaries. After a command and a space (or part of an argument): its
    usage and the words that may come next."""
    words = before.split()
    if not words or (len(words) == 1 and not before.endswith(" ")):
        typed = words[0].lower() if words else ""
        rows = ["  %-12s %s" % (name, commands[name][2]) for name in order if name.startswith(typed)]
        return "\n".join(rows) if rows else "no command starts with %r; `help` lists them" % typed
    try:
        command = resolve(words[0].lower(), commands)
    except Ambiguous as exc:
        return str(exc)
    if command is None:
        return "no command %r; `help` lists them" % words[0]
    usage = commands[command][1]
    shown = candidates(commands, before, names)
    if not before.endswith(" "):
        shown = [c for c in shown if c.startswith(words[-1])]
    lines = ["usage: " + usage]
    if shown:
        lines.append("  " + "  ".join(shown[:30]) + (" ..." if len(shown) > 30 else ""))
    return "\n".join(lines)
