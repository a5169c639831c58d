#!/usr/bin/env python3
"""Writes a .maeml checkpoint without its optimizer section (weights + training header, CRCs updated).

The long run's committed resume state must stay small: AdamW's two moments would triple a 12.5 MB model. Resuming from
the stripped file continues the same schedule at the same (epoch, step) with freshly zeroed AdamW moments (bias
correction restarts), so it is not bit-exact. Usage: strip-optimizer.py IN.maeml OUT.maeml
"""
import json, os, struct, sys, zlib

src, dst = sys.argv[1], sys.argv[2]
with open(src, 'rb') as f:
    data = f.read()
assert data[:5] == b'MAEML', f'{src}: not a MaeMl checkpoint'
version = data[5]
(n,) = struct.unpack_from('<i', data, 6)
header = json.loads(data[10:10 + n])
pos = 10 + n
(model_len,) = struct.unpack_from('<q', data, pos)
model = data[pos + 8: pos + 8 + model_len]
if 'checksums' in header:   # files written before the checksums were added have none
    assert zlib.crc32(model) == header['checksums']['model_crc32'], f'{src}: model section fails its CRC-32'
    header['checksums']['optimizer_crc32'] = 0
header['has_optimizer'] = False
header.setdefault('training', {})['optimizer_state'] = 'stripped: AdamW moments restart from zero on resume'
js = json.dumps(header, separators=(',', ':')).encode('utf-8')
tmp = dst + '.tmp'
with open(tmp, 'wb') as f:
    f.write(b'MAEML' + bytes([version]) + struct.pack('<i', len(js)) + js + struct.pack('<q', len(model)) + model + struct.pack('<q', 0))
os.replace(tmp, dst)
print(f'{dst}: {os.path.getsize(dst) / 1e6:.1f} MB (from {len(data) / 1e6:.1f} MB), epoch {header["training"].get("epoch")}, step {header["training"].get("step_in_epoch")}')
