"""PyTorch side of `ingot train-bench`: the same GPT, data shape, optimizer and clipping, timed the
same way, so scripts/bench-training can print the two side by side.

Model (written here from the GPT-2 paper and nanoGPT's choices, not copied): 6 layers, 6 heads,
width 384, vocabulary 4096, context 256, learned positions, pre-LayerNorm blocks with biases,
GELU (tanh), tied output head, no dropout; init N(0, 0.02) with the residual projections at
0.02 / sqrt(2 * layers). Batch 8 of seeded random tokens. AdamW (betas 0.9, 0.95, eps 1e-8,
weight decay 0.1 on matrices only, lr 1e-4), gradient norm clipped at 1.0. Attention is
`scaled_dot_product_attention` (PyTorch's fastest CPU path).

Modes: f32, and bf16 autocast (f32 master weights; bf16 matmuls, on AMX where the CPU has it).
Prints one JSON line per mode: tokens/s and the step split (forward+loss, backward, optimizer),
each averaged over the timed steps after one warm-up step; --forward-only times forward+loss
without gradients (inference mode).

--shape char is the character Shakespeare model of configs/shakespeare-char.toml instead (GPT-2,
4 layers, 4 heads, width 128, context 64, batch 12, 80 symbols): nanoGPT's CPU configuration.

    python train_bench.py --mode f32|bf16 [--shape bench|char] [--steps 5] [--threads 2] [--forward-only]
"""

import argparse
import json
import math
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

SHAPES = {"bench": (6, 6, 384, 4096, 256, 8), "char": (4, 4, 128, 80, 64, 12)}
LAYERS, HEADS, WIDTH, VOCAB, CTX, BATCH = SHAPES["bench"]


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1 = nn.LayerNorm(WIDTH)
        self.c_attn = nn.Linear(WIDTH, 3 * WIDTH)
        self.attn_proj = nn.Linear(WIDTH, WIDTH)
        self.ln_2 = nn.LayerNorm(WIDTH)
        self.c_fc = nn.Linear(WIDTH, 4 * WIDTH)
        self.mlp_proj = nn.Linear(4 * WIDTH, WIDTH)

    def forward(self, x):
        b, t, c = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(c, dim=2)
        shape = (b, t, HEADS, c // HEADS)
        q, k, v = (z.view(shape).transpose(1, 2) for z in (q, k, v))
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.attn_proj(y.transpose(1, 2).reshape(b, t, c))
        return x + self.mlp_proj(F.gelu(self.c_fc(self.ln_2(x)), approximate="tanh"))


class Gpt(nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = nn.Embedding(VOCAB, WIDTH)
        self.wpe = nn.Embedding(CTX, WIDTH)
        self.h = nn.ModuleList(Block() for _ in range(LAYERS))
        self.ln_f = nn.LayerNorm(WIDTH)
        for name, p in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(p)
            elif p.dim() >= 2:
                std = 0.02 / math.sqrt(2 * LAYERS) if name.endswith("proj.weight") else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, idx, targets):
        pos = torch.arange(idx.shape[1])
        x = self.wte(idx) + self.wpe(pos)
        for block in self.h:
            x = block(x)
        logits = F.linear(self.ln_f(x), self.wte.weight)  # tied head
        return F.cross_entropy(logits.float().reshape(-1, VOCAB), targets.reshape(-1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["f32", "bf16"], required=True)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--forward-only", action="store_true")
    ap.add_argument("--shape", choices=sorted(SHAPES), default="bench")
    args = ap.parse_args()
    global LAYERS, HEADS, WIDTH, VOCAB, CTX, BATCH
    LAYERS, HEADS, WIDTH, VOCAB, CTX, BATCH = SHAPES[args.shape]
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Gpt()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and not n.startswith("wpe")]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2 or n.startswith("wpe")]
    opt = torch.optim.AdamW(
        [{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
        lr=1e-4,
        betas=(0.9, 0.95),
        eps=1e-8,
    )
    gen = torch.Generator().manual_seed(0)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=args.mode == "bf16")
    fwd = bwd = optim = 0.0
    faults0 = 0
    for step in range(args.steps + 1):
        if step == 1:
            faults0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        data = torch.randint(0, VOCAB, (BATCH, CTX + 1), generator=gen)
        x, y = data[:, :-1], data[:, 1:]
        t0 = time.perf_counter()
        if args.forward_only:
            with torch.inference_mode(), autocast:
                loss = model(x, y)
            loss.item()
            t1 = t2 = t3 = time.perf_counter()
        else:
            with autocast:
                loss = model(x, y)
            loss.item()
            t1 = time.perf_counter()
            loss.backward()
            t2 = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            t3 = time.perf_counter()
        if step > 0:
            fwd, bwd, optim = fwd + t1 - t0, bwd + t2 - t1, optim + t3 - t2
    n = args.steps
    total = fwd + bwd + optim
    print(
        json.dumps(
            {
                "tool": "pytorch",
                "torch": torch.__version__,
                "mode": args.mode,
                "shape": args.shape,
                "steps_per_sec": n / total,
                "forward_only": args.forward_only,
                "threads": args.threads,
                "tokens_per_sec": n * BATCH * CTX / total,
                "forward_secs": fwd / n,
                "backward_secs": bwd / n,
                "optimizer_secs": optim / n,
                "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                "page_faults_per_step": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults0) / n,
            }
        )
    )


if __name__ == "__main__":
    main()
