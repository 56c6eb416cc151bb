//! What the CLI prints: aligned tables and key/value blocks for people, JSON for scripts, and
//! the error report.
//!
//! Text that comes from flows or from the server (messages, log lines, results) is printed with
//! control characters escaped in table mode, so a hostile flow cannot drive the reader's
//! terminal with escape sequences; `--output json` gives the exact text.

use std::io::{self, Write};

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::Value;

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// Writes `text` and a newline to standard output.
pub fn out(text: &str) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.write_all(b"\n")?;
    stdout.flush()
}

/// Writes `text` and a newline to standard error (notes for people, kept out of pipes).
pub fn note(text: &str) -> io::Result<()> {
    let mut stderr = io::stderr().lock();
    stderr.write_all(text.as_bytes())?;
    stderr.write_all(b"\n")
}

/// Prints a value as pretty JSON.
pub fn json<T: Serialize>(value: &T) -> anyhow::Result<()> {
    out(&serde_json::to_string_pretty(value)?)?;
    Ok(())
}

/// Prints a value as one line of JSON (for streams: one object per line).
pub fn json_line<T: Serialize>(value: &T) -> anyhow::Result<()> {
    out(&serde_json::to_string(value)?)?;
    Ok(())
}

/// Escapes control characters (except tab and newline when `multiline`) so the text cannot
/// move the cursor or change the terminal.
pub fn clean(s: &str, multiline: bool) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\n' if multiline => out.push(c),
            '\t' => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out
}

/// A table: a header row and aligned columns separated by two spaces.
#[derive(Debug)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Table {
        Table {
            headers: headers.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; cells are made single-line and free of control characters.
    pub fn row(&mut self, cells: Vec<String>) {
        let cells = cells
            .into_iter()
            .map(|c| clean(&c, false).replace('\t', " "))
            .collect();
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let header: Vec<String> = self.headers.iter().map(|h| (*h).to_owned()).collect();
        let mut lines = Vec::with_capacity(self.rows.len() + 1);
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map(String::as_str).unwrap_or("");
                if i > 0 {
                    line.push_str("  ");
                }
                line.push_str(cell);
                let pad = width - cell.chars().count();
                line.extend(std::iter::repeat_n(' ', pad));
            }
            lines.push(line.trim_end().to_owned());
        }
        lines.join("\n")
    }
}

/// A block of `Key  value` lines with the values aligned; a multi-line value continues
/// under its first line.
pub fn details(rows: &[(&str, String)]) -> String {
    let width = rows
        .iter()
        .map(|(k, _)| k.chars().count())
        .max()
        .unwrap_or(0);
    let mut lines = Vec::new();
    for (key, value) in rows {
        let value = clean(value, true);
        let mut value_lines = value.lines();
        let first = value_lines.next().unwrap_or("");
        lines.push(format!("{key:width$}  {first}").trim_end().to_owned());
        for more in value_lines {
            lines.push(format!("{:width$}  {more}", "").trim_end().to_owned());
        }
    }
    lines.join("\n")
}

/// A timestamp, to the second, in UTC: `2024-05-01T12:00:03Z`.
pub fn time(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// An optional timestamp; `-` when absent.
pub fn opt_time(t: Option<&DateTime<Utc>>) -> String {
    t.map(time).unwrap_or_else(|| "-".to_owned())
}

/// An optional text; `-` when absent.
pub fn opt(s: Option<&str>) -> String {
    s.unwrap_or("-").to_owned()
}

/// A duration for people: `850ms`, `12.3s`, `4m05s`, `2h03m`.
pub fn duration(from: &DateTime<Utc>, to: &DateTime<Utc>) -> String {
    let ms = (*to - *from).num_milliseconds().max(0);
    match ms {
        0..1_000 => format!("{ms}ms"),
        1_000..60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        60_000..3_600_000 => format!("{}m{:02}s", ms / 60_000, ms / 1000 % 60),
        _ => format!("{}h{:02}m", ms / 3_600_000, ms / 60_000 % 60),
    }
}

/// JSON on one line, strings without their quotes.
pub fn compact(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Pretty JSON (for results and templates that are worth reading whole).
pub fn pretty(v: &Value) -> String {
    serde_json::to_string_pretty(v).unwrap_or_else(|_| v.to_string())
}

/// An object as `key: value` lines (for infrastructure ids); anything else compact.
pub fn fields(v: &Value) -> String {
    match v {
        Value::Object(map) if !map.is_empty() => map
            .iter()
            .map(|(k, v)| format!("{k}: {}", compact(v)))
            .collect::<Vec<_>>()
            .join("\n"),
        other => compact(other),
    }
}

/// The report printed for an error: its message, and the causes worth reading.
///
/// For a server that cannot be reached or a connection that broke, the chain of the HTTP
/// library is long and repetitive; only its innermost cause (`Connection refused`) helps.
pub fn error_report(e: &anyhow::Error) -> String {
    let mut lines = vec![format!("error: {e}")];
    let is_connection = e.chain().any(|c| {
        c.downcast_ref::<ferry_client::Error>()
            .is_some_and(ferry_client::Error::is_transient)
    });
    let causes: Vec<String> = e.chain().skip(1).map(|c| c.to_string()).collect();
    let shown: &[String] = if is_connection {
        causes.last().map(std::slice::from_ref).unwrap_or(&[])
    } else {
        &causes
    };
    for cause in shown {
        lines.push(format!("  caused by: {cause}"));
    }
    lines.join("\n")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn tables_align_columns_without_trailing_spaces() {
        let mut t = Table::new(&["NAME", "TYPE", "PAUSED"]);
        t.row(vec!["sbx".into(), "managed".into(), "no".into()]);
        t.row(vec!["a-long-name".into(), "ecs".into(), "".into()]);
        assert_eq!(
            t.render(),
            "NAME         TYPE     PAUSED\n\
             sbx          managed  no\n\
             a-long-name  ecs"
        );
    }

    #[test]
    fn empty_tables_render_their_header() {
        let t = Table::new(&["ID", "STATE"]);
        assert_eq!(t.render(), "ID  STATE");
    }

    #[test]
    fn table_cells_are_one_line_and_inert() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["x\ny\tz".into(), "\u{1b}[31mred".into()]);
        assert_eq!(t.render(), "A       B\nx\\ny z  \\u{1b}[31mred");
    }

    #[test]
    fn tables_count_characters_not_bytes() {
        let mut t = Table::new(&["A", "B"]);
        t.row(vec!["héllo".into(), "1".into()]);
        t.row(vec!["x".into(), "2".into()]);
        assert_eq!(t.render(), "A      B\nhéllo  1\nx      2");
    }

    #[test]
    fn details_align_and_continue_multiline_values() {
        let s = details(&[
            ("ID", "r1".into()),
            ("State", "failed".into()),
            ("Result", "{\n  \"a\": 1\n}".into()),
            ("Empty", "".into()),
        ]);
        assert_eq!(
            s,
            "ID      r1\n\
             State   failed\n\
             Result  {\n\
            \x20         \"a\": 1\n\
            \x20       }\n\
             Empty"
        );
    }

    #[test]
    fn clean_table() {
        let cases = [
            ("plain", false, "plain"),
            ("a\nb", false, "a\\nb"),
            ("a\nb", true, "a\nb"),
            ("a\r\nb", true, "a\\r\nb"),
            ("tab\there", false, "tab\there"),
            ("\u{1b}]0;title\u{7}", false, "\\u{1b}]0;title\\u{7}"),
            ("c1\u{9b}x", false, "c1\\u{9b}x"),
            ("del\u{7f}", false, "del\\u{7f}"),
            ("ünïcode ✓", false, "ünïcode ✓"),
        ];
        for (input, multiline, want) in cases {
            assert_eq!(clean(input, multiline), want, "{input:?}");
        }
    }

    #[test]
    fn durations() {
        let t0: DateTime<Utc> = "2024-05-01T12:00:00Z".parse().unwrap();
        let cases = [
            (0, "0ms"),
            (850, "850ms"),
            (1_000, "1.0s"),
            (12_340, "12.3s"),
            (245_000, "4m05s"),
            (7_380_000, "2h03m"),
            (-5, "0ms"),
        ];
        for (ms, want) in cases {
            let t1 = t0 + chrono::Duration::milliseconds(ms);
            assert_eq!(duration(&t0, &t1), want, "{ms}");
        }
    }

    #[test]
    fn times_are_rfc3339_to_the_second() {
        let t: DateTime<Utc> = "2024-05-01T12:00:03.456789Z".parse().unwrap();
        assert_eq!(time(&t), "2024-05-01T12:00:03Z");
        assert_eq!(opt_time(None), "-");
    }

    #[test]
    fn values() {
        assert_eq!(compact(&json!("s")), "s");
        assert_eq!(compact(&json!({"a": [1, 2]})), "{\"a\":[1,2]}");
        assert_eq!(
            fields(&json!({"task_arn": "arn:aws:ecs:x"})),
            "task_arn: arn:aws:ecs:x"
        );
        // Key order depends on serde_json's `preserve_order` feature; check the lines only.
        let two = fields(&json!({"execution": "projects/p/executions/e", "attempt": 2}));
        let mut lines: Vec<&str> = two.lines().collect();
        lines.sort_unstable();
        assert_eq!(lines, ["attempt: 2", "execution: projects/p/executions/e"]);
        assert_eq!(fields(&json!({})), "{}");
        assert_eq!(fields(&json!("exec-1")), "exec-1");
    }

    #[test]
    fn error_reports() {
        let e = anyhow::anyhow!("root").context("middle").context("top");
        assert_eq!(
            error_report(&e),
            "error: top\n  caused by: middle\n  caused by: root"
        );
    }
}
