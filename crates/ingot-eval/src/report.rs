//! Reports of an evaluation run: `results.json` (every number with its standard error, n, the
//! model and the settings), `report.md` (a table), and `report.svg` (a bar chart of each task's
//! main metric with ±1 standard error whiskers).

use std::fmt::Write as _;
use std::path::Path;

use ingot_core::chart::{Bar, Chart};
use serde::Serialize;

use crate::{Error, EvalConfig, Result, TaskResult};

/// Everything one `ingot eval` produced.
#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub model: String,
    pub config: EvalConfig,
    /// When this run started, in RFC 3339 (UTC): see [`rfc3339`].
    pub started: String,
    /// Scoring seconds summed over the tasks, each including the earlier runs it resumed.
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

    /// A horizontal bar chart of the headline metrics that are fractions (accuracies), as
    /// percentages with ±1 standard error whiskers.
    pub fn svg(&self) -> String {
        let bars: Vec<Bar> = self
            .headline()
            .into_iter()
            .filter(|m| m.metric != "perplexity")
            .map(|m| Bar::new(format!("{} ({})", m.task, m.metric), 100.0 * m.value, m.stderr.map(|e| 100.0 * e)))
            .collect();
        // One 26-pixel row per bar between the title and the axis.
        let height = 44 + 56 + 26 * bars.len().max(1) as u32;
        Chart::new(&self.model)
            .x_label("score (%), ±1 standard error")
            .x_range(0.0, 100.0)
            .horizontal()
            .size(800, height)
            .bars("", bars)
            .to_svg()
    }

    /// Write results.json, report.md and report.svg into `dir`, each atomically.
    pub fn write(&self, dir: &Path) -> Result<()> {
        let json = serde_json::to_vec_pretty(self).map_err(|e| Error::Input(e.to_string()))?;
        ingot_core::atomic::write_file(&dir.join("results.json"), &json)?;
        ingot_core::atomic::write_file(&dir.join("report.md"), self.markdown().as_bytes())?;
        ingot_core::atomic::write_file(&dir.join("report.svg"), self.svg().as_bytes())?;
        Ok(())
    }
}

/// A time as RFC 3339 in UTC to the second, e.g. `2024-02-29T12:34:56Z`.
pub fn rfc3339(t: std::time::SystemTime) -> String {
    let secs = match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => d.as_secs() as i64,
        Err(e) => -(e.duration().as_secs_f64().ceil() as i64),
    };
    let (days, of_day) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date (Howard Hinnant's `civil_from_days`): eras of 400
    // years (146097 days) starting on 0000-03-01, so the leap day ends each era's year.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // year of era, [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // day of the March-based year, [0, 365]
    let mp = (5 * doy + 2) / 153; // March = 0
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + (month <= 2) as i64;
    format!("{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z", of_day / 3600, of_day % 3600 / 60, of_day % 60)
}

/// Accuracies as percentages; other metrics as they are.
pub fn fmt_value(metric: &str, v: f64) -> String {
    if metric == "perplexity" {
        format!("{v:.3}")
    } else {
        format!("{:.2}", 100.0 * v)
    }
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
    fn times_are_rfc3339() {
        use std::time::{Duration, UNIX_EPOCH};
        let at = |s: u64| rfc3339(UNIX_EPOCH + Duration::from_secs(s));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(1_709_210_096), "2024-02-29T12:34:56Z");
        assert_eq!(at(4_102_444_799), "2099-12-31T23:59:59Z");
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(86_401)), "1969-12-30T23:59:59Z");
        // Every day of four years (a leap cycle) in order, with no gaps or repeats.
        let days: Vec<String> = (0..4 * 366).map(|d| at(d * 86_400)[..10].to_string()).collect();
        assert!(days.windows(2).all(|w| w[0] < w[1]), "dates out of order");
        assert!(days.contains(&"1972-02-29".to_string()) && !days.contains(&"1973-02-29".to_string()));
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
