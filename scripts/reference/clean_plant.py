"""Planted trouble with known answers for `scripts/clean-corpus`, and the check of what
`ingot data clean` found.

    python clean_plant.py real DOCS.jsonl OUT_DIR               # writes OUT_DIR/real/real.jsonl
    python clean_plant.py plant DOCS.jsonl EVAL_ROOT OUT_DIR KEPT_DIR   # writes OUT_DIR/{raw/*.jsonl,plants.json}
    python clean_plant.py check OUT_DIR CLEAN_DIR REPORT.md     # recall, false positives, contamination

`real` writes the real documents as one JSONL file; `plant` copies it to OUT_DIR/raw/real.jsonl and
adds OUT_DIR/raw/zz_planted.jsonl, each plant made from a real document that a first clean of the
real documents alone kept (KEPT_DIR, its clean_*.jsonl), so the plants' hosts pass the filters:
- near copies of real documents with a known share of words replaced (0.5% to 10%), their exact
  Jaccard of word 5-gram shingles (lowercased words of letters and digits) recorded;
- exact copies that differ only in spacing and case of one word;
- documents carrying one benchmark item each (question and answer text of GSM8K, ARC-Easy,
  OpenBookQA, LAMBADA requests), spliced into a real document;
- e-mail addresses, phone numbers, IPs and Luhn-valid card numbers appended to real documents
  (in place, in real.jsonl: a copy with one more line would be its host's near duplicate).
`check` reads the removed/ lists and the report, and writes the figures.
"""

import gzip
import json
import random
import re
import sys
from pathlib import Path

WORD = re.compile(r"[a-z0-9]+")


def shingles(text, n=5):
    words = WORD.findall(text.lower())
    return {" ".join(words[i : i + n]) for i in range(max(1, len(words) - n + 1))}


def jaccard(a, b):
    sa, sb = shingles(a), shingles(b)
    return len(sa & sb) / max(1, len(sa | sb))


def edit(text, rate, rng, vocab):
    tokens = re.split(r"(\s+)", text)
    for i in range(0, len(tokens), 2):
        # Whole words only: a line keeps its closing punctuation (which C4's line rule reads).
        if tokens[i].isalpha() and rng.random() < rate:
            tokens[i] = rng.choice(vocab)
    return "".join(tokens)


def luhn_complete(prefix):
    digits = [int(d) for d in prefix]
    total = 0
    for i, d in enumerate(reversed(digits)):
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return prefix + str((10 - total % 10) % 10)


def benchmark_items(root, per_task, rng):
    items = []
    for task, variant in [
        ("gsm8k", "gsm8k/gold_bpb_5shot"),
        ("arc_easy", "arc_easy/test_rc_5shot"),
        ("openbookqa", "openbookqa/test_rc_5shot"),
        ("lambada_openai", "lambada/bpb_0shot"),
    ]:
        seen, docs = set(), []
        with gzip.open(Path(root) / "oe_eval_tasks" / variant / "requests.jsonl.gz", "rt") as f:
            for line in f:
                row = json.loads(line)
                if row.get("doc_id") in seen:
                    continue
                seen.add(row.get("doc_id"))
                d = row["doc"]
                text = d.get("question") or d.get("query", "")
                text = text.replace("Question:", "").replace("\nAnswer:", "").strip()
                if len(text.split()) >= 20:
                    docs.append(text)
        for text in rng.sample(docs, per_task):
            items.append((task, text))
    return items


def write_real(docs_path, path, extra=None):
    """The real documents as JSONL; `extra` maps a document's index to a line appended to it."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for i, line in enumerate(open(docs_path, encoding="utf-8")):
            d = json.loads(line)
            text = d["text"] + ("\n\n" + extra[i] if extra and i in extra else "")
            f.write(json.dumps({"text": text, "source": d["id"]}) + "\n")


def real(docs_path, out_dir):
    write_real(docs_path, Path(out_dir) / "real" / "real.jsonl")


def plant(docs_path, eval_root, out_dir, kept_dir):
    rng = random.Random(17)
    out = Path(out_dir)
    (out / "raw").mkdir(parents=True, exist_ok=True)
    docs = [json.loads(l) for l in open(docs_path, encoding="utf-8")]
    kept = set()
    for path in Path(kept_dir).glob("clean_*.jsonl"):
        for line in open(path, encoding="utf-8"):
            kept.add(int(json.loads(line)["id"].rsplit(":", 1)[1]) - 1)
    long_docs = [i for i in sorted(kept) if len(docs[i]["text"].split()) >= 150]
    vocab = sorted({w for d in docs[:500] for w in d["text"].split() if w.isalpha()})
    hosts = rng.sample(long_docs, 420)
    planted, plants = [], []

    def add(kind, text, **meta):
        planted.append({"text": text})
        plants.append({"line": len(planted), "kind": kind, **meta})

    for k, i in enumerate(hosts[:240]):
        rate = [0.005, 0.01, 0.02, 0.03, 0.05, 0.10][k % 6]
        copy = edit(docs[i]["text"], rate, rng, vocab)
        add("near", copy, of=docs[i]["id"], rate=rate, jaccard=round(jaccard(docs[i]["text"], copy), 4))
    for i in hosts[240:300]:
        text = docs[i]["text"]
        words = text.split(" ")
        j = rng.randrange(len(words))
        words[j] = words[j].upper()
        add("exact", "  ".join(words), of=docs[i]["id"])
    for (task, item), i in zip(benchmark_items(eval_root, 15, rng), hosts[300:360]):
        paras = docs[i]["text"].split("\n\n")
        at = rng.randrange(len(paras) + 1)
        add("contaminated", "\n\n".join(paras[:at] + [item] + paras[at:]), benchmark=task, of=docs[i]["id"])
    pii_lines = {}
    for k, i in enumerate(hosts[360:420]):
        card = luhn_complete("4" + "".join(rng.choice("0123456789") for _ in range(14)))
        pii = [
            f"Write to {rng.choice(['ann', 'bo', 'cy'])}.{k}@example.org for the tickets.",
            f"Call +1 (555) {rng.randrange(200, 999)}-{rng.randrange(1000, 9999)} after six.",
            f"The server is at 192.168.{rng.randrange(256)}.{rng.randrange(1, 255)} now.",
            f"Pay with card {card[:4]} {card[4:8]} {card[8:12]} {card[12:]} please.",
        ][k % 4]
        # In place: a copy of its host with one more line would be the host's near duplicate.
        pii_lines[i] = pii
        plants.append({"line": None, "real_line": i + 1, "kind": "pii", "pii": ["email", "phone", "ip", "card"][k % 4]})
    write_real(docs_path, out / "raw" / "real.jsonl", pii_lines)
    with open(out / "raw" / "zz_planted.jsonl", "w", encoding="utf-8") as f:
        for p in planted:
            f.write(json.dumps(p) + "\n")
    (out / "plants.json").write_text(json.dumps(plants, indent=1))
    print(f"planted {len(plants)} documents beside {len(docs)} real ones in {out / 'raw'}")


def check(out_dir, clean_dir, report_md):
    out, clean = Path(out_dir), Path(clean_dir)
    plants = json.loads((out / "plants.json").read_text())
    removed = {}
    for path in sorted((clean / "removed").glob("*.jsonl")):
        for line in open(path, encoding="utf-8"):
            r = json.loads(line)
            removed[r["id"]] = r
    real_removed = {}
    for rid, r in removed.items():
        if "/real.jsonl:" in rid:
            real_removed[r["reason"]] = real_removed.get(r["reason"], 0) + 1
    report = json.loads((clean / "report.json").read_text())
    rows = []

    def outcome(p):
        return removed.get(f"{out / 'raw' / 'zz_planted.jsonl'}:{p['line']}")

    # Near copies: found when removed as a duplicate. Binned by the Jaccard of the two texts as
    # dedup compares them (after C4's line rules, which can drop an edited line), not as planted.
    kept = {}
    for path in sorted(clean.glob("clean_*.jsonl")):
        for line in open(path, encoding="utf-8"):
            d = json.loads(line)
            kept[d["id"]] = d["text"]
    sources = {}
    for i, line in enumerate(open(out / "raw" / "real.jsonl", encoding="utf-8")):
        sources[json.loads(line)["source"]] = f"{out / 'raw' / 'real.jsonl'}:{i + 1}"
    by_bin = {}
    filtered = 0
    for p in (p for p in plants if p["kind"] == "near"):
        me = f"{out / 'raw' / 'zz_planted.jsonl'}:{p['line']}"
        r = outcome(p)
        host = kept.get(sources[p["of"]])
        mine = r["text"] if r is not None and r["reason"].endswith("duplicate") else kept.get(me)
        if host is None or mine is None:
            filtered += 1
            continue
        j = jaccard(host, mine)
        b = ">=0.8" if j >= 0.8 else "0.7-0.8" if j >= 0.7 else "0.5-0.7" if j >= 0.5 else "<0.5"
        hit = r is not None
        found, total = by_bin.get(b, (0, 0))
        by_bin[b] = (found + hit, total + 1)
    exact = [p for p in plants if p["kind"] == "exact"]
    exact_found = sum(1 for p in exact if (outcome(p) or {}).get("reason", "").endswith("duplicate"))
    cont = [p for p in plants if p["kind"] == "contaminated"]
    cont_found = sum(1 for p in cont if (outcome(p) or {}).get("reason") == "contaminated")
    cont_filtered = sum(1 for p in cont if outcome(p) and outcome(p)["reason"] != "contaminated")
    real_contaminated = real_removed.get("contaminated", 0)
    rows.append("# Planted trouble: what `ingot data clean` found\n")
    rows.append("| near copies, exact Jaccard | found as duplicates | recall |\n|---|---|---|")
    for b in [">=0.8", "0.7-0.8", "0.5-0.7", "<0.5"]:
        if b in by_bin:
            f, t = by_bin[b]
            rows.append(f"| {b} | {f} / {t} | {100 * f / t:.1f}% |")
    rows.append(f"\n{filtered} near copies (or their hosts) were removed by a filter before dedup (not counted).")
    rows.append(f"\nExact copies (spacing and case changed): {exact_found} / {len(exact)} found.")
    rows.append(
        f"\nBenchmark items planted: {cont_found} / {len(cont) - cont_filtered} removed as contaminated "
        f"({cont_filtered} host documents removed earlier by a filter); real documents flagged: {real_contaminated}."
    )
    for rid, r in sorted(removed.items()):
        if "/real.jsonl:" in rid and r["reason"] == "contaminated":
            src = json.loads(open(out / "raw" / "real.jsonl", encoding="utf-8").readlines()[int(rid.rsplit(":", 1)[1]) - 1])["source"]
            rows.append(f"- real document {src} overlaps {', '.join(r['benchmarks'])}: \"{r['ngram']}\"")
    real_dups = sum(v for k, v in real_removed.items() if k.endswith("duplicate"))
    real_total = sum(1 for l in open(out / "raw" / "real.jsonl", encoding="utf-8"))
    rows.append(f"\nReal documents removed as duplicates of other real documents: {real_dups} of {real_total}.")
    placeholder = {"email": "<EMAIL>", "phone": "<PHONE>", "ip": "<IP_ADDRESS>", "card": "<CARD>"}
    pii_rows = []
    for k in ["email", "phone", "ip", "card"]:
        mine = [p for p in plants if p.get("pii") == k]
        texts = [kept.get(f"{out / 'raw' / 'real.jsonl'}:{p['real_line']}") for p in mine]
        scrubbed = sum(1 for t in texts if t is not None and placeholder[k] in t.rsplit("\n\n", 1)[-1])
        pii_rows.append(f"| {k} | {len(mine)} | {sum(t is not None for t in texts)} | {scrubbed} | {report['pii'][k]} |")
    rows.append(
        "\n| PII | planted | kept | replaced in the planted line | replaced in the whole corpus |\n|---|---|---|---|---|\n"
        + "\n".join(pii_rows)
    )
    text = "\n".join(rows) + "\n"
    Path(report_md).write_text(text)
    print(text)
    ok = all(f / t >= 0.95 for b, (f, t) in by_bin.items() if b == ">=0.8") and cont_found == len(cont) - cont_filtered
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    {"real": real, "plant": plant, "check": check}[sys.argv[1]](*sys.argv[2:])
