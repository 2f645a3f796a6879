//! `ingot data clean`'s statistics, held to theory: the MinHash estimator against the exact
//! Jaccard of the 5-gram shingle sets, LSH recall of planted near-duplicates against the S-curve,
//! false positives, the memory-bounded index against the unbounded one, and decontamination of
//! planted benchmark items.
//!
//! The text is synthetic and seeded (so the figures are the same on every run): sentences of
//! words drawn from a Zipf law over a vocabulary of made-up words, the shape of real word
//! frequencies. Near copies are made with known edits (substitutions, deletions, insertions).
//! One test repeats the recall measurement on the Shakespeare corpus when it is there.

use std::collections::HashSet;

use ingot_data::clean::decontam::{contaminated_spans, Decontaminator};
use ingot_data::clean::minhash::{jaccard_estimate, normalize, Clusters, DupIndex, MinHashConfig, MinHasher};
use ingot_test_support::temp_dir;

// ---------------------------------------------------------------------------------------------
// Seeded text

/// splitmix64: a small, fixed generator, so the documents never change with a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + self.below(hi - lo)
    }
}

/// Words with Zipf(1) frequencies over a vocabulary of 20 000 made-up words.
struct Words {
    vocab: Vec<String>,
    cumulative: Vec<f64>,
}

impl Words {
    fn new(rng: &mut Rng) -> Self {
        const SYLLABLES: &[&str] = &[
            "ka", "lo", "mi", "ne", "ru", "ta", "shi", "po", "an", "el", "or", "ist", "ven", "dra", "qui", "zo", "be",
            "fa", "gu", "hy", "ja", "ke", "ly", "mo", "nu", "pe", "ri", "so", "tu", "va", "wo", "xe",
        ];
        let mut seen = HashSet::new();
        let mut vocab = Vec::new();
        while vocab.len() < 20_000 {
            let n = rng.range(1, 5);
            let word: String = (0..n).map(|_| SYLLABLES[rng.below(SYLLABLES.len())]).collect();
            if seen.insert(word.clone()) {
                vocab.push(word);
            }
        }
        let mut total = 0.0;
        let cumulative = (0..vocab.len())
            .map(|r| {
                total += 1.0 / (r + 1) as f64;
                total
            })
            .collect();
        Self { vocab, cumulative }
    }

    fn word(&self, rng: &mut Rng) -> &str {
        let u = rng.unit() * self.cumulative.last().copied().unwrap_or(1.0);
        &self.vocab[self.cumulative.partition_point(|&c| c < u).min(self.vocab.len() - 1)]
    }

    /// About `n` words as sentences: capitalised, with commas and full stops.
    fn text(&self, rng: &mut Rng, n: usize) -> Vec<String> {
        let mut out: Vec<String> = Vec::with_capacity(n);
        while out.len() < n {
            let len = rng.range(6, 20);
            for i in 0..len {
                let mut w = self.word(rng).to_string();
                if i == 0 {
                    w[..1].make_ascii_uppercase();
                }
                if i == len - 1 {
                    w.push('.');
                } else if rng.unit() < 0.08 {
                    w.push(',');
                }
                out.push(w);
            }
        }
        out
    }

    /// Between `lo` and `hi` words (at least).
    fn text_between(&self, rng: &mut Rng, lo: usize, hi: usize) -> Vec<String> {
        let n = rng.range(lo, hi);
        self.text(rng, n)
    }

    /// A copy of `words` where each word is, with probability `rate`, replaced, deleted, or
    /// followed by an inserted word.
    fn edit(&self, rng: &mut Rng, words: &[String], rate: f64) -> Vec<String> {
        let mut out = Vec::with_capacity(words.len() + 8);
        for w in words {
            if rng.unit() >= rate {
                out.push(w.clone());
                continue;
            }
            match rng.below(3) {
                0 => out.push(self.word(rng).to_string()),
                1 => {}
                _ => {
                    out.push(w.clone());
                    out.push(self.word(rng).to_string());
                }
            }
        }
        out
    }
}

/// The exact Jaccard of two texts' word 5-gram sets, computed on strings, independently of the
/// hashing under test.
fn exact_jaccard(a: &str, b: &str) -> f64 {
    let shingles = |t: &str| -> HashSet<String> {
        let norm = normalize(t);
        let words: Vec<&str> = norm.split(' ').filter(|w| !w.is_empty()).collect();
        if words.len() < 5 {
            return HashSet::from([words.join(" ")]);
        }
        words.windows(5).map(|w| w.join(" ")).collect()
    };
    let (a, b) = (shingles(a), shingles(b));
    let inter = a.intersection(&b).count();
    inter as f64 / (a.len() + b.len() - inter) as f64
}

/// Cluster documents given in order (doc index = position) with the default configuration.
fn cluster(hasher: &MinHasher, docs: &[String], dir: &std::path::Path, budget: usize) -> (Clusters, usize) {
    let mut index = DupIndex::new(dir, hasher.bands(), budget).unwrap();
    for (i, doc) in docs.iter().enumerate() {
        index.add(i as u64, &hasher.bucket_keys(&hasher.signature(doc))).unwrap();
    }
    let runs = index.runs();
    (index.finish().unwrap(), runs)
}

// ---------------------------------------------------------------------------------------------
// MinHash

/// The estimate is the fraction of k = 112 independent min-hashes that agree, a binomial(k, j)/k
/// for ideal hash functions: standard deviation sqrt(j(1-j)/k) (0.047 at j = 0.5). Every pair
/// must fall within 4 sigma, the errors must average out (mean z near 0), and the mean absolute
/// error must be near its expectation sqrt(2/pi) sigma.
#[test]
fn minhash_estimate_is_within_the_binomial_bound_of_the_exact_jaccard() {
    let mut rng = Rng(7);
    let words = Words::new(&mut rng);
    let cfg = MinHashConfig::default();
    let k = cfg.num_hashes() as f64;
    let hasher = MinHasher::new(cfg);
    let (mut n, mut sum_z, mut max_z, mut abs_err, mut expected_abs_err) = (0usize, 0.0, 0.0f64, 0.0, 0.0);
    for pair in 0..300 {
        let base = words.text_between(&mut rng, 80, 400);
        let rate = if pair % 10 == 0 { 1.0 } else { rng.unit() * 0.25 };
        let other = if rate >= 1.0 { words.text(&mut rng, 200) } else { words.edit(&mut rng, &base, rate) };
        let (a, b) = (base.join(" "), other.join(" "));
        let j = exact_jaccard(&a, &b);
        let est = jaccard_estimate(&hasher.signature(&a), &hasher.signature(&b));
        if j == 0.0 || j == 1.0 {
            assert_eq!(est, j, "pair {pair}: disjoint or equal shingle sets must estimate exactly");
            continue;
        }
        let sigma = (j * (1.0 - j) / k).sqrt();
        let z = (est - j) / sigma;
        assert!(z.abs() <= 4.0, "pair {pair}: exact {j:.3}, estimate {est:.3}, z = {z:.2}");
        n += 1;
        sum_z += z;
        max_z = max_z.max(z.abs());
        abs_err += (est - j).abs();
        expected_abs_err += (2.0 / std::f64::consts::PI).sqrt() * sigma;
    }
    let (mean_z, mae, expected) = (sum_z / n as f64, abs_err / n as f64, expected_abs_err / n as f64);
    println!(
        "minhash estimator over {n} pairs: mean abs error {mae:.4} (theory {expected:.4}), mean z {mean_z:+.3}, max |z| {max_z:.2}"
    );
    assert!(n >= 200, "{n} pairs with 0 < j < 1");
    assert!(mean_z.abs() < 5.0 / (n as f64).sqrt(), "biased: mean z {mean_z}");
    assert!((0.75..1.25).contains(&(mae / expected)), "mean abs error {mae} vs theory {expected}");
}

/// Planted near-duplicates at Jaccard >= 0.8 among unrelated documents: recall of the pairs
/// (both in one cluster) at least 95%, close to what the S-curve predicts for their Jaccards;
/// pairs between unrelated documents never clustered; pairs at low Jaccard clustered about as
/// often as the S-curve says (that is the design, not an error) and rarely.
#[test]
fn lsh_recalls_planted_near_duplicates_and_rarely_joins_the_rest() {
    let mut rng = Rng(11);
    let words = Words::new(&mut rng);
    let cfg = MinHashConfig::default();
    let hasher = MinHasher::new(cfg.clone());

    // Families: (documents, exact Jaccard of the pair, or None for a single document).
    let mut docs: Vec<String> = Vec::new();
    let mut family: Vec<usize> = Vec::new();
    let mut pairs: Vec<(usize, usize, f64)> = Vec::new();
    for f in 0..900 {
        let base = words.text_between(&mut rng, 100, 400);
        let a = base.join(" ");
        docs.push(a.clone());
        family.push(f);
        let rate = match f % 3 {
            0 => continue,                 // a single document
            1 => rng.unit() * 0.03,        // near copy, mostly j >= 0.8
            _ => 0.06 + rng.unit() * 0.14, // distant copy, j of 0.2 to 0.6
        };
        let b = words.edit(&mut rng, &base, rate).join(" ");
        pairs.push((docs.len() - 1, docs.len(), exact_jaccard(&a, &b)));
        docs.push(b);
        family.push(f);
    }
    let dir = temp_dir("lsh-recall");
    let started = std::time::Instant::now();
    let (clusters, _) = cluster(&hasher, &docs, dir.path(), 64 << 20);
    let mb = docs.iter().map(String::len).sum::<usize>() as f64 / 1e6;
    println!(
        "{} docs, {mb:.1} MB: signatures and clusters at {:.1} MB/s on one thread",
        docs.len(),
        mb / started.elapsed().as_secs_f64()
    );
    let together = |a: usize, b: usize| clusters.kept_of(a as u64) == clusters.kept_of(b as u64);

    let mut report = Vec::new();
    for (lo, hi) in [(0.0, 0.5), (0.5, 0.7), (0.7, 0.8), (0.8, 0.9), (0.9, 1.01)] {
        let bin: Vec<_> = pairs.iter().filter(|p| p.2 >= lo && p.2 < hi).collect();
        if bin.is_empty() {
            continue;
        }
        let found = bin.iter().filter(|p| together(p.0, p.1)).count();
        let predicted: f64 = bin.iter().map(|p| cfg.candidate_probability(p.2)).sum::<f64>() / bin.len() as f64;
        let rate = found as f64 / bin.len() as f64;
        println!("jaccard [{lo:.1}, {hi:.1}): {found}/{} clustered = {rate:.3} (S-curve {predicted:.3})", bin.len());
        report.push((lo, bin.len(), rate, predicted));
    }

    let planted: Vec<_> = pairs.iter().filter(|p| p.2 >= 0.8).collect();
    let recalled = planted.iter().filter(|p| together(p.0, p.1)).count();
    let recall = recalled as f64 / planted.len() as f64;
    let predicted: f64 = planted.iter().map(|p| cfg.candidate_probability(p.2)).sum::<f64>() / planted.len() as f64;
    let sd = (predicted * (1.0 - predicted) / planted.len() as f64).sqrt();
    println!("recall at jaccard >= 0.8: {recalled}/{} = {recall:.3} (S-curve {predicted:.3})", planted.len());
    assert!(planted.len() >= 200, "only {} planted pairs at j >= 0.8", planted.len());
    assert!(recall >= 0.95, "recall {recall}");
    assert!((recall - predicted).abs() <= 4.0 * sd + 0.01, "recall {recall} vs S-curve {predicted}");

    let low: Vec<_> = pairs.iter().filter(|p| p.2 < 0.5).collect();
    let low_found = low.iter().filter(|p| together(p.0, p.1)).count();
    let low_rate = low_found as f64 / low.len() as f64;
    println!("false-positive rate at jaccard < 0.5: {low_found}/{} = {low_rate:.4}", low.len());
    assert!(low.len() >= 100 && low_rate <= 0.05, "{low_found} of {} low-jaccard pairs clustered", low.len());

    // Unrelated documents: no cluster may hold two families.
    let mut families_of_root: std::collections::HashMap<u64, HashSet<usize>> = Default::default();
    for (i, &f) in family.iter().enumerate() {
        families_of_root.entry(clusters.kept_of(i as u64)).or_default().insert(f);
    }
    let mixed = families_of_root.values().filter(|s| s.len() > 1).count();
    let n_unrelated_pairs = (900 * 899 / 2) as f64;
    println!("clusters joining unrelated documents: {mixed} (of {n_unrelated_pairs} unrelated family pairs)");
    assert_eq!(mixed, 0);
    // Kept documents are the first of their cluster: every original stays.
    assert!(pairs.iter().all(|p| !clusters.is_duplicate(p.0 as u64)));
}

/// The index with a budget of a few dozen pairs (many spilled runs) finds exactly the clusters
/// it finds with everything in memory.
#[test]
fn tiny_memory_budget_gives_the_same_clusters() {
    let mut rng = Rng(5);
    let words = Words::new(&mut rng);
    let hasher = MinHasher::new(MinHashConfig::default());
    let mut docs = Vec::new();
    for i in 0..400 {
        let base = words.text_between(&mut rng, 30, 150);
        docs.push(base.join(" "));
        for _ in 0..i % 4 {
            let rate = rng.unit() * 0.05;
            docs.push(words.edit(&mut rng, &base, rate).join(" "));
        }
    }
    let (big, big_runs) = cluster(&hasher, &docs, temp_dir("budget-big").path(), 1 << 30);
    let small_dir = temp_dir("budget-small");
    let (small, small_runs) = cluster(&hasher, &docs, small_dir.path(), 40 * 16);
    println!("{} docs: {big_runs} runs in 1 GiB, {small_runs} runs in 640 bytes; sizes {:?}", docs.len(), big.sizes());
    assert_eq!(big_runs, 0);
    assert!(small_runs > 100, "{small_runs} runs");
    assert_eq!(small, big);
    assert!(big.n_duplicates() > 400, "{}", big.n_duplicates());
    assert!(small_dir.list(".").is_empty(), "runs left: {:?}", small_dir.list("."));
}

/// The same recall measurement on real text, when the Shakespeare corpus is there: passages of
/// about 200 words, each with a near copy in half the cases.
#[test]
fn lsh_recall_on_shakespeare() {
    let Some(dir) = ingot_test_support::corpus_dir() else { return };
    let mut rng = Rng(3);
    let mut files: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().map(|e| e.path()).collect();
    files.retain(|p| p.extension().is_some_and(|e| e == "txt"));
    files.sort();
    let mut passages: Vec<Vec<String>> = Vec::new();
    for path in files.iter().take(8) {
        let text = std::fs::read_to_string(path).unwrap();
        let words: Vec<String> = text.split_whitespace().map(str::to_string).collect();
        passages.extend(words.chunks(200).skip(5).step_by(3).take(60).map(|c| c.to_vec()));
    }
    let cfg = MinHashConfig::default();
    let hasher = MinHasher::new(cfg.clone());
    let (mut docs, mut pairs) = (Vec::new(), Vec::new());
    for (i, passage) in passages.iter().enumerate() {
        let a = passage.join(" ");
        docs.push(a.clone());
        if i % 2 == 0 {
            // Edits with Shakespeare's own words.
            let mut copy = Vec::new();
            for w in passage {
                match (rng.unit() < 0.02, rng.below(3)) {
                    (false, _) => copy.push(w.clone()),
                    (true, 0) => copy.push(passages[rng.below(passages.len())][rng.below(100)].clone()),
                    (true, 1) => {}
                    (true, _) => {
                        copy.push(w.clone());
                        copy.push("thee".into());
                    }
                }
            }
            let b = copy.join(" ");
            pairs.push((docs.len() - 1, docs.len(), exact_jaccard(&a, &b)));
            docs.push(b);
        }
    }
    let tmp = temp_dir("lsh-shakespeare");
    let (clusters, _) = cluster(&hasher, &docs, tmp.path(), 64 << 20);
    let planted: Vec<_> = pairs.iter().filter(|p| p.2 >= 0.8).collect();
    let found = planted.iter().filter(|p| clusters.kept_of(p.0 as u64) == clusters.kept_of(p.1 as u64)).count();
    let recall = found as f64 / planted.len() as f64;
    let expected_dups = pairs.iter().filter(|p| clusters.kept_of(p.1 as u64) == p.0 as u64).count() as u64;
    println!(
        "shakespeare: {} passages, recall at j >= 0.8 {found}/{} = {recall:.3}, duplicates {} (of them planted {expected_dups})",
        passages.len(),
        planted.len(),
        clusters.n_duplicates()
    );
    assert!(planted.len() >= 50 && recall >= 0.95, "recall {recall} of {}", planted.len());
    // Distinct passages of the plays are not near duplicates of one another.
    assert!(clusters.n_duplicates() <= expected_dups + 2, "{} duplicates", clusters.n_duplicates());
}

// ---------------------------------------------------------------------------------------------
// Decontamination

/// Benchmark items planted in a corpus (recased, with punctuation changed, among other text) are
/// all found, each named with its benchmark and its span; the same corpus without them has no
/// hit.
#[test]
fn decontamination_finds_every_planted_item_and_nothing_in_clean_text() {
    let mut rng = Rng(13);
    let words = Words::new(&mut rng);
    let mut items = Vec::new();
    for i in 0..120 {
        let n = match i % 4 {
            0 => rng.range(8, 13), // shorter than 13 words: matched whole
            _ => rng.range(13, 60),
        };
        items.push((
            format!("bench{}", i % 3),
            words.text(&mut rng, n).into_iter().take(n).collect::<Vec<_>>().join(" "),
        ));
    }
    items.push(("bench0".into(), "Too short to count.".into()));
    let d = Decontaminator::new(13, items.clone());
    assert_eq!(d.skipped_short(), 1);

    let clean: Vec<String> = (0..400).map(|_| words.text_between(&mut rng, 50, 500).join(" ")).collect();
    let clean_hits: usize = clean.iter().map(|doc| d.hits(doc).len()).sum();
    println!("{} items, {} n-grams; hits on {} clean documents: {clean_hits}", items.len(), d.ngrams(), clean.len());
    assert_eq!(clean_hits, 0);

    let mut found = 0;
    for (i, (bench, item)) in items[..120].iter().enumerate() {
        let host = &clean[i];
        let cut = host.char_indices().nth(host.len() / 2).map_or(0, |(b, _)| b);
        let cut = host[..cut].rfind(' ').unwrap_or(0);
        let planted = if i % 2 == 0 { item.to_uppercase() } else { item.replace([',', '.'], " ;") };
        let doc = format!("{} \"{planted}\" {}", &host[..cut], &host[cut..]);
        let hits = d.hits(&doc);
        assert!(!hits.is_empty(), "item {i} not found");
        assert!(hits.iter().all(|h| &h.benchmark == bench), "item {i}: {hits:?}");
        let spans = contaminated_spans(&hits);
        assert_eq!(spans.len(), 1, "item {i}: {spans:?}");
        let start = doc.find(&planted).unwrap();
        assert!(spans[0].start >= start && spans[0].end <= start + planted.len(), "item {i}: span outside the item");
        assert_eq!(normalize(&doc[spans[0].clone()]), normalize(item), "item {i}: the span is not the whole item");
        found += 1;
    }
    println!("planted items found: {found}/120");
}
