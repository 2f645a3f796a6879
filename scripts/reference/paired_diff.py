#!/usr/bin/env python3
"""Paired comparison of two `ingot eval` samples logs of the same task (same documents): accuracy
of each and how many predictions changed. Used to measure what a quantization step costs.

    python3 scripts/reference/paired_diff.py A/samples/piqa.jsonl B/samples/piqa.jsonl
"""
import json,sys
def load(p):
    L={}
    for l in open(p).readlines()[1:]:
        if l.strip().endswith('}'):
            d=json.loads(l); L[d['doc']]=d
    return L
def am(x):
    b=0
    for i in range(len(x)):
        if x[i]>x[b]: b=i
    return b
a=load(sys.argv[1]); b=load(sys.argv[2])
common=sorted(set(a)&set(b))
n=len(common)
for name,f in [('acc',lambda d:am(d['loglik'])),('acc_norm',lambda d:am([l/m for l,m in zip(d['loglik'],d['lens'])]))]:
    ca=sum(f(a[i])==a[i]['gold'] for i in common); cb=sum(f(b[i])==b[i]['gold'] for i in common)
    flips=sum(f(a[i])!=f(b[i]) for i in common)
    print(f"{name}: n={n} A={100*ca/n:.2f} B={100*cb/n:.2f} diff={100*(cb-ca)/n:+.2f} predictions changed on {flips} ({100*flips/n:.1f}%)")
