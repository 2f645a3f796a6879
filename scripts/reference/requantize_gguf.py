#!/usr/bin/env python3
"""Re-quantize every tensor of one GGML type in a GGUF to another type (dequantize, then quantize),
keeping all metadata. Used to measure how much one more round of quantization noise moves a
benchmark score (e.g. Q4_1 -> Q4_0), when the original higher-precision weights are unavailable.

    python3 scripts/reference/requantize_gguf.py IN.gguf OUT.gguf --from Q4_1 --to Q4_0

Needs `pip install gguf numpy`; for comparison experiments only, not part of Ingot.
"""
import argparse

import gguf
import numpy as np
from gguf import quants


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--from", dest="src_type", default="Q4_1")
    ap.add_argument("--to", dest="dst_type", default="Q4_0")
    a = ap.parse_args()
    src_t = gguf.GGMLQuantizationType[a.src_type]
    dst_t = gguf.GGMLQuantizationType[a.dst_type]
    r = gguf.GGUFReader(a.src)
    arch = r.fields["general.architecture"]
    arch = bytes(arch.parts[arch.data[0]]).decode()
    w = gguf.GGUFWriter(a.dst, arch)
    for name, f in r.fields.items():
        if name.startswith("GGUF.") or name == "general.architecture":
            continue
        t = f.types[0]
        if t == gguf.GGUFValueType.ARRAY:
            sub = f.types[1]
            if sub == gguf.GGUFValueType.STRING:
                vals = [bytes(f.parts[i]).decode("utf-8", "surrogateescape") for i in f.data]
            else:
                vals = [f.parts[i].tolist()[0] for i in f.data]
            w.add_key_value(name, vals, t, sub_type=sub)
        elif t == gguf.GGUFValueType.STRING:
            w.add_key_value(name, bytes(f.parts[f.data[0]]).decode("utf-8", "surrogateescape"), t)
        else:
            w.add_key_value(name, f.parts[f.data[0]].tolist()[0], t)
    n = 0
    for tensor in r.tensors:
        shape = [int(x) for x in reversed(tensor.shape.tolist())]  # numpy order
        if tensor.tensor_type == src_t:
            x = quants.dequantize(tensor.data, src_t).reshape(shape).astype(np.float32)
            data = quants.quantize(x, dst_t)
            w.add_tensor(tensor.name, data, raw_shape=data.shape, raw_dtype=dst_t)
            n += 1
        else:
            w.add_tensor(tensor.name, np.asarray(tensor.data), raw_shape=tensor.data.shape, raw_dtype=tensor.tensor_type)
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    print(f"{n} tensors {a.src_type} -> {a.dst_type}: {a.dst}")


if __name__ == "__main__":
    main()
