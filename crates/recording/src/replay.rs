//! Prints a recorded exchange as it happened: `>` lines are what the caller sent, `<` what came
//! back, `=` what Keyward decided; the gaps between records are slept, divided by `speed`.

use std::io::{self, Write};
use std::time::Duration;

use base64::Engine;
use serde_json::Value;

use crate::verify::Record;

/// Writes the exchange to `out`. With `sleep` and a positive `speed`, waits the recorded gap
/// (divided by `speed`) before each record; otherwise prints at once.
pub fn replay(records: &[Record], speed: f64, out: &mut impl Write, sleep: bool) -> io::Result<()> {
    let mut last_at: Option<u64> = None;
    let mut response_start = 0u64;
    for record in records {
        if sleep
            && speed > 0.0
            && speed.is_finite()
            && let Some(last) = last_at
        {
            let gap = record.at_ms.saturating_sub(last) as f64 / speed;
            if gap >= 1.0 {
                std::thread::sleep(Duration::from_secs_f64(gap / 1000.0));
            }
        }
        last_at = Some(record.at_ms);
        let d = &record.data;
        match record.kind.as_str() {
            "segment" => writeln!(
                out,
                "== session {} segment {} (caller {}, route {}) at {} ms",
                text(d, "session_id"),
                d.get("segment").unwrap_or(&Value::Null),
                text(d, "caller"),
                text(d, "route"),
                record.at_ms
            )?,
            "request" => {
                writeln!(out, "> {} {}", text(d, "method"), text(d, "path"))?;
                headers(out, "> ", d)?;
                if let Some(b) = d.get("body") {
                    writeln!(out, ">")?;
                    body(out, "> ", b)?;
                }
            }
            "request_chunk" => body(out, "> ", d.get("body").unwrap_or(&Value::Null))?,
            "response" => {
                response_start = record.at_ms;
                writeln!(out, "< {}", d.get("status").unwrap_or(&Value::Null))?;
                headers(out, "< ", d)?;
                writeln!(out, "<")?;
            }
            "response_chunk" => {
                let offset = record.at_ms.saturating_sub(response_start);
                write!(out, "< [+{offset} ms] ")?;
                body(out, "", d.get("body").unwrap_or(&Value::Null))?;
            }
            "close" => writeln!(
                out,
                "== close ({} ms)",
                d.get("duration_ms").unwrap_or(&Value::Null)
            )?,
            other => writeln!(out, "= {other}: {d}")?,
        }
    }
    out.flush()
}

fn text<'a>(d: &'a Value, key: &str) -> &'a str {
    d.get(key).and_then(Value::as_str).unwrap_or("-")
}

fn headers(out: &mut impl Write, mark: &str, d: &Value) -> io::Result<()> {
    for pair in d
        .get("headers")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let name = pair.get(0).and_then(Value::as_str).unwrap_or("");
        let value = pair.get(1).and_then(Value::as_str).unwrap_or("");
        writeln!(out, "{mark}{name}: {value}")?;
    }
    Ok(())
}

fn body(out: &mut impl Write, mark: &str, b: &Value) -> io::Result<()> {
    if let Some(t) = b.get("text").and_then(Value::as_str) {
        for line in t.split_inclusive('\n') {
            write!(out, "{mark}{line}")?;
        }
        if !t.ends_with('\n') {
            writeln!(out)?;
        }
    } else if let Some(b64) = b.get("base64").and_then(Value::as_str) {
        let len = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map(|v| v.len())
            .unwrap_or(0);
        writeln!(out, "{mark}[{len} binary bytes]")?;
    } else {
        writeln!(out, "{mark}{b}")?;
    }
    Ok(())
}
