//! Reports of an evaluation run: `results.json` (every number with its standard error, n, the
//! model and the settings), `report.md` (a table), and `report.svg` (a bar chart of each task's
//! main metric with ±1 standard error whiskers).

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::{Error, EvalConfig, Result, TaskResult};

/// Everything one `ingot eval` produced.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub config: EvalConfig,
    pub started: String,
    pub seconds: f64,
    pub tasks: Vec<TaskResult>,
    /// Group averages (MMLU: over all its questions, lm-eval's default, and over subjects).
    pub groups: Vec<crate::Metric>,
}

impl Report {
    /// The number each task is known by: acc_norm where reported, else the first metric.
    pub fn headline(&self) -> Vec<&crate::Metric> {
        let per_task = self
            .tasks
            .iter()
            .filter(|t| !t.task.starts_with("mmlu_"))
            .filter_map(|t| t.metrics.iter().find(|m| m.metric == "acc_norm").or_else(|| t.metrics.first()));
        per_task.chain(self.groups.iter().filter(|g| g.metric == "acc")).collect()
    }

    pub fn markdown(&self) -> String {
        let mut s = String::new();
        let _ = writeln!(s, "# Evaluation of {}\n", self.model);
        let c = &self.config;
        let _ = writeln!(
            s,
            "{}-shot, seed {}, chat template {}, limit {}; {} s in all.\n",
            c.shots,
            c.seed,
            if c.chat { "on" } else { "off" },
            c.limit.map_or("none".to_string(), |l| l.to_string()),
            self.seconds.round()
        );
        let _ =
            writeln!(s, "| task | split | metric | value | ± stderr | n | docs/s |\n|---|---|---|---:|---:|---:|---:|");
        for t in &self.tasks {
            for m in &t.metrics {
                let _ = writeln!(
                    s,
                    "| {} | {} | {} | {} | {} | {} | {:.2} |",
                    t.task,
                    t.split,
                    m.metric,
                    fmt_value(&m.metric, m.value),
                    m.stderr.map_or("".into(), |e| fmt_value(&m.metric, e)),
                    m.n,
                    t.docs_per_sec
                );
            }
        }
        for g in &self.groups {
            let _ = writeln!(
                s,
                "| **{}** | | {} | {} | {} | {} | |",
                g.task,
                g.metric,
                fmt_value(&g.metric, g.value),
                g.stderr.map_or("".into(), |e| fmt_value(&g.metric, e)),
                g.n
            );
        }
        if !self.headline().is_empty() {
            let _ = writeln!(s, "\n![main metric per task](report.svg)");
        }
        s
    }

    /// A horizontal bar chart of the headline metrics that are fractions (accuracies).
    pub fn svg(&self) -> String {
        let bars: Vec<&crate::Metric> = self.headline().into_iter().filter(|m| m.metric != "perplexity").collect();
        let (row, left, width) = (26.0, 230.0, 420.0);
        let height = 50.0 + row * bars.len() as f64 + 30.0;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" font-family="sans-serif" font-size="12">"#,
            w = left + width + 90.0
        );
        let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
        let _ = writeln!(s, r#"<text x="10" y="20" font-size="14">{}</text>"#, escape(&self.model));
        for tick in 0..=10 {
            let x = left + width * tick as f64 / 10.0;
            let _ = writeln!(s, r##"<line x1="{x}" y1="35" x2="{x}" y2="{y}" stroke="#ddd"/>"##, y = height - 25.0);
            let _ =
                writeln!(s, r#"<text x="{x}" y="{y}" text-anchor="middle">{}</text>"#, tick * 10, y = height - 10.0);
        }
        for (i, m) in bars.iter().enumerate() {
            let y = 40.0 + row * i as f64;
            let w = width * m.value.clamp(0.0, 1.0);
            let _ = writeln!(
                s,
                r#"<text x="{x}" y="{ty}" text-anchor="end">{} ({})</text>"#,
                escape(&m.task),
                m.metric,
                x = left - 6.0,
                ty = y + 14.0
            );
            let _ = writeln!(s, r##"<rect x="{left}" y="{y}" width="{w:.1}" height="18" fill="#4a7ab5"/>"##);
            if let Some(e) = m.stderr {
                let (a, b) = (left + width * (m.value - e).max(0.0), left + width * (m.value + e).min(1.0));
                let _ = writeln!(s, r#"<line x1="{a:.1}" y1="{c}" x2="{b:.1}" y2="{c}" stroke="black"/>"#, c = y + 9.0);
            }
            let _ = writeln!(
                s,
                r#"<text x="{x:.1}" y="{ty}">{:.1}</text>"#,
                100.0 * m.value,
                x = left + w + 6.0,
                ty = y + 14.0
            );
        }
        s.push_str("</svg>\n");
        s
    }

    /// Write results.json, report.md and report.svg into `dir`, each atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Input(e.to_string()))?;
        ingot_core::assets::write_atomic(&dir.join("results.json"), &json)?;
        ingot_core::assets::write_atomic(&dir.join("report.md"), self.markdown().as_bytes())?;
        ingot_core::assets::write_atomic(&dir.join("report.svg"), self.svg().as_bytes())?;
        Ok(())
    }
}

/// Accuracies as percentages; other metrics as they are.
pub fn fmt_value(metric: &str, v: f64) -> String {
    if metric == "perplexity" {
        format!("{v:.3}")
    } else {
        format!("{:.2}", 100.0 * v)
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// MMLU's averages from its subjects: over all questions (lm-eval's `mmlu` group, weighted by
/// size) and the plain mean over subjects.
pub fn group_metrics(tasks: &[TaskResult]) -> Vec<crate::Metric> {
    let subjects: Vec<&TaskResult> = tasks.iter().filter(|t| t.task.starts_with("mmlu_")).collect();
    if subjects.is_empty() {
        return Vec::new();
    }
    let accs: Vec<(f64, usize)> =
        subjects.iter().filter_map(|t| t.metrics.iter().find(|m| m.metric == "acc").map(|m| (m.value, m.n))).collect();
    let n: usize = accs.iter().map(|a| a.1).sum();
    let micro = accs.iter().map(|(v, k)| v * *k as f64).sum::<f64>() / n.max(1) as f64;
    let macro_ = accs.iter().map(|a| a.0).sum::<f64>() / accs.len() as f64;
    // Standard error of the pooled accuracy over all n questions.
    let se = (n > 1).then(|| (micro * (1.0 - micro) / (n as f64 - 1.0)).sqrt());
    vec![
        crate::Metric { task: "mmlu".into(), metric: "acc".into(), value: micro, stderr: se, n },
        crate::Metric {
            task: "mmlu".into(),
            metric: "acc,subject_mean".into(),
            value: macro_,
            stderr: None,
            n: accs.len(),
        },
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Metric;

    fn subject(name: &str, acc: f64, n: usize) -> TaskResult {
        TaskResult {
            task: name.into(),
            split: "test".into(),
            n,
            metrics: vec![Metric { task: name.into(), metric: "acc".into(), value: acc, stderr: None, n }],
            seconds: 1.0,
            docs_per_sec: 1.0,
        }
    }

    #[test]
    fn mmlu_pools_questions_and_averages_subjects() {
        let tasks = vec![subject("mmlu_a", 0.5, 100), subject("mmlu_b", 1.0, 300), subject("piqa", 0.9, 10)];
        let g = group_metrics(&tasks);
        assert_eq!(g[0].n, 400);
        assert!((g[0].value - (50.0 + 300.0) / 400.0).abs() < 1e-12, "pooled over questions");
        assert!((g[1].value - 0.75).abs() < 1e-12, "mean over subjects");
        assert!(group_metrics(&tasks[2..]).is_empty());
        let report = Report {
            model: "m".into(),
            config: EvalConfig::default(),
            started: String::new(),
            seconds: 1.0,
            tasks,
            groups: g,
        };
        // The chart shows the group, not its 57 subjects.
        let headline: Vec<&str> = report.headline().iter().map(|m| m.task.as_str()).collect();
        assert_eq!(headline, ["piqa", "mmlu"]);
        assert!(report.markdown().contains("| **mmlu** | | acc | 87.50 |"));
        assert!(report.svg().contains("mmlu (acc)"));
    }
}
