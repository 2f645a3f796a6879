//! Search items: fact questions about invented towns, rivers, mountains, schools and lakes whose
//! answers are only in generated documents, the documents themselves, and the search tool over them.

use std::collections::HashSet;
use std::path::Path;

use ingot_tools::search::TOOL_SNIPPET_CHARS;
use ingot_tools::{SearchIndex, SearchTool};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::Rng;

use super::{pick, stream, Split, FACTS_STREAM};
use crate::problems::{Fact, Item};
use crate::{Error, Result};

/// A fact question with its document, and what a search conversation needs to ask for it.
#[derive(Clone, Debug)]
pub struct SearchProblem {
    /// The document, its file name (unique within one call) and the question with its answer.
    pub fact: Fact,
    /// Every invented name in the document, the question's subject first.
    pub names: Vec<String>,
    /// The subject as the document titles it (`Mount Kalomer`, `Vitan School`).
    pub subject: String,
    /// Words of the document that point at the asked fact (`population`), for the query.
    pub keywords: &'static [&'static str],
    /// The final answer: a sentence stating the number.
    pub reply: String,
}

const SYLLABLES: &[&str] = &[
    "ka", "lo", "mer", "vi", "tan", "sul", "dra", "nek", "oru", "pel", "zan", "qui", "bel", "cor", "fen", "gal", "hol",
    "ith", "jor", "kem", "lum", "mor", "nal", "pra", "rok", "tev", "ul", "var", "wen", "yor",
];

/// A name of `split` not in `used` (which it joins). Two or three syllables; four or five once
/// short names grow scarce, so any `n` terminates.
fn fresh_name(rng: &mut StdRng, split: Split, used: &mut HashSet<String>) -> String {
    for attempt in 0.. {
        let syllables = if attempt < 50 { rng.random_range(2..=3) } else { rng.random_range(4..=5) };
        let parts: Vec<&str> = (0..syllables).map(|_| pick(rng, SYLLABLES)).collect();
        if parts.windows(2).any(|w| w[0] == w[1]) {
            continue; // "Tevtevtev" reads as a typo
        }
        let s = parts.concat();
        let name: String = s[..1].to_uppercase() + &s[1..];
        if split.owns(&s) && used.insert(s) {
            return name;
        }
    }
    unreachable!("the loop above only ends by returning")
}

/// One askable number of a document: its question forms, the reply, and query keywords.
struct Asked {
    answer: u32,
    questions: Vec<String>,
    reply: String,
    keywords: &'static [&'static str],
}

/// Two distinct numbers, so a question's answer is never also the document's other number.
fn two_numbers(rng: &mut StdRng, a: (u32, u32), b: (u32, u32)) -> (u32, u32) {
    let x = rng.random_range(a.0..=a.1);
    loop {
        let y = rng.random_range(b.0..=b.1);
        if y != x {
            return (x, y);
        }
    }
}

const TOWN_FILLER: &[&str] = &[
    "The town is known for its covered market and narrow streets.",
    "Visitors often arrive by the old river ferry.",
    "Local bakeries sell a dark rye bread flavoured with caraway.",
    "A festival with lanterns is held every autumn.",
    "The surrounding hills are planted with vineyards and orchards.",
];
const RIVER_FILLER: &[&str] = &[
    "Its water is clear and cold in spring.",
    "Anglers come from far away for its trout.",
    "Willows line much of its course.",
    "Barges once carried timber along it.",
    "Herons nest along its quieter banks.",
];
const MOUNTAIN_FILLER: &[&str] = &[
    "Its upper slopes stay white for most of the year.",
    "A narrow trail winds up its southern ridge.",
    "Shepherds graze their flocks in the meadows below.",
    "On clear days its summit can be seen from far away.",
    "Pine forests cover its lower slopes.",
];
const SCHOOL_FILLER: &[&str] = &[
    "Its library is open to the public on weekends.",
    "The school choir performs every winter.",
    "Students can join clubs for chess, robotics and drama.",
    "The building has a large garden with vegetable beds.",
    "Its football team plays in bright green shirts.",
];
const LAKE_FILLER: &[&str] = &[
    "Its water is a deep shade of green.",
    "Sailing boats can be hired on the northern shore.",
    "Ducks and swans gather near the reeds.",
    "A path runs all the way around the shore.",
    "In winter the lake sometimes freezes over.",
];

/// A document `# title` whose body holds `facts` and as many filler sentences as fit in what the
/// search tool shows of a passage, so the answer is never cut off.
fn document(rng: &mut StdRng, title: &str, facts: &[String], filler: &[&str]) -> String {
    let mut filler: Vec<&str> = filler.to_vec();
    filler.shuffle(rng);
    let mut sentences: Vec<String> = facts.to_vec();
    for f in filler {
        let mut longer = sentences.clone();
        longer.insert(rng.random_range(0..=longer.len()), f.to_string());
        // The tool shows the passage with its whitespace collapsed, which is this line.
        if format!("# {title} {}", longer.join(" ")).chars().count() > TOOL_SNIPPET_CHARS {
            break;
        }
        sentences = longer;
    }
    format!("# {title}\n\n{}\n", sentences.join(" "))
}

fn search_problem(rng: &mut StdRng, split: Split, used: &mut HashSet<String>, i: usize) -> SearchProblem {
    let name = fresh_name(rng, split, used);
    let mut names = vec![name.clone()];
    let (kind, subject, facts, filler, asked) = match rng.random_range(0..5) {
        0 => {
            let river = fresh_name(rng, split, used);
            names.push(river.clone());
            let (year, pop) = two_numbers(rng, (1100, 1899), (1000, 89_999));
            let facts = vec![
                format!("{name} was founded in {year} on the banks of the {river} river."),
                format!("Today {name} has a population of {pop} people."),
            ];
            let asked = [
                Asked {
                    answer: year,
                    questions: vec![
                        format!("In what year was the town of {name} founded?"),
                        format!("When was {name} founded?"),
                        format!("What year was the town of {name} established?"),
                    ],
                    reply: format!("{name} was founded in {year}."),
                    keywords: &["founded", "town founded", "founded year"],
                },
                Asked {
                    answer: pop,
                    questions: vec![
                        format!("What is the population of the town of {name}?"),
                        format!("How many people live in {name}?"),
                        format!("How many inhabitants does {name} have?"),
                    ],
                    reply: format!("{name} has a population of {pop} people."),
                    keywords: &["population", "town population", "people"],
                },
            ];
            ("town", name.clone(), facts, TOWN_FILLER, asked)
        }
        1 => {
            let (length, bridges) = two_numbers(rng, (12, 980), (2, 60));
            let facts = vec![
                format!("The {name} river is {length} kilometres long."),
                format!("It is crossed by {bridges} bridges on its way to the sea."),
            ];
            let asked = [
                Asked {
                    answer: length,
                    questions: vec![
                        format!("How long is the {name} river?"),
                        format!("What is the length of the {name} river in kilometres?"),
                        format!("How many kilometres long is the {name} river?"),
                    ],
                    reply: format!("The {name} river is {length} kilometres long."),
                    keywords: &["river length", "kilometres long", "long"],
                },
                Asked {
                    answer: bridges,
                    questions: vec![
                        format!("How many bridges cross the {name} river?"),
                        format!("How many bridges span the {name} river?"),
                    ],
                    reply: format!("The {name} river is crossed by {bridges} bridges."),
                    keywords: &["bridges", "river bridges", "crossed bridges"],
                },
            ];
            ("river", format!("The {name} river"), facts, RIVER_FILLER, asked)
        }
        2 => {
            let (height, year) = two_numbers(rng, (300, 5400), (1780, 1990));
            let facts = vec![
                format!("Mount {name} rises {height} metres above sea level."),
                format!("It was first climbed in {year}."),
            ];
            let asked = [
                Asked {
                    answer: height,
                    questions: vec![
                        format!("How high is Mount {name}?"),
                        format!("What is the height of Mount {name} in metres?"),
                        format!("How many metres tall is Mount {name}?"),
                    ],
                    reply: format!("Mount {name} is {height} metres high."),
                    keywords: &["height", "metres", "sea level"],
                },
                Asked {
                    answer: year,
                    questions: vec![
                        format!("In what year was Mount {name} first climbed?"),
                        format!("When was Mount {name} first climbed?"),
                    ],
                    reply: format!("Mount {name} was first climbed in {year}."),
                    keywords: &["first climbed", "climbed"],
                },
            ];
            ("mountain", format!("Mount {name}"), facts, MOUNTAIN_FILLER, asked)
        }
        3 => {
            let (students, year) = two_numbers(rng, (80, 2600), (1850, 2010));
            let facts = vec![format!("{name} School has {students} students."), format!("It was founded in {year}.")];
            let asked = [
                Asked {
                    answer: students,
                    questions: vec![
                        format!("How many students attend {name} School?"),
                        format!("How many students does {name} School have?"),
                        format!("What is the number of students at {name} School?"),
                    ],
                    reply: format!("{name} School has {students} students."),
                    keywords: &["students", "school students"],
                },
                Asked {
                    answer: year,
                    questions: vec![
                        format!("In what year was {name} School founded?"),
                        format!("When was {name} School founded?"),
                    ],
                    reply: format!("{name} School was founded in {year}."),
                    keywords: &["founded", "school founded"],
                },
            ];
            ("school", format!("{name} School"), facts, SCHOOL_FILLER, asked)
        }
        _ => {
            let (depth, area) = two_numbers(rng, (5, 320), (40, 9000));
            let facts = vec![
                format!("Lake {name} is {depth} metres deep at its deepest point."),
                format!("It covers {area} hectares."),
            ];
            let asked = [
                Asked {
                    answer: depth,
                    questions: vec![
                        format!("How deep is Lake {name}?"),
                        format!("What is the maximum depth of Lake {name} in metres?"),
                    ],
                    reply: format!("Lake {name} is {depth} metres deep at its deepest point."),
                    keywords: &["deep", "deepest point", "depth metres"],
                },
                Asked {
                    answer: area,
                    questions: vec![
                        format!("How many hectares does Lake {name} cover?"),
                        format!("What is the area of Lake {name} in hectares?"),
                    ],
                    reply: format!("Lake {name} covers {area} hectares."),
                    keywords: &["hectares", "covers hectares"],
                },
            ];
            ("lake", format!("Lake {name}"), facts, LAKE_FILLER, asked)
        }
    };
    let document = document(rng, &subject, &facts, filler);
    let [first, second] = asked;
    let asked = if rng.random_bool(0.5) { first } else { second };
    let question = asked.questions[rng.random_range(0..asked.questions.len())].clone();
    SearchProblem {
        fact: Fact {
            document,
            file_name: format!("{kind}-{i:04}.md"),
            item: Item { question, answer: asked.answer.to_string() },
        },
        names,
        subject,
        keywords: asked.keywords,
        reply: asked.reply,
    }
}

/// `n` fact questions of `split`, each answerable only from its own document; no two share a name.
pub fn search_problems(split: Split, seed: u64, n: usize) -> Vec<SearchProblem> {
    let mut rng = stream(split, seed, FACTS_STREAM);
    let mut used = HashSet::new();
    (0..n).map(|i| search_problem(&mut rng, split, &mut used, i)).collect()
}

/// The facts of [`search_problems`], for the benchmark (one index over all their documents).
pub fn search_items(split: Split, seed: u64, n: usize) -> Vec<Fact> {
    search_problems(split, seed, n).into_iter().map(|p| p.fact).collect()
}

/// Writes each fact's document to `dir/<file_name>`, creating `dir`.
pub fn write_documents(facts: &[Fact], dir: &Path) -> Result<()> {
    let io = |e: std::io::Error| Error::Input(format!("writing documents to {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    for f in facts {
        std::fs::write(dir.join(&f.file_name), &f.document).map_err(io)?;
    }
    Ok(())
}

/// Builds an index of `facts`' documents under `dir` and opens it as the search tool.
pub(super) fn search_tool(facts: &[Fact], dir: &Path) -> Result<SearchTool> {
    let (docs, index) = (dir.join("docs"), dir.join("index"));
    write_documents(facts, &docs)?;
    let search_err = |e: ingot_tools::SearchError| Error::Input(format!("indexing {}: {e}", docs.display()));
    SearchIndex::build(&docs, &index).map_err(search_err)?;
    Ok(SearchTool::new(SearchIndex::open(&index).map_err(search_err)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ingot_tools::Tool;
    use serde_json::json;

    #[test]
    fn written_documents_index_and_answer() {
        let dir = ingot_test_support::temp_dir("tooluse-docs");
        let facts = search_items(Split::Eval, 1, 25);
        write_documents(&facts, &dir.join("docs")).unwrap();
        assert_eq!(dir.list("docs").len(), 25);
        let tool = search_tool(&facts, dir.path()).unwrap();
        for f in &facts {
            // The question itself, as the benchmark's retrieval mode sends it, finds the document.
            let out = tool.call(&json!({"query": f.item.question, "k": 3})).unwrap();
            assert!(out.contains(&f.item.answer), "{}: {out}", f.item.question);
        }
    }
}
