#!/usr/bin/env python3
"""Converts the F32 tensors of a safetensors file to F16 (metadata kept): how the shipped weights
are made small. Usage: python3 scripts/to_f16.py IN.safetensors OUT.safetensors (needs numpy)."""
import json, struct, sys, numpy as np
src, dst = sys.argv[1], sys.argv[2]
b = open(src, "rb").read()
n = struct.unpack("<Q", b[:8])[0]
h = json.loads(b[8:8 + n])
meta = h.pop("__metadata__", None)
out_h, blobs, off = {}, [], 0
for k in sorted(h, key=lambda k: h[k]["data_offsets"][0]):
    v = h[k]
    raw = b[8 + n + v["data_offsets"][0]: 8 + n + v["data_offsets"][1]]
    if v["dtype"] == "F32":
        a = np.frombuffer(raw, "<f4").astype("<f2")
        assert np.isfinite(a).all(), k
        raw = a.tobytes(); dt = "F16"
    else:
        dt = v["dtype"]
    out_h[k] = {"dtype": dt, "shape": v["shape"], "data_offsets": [off, off + len(raw)]}
    blobs.append(raw); off += len(raw)
if meta is not None:
    out_h["__metadata__"] = meta
hj = json.dumps(out_h, separators=(",", ":")).encode()
hj += b" " * ((8 - len(hj) % 8) % 8)
open(dst, "wb").write(struct.pack("<Q", len(hj)) + hj + b"".join(blobs))
