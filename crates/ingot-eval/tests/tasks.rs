//! The benchmark data as shipped (scripts/fetch-assets eval): every task's documents load from the
//! Arrow streams and request files with the sizes lm-eval reports, every document converts, and
//! HellaSwag's prompts equal OLMES's own rendering of the same documents (an independent
//! implementation of the same preprocessing).

use std::path::Path;

use ingot_eval::data::{data_root, read_jsonl_gz};
use ingot_eval::tasks::{Kind, Query, Task};
use ingot_test_support::{eval_data, temp_dir};

fn task(name: &str, root: &Path) -> Task {
    Task::resolve(name, root).unwrap().remove(0)
}

#[test]
fn every_task_loads_with_its_published_size() {
    let Some(root) = eval_data() else { return };
    let sizes = [
        ("hellaswag", 10042),
        ("piqa", 1838),
        ("arc_easy", 2376),
        ("arc_challenge", 1172),
        ("winogrande", 1267),
        ("boolq", 3270),
        ("openbookqa", 500),
        ("sciq", 1000),
        ("lambada_openai", 5153),
        ("gsm8k_cot", 1319),
    ];
    for (name, n) in sizes {
        let t = task(name, &root);
        let docs = t.documents(&root).unwrap();
        assert_eq!(docs.len(), n, "{name}");
        if let Kind::MultipleChoice { .. } | Kind::LastWord = t.kind {
            for d in &docs {
                let doc = t.mc_doc(d).unwrap_or_else(|e| panic!("{name}: {e}"));
                assert!(doc.gold < doc.choices.len());
            }
        }
    }
    let mmlu = Task::resolve("mmlu", &root).unwrap();
    assert_eq!(mmlu.len(), 57);
    let questions: usize = mmlu.iter().map(|t| t.documents(&root).unwrap().len()).sum();
    assert_eq!(questions, 14042);
    let dev = mmlu[0].fewshot_pool(&root).unwrap();
    assert_eq!((dev.0.len(), dev.1), (5, false));
}

/// OLMES's request docs carry the query and choices after HellaSwag's preprocessing (nearly the
/// same function as lm-eval's): Ingot's must match them for every one of the 10,042 documents.
#[test]
fn hellaswag_prompts_equal_olmes_rendering() {
    let Some(root) = eval_data() else { return };
    for (name, variant) in [("hellaswag", "hellaswag/rc_0shot")] {
        let t = task(name, &root);
        let docs = t.documents(&root).unwrap();
        let requests = read_jsonl_gz(&root.join("oe_eval_tasks").join(variant).join("requests.jsonl.gz")).unwrap();
        let (mut checked, mut differ) = (0, 0);
        // idx 0: one request per document; doc ids from 1,000,000 are OLMES's unconditioned requests.
        for r in requests.iter().filter(|r| r["idx"] == 0 && r["doc_id"].as_u64().unwrap() < 1_000_000) {
            let i = r["doc_id"].as_u64().unwrap() as usize;
            let ours = t.mc_doc(&docs[i]).unwrap();
            // One known difference: OLMES turns "x. [title] Y" into "x. Y" where lm-eval's
            // `replace(" [title]", ". ")` makes "x.. Y". Render the document as OLMES would
            // (drop the full stop before " [title]") and everything else must agree.
            let olmes_doc = |d: &serde_json::Value| -> serde_json::Value {
                let s = d.to_string().replace(". [title]", " [title]");
                serde_json::from_str(&s).unwrap()
            };
            let as_olmes = if name == "hellaswag" { t.mc_doc(&olmes_doc(&docs[i])).unwrap() } else { ours.clone() };
            if as_olmes != ours {
                differ += 1;
            }
            let Query::Shared(query) = &as_olmes.query else { panic!("{name} has one context") };
            assert_eq!(query, r["doc"]["query"].as_str().unwrap(), "{name} doc {i}");
            let choices: Vec<&str> =
                r["doc"]["choices"].as_array().unwrap().iter().map(|c| c.as_str().unwrap()).collect();
            assert_eq!(as_olmes.choices, choices, "{name} doc {i}");
            assert_eq!(ours.gold as u64, r["doc"]["gold"].as_u64().unwrap(), "{name} doc {i}");
            checked += 1;
        }
        assert_eq!(checked, docs.len(), "{name}");
        eprintln!(
            "{name}: {checked} documents agree ({differ} after undoing lm-eval's \"x.. Y\" from \"x. [title] Y\")"
        );
    }
}

#[test]
fn unknown_tasks_and_missing_data_are_clear_errors() {
    let e = data_root(Some(Path::new("/nonexistent/olmo"))).unwrap_err().to_string();
    assert!(e.contains("/nonexistent/olmo") && e.contains("scripts/fetch-assets eval"), "{e}");
    let Some(root) = eval_data() else { return };
    let e = Task::resolve("hellaswag_v2", &root).unwrap_err().to_string();
    assert!(e.contains("unknown task 'hellaswag_v2'") && e.contains("winogrande"), "{e}");
    let e = Task::resolve("mmlu_astrology", &root).unwrap_err().to_string();
    assert!(e.contains("unknown task 'mmlu_astrology'"), "{e}");
    // A data folder without a task's files names the file and the fetch command.
    let empty = temp_dir("eval-empty");
    std::fs::create_dir_all(empty.join("hf_datasets")).unwrap();
    let e = task("piqa", &root).documents(empty.path()).unwrap_err().to_string();
    assert!(e.contains("piqa") && e.contains("scripts/fetch-assets eval"), "{e}");
}
