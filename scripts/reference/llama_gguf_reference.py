#!/usr/bin/env python3
"""Independent reference forward pass of a llama-family GGUF model in float64 numpy.

Dequantizes every tensor with the `gguf` package (ggml's own Python reader, not Ingot's code),
then runs the HF transformers llama forward (RMSNorm, GQA attention with RoPE, SwiGLU) written
out from modeling_llama.py. llama.cpp's converter permutes q/k rows for llama, so GGUF llama
files rotate adjacent pairs; this script un-permutes q/k back to HF's layout and applies HF's
rotate_half RoPE, so it shares no layout assumption with Ingot's interleaved path.

Usage: llama_gguf_reference.py MODEL.gguf TOKEN_IDS_JSON OUT.json
Writes {"ids": [...], "top": the 10 highest [id, logit] pairs at every position}.

Regenerate Ingot's parity fixture with:
  pip install gguf==0.19.0 numpy
  python3 scripts/reference/llama_gguf_reference.py assets/models/SmolLM2-135M-Instruct.Q4_1.gguf \
      "$(cat crates/ingot-models/tests/data/smollm2_prompt_ids.json)" \
      crates/ingot-models/tests/data/smollm2_reference.json
"""
import json
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize


def field(r, key):
    f = r.fields[key]
    v = f.parts[f.data[0]]
    return v.tolist()[0] if hasattr(v, "tolist") and len(v) == 1 else v


def main(path, ids_json, out):
    r = GGUFReader(path)
    arch = bytes(field(r, "general.architecture")).decode() if not isinstance(field(r, "general.architecture"), str) else field(r, "general.architecture")
    g = lambda k: field(r, f"{arch}.{k}")
    n_layer, n_head, n_kv = g("block_count"), g("attention.head_count"), g("attention.head_count_kv")
    eps, theta = float(g("attention.layer_norm_rms_epsilon")), float(g("rope.freq_base"))
    T = {}
    for t in r.tensors:
        w = dequantize(t.data, t.tensor_type).astype(np.float64)
        T[t.name] = w.reshape([int(d) for d in reversed(t.shape)])
    ids = json.loads(ids_json)
    emb = T["token_embd.weight"]
    C = emb.shape[1]
    D = C // n_head

    def unpermute(w, heads):
        # inverse of convert_hf_to_gguf.LlamaModel.permute
        return w.reshape(heads, D // 2, 2, C).swapaxes(1, 2).reshape(heads * D, C)

    def rms(x, w):
        return x / np.sqrt((x * x).mean(-1, keepdims=True) + eps) * w

    n = len(ids)
    inv = 1.0 / theta ** (np.arange(0, D, 2) / D)
    ang = np.arange(n)[:, None] * inv[None, :]
    cos = np.concatenate([np.cos(ang)] * 2, -1)
    sin = np.concatenate([np.sin(ang)] * 2, -1)

    def rope(x):  # (heads, n, D), HF rotate_half
        x1, x2 = x[..., : D // 2], x[..., D // 2 :]
        return x * cos + np.concatenate([-x2, x1], -1) * sin

    x = emb[ids]
    mask = np.triu(np.full((n, n), -np.inf), 1)
    for i in range(n_layer):
        p = f"blk.{i}."
        h = rms(x, T[p + "attn_norm.weight"])
        q = h @ unpermute(T[p + "attn_q.weight"], n_head).T
        k = h @ unpermute(T[p + "attn_k.weight"], n_kv).T
        v = h @ T[p + "attn_v.weight"].T
        q = rope(q.reshape(n, n_head, D).transpose(1, 0, 2))
        k = rope(k.reshape(n, n_kv, D).transpose(1, 0, 2))
        v = v.reshape(n, n_kv, D).transpose(1, 0, 2)
        rep = n_head // n_kv
        k = np.repeat(k, rep, axis=0)
        v = np.repeat(v, rep, axis=0)
        s = q @ k.transpose(0, 2, 1) / np.sqrt(D) + mask
        s = np.exp(s - s.max(-1, keepdims=True))
        s /= s.sum(-1, keepdims=True)
        y = (s @ v).transpose(1, 0, 2).reshape(n, C)
        x = x + y @ T[p + "attn_output.weight"].T
        h = rms(x, T[p + "ffn_norm.weight"])
        gate = h @ T[p + "ffn_gate.weight"].T
        up = h @ T[p + "ffn_up.weight"].T
        x = x + ((gate / (1 + np.exp(-gate))) * up) @ T[p + "ffn_down.weight"].T
    x = rms(x, T["output_norm.weight"])
    head = T.get("output.weight", emb)
    logits = x @ head.T
    top = [[[int(j), round(float(l[j]), 5)] for j in np.argsort(-l)[:10]] for l in logits]
    with open(out, "w") as f:
        json.dump({"ids": ids, "top": top}, f)


if __name__ == "__main__":
    main(*sys.argv[1:])
