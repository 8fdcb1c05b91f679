//! How a body is read for masking, from its Content-Type.

/// What a body is, which decides where replacements may go and where a stream may be cut.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentKind {
    /// JSON (or NDJSON): replacements stay inside strings, so the body stays valid JSON.
    Json,
    /// Anything else textual: replacements go where the match was.
    Text,
    /// `text/event-stream`: each event (up to a blank line) is masked on its own and emitted as
    /// soon as it is complete.
    EventStream,
}

impl ContentKind {
    /// `application/json`, `application/*+json`, NDJSON → `Json`; `text/event-stream` →
    /// `EventStream`; anything else (or a missing type) → `Text`.
    pub fn from_content_type(content_type: &str) -> Self {
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        match essence.as_str() {
            "text/event-stream" => Self::EventStream,
            "application/json"
            | "text/json"
            | "application/x-ndjson"
            | "application/ndjson"
            | "application/jsonl"
            | "application/json-seq" => Self::Json,
            other if other.ends_with("+json") => Self::Json,
            _ => Self::Text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ContentKind;

    #[test]
    fn content_types() {
        assert_eq!(
            ContentKind::from_content_type("application/json; charset=utf-8"),
            ContentKind::Json
        );
        assert_eq!(
            ContentKind::from_content_type("application/problem+json"),
            ContentKind::Json
        );
        assert_eq!(
            ContentKind::from_content_type("Text/Event-Stream"),
            ContentKind::EventStream
        );
        assert_eq!(
            ContentKind::from_content_type("text/plain"),
            ContentKind::Text
        );
        assert_eq!(ContentKind::from_content_type(""), ContentKind::Text);
    }
}
