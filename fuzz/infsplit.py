#!/usr/bin/env python3
"""fuzz/infsplit.py IN.inf OUTPREFIX [MAXBYTES] -- cut a large INF into
small seed INFs for fuzz_inf (each at most MAXBYTES, default 3500; fuzz/run.sh
runs fuzz_inf with -max_len=8192): runs of consecutive [sections], each
followed by the [Strings] entries its %keys% use. Writes OUTPREFIX-NN.inf.
ANSI/UTF-8 input only (the UTF-16LE seed is small enough as it is).
The whole file stays a seed as well (the regression test replays it)."""
import re
import sys

src, prefix = sys.argv[1], sys.argv[2]
limit = int(sys.argv[3]) if len(sys.argv) > 3 else 3500
text = open(src, 'rb').read().decode('latin-1').replace('\r\n', '\n')
secs, cur = [], None
for line in text.split('\n'):
    if line.startswith('['):
        cur = [line]
        secs.append(cur)
    elif cur is not None:
        cur.append(line)
strings = {}
body = []
for s in secs:
    if s[0].strip().lower() == '[strings]':
        for line in s[1:]:
            m = re.match(r'\s*([^=;\s]+)\s*=', line)
            if m:
                strings[m.group(1).lower()] = line
    else:
        # A long section keeps its first lines (room for its strings).
        keep, size = [], 0
        for line in s:
            if size + len(line) + 1 > limit // 2:
                break
            keep.append(line)
            size += len(line) + 1
        body.append('\n'.join(keep).rstrip('\n') + '\n')


def emit(chunk, n):
    keys = []
    for k in re.findall(r'%([^%\s]+)%', ''.join(chunk)):
        if k.lower() in strings and strings[k.lower()] not in keys:
            keys.append(strings[k.lower()])
    out = ''.join(chunk) + ('\n[Strings]\n' + '\n'.join(keys) + '\n' if keys else '')
    out = out.encode('latin-1')[:limit].replace(b'\n', b'\r\n')
    with open('%s-%02d.inf' % (prefix, n), 'wb') as f:
        f.write(out)


chunk, n = [], 0
for s in body:
    if chunk and sum(map(len, chunk)) + len(s) > limit * 2 // 3:
        emit(chunk, n)
        chunk, n = [], n + 1
    chunk.append(s)
if chunk:
    emit(chunk, n)
