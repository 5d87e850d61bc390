//! Writing reports: text for people (Chinese first), JSON, JSON lines and CSV for other programs.

use std::collections::BTreeMap;
use std::io::Write;

use gradphoto_core::{Lang, Report, Rule, Severity, Verdict};

use crate::check::Format;

fn pick(pair: (&'static str, &'static str), lang: Lang) -> &'static str {
    match lang {
        Lang::Zh => pair.0,
        Lang::En => pair.1,
    }
}

fn mark(severity: Severity) -> &'static str {
    match severity {
        Severity::Pass => "✓",
        Severity::Fixable => "~",
        Severity::Review => "?",
        Severity::Reject => "✗",
    }
}

pub fn write(out: &mut impl Write, reports: &[Report], format: Format, lang: Lang) -> anyhow::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, reports)?;
            writeln!(out)?;
        }
        Format::Jsonl => {
            for r in reports {
                serde_json::to_writer(&mut *out, r)?;
                writeln!(out)?;
            }
        }
        Format::Csv => {
            let mut w = csv::Writer::from_writer(&mut *out);
            w.write_record([
                "file", "profile", "verdict", "error", "rule", "severity", "measured", "limit", "message",
            ])?;
            for r in reports {
                let verdict = pick(r.verdict.label(), Lang::En);
                let error = r.error.as_ref().map(|e| e.code.as_str()).unwrap_or("");
                if r.findings.is_empty() {
                    let msg = r.error.as_ref().map(|e| e.message.get(lang)).unwrap_or("");
                    w.write_record([r.file.as_str(), &r.profile, verdict, error, "", "", "", "", msg])?;
                }
                for f in &r.findings {
                    w.write_record([
                        r.file.as_str(),
                        &r.profile,
                        verdict,
                        error,
                        f.rule.id(),
                        pick(f.severity.label(), Lang::En),
                        &f.measured.to_string(),
                        &f.limit.to_string(),
                        f.message.get(lang),
                    ])?;
                }
            }
            w.flush()?;
        }
        Format::Text => {
            for r in reports {
                let head = match r.verdict {
                    Verdict::Error => "⚠",
                    Verdict::Pass => "✓",
                    Verdict::Fixable => "~",
                    Verdict::Review => "?",
                    Verdict::Reject => "✗",
                };
                writeln!(out, "{head} {} — {}", r.file, pick(r.verdict.label(), lang))?;
                if let Some(e) = &r.error {
                    writeln!(out, "  ⚠ {}  {}", e.code, e.message.get(lang))?;
                }
                for f in &r.findings {
                    writeln!(out, "  {} {:<24} {}", mark(f.severity), f.rule.id(), f.message.get(lang))?;
                }
            }
        }
    }
    Ok(())
}

/// Counts by verdict and, per rule, the findings that did not pass.
pub fn summary(out: &mut impl Write, reports: &[Report], lang: Lang) -> anyhow::Result<()> {
    let mut verdicts: BTreeMap<Verdict, usize> = BTreeMap::new();
    let mut rules: BTreeMap<Rule, BTreeMap<Severity, usize>> = BTreeMap::new();
    let mut errors: BTreeMap<&str, usize> = BTreeMap::new();
    for r in reports {
        *verdicts.entry(r.verdict).or_default() += 1;
        if let Some(e) = &r.error {
            *errors.entry(e.code.as_str()).or_default() += 1;
        }
        for f in r.findings.iter().filter(|f| f.severity != Severity::Pass) {
            *rules.entry(f.rule).or_default().entry(f.severity).or_default() += 1;
        }
    }
    let counts = verdicts
        .iter()
        .map(|(v, n)| format!("{} {n}", pick(v.label(), lang)))
        .collect::<Vec<_>>()
        .join(if lang == Lang::Zh { "，" } else { ", " });
    writeln!(out)?;
    match lang {
        Lang::Zh => writeln!(out, "共 {} 个文件：{counts}", reports.len())?,
        Lang::En => writeln!(out, "{} files: {counts}", reports.len())?,
    }
    if !rules.is_empty() {
        writeln!(out, "{}", pick(("按规则统计未通过：", "Findings that did not pass, by rule:"), lang))?;
        for (rule, by) in &rules {
            let parts =
                by.iter().rev().map(|(s, n)| format!("{} {n}", pick(s.label(), lang))).collect::<Vec<_>>().join(", ");
            writeln!(out, "  {:<24} {:<12} {parts}", rule.id(), pick(rule.title(), lang))?;
        }
    }
    for (code, n) in &errors {
        writeln!(out, "  ⚠ {code:<22} {n}")?;
    }
    Ok(())
}
