#!/usr/bin/env python3
"""inf_oracle.py - an INF reader independent of gpup's (drivers/inf.c,
drivers/store_inject.c), the oracle of tests/drivers/test_inf546.c.

usage: inf_oracle.py INF PACKAGE_DIR

Creates a small file for every [SourceDisksFiles*] entry of INF under
PACKAGE_DIR (at its SourceDisksNames/SourceDisksFiles subfolder), then prints,
for every install section a model line of the INF names, what Windows copies
into the guest's System32 / SysWOW64 for it:

    S <section> <first hardware ID of a model line naming it>
    F <section> <guest path>          Windows/System32/..., Windows/SysWOW64/...
    C <section> <CopyINF name>

The rules, written from Microsoft's documentation, not from gpup's code:
  - DDInstall: <section>.NT<arch>, else <section>.NT, else <section>;
    CopyFiles (file-list sections and @file), AddReg, CopyINF, Needs;
  - DestinationDirs <section> (else DefaultDestDir, else 11): 11 and
    10,System32 = System32, 16425 and 10,SysWOW64 = SysWOW64, subfolders kept;
    a file-list line is "dest[,source,...]";
  - "Driver INF modifications" (display/container-non-dx.md): values of
    HKR,CopyToVm{Overwrite,WhenNewer}[Wow64] are REG_SZ or REG_MULTI_SZ of at
    most two strings: the driver-store path, then the name in System32
    (SysWOW64 for *Wow64); no or an empty second string = the first string's
    file name. REG_MULTI_SZ with FLG_ADDREG_APPEND (0x8) appends.
"""
import os
import sys

ARCH = "amd64"


def decode(data):
    if data.startswith(b"\xff\xfe"):
        return data[2:].decode("utf-16-le")
    if data.startswith(b"\xfe\xff"):
        return data[2:].decode("utf-16-be")
    if data.startswith(b"\xef\xbb\xbf"):
        return data[3:].decode("utf-8")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252")


def logical_lines(text):
    """(section, raw line) pairs: comments cut, continuations joined."""
    out, section, pending = [], None, ""
    for phys in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        in_q, cut = False, len(phys)
        for i, ch in enumerate(phys):
            if ch == '"':
                in_q = not in_q
            elif ch == ";" and not in_q:
                cut = i
                break
        line = (pending + phys[:cut]).rstrip()
        if line.endswith("\\"):
            pending = line[:-1]
            continue
        pending = ""
        line = line.strip()
        if not line:
            continue
        if line.startswith("["):
            section = line[1:line.index("]") if "]" in line else len(line)].strip()
            out.append((section, None))
            continue
        if section is not None:
            out.append((section, line))
    return out


def split_outside_quotes(s, sep):
    parts, cur, in_q = [], "", False
    for ch in s:
        if ch == '"':
            in_q = not in_q
        if ch == sep and not in_q:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    return parts


def unquote(s):
    s = s.strip()
    out, in_q, i = "", False, 0
    while i < len(s):
        if s[i] == '"':
            if in_q and i + 1 < len(s) and s[i + 1] == '"':
                out += '"'
                i += 2
                continue
            in_q = not in_q
            i += 1
            continue
        out += s[i]
        i += 1
    return out


class Inf:
    def __init__(self, path):
        with open(path, "rb") as f:
            pairs = logical_lines(decode(f.read()))
        self.raw = {}
        self.names = {}
        for sec, line in pairs:
            key = sec.lower()
            self.names.setdefault(key, sec)
            self.raw.setdefault(key, [])
            if line is not None:
                self.raw[key].append(line)
        self.strings = {}
        for sec in ("strings", "strings.0409"):
            for line in self.raw.get(sec, []):
                k, _, v = line.partition("=")
                self.strings[k.strip().lower()] = unquote(v)

    def subst(self, s, depth=0):
        out, i = "", 0
        while i < len(s):
            if s[i] == "%":
                j = s.find("%", i + 1)
                if j < 0:
                    out += s[i:]
                    break
                name = s[i + 1:j]
                if name == "":
                    out += "%"
                elif name.lower() in self.strings and depth < 8:
                    out += self.subst(self.strings[name.lower()], depth + 1)
                else:
                    out += s[i:j + 1]
                i = j + 1
                continue
            out += s[i]
            i += 1
        return out

    def lines(self, section):
        """(key or None, [values]) of a section, substituted and unquoted."""
        res = []
        for line in self.raw.get(section.lower(), []):
            eq = split_outside_quotes(line, "=")
            key = None
            if len(eq) > 1:
                key = unquote(self.subst(eq[0]))
                line = "=".join(eq[1:])
            vals = [unquote(self.subst(v)) for v in split_outside_quotes(line, ",")]
            if vals == [""]:
                vals = []
            res.append((key, vals))
        return res

    def has(self, section):
        return section.lower() in self.raw


def guest_dir(inf, copy_section):
    dd = {k.lower(): v for k, v in inf.lines("DestinationDirs") if k}
    ent = dd.get((copy_section or "").lower(), dd.get("defaultdestdir", ["11"]))
    if not ent:
        return None
    dirid = ent[0].strip()
    sub = ent[1].replace("\\", "/").strip("/") if len(ent) > 1 else ""
    if dirid == "11":
        base = "Windows/System32"
    elif dirid == "16425":
        base = "Windows/SysWOW64"
    elif dirid == "10" and sub.split("/")[0].lower() in ("system32", "syswow64"):
        base = "Windows/System32" if sub.split("/")[0].lower() == "system32" else "Windows/SysWOW64"
        sub = "/".join(sub.split("/")[1:])
    else:
        return None
    return base + ("/" + sub if sub else "")


def install(inf, section):
    """(set of guest paths, set of CopyINF names) for one model's section."""
    files, copyinf, values, seen = set(), set(), {}, set()

    def run(sec):
        if sec.lower() in seen or not inf.has(sec):
            return
        seen.add(sec.lower())
        for key, vals in inf.lines(sec):
            if not key:
                continue
            for v in vals:
                if not v:
                    continue
                k = key.lower()
                if k == "copyfiles":
                    if v.startswith("@"):
                        d = guest_dir(inf, None)
                        if d:
                            files.add(d + "/" + v[1:])
                        continue
                    d = guest_dir(inf, v)
                    if d is None:
                        continue
                    for fk, fv in inf.lines(v):
                        if fk is None and fv and fv[0]:
                            files.add(d + "/" + fv[0])
                elif k == "addreg":
                    for fk, fv in inf.lines(v):
                        if fk is not None or len(fv) < 3 or fv[0].upper() != "HKR":
                            continue
                        sub = fv[1]
                        if sub.lower() not in ("copytovmoverwrite", "copytovmwhennewer",
                                               "copytovmoverwritewow64", "copytovmwhennewerwow64"):
                            continue
                        flags = int(fv[3], 0) if len(fv) > 3 and fv[3] else 0
                        typ = flags & 0xFFFF0001
                        name = (sub.lower(), fv[2].lower())
                        strs = fv[4:]
                        if typ == 0x10000 and flags & 0x8:
                            values[name] = values.get(name, []) + strs
                        elif typ == 0x10000:
                            values[name] = list(strs)
                        elif typ == 0:
                            values[name] = strs[:1]
                elif k == "copyinf":
                    copyinf.add(v.replace("/", "\\").split("\\")[-1].lower())
                elif k == "needs":
                    run(v)

    for cand in (section + ".NT" + ARCH, section + ".NT", section):
        if inf.has(cand):
            run(cand)
            break
    for (sub, _), strs in values.items():
        if not strs or not strs[0]:
            continue
        src = strs[0]
        dest = strs[1] if len(strs) > 1 and strs[1] else src.replace("/", "\\").split("\\")[-1]
        base = "Windows/SysWOW64" if sub.endswith("wow64") else "Windows/System32"
        files.add(base + "/" + dest)
    return files, copyinf


def make_stubs(inf, pkg_dir):
    disks = {}
    for sec in ("SourceDisksNames", "SourceDisksNames." + ARCH):
        for k, v in inf.lines(sec):
            if k:
                disks[k] = v[3] if len(v) > 3 else ""
    for sec in ("SourceDisksFiles", "SourceDisksFiles." + ARCH):
        for k, v in inf.lines(sec):
            if not k:
                continue
            parts = [disks.get(v[0], "") if v else "", v[1] if len(v) > 1 else ""]
            sub = "/".join(p.replace("\\", "/").strip("/") for p in parts if p)
            d = os.path.join(pkg_dir, sub) if sub else pkg_dir
            os.makedirs(d, exist_ok=True)
            f = os.path.join(d, k)
            if not os.path.exists(f):
                with open(f, "w") as out:
                    out.write(k)


def main():
    inf = Inf(sys.argv[1])
    make_stubs(inf, sys.argv[2])
    models = []
    for key, vals in inf.lines("Manufacturer"):
        if not vals:
            continue
        decos = [d for d in vals[1:] if d] or [""]
        for d in decos:
            models.append(vals[0] + ("." + d if d else ""))
    first = {}
    for m in models:
        for key, vals in inf.lines(m):
            if key and len(vals) >= 2 and vals[0] and vals[0].lower() not in first:
                first[vals[0].lower()] = (vals[0], vals[1])
    for low in sorted(first):
        section, hwid = first[low]
        files, copyinf = install(inf, section)
        print("S", section, hwid)
        for f in sorted(files, key=str.lower):
            print("F", section, f)
        for c in sorted(copyinf):
            print("C", section, c)


if __name__ == "__main__":
    main()
