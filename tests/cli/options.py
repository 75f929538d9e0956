#!/usr/bin/env python3
"""options.py GPUP SRC — check that every command's long options agree
between what its parser accepts, its --help, the bash completion and the
man page. Prints one line per disagreement; exit 1 if any.

What a parser accepts is found by exercising it, not by reading the C
tables (they are assembled from macros and some are shared and filtered
per command): for every option name that appears in any table of tools/,
run `gpup CMD --NAME` and `gpup CMD --NAME=x`; the option is accepted
unless both are refused as unknown. Runs in an empty temporary directory
with no image operand, so no command gets far enough to change anything.
"""
import concurrent.futures
import os
import re
import subprocess
import sys
import tempfile

gpup, src = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])

# The command line to reach each parser (bundle's subcommands share one).
COMMANDS = {
    "inspect": ["inspect"], "check": ["check"], "create": ["create"],
    "disk": ["disk", "read"], "ls": ["ls"], "cat": ["cat"], "put": ["put"],
    "rm": ["rm"], "drivers": ["drivers"], "bundle": ["bundle", "create"],
    "gpus": ["gpus"], "hostconf": ["hostconf"], "scan": ["scan"],
    "prepare": ["prepare"], "unprepare": ["unprepare"], "verify": ["verify"],
    "doctor": ["doctor"],
}
UNKNOWN = re.compile(r"unknown option|is unknown|unrecognized option|is not an option of|"
                     r"doesn't allow an argument|does not take an argument|takes no driver source")

tools = os.path.join(src, "tools")
names = set()
for f in os.listdir(tools):
    if f.endswith((".c", ".h")):
        with open(os.path.join(tools, f)) as fh:
            names |= set(re.findall(r'\{\s*"([a-z][a-z0-9-]*)",\s*(?:no|required|optional)_argument',
                                    fh.read()))
if len(names) < 20:
    sys.exit("found only %d option names in %s: parser tables moved?" % (len(names), tools))

work = tempfile.mkdtemp(prefix="gpup-options-")
env = dict(os.environ, LC_ALL="C")


def refused(argv):
    p = subprocess.run([gpup] + argv, cwd=work, env=env, stdin=subprocess.DEVNULL,
                       capture_output=True, text=True, timeout=60)
    return bool(UNKNOWN.search(p.stderr))


def accepts(base, n):
    return not refused(base + ["--" + n]) or not refused(base + ["--" + n + "=x"])


def accepted(cmd):
    base = COMMANDS[cmd]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        ok = pool.map(lambda n: (n, accepts(base, n)), sorted(names))
    return {n for n, a in ok if a}


def help_listed(cmd):
    """The options of --help's option lines: an indented line starting with
    '-', up to the description (two spaces); the rule the completion uses."""
    p = subprocess.run([gpup] + COMMANDS[cmd][:1] + ["--help"], cwd=work, env=env,
                       capture_output=True, text=True, timeout=60)
    out = []
    for line in p.stdout.splitlines():
        if re.match(r"^ +-", line):
            out += re.findall(r"--([a-z][a-z0-9-]*)", re.split(r" {2,}", line.strip())[0])
    return out


def completion(cmd):
    words = ["gpup"] + COMMANDS[cmd] + ["--"]
    script = ('. "$1/tools/gpup.bash-completion"; COMP_WORDS=(%s); COMP_CWORD=%d; _gpup; '
              'printf "%%s\\n" "${COMPREPLY[@]}"' % (" ".join(words), len(words) - 1))
    path = os.path.dirname(os.path.abspath(gpup)) + ":" + env.get("PATH", "")
    p = subprocess.run(["bash", "-c", script, "bash", src], cwd=work,
                       env=dict(env, PATH=path), capture_output=True, text=True, timeout=60)
    return {w[2:] for w in p.stdout.split() if w.startswith("--")}


with open(os.path.join(tools, "gpup.1")) as fh:
    man = fh.read()


def man_entry(cmd):
    """The COMMANDS entry of @cmd: from its .TP/.B line to the next .TP or .SH."""
    section = man.split("\n.SH COMMANDS\n", 1)[1].split("\n.SH ", 1)[0]
    for entry in re.split(r"(?:^|\n)\.TP\n", section):
        head = entry.lstrip().split("\n", 1)[0]
        if re.match(r"\.B (?:[a-z]+ \| )*" + re.escape(cmd) + r"\b", head):
            return entry
    return None


def man_listed(cmd):
    entry = man_entry(cmd)
    if entry is None:
        return None
    return set(re.findall(r"\\-\\-([a-z0-9]+(?:\\-[a-z0-9]+)*)", entry))


common = set(re.findall(r"\\-\\-([a-z][a-z0-9]*(?:\\-[a-z0-9]+)*)",
                        man.split("\n.SH COMMON OPTIONS\n", 1)[1].split("\n.SH ", 1)[0]))
common = {c.replace("\\-", "-") for c in common}

problems = []
only = sys.argv[3:] or sorted(COMMANDS)
for cmd in only:
    acc = accepted(cmd)
    listed = help_listed(cmd)
    hl = set(listed)
    for n in sorted({n for n in listed if listed.count(n) > 1}):
        problems.append("%s --help lists --%s more than once" % (cmd, n))
    for n in sorted(acc - hl - {"help"}):
        problems.append("%s accepts --%s but --help does not list it" % (cmd, n))
    for n in sorted(hl - acc):
        problems.append("%s --help lists --%s but the parser refuses it" % (cmd, n))
    # --log is taken by gpup.c before any command parses (runlog.h):
    # completion offers it everywhere, no command's table names it.
    comp = completion(cmd) - {"log"}
    for n in sorted(acc - comp):
        problems.append("%s accepts --%s but completion does not offer it" % (cmd, n))
    for n in sorted(comp - acc):
        problems.append("completion offers --%s for %s, which refuses it" % (n, cmd))
    ml = man_listed(cmd)
    if ml is None:
        problems.append("gpup.1 has no COMMANDS entry for %s" % cmd)
        continue
    ml = {m.replace("\\-", "-") for m in ml}
    for n in sorted(acc - ml - common - {"help"}):
        problems.append("%s accepts --%s but gpup.1 lists it neither in its entry nor in "
                        "COMMON OPTIONS" % (cmd, n))
    head = man_entry(cmd).lstrip().split("\n", 1)[0]
    for n in sorted({m.replace("\\-", "-") for m in
                     re.findall(r"\\-\\-([a-z0-9]+(?:\\-[a-z0-9]+)*)", head)} - acc):
        problems.append("gpup.1's %s synopsis names --%s, which %s refuses" % (cmd, n, cmd))

for p in problems:
    print(p)
sys.exit(1 if problems else 0)
