//! Result lines and the comparison table.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde_json::{Value, json};

/// One measured row of one run.
pub struct Measurement {
    /// Stable key, the same for every server and round (`push-blobs`, …).
    pub key: String,
    /// What the row measured, for the table.
    pub label: String,
    /// Unit of `rate`: `MiB/s`, `req/s`, `images/s`, …; higher is always better.
    pub unit: &'static str,
    pub ops: u64,
    pub bytes: u64,
    pub seconds: f64,
    pub errors: u64,
    /// Anything else worth keeping (entries listed, tokens fetched, …).
    pub extra: Value,
}

impl Measurement {
    pub fn rate(&self) -> f64 {
        let amount = if self.unit == "MiB/s" {
            self.bytes as f64 / (1024.0 * 1024.0)
        } else {
            self.ops as f64
        };
        if self.seconds > 0.0 { amount / self.seconds } else { 0.0 }
    }

    pub fn print(&self) {
        let line = json!({
            "key": self.key,
            "row": self.label,
            "unit": self.unit,
            "ops": self.ops,
            "bytes": self.bytes,
            "seconds": (self.seconds * 1000.0).round() / 1000.0,
            "rate": (self.rate() * 100.0).round() / 100.0,
            "errors": self.errors,
            "extra": self.extra,
        });
        println!("{line}");
    }
}

fn median(values: &mut [f64]) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    Some(if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    })
}

/// The median over the rounds both servers ran of `a`'s rate over `b`'s, given (round, rate) pairs.
fn median_ratio(a: &[(u64, f64)], b: &[(u64, f64)]) -> Option<f64> {
    let mut ratios: Vec<f64> = a
        .iter()
        .filter_map(|(round, a)| {
            let b = b.iter().find(|(r, _)| r == round)?.1;
            (b > 0.0).then_some(a / b)
        })
        .collect();
    median(&mut ratios)
}

fn format_rate(rate: f64) -> String {
    if rate >= 100.0 {
        format!("{rate:.0}")
    } else if rate >= 10.0 {
        format!("{rate:.1}")
    } else {
        format!("{rate:.2}")
    }
}

/// Prints, for every row in order of first appearance, the median rate of each server over its rounds
/// and the median of the per-round ratios (each round's two runs ran back to back, so the machine's
/// drift cancels out). Lines are `run` output with `server` added; a line `{"server", "key", "row", "na"}`
/// marks a row a server cannot run (shown as `n/a`).
pub fn table(input: &Path, numerator: &str, denominator: &str) -> Result<()> {
    let text = std::fs::read_to_string(input).with_context(|| format!("reading {}", input.display()))?;
    let mut order: Vec<String> = Vec::new();
    let mut labels: HashMap<String, (String, String)> = HashMap::new();
    let mut rates: HashMap<(String, String), Vec<(u64, f64)>> = HashMap::new();
    let mut errors: HashMap<(String, String), u64> = HashMap::new();
    let mut notes: Vec<(String, String, String)> = Vec::new();
    let mut resources = Resources::default();
    for line in text.lines().filter(|l| l.trim_start().starts_with('{')) {
        let v: Value = serde_json::from_str(line).with_context(|| format!("bad line {line:?}"))?;
        let field = |name: &str| v.get(name).and_then(Value::as_str).unwrap_or("").to_owned();
        if let Some(workload) = v.get("resource").and_then(Value::as_str) {
            resources.add(workload, &field("server"), &v);
            continue;
        }
        let (key, server) = (field("key"), field("server"));
        if !labels.contains_key(&key) {
            order.push(key.clone());
            labels.insert(key.clone(), (field("row"), field("unit")));
        } else if let Some(entry) = labels.get_mut(&key)
            && entry.1.is_empty()
        {
            *entry = (field("row"), field("unit"));
        }
        if let Some(why) = v.get("na").and_then(Value::as_str) {
            if !notes.iter().any(|(k, s, _)| *k == key && *s == server) {
                notes.push((key, server, why.to_owned()));
            }
            continue;
        }
        if let Some(rate) = v.get("rate").and_then(Value::as_f64) {
            let round = v.get("round").and_then(Value::as_u64).unwrap_or(0);
            rates
                .entry((key.clone(), server.clone()))
                .or_default()
                .push((round, rate));
        }
        *errors.entry((key, server)).or_default() += v.get("errors").and_then(Value::as_u64).unwrap_or(0);
    }
    let mut rows = vec![[
        "row".to_owned(),
        "unit".to_owned(),
        numerator.to_owned(),
        denominator.to_owned(),
        format!("{numerator}/{denominator} (>1: {numerator} better)"),
    ]];
    for key in &order {
        let (label, unit) = labels.get(key).cloned().unwrap_or_default();
        let of = |server: &str| {
            rates
                .get(&(key.clone(), server.to_owned()))
                .cloned()
                .unwrap_or_default()
        };
        let (a_rounds, b_rounds) = (of(numerator), of(denominator));
        let cell = |server: &str, rounds: &[(u64, f64)]| {
            let m = median(&mut rounds.iter().map(|(_, r)| *r).collect::<Vec<_>>());
            let errs = errors.get(&(key.clone(), server.to_owned())).copied().unwrap_or(0);
            let text = m.map_or("n/a".to_owned(), |m| {
                if errs > 0 {
                    format!("{} ({errs} errors)", format_rate(m))
                } else {
                    format_rate(m)
                }
            });
            (m, text)
        };
        let (a, a_text) = cell(numerator, &a_rounds);
        let (b, b_text) = cell(denominator, &b_rounds);
        let ratio = match (median_ratio(&a_rounds, &b_rounds), a, b) {
            (Some(ratio), _, _) => format!("{ratio:.2}"),
            (None, Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
            _ => "n/a".to_owned(),
        };
        rows.push([label, unit, a_text, b_text, ratio]);
    }
    print_table(&rows, 2);
    for (key, server, why) in notes {
        let label = labels.get(&key).map_or(key.as_str(), |(label, _)| label.as_str());
        println!("n/a: {server}, {label}: {why}");
    }
    if !resources.order.is_empty() {
        println!();
        print_table(&resources.rows(numerator, denominator), 1);
    }
    Ok(())
}

/// Each server's CPU seconds and peak RSS per workload run (lines `{"server", "resource": workload,
/// "cpu", "rss"}`): the median CPU over rounds and the largest peak.
#[derive(Default)]
struct Resources {
    order: Vec<String>,
    cpu: HashMap<(String, String), Vec<f64>>,
    rss: HashMap<(String, String), f64>,
}

impl Resources {
    fn add(&mut self, workload: &str, server: &str, line: &Value) {
        if !self.order.iter().any(|w| w == workload) {
            self.order.push(workload.to_owned());
        }
        let id = (workload.to_owned(), server.to_owned());
        if let Some(cpu) = line.get("cpu").and_then(Value::as_f64) {
            self.cpu.entry(id.clone()).or_default().push(cpu);
        }
        if let Some(rss) = line.get("rss").and_then(Value::as_f64) {
            let peak = self.rss.entry(id).or_insert(0.0);
            *peak = peak.max(rss);
        }
    }

    fn rows(&mut self, numerator: &str, denominator: &str) -> Vec<[String; 5]> {
        let mut rows = vec![[
            "workload (per run)".to_owned(),
            format!("{numerator} CPU s"),
            format!("{denominator} CPU s"),
            format!("{numerator} peak RSS MiB"),
            format!("{denominator} peak RSS MiB"),
        ]];
        for workload in &self.order {
            let mut cpu = |server: &str| {
                self.cpu
                    .get_mut(&(workload.clone(), server.to_owned()))
                    .and_then(|v| median(v))
                    .map_or("n/a".to_owned(), |c| format!("{c:.2}"))
            };
            let (a_cpu, b_cpu) = (cpu(numerator), cpu(denominator));
            let rss = |server: &str| {
                self.rss
                    .get(&(workload.clone(), server.to_owned()))
                    .map_or("n/a".to_owned(), |r| format!("{r:.0}"))
            };
            rows.push([workload.clone(), a_cpu, b_cpu, rss(numerator), rss(denominator)]);
        }
        rows
    }
}

/// Prints a Markdown table; the first `text_columns` columns left-aligned, the rest right-aligned.
fn print_table<const N: usize>(rows: &[[String; N]], text_columns: usize) {
    let widths: Vec<usize> = (0..N)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for (n, row) in rows.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let pad = widths[i] - c.chars().count();
                if i < text_columns {
                    format!("{c}{}", " ".repeat(pad))
                } else {
                    format!("{}{c}", " ".repeat(pad))
                }
            })
            .collect();
        println!("| {} |", cells.join(" | "));
        if n == 0 {
            let rule: Vec<String> = widths
                .iter()
                .enumerate()
                .map(|(i, w)| {
                    if i < text_columns {
                        "-".repeat(*w)
                    } else {
                        format!("{}:", "-".repeat(w - 1))
                    }
                })
                .collect();
            println!("| {} |", rule.join(" | "));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians() {
        assert_eq!(median(&mut []), None);
        assert_eq!(median(&mut [3.0, 1.0, 2.0]), Some(2.0));
        assert_eq!(median(&mut [4.0, 1.0, 2.0, 3.0]), Some(2.5));
    }

    #[test]
    fn ratios_pair_the_rounds() {
        let a = [(1, 10.0), (2, 30.0), (3, 12.0)];
        let b = [(1, 5.0), (2, 10.0), (3, 2.0)];
        assert_eq!(median_ratio(&a, &b), Some(3.0), "2, 3 and 6: the median of the ratios");
        assert_eq!(median_ratio(&a, &[(4, 1.0)]), None, "no round in common");
        assert_eq!(median_ratio(&a, &[(1, 0.0)]), None);
    }
}
