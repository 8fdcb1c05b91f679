//! The readable part of an error chain, for messages people read.

/// The innermost source of `e`: an HTTP client's own message ("error sending request") says
/// nothing of why; the innermost one does (`connection refused`, `unknown issuer`).
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(next) = current.source() {
        current = next;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn the_innermost_source_is_reported() {
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(root_cause(&e), "connection refused");
        assert_eq!(root_cause(&std::io::Error::other("alone")), "alone");
    }
}
