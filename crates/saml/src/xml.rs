//! Small, strict helpers over `roxmltree`: namespaced child lookup and text content.

use roxmltree::{Document, Node, NodeType, ParsingOptions};

use crate::error::SamlError;

pub(crate) const NS_PROTOCOL: &str = "urn:oasis:names:tc:SAML:2.0:protocol";
pub(crate) const NS_ASSERTION: &str = "urn:oasis:names:tc:SAML:2.0:assertion";
pub(crate) const NS_METADATA: &str = "urn:oasis:names:tc:SAML:2.0:metadata";
pub(crate) const NS_DSIG: &str = "http://www.w3.org/2000/09/xmldsig#";

/// Enough for any real SAML response (Entra's are ~100 elements) while bounding the work an
/// unauthenticated POST can cause.
const NODES_LIMIT: u32 = 20_000;

/// Parses without DTD support: SAML forbids DTDs, and refusing them removes entity expansion
/// and the differences between parsers that it brings.
pub(crate) fn parse(text: &str) -> Result<Document<'_>, SamlError> {
    let opts = ParsingOptions {
        allow_dtd: false,
        nodes_limit: NODES_LIMIT,
    };
    let doc =
        Document::parse_with_options(text, opts).map_err(|e| SamlError::Xml(e.to_string()))?;
    check_depth(&doc)?;
    Ok(doc)
}

/// Real SAML nests about 8 deep. Canonicalization recurses per level, so an unauthenticated
/// document nested thousands deep (behind a replayed, valid SignedInfo) must stop here rather
/// than overflow the stack.
const MAX_DEPTH: usize = 64;

fn check_depth(doc: &Document<'_>) -> Result<(), SamlError> {
    let mut stack = vec![(doc.root(), 0usize)];
    while let Some((node, depth)) = stack.pop() {
        if depth > MAX_DEPTH {
            return Err(SamlError::Xml(format!(
                "elements are nested more than {MAX_DEPTH} deep"
            )));
        }
        stack.extend(
            node.children()
                .filter(|c| c.is_element())
                .map(|c| (c, depth + 1)),
        );
    }
    Ok(())
}

pub(crate) fn is(node: Node<'_, '_>, ns: &str, local: &str) -> bool {
    node.is_element() && node.tag_name().namespace() == Some(ns) && node.tag_name().name() == local
}

pub(crate) fn children<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'static str,
    local: &'static str,
) -> impl Iterator<Item = Node<'a, 'i>> {
    node.children().filter(move |c| is(*c, ns, local))
}

pub(crate) fn child<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'static str,
    local: &'static str,
) -> Option<Node<'a, 'i>> {
    children(node, ns, local).next()
}

/// Exactly one such child, or an error naming it.
pub(crate) fn one_child<'a, 'i>(
    node: Node<'a, 'i>,
    ns: &'static str,
    local: &'static str,
) -> Result<Node<'a, 'i>, SamlError> {
    let mut it = children(node, ns, local);
    match (it.next(), it.next()) {
        (Some(c), None) => Ok(c),
        (None, _) => Err(SamlError::Malformed(format!(
            "<{}> has no <{local}>",
            node.tag_name().name()
        ))),
        (Some(_), Some(_)) => Err(SamlError::Malformed(format!(
            "<{}> has more than one <{local}>",
            node.tag_name().name()
        ))),
    }
}

/// The element's character data: all text children joined, comments and processing
/// instructions skipped. Joining matters: reading only the first text node would turn
/// `admin@example.com<!---->.evil.test` (a validly signed value, since exclusive c14n drops
/// comments) into `admin@example.com`.
pub(crate) fn text(node: Node<'_, '_>) -> String {
    node.children()
        .filter(|c| c.node_type() == NodeType::Text)
        .filter_map(|c| c.text())
        .collect()
}

/// Like [`text`], but `None` when the element holds child elements (structured values such as
/// a NameID inside an AttributeValue are not plain strings).
pub(crate) fn simple_text(node: Node<'_, '_>) -> Option<String> {
    if node.children().any(|c| c.is_element()) {
        None
    } else {
        Some(text(node))
    }
}

pub(crate) fn trimmed_text(node: Node<'_, '_>) -> String {
    text(node).trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deep_nesting_and_dtds_are_refused() {
        let deep = format!("{}{}", "<a>".repeat(100), "</a>".repeat(100));
        assert!(matches!(parse(&deep), Err(SamlError::Xml(_))));
        let shallow = format!("{}{}", "<a>".repeat(10), "</a>".repeat(10));
        assert!(parse(&shallow).is_ok());
        let dtd = r#"<!DOCTYPE a [<!ENTITY e "x">]><a>&e;</a>"#;
        assert!(matches!(parse(dtd), Err(SamlError::Xml(_))));
    }

    #[test]
    fn text_joins_around_comments() {
        let doc = parse("<a>admin@x.test<!---->.evil.test</a>").unwrap();
        assert_eq!(text(doc.root_element()), "admin@x.test.evil.test");
    }
}
