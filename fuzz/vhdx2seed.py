#!/usr/bin/env python3
"""vhdx2seed.py IMAGE.vhdx OUT [FLAGS] — turn a VHDX file into a fuzz_vhdx
seed (the sparse-file description fuzz_vhdx.c documents): the non-zero
512-byte runs of the 1 MiB header section, of the regions the first region
table names (BAT, metadata) and of the log regions both headers name.
Payload blocks are left out: they are data, not structure, and would make
the seed large. FLAGS (default 1: recompute checksums) is the first byte.
Deterministic: same image, same seed."""
import struct
import sys

MAX_FILE = 128 << 20


def runs(buf, base, out):
    """Append (offset, bytes) for the non-zero 512-byte sectors of buf."""
    start = None
    for i in range(0, len(buf), 512):
        nz = any(buf[i:i + 512])
        if nz and start is None:
            start = i
        if (not nz or i + 512 >= len(buf)) and start is not None:
            end = i + 512 if nz else i
            for p in range(start, end, 65024):
                out.append((base + p, buf[p:min(end, p + 65024)]))
            start = None


def main():
    img, dst = sys.argv[1], sys.argv[2]
    flags = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    with open(img, 'rb') as f:
        data = f.read()
    recs = []
    runs(data[:1 << 20], 0, recs)
    rt = data[0x30000:0x40000]
    n = struct.unpack_from('<I', rt, 8)[0]
    spans = []
    for i in range(min(n, 2047)):
        _, off, length, _ = struct.unpack_from('<16sQII', rt, 16 + 32 * i)
        spans.append((off, length))
    for h in (0x10000, 0x20000):
        llen, loff = struct.unpack_from('<IQ', data, h + 68)
        spans.append((loff, llen))
    for off, length in sorted(set(spans)):
        if off >= (1 << 20) and off + length <= min(len(data), MAX_FILE):
            runs(data[off:off + length], off, recs)
    units = min((len(data) + 0xffff) >> 16, 2048)
    with open(dst, 'wb') as f:
        f.write(bytes([flags]) + struct.pack('<H', units))
        for off, b in recs:
            f.write(struct.pack('<IH', off, len(b)) + b)


main()
