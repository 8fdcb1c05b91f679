//! The part of CEL that GCP attribute mappings and conditions use in federation setups:
//! `assertion.<claim>`, `attribute.<name>`, `google.subject`, string literals, `==`, `!=`, `!`,
//! `&&`, `||`, parentheses, `true`/`false`, and `'x' in assertion.<list claim>`.
//! As in CEL, touching a claim the token does not carry is an error, and an error rejects the
//! token — a condition never passes by accident.

use std::collections::BTreeMap;

use serde_json::Value;
use thiserror::Error;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum ParseError {
    #[error("unexpected {found} at character {at}; expected {expected}")]
    Unexpected {
        found: String,
        at: usize,
        expected: &'static str,
    },
    #[error("unterminated string literal starting at character {0}")]
    Unterminated(usize),
    #[error("unknown variable '{0}': use assertion.<claim>, attribute.<name> or google.subject")]
    UnknownVariable(String),
    #[error("attribute mapping needs google.subject (e.g. \"google.subject\" = \"assertion.sub\")")]
    NoSubject,
    #[error(
        "attribute mapping key '{0}' must be google.subject, google.groups or attribute.<name>"
    )]
    BadTarget(String),
}

#[derive(Clone, Debug, PartialEq)]
enum Expr {
    Var(Vec<String>),
    Str(String),
    Bool(bool),
    Not(Box<Expr>),
    Eq(Box<Expr>, Box<Expr>),
    Ne(Box<Expr>, Box<Expr>),
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    In(Box<Expr>, Box<Expr>),
}

/// An evaluation failure: the token is rejected, as CEL errors reject it in GCP.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum EvalError {
    #[error("no such key: {0}")]
    NoSuchKey(String),
    #[error("no matching overload for '{0}'")]
    NoMatchingOverload(&'static str),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Condition(Expr);

impl Condition {
    pub fn parse(text: &str) -> Result<Self, ParseError> {
        let tokens = lex(text)?;
        let mut p = Parser { tokens, pos: 0 };
        let expr = p.or()?;
        p.end()?;
        Ok(Condition(expr))
    }

    /// `Ok(true)` admits the token; `Ok(false)` and every error reject it.
    pub fn eval(&self, vars: &Vars) -> Result<bool, EvalError> {
        match eval(&self.0, vars)? {
            Value::Bool(b) => Ok(b),
            _ => Err(EvalError::NoMatchingOverload("condition must be a boolean")),
        }
    }
}

/// The variables a condition sees: the token's claims and the mapped attributes.
pub struct Vars<'a> {
    pub assertion: &'a Value,
    pub google: &'a BTreeMap<String, Value>,
    pub attribute: &'a BTreeMap<String, Value>,
}

/// `google.subject = assertion.sub`, `attribute.organization = assertion.organization_id`, …
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Mapping {
    rules: Vec<(String, Condition)>,
}

/// What a mapping produced for one token.
#[derive(Clone, Debug, Default)]
pub struct Mapped {
    pub google: BTreeMap<String, Value>,
    pub attribute: BTreeMap<String, Value>,
}

impl Mapping {
    pub fn parse<'a>(
        entries: impl Iterator<Item = (&'a str, &'a str)>,
    ) -> Result<Self, ParseError> {
        let mut rules = Vec::new();
        for (target, expr) in entries {
            let ok = target == "google.subject"
                || target == "google.groups"
                || target
                    .strip_prefix("attribute.")
                    .is_some_and(|n| !n.is_empty());
            if !ok {
                return Err(ParseError::BadTarget(target.to_owned()));
            }
            rules.push((target.to_owned(), Condition::parse(expr)?));
        }
        if !rules.iter().any(|(t, _)| t == "google.subject") {
            return Err(ParseError::NoSubject);
        }
        Ok(Mapping { rules })
    }

    pub fn apply(&self, assertion: &Value) -> Result<Mapped, EvalError> {
        let mut out = Mapped::default();
        let empty = BTreeMap::new();
        for (target, expr) in &self.rules {
            let vars = Vars {
                assertion,
                google: &empty,
                attribute: &empty,
            };
            let value = eval(&expr.0, &vars)?;
            match target.split_once('.') {
                Some(("google", name)) => out.google.insert(name.to_owned(), value),
                Some((_, name)) => out.attribute.insert(name.to_owned(), value),
                None => None,
            };
        }
        Ok(out)
    }
}

fn eval(expr: &Expr, vars: &Vars) -> Result<Value, EvalError> {
    Ok(match expr {
        Expr::Str(s) => Value::String(s.clone()),
        Expr::Bool(b) => Value::Bool(*b),
        Expr::Var(path) => lookup(path, vars)?,
        Expr::Not(e) => Value::Bool(!as_bool(eval(e, vars)?, "!")?),
        Expr::Eq(a, b) => Value::Bool(same(&eval(a, vars)?, &eval(b, vars)?, "==")?),
        Expr::Ne(a, b) => Value::Bool(!same(&eval(a, vars)?, &eval(b, vars)?, "!=")?),
        Expr::And(a, b) => {
            // CEL's && is commutative over errors: false wins over an error on either side.
            let left = eval(a, vars).and_then(|v| as_bool(v, "&&"));
            if left == Ok(false) {
                return Ok(Value::Bool(false));
            }
            let right = as_bool(eval(b, vars)?, "&&")?;
            Value::Bool(left? && right)
        }
        Expr::Or(a, b) => {
            let left = eval(a, vars).and_then(|v| as_bool(v, "||"));
            if left == Ok(true) {
                return Ok(Value::Bool(true));
            }
            let right = as_bool(eval(b, vars)?, "||")?;
            Value::Bool(left? || right)
        }
        Expr::In(item, list) => {
            let item = eval(item, vars)?;
            match eval(list, vars)? {
                Value::Array(items) => Value::Bool(items.contains(&item)),
                _ => return Err(EvalError::NoMatchingOverload("in")),
            }
        }
    })
}

fn lookup(path: &[String], vars: &Vars) -> Result<Value, EvalError> {
    let name = path.join(".");
    let (root, rest) = path
        .split_first()
        .ok_or(EvalError::NoSuchKey(name.clone()))?;
    let mut current = match root.as_str() {
        "assertion" => vars.assertion.clone(),
        "google" => Value::Object(vars.google.clone().into_iter().collect()),
        "attribute" => Value::Object(vars.attribute.clone().into_iter().collect()),
        _ => return Err(EvalError::NoSuchKey(name)),
    };
    for key in rest {
        current = current
            .get(key)
            .cloned()
            .ok_or_else(|| EvalError::NoSuchKey(name.clone()))?;
    }
    Ok(current)
}

fn as_bool(v: Value, op: &'static str) -> Result<bool, EvalError> {
    v.as_bool().ok_or(EvalError::NoMatchingOverload(op))
}

/// CEL equality is typed: a number claim never equals a string literal, it is an error.
fn same(a: &Value, b: &Value, op: &'static str) -> Result<bool, EvalError> {
    let kind = |v: &Value| std::mem::discriminant(v);
    if kind(a) != kind(b) {
        return Err(EvalError::NoMatchingOverload(op));
    }
    Ok(a == b)
}

#[derive(Clone, Debug, PartialEq)]
enum Tok {
    Ident(String),
    Str(String),
    Dot,
    EqEq,
    NotEq,
    Bang,
    AndAnd,
    OrOr,
    LParen,
    RParen,
}

fn lex(text: &str) -> Result<Vec<(usize, Tok)>, ParseError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let start = i;
        let two = |a: char, b: char| c == a && chars.get(i + 1) == Some(&b);
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        let tok = if c == '\'' || c == '"' {
            let mut s = String::new();
            i += 1;
            loop {
                match chars.get(i) {
                    None => return Err(ParseError::Unterminated(start)),
                    Some(&q) if q == c => break,
                    Some('\\') => {
                        i += 1;
                        s.push(*chars.get(i).ok_or(ParseError::Unterminated(start))?);
                    }
                    Some(&ch) => s.push(ch),
                }
                i += 1;
            }
            i += 1;
            Tok::Str(s)
        } else if c.is_ascii_alphabetic() || c == '_' {
            let mut s = String::new();
            while let Some(&ch) = chars.get(i) {
                if ch.is_ascii_alphanumeric() || ch == '_' {
                    s.push(ch);
                    i += 1;
                } else {
                    break;
                }
            }
            Tok::Ident(s)
        } else if two('=', '=') {
            i += 2;
            if chars.get(i) == Some(&'=') {
                return Err(ParseError::Unexpected {
                    found: "'='".into(),
                    at: i,
                    expected: "an operand",
                });
            }
            Tok::EqEq
        } else if two('!', '=') {
            i += 2;
            Tok::NotEq
        } else if two('&', '&') {
            i += 2;
            Tok::AndAnd
        } else if two('|', '|') {
            i += 2;
            Tok::OrOr
        } else {
            i += 1;
            match c {
                '.' => Tok::Dot,
                '!' => Tok::Bang,
                '(' => Tok::LParen,
                ')' => Tok::RParen,
                other => {
                    return Err(ParseError::Unexpected {
                        found: format!("'{other}'"),
                        at: start,
                        expected: "an operand or operator",
                    });
                }
            }
        };
        out.push((start, tok));
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<(usize, Tok)>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|(_, t)| t)
    }

    fn unexpected(&self, expected: &'static str) -> ParseError {
        match self.tokens.get(self.pos) {
            Some((at, tok)) => ParseError::Unexpected {
                found: format!("{tok:?}"),
                at: *at,
                expected,
            },
            None => ParseError::Unexpected {
                found: "end of input".into(),
                at: self.tokens.last().map(|(a, _)| a + 1).unwrap_or(0),
                expected,
            },
        }
    }

    fn end(&self) -> Result<(), ParseError> {
        match self.peek() {
            None => Ok(()),
            Some(_) => Err(self.unexpected("end of expression")),
        }
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.and()?;
        while self.peek() == Some(&Tok::OrOr) {
            self.pos += 1;
            left = Expr::Or(Box::new(left), Box::new(self.and()?));
        }
        Ok(left)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        let mut left = self.relation()?;
        while self.peek() == Some(&Tok::AndAnd) {
            self.pos += 1;
            left = Expr::And(Box::new(left), Box::new(self.relation()?));
        }
        Ok(left)
    }

    fn relation(&mut self) -> Result<Expr, ParseError> {
        let left = self.unary()?;
        match self.peek() {
            Some(Tok::EqEq) => {
                self.pos += 1;
                Ok(Expr::Eq(Box::new(left), Box::new(self.unary()?)))
            }
            Some(Tok::NotEq) => {
                self.pos += 1;
                Ok(Expr::Ne(Box::new(left), Box::new(self.unary()?)))
            }
            Some(Tok::Ident(w)) if w == "in" => {
                self.pos += 1;
                Ok(Expr::In(Box::new(left), Box::new(self.unary()?)))
            }
            _ => Ok(left),
        }
    }

    fn unary(&mut self) -> Result<Expr, ParseError> {
        if self.peek() == Some(&Tok::Bang) {
            self.pos += 1;
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<Expr, ParseError> {
        match self.peek().cloned() {
            Some(Tok::Str(s)) => {
                self.pos += 1;
                Ok(Expr::Str(s))
            }
            Some(Tok::LParen) => {
                self.pos += 1;
                let e = self.or()?;
                if self.peek() != Some(&Tok::RParen) {
                    return Err(self.unexpected("')'"));
                }
                self.pos += 1;
                Ok(e)
            }
            Some(Tok::Ident(w)) if w == "true" || w == "false" => {
                self.pos += 1;
                Ok(Expr::Bool(w == "true"))
            }
            Some(Tok::Ident(root)) => {
                if !matches!(root.as_str(), "assertion" | "attribute" | "google") {
                    return Err(ParseError::UnknownVariable(root));
                }
                self.pos += 1;
                let mut path = vec![root];
                while self.peek() == Some(&Tok::Dot) {
                    self.pos += 1;
                    match self.peek().cloned() {
                        Some(Tok::Ident(name)) => {
                            self.pos += 1;
                            path.push(name);
                        }
                        _ => return Err(self.unexpected("a field name after '.'")),
                    }
                }
                if path.len() < 2 {
                    return Err(self.unexpected("'.' and a field name"));
                }
                Ok(Expr::Var(path))
            }
            _ => Err(self.unexpected("a string, a variable or '('")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn check(cond: &str, claims: Value) -> Result<bool, EvalError> {
        let empty = BTreeMap::new();
        Condition::parse(cond).unwrap().eval(&Vars {
            assertion: &claims,
            google: &empty,
            attribute: &empty,
        })
    }

    #[test]
    fn org_condition_admits_only_that_org() {
        let c = "assertion.organization_id == 'abc'";
        assert_eq!(check(c, json!({"organization_id": "abc"})), Ok(true));
        assert_eq!(check(c, json!({"organization_id": "abd"})), Ok(false));
        assert!(check(c, json!({})).is_err(), "a missing claim is an error");
        assert!(
            check(c, json!({"organization_id": 42})).is_err(),
            "a number is not a string"
        );
    }

    #[test]
    fn boolean_operators_follow_cel() {
        let c = "(assertion.a == 'x' || assertion.b == 'y') && !(assertion.c != 'z')";
        assert_eq!(check(c, json!({"a": "x", "c": "z"})), Ok(true));
        assert_eq!(check(c, json!({"a": "q", "b": "y", "c": "w"})), Ok(false));
        // false && <error> is false, as in CEL.
        assert_eq!(
            check(
                "assertion.a == 'q' && assertion.missing == 'x'",
                json!({"a": "x"})
            ),
            Ok(false)
        );
        assert_eq!(
            check("'g' in assertion.groups", json!({"groups": ["g"]})),
            Ok(true)
        );
    }

    #[test]
    fn syntax_errors_say_where() {
        assert!(matches!(
            Condition::parse("assertion.a = 'x'"),
            Err(ParseError::Unexpected { at: 12, .. })
        ));
        assert!(matches!(
            Condition::parse("assertion.a == 'x"),
            Err(ParseError::Unterminated(15))
        ));
        assert!(matches!(
            Condition::parse("claims.a == 'x'"),
            Err(ParseError::UnknownVariable(_))
        ));
    }

    #[test]
    fn mapping_produces_subject_and_attributes() {
        let m = Mapping::parse(
            [
                ("google.subject", "assertion.sub"),
                ("attribute.organization", "assertion.organization_id"),
            ]
            .into_iter(),
        )
        .unwrap();
        let out = m
            .apply(&json!({"sub": "organization:o", "organization_id": "o"}))
            .unwrap();
        assert_eq!(out.google["subject"], json!("organization:o"));
        assert_eq!(out.attribute["organization"], json!("o"));
        assert!(Mapping::parse([("attribute.x", "assertion.x")].into_iter()).is_err());
    }
}
