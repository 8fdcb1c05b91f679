//! Exclusive XML Canonicalization 1.0 (<https://www.w3.org/TR/xml-exc-c14n/>) of one element
//! subtree of a parsed document, optionally leaving out one descendant (the enveloped signature).
//!
//! Canonicalizing the very `roxmltree` node that is later read is what makes signature wrapping
//! impossible here: there is no second parser whose view of the document could differ from the
//! bytes that were digested.
//!
//! Scope: what SAML IdPs emit — elements, attributes, text, comments and processing instructions
//! inside the signed element, with the `InclusiveNamespaces` prefix list. The parser refuses
//! DTDs, so there are no entity or default-attribute subtleties.

use std::collections::BTreeMap;

use roxmltree::{Node, NodeId, NodeType};

/// Options for one canonicalization.
pub(crate) struct Options<'a> {
    /// The node left out with its subtree (the enveloped-signature transform).
    pub exclude: Option<NodeId>,
    /// Prefixes treated as in inclusive canonicalization ("" is the default namespace).
    pub inclusive_prefixes: &'a [String],
    pub with_comments: bool,
}

/// Canonical form of `node` (an element) and its subtree.
pub(crate) fn canonicalize(node: Node<'_, '_>, opts: &Options<'_>) -> Result<String, String> {
    let input = node.document().input_text();
    let mut out = String::with_capacity(node.range().len());
    let rendered = BTreeMap::new();
    element(input, node, opts, &rendered, &mut out)?;
    Ok(out)
}

/// The qualified name as written in the source: c14n keeps prefixes, which the tree does not
/// record for elements.
fn element_qname<'i>(input: &'i str, node: Node<'_, '_>) -> Result<&'i str, String> {
    let start = node.range().start + 1;
    let rest = input
        .get(start..)
        .ok_or_else(|| "element position outside the document".to_owned())?;
    let end = rest
        .find(|c: char| c.is_ascii_whitespace() || c == '>' || c == '/')
        .ok_or_else(|| "unterminated start tag".to_owned())?;
    Ok(&rest[..end])
}

fn prefix_of(qname: &str) -> &str {
    qname.split_once(':').map_or("", |(p, _)| p)
}

fn element(
    input: &str,
    node: Node<'_, '_>,
    opts: &Options<'_>,
    rendered: &BTreeMap<String, String>,
    out: &mut String,
) -> Result<(), String> {
    let qname = element_qname(input, node)?;

    // Namespaces in scope on this element ("" = default namespace; an empty URI = none).
    let in_scope: BTreeMap<&str, &str> = node
        .namespaces()
        .map(|ns| (ns.name().unwrap_or(""), ns.uri()))
        .collect();

    // Attributes with their source qualified names.
    let mut attrs = Vec::new();
    for attr in node.attributes() {
        let aq = input
            .get(attr.range_qname())
            .ok_or_else(|| "attribute position outside the document".to_owned())?;
        attrs.push((
            attr.namespace().unwrap_or(""),
            attr.name(),
            aq,
            attr.value(),
        ));
    }
    // Sort key of c14n: namespace URI first (none sorts first), then local name.
    attrs.sort_by(|a, b| (a.0, a.1).cmp(&(b.0, b.1)));

    // Visibly utilized prefixes, plus the inclusive ones that are in scope.
    let mut wanted: Vec<&str> = vec![prefix_of(qname)];
    for (_, _, aq, _) in &attrs {
        let p = prefix_of(aq);
        if !p.is_empty() {
            wanted.push(p);
        }
    }
    for p in opts.inclusive_prefixes {
        if in_scope.contains_key(p.as_str()) {
            wanted.push(p);
        }
    }
    wanted.sort_unstable();
    wanted.dedup();

    let mut now_rendered = rendered.clone();
    let mut decls = String::new();
    for p in wanted {
        // The xml prefix is bound by definition and never declared.
        if p == "xml" {
            continue;
        }
        let uri = in_scope.get(p).copied().unwrap_or("");
        if uri.is_empty() && !p.is_empty() {
            return Err(format!("prefix '{p}' is not declared"));
        }
        let already = rendered.get(p).map(String::as_str);
        let needed = if p.is_empty() {
            // xmlns="" only undoes a non-empty default an output ancestor rendered.
            match already {
                Some(prev) => prev != uri,
                None => !uri.is_empty(),
            }
        } else {
            already != Some(uri)
        };
        if needed {
            if p.is_empty() {
                decls.push_str(" xmlns=\"");
            } else {
                decls.push_str(" xmlns:");
                decls.push_str(p);
                decls.push_str("=\"");
            }
            escape_attr(uri, &mut decls);
            decls.push('"');
            now_rendered.insert(p.to_owned(), uri.to_owned());
        }
    }

    out.push('<');
    out.push_str(qname);
    out.push_str(&decls);
    for (_, _, aq, value) in &attrs {
        out.push(' ');
        out.push_str(aq);
        out.push_str("=\"");
        escape_attr(value, out);
        out.push('"');
    }
    out.push('>');

    for child in node.children() {
        if Some(child.id()) == opts.exclude {
            continue;
        }
        match child.node_type() {
            NodeType::Element => element(input, child, opts, &now_rendered, out)?,
            NodeType::Text => escape_text(child.text().unwrap_or(""), out),
            NodeType::Comment => {
                if opts.with_comments {
                    out.push_str("<!--");
                    out.push_str(child.text().unwrap_or(""));
                    out.push_str("-->");
                }
            }
            NodeType::PI => {
                if let Some(pi) = child.pi() {
                    out.push_str("<?");
                    out.push_str(pi.target);
                    if let Some(value) = pi.value.filter(|v| !v.is_empty()) {
                        out.push(' ');
                        out.push_str(value);
                    }
                    out.push_str("?>");
                }
            }
            NodeType::Root => {}
        }
    }

    out.push_str("</");
    out.push_str(qname);
    out.push('>');
    Ok(())
}

fn escape_text(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
}

fn escape_attr(value: &str, out: &mut String) {
    for c in value.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '"' => out.push_str("&quot;"),
            '\t' => out.push_str("&#x9;"),
            '\n' => out.push_str("&#xA;"),
            '\r' => out.push_str("&#xD;"),
            _ => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c14n(xml: &str, with_comments: bool) -> String {
        let doc = roxmltree::Document::parse(xml).unwrap();
        let opts = Options {
            exclude: None,
            inclusive_prefixes: &[],
            with_comments,
        };
        canonicalize(doc.root_element(), &opts).unwrap()
    }

    fn c14n_of(xml: &str, local: &str) -> String {
        let doc = roxmltree::Document::parse(xml).unwrap();
        let node = doc
            .descendants()
            .find(|n| n.tag_name().name() == local)
            .unwrap();
        let opts = Options {
            exclude: None,
            inclusive_prefixes: &[],
            with_comments: false,
        };
        canonicalize(node, &opts).unwrap()
    }

    #[test]
    fn empty_elements_are_expanded_and_attributes_sorted() {
        assert_eq!(
            c14n(r#"<a z="1" b='2' xmlns:x="urn:x" x:c="3"/>"#, false),
            r#"<a xmlns:x="urn:x" b="2" z="1" x:c="3"></a>"#
        );
    }

    #[test]
    fn only_visibly_utilized_namespaces_are_rendered() {
        let xml = r#"<r xmlns:a="urn:a" xmlns:b="urn:b" xmlns="urn:d"><a:e><b:f/><g/></a:e></r>"#;
        assert_eq!(
            c14n_of(xml, "e"),
            r#"<a:e xmlns:a="urn:a"><b:f xmlns:b="urn:b"></b:f><g xmlns="urn:d"></g></a:e>"#
        );
    }

    #[test]
    fn default_namespace_is_undone_only_when_an_output_ancestor_set_it() {
        let xml = r#"<r xmlns="urn:d"><e><f xmlns=""/></e></r>"#;
        assert_eq!(
            c14n_of(xml, "e"),
            r#"<e xmlns="urn:d"><f xmlns=""></f></e>"#
        );
        assert_eq!(c14n_of(r#"<e><f xmlns=""/></e>"#, "e"), "<e><f></f></e>");
    }

    #[test]
    fn text_and_attribute_escaping_follow_the_spec() {
        assert_eq!(
            c14n(
                "<a v=\"&lt;&amp;&quot;&#9;&#10;'>\">x &lt; &amp; &gt; \"'<![CDATA[<y>]]></a>",
                false
            ),
            "<a v=\"&lt;&amp;&quot;&#x9;&#xA;'>\">x &lt; &amp; &gt; \"'&lt;y&gt;</a>"
        );
    }

    #[test]
    fn comments_are_dropped_unless_asked_for() {
        assert_eq!(
            c14n("<a>x<!-- c -->y<?p d?></a>", false),
            "<a>xy<?p d?></a>"
        );
        assert_eq!(c14n("<a>x<!-- c -->y</a>", true), "<a>x<!-- c -->y</a>");
    }

    #[test]
    fn redundant_declarations_are_not_repeated() {
        let xml = r#"<a:r xmlns:a="urn:a"><a:e xmlns:a="urn:a"/></a:r>"#;
        assert_eq!(
            c14n(xml, false),
            r#"<a:r xmlns:a="urn:a"><a:e></a:e></a:r>"#
        );
    }
}
