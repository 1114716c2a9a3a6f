//! Label and field selectors, parsed and evaluated as Kubernetes does.
//!
//! * [`LabelSelector`]: from the query-string form (`a=b,c!=d,e in (x,y),f notin (z),g,!h`)
//!   with [`LabelSelector::parse`], or from a `metav1.LabelSelector` (matchLabels +
//!   matchExpressions) with [`LabelSelector::from_label_selector`]. An empty selector
//!   matches everything.
//! * [`FieldSelector`]: `a=b`, `a==b`, `a!=b`, comma-separated, with `\` escapes. A missing
//!   field compares as the empty string, as in Kubernetes.

use std::collections::BTreeMap;
use std::fmt;

use k8s_openapi::apimachinery::pkg::apis::meta::v1 as metav1;

use crate::validation;

/// Why a selector could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A syntax error in the query-string form.
    #[error("unable to parse requirement: {0}")]
    Syntax(String),
    /// A key or value that is not a valid label key / value.
    #[error("unable to parse requirement: {0}")]
    InvalidRequirement(String),
    /// A `metav1.LabelSelector` with an unsupported operator or bad values.
    #[error("{0}")]
    LabelSelector(String),
    /// A field selector term without an operator.
    #[error("invalid selector: '{selector}'; can't understand '{term}'")]
    FieldSyntax {
        /// The whole selector.
        selector: String,
        /// The term that could not be understood.
        term: String,
    },
}

/// The operator of a label requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    /// `key=value` or `key==value`.
    Equals,
    /// `key!=value`.
    NotEquals,
    /// `key in (a,b)`.
    In,
    /// `key notin (a,b)`.
    NotIn,
    /// `key`.
    Exists,
    /// `!key`.
    DoesNotExist,
    /// `key>n` (integer comparison).
    GreaterThan,
    /// `key<n` (integer comparison).
    LessThan,
}

/// One requirement of a label selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    /// The label key.
    pub key: String,
    /// The operator.
    pub operator: Operator,
    /// The values (empty for `Exists` / `DoesNotExist`).
    pub values: Vec<String>,
}

impl Requirement {
    /// Builds and validates a requirement (key is a qualified name, values are label values).
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self, SelectorError> {
        let key_errs = validation::is_qualified_name(key);
        if !key_errs.is_empty() {
            return Err(SelectorError::InvalidRequirement(format!(
                "key: Invalid value: {}: {}",
                validation::go_quote(key),
                key_errs.join("; ")
            )));
        }
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    return Err(SelectorError::InvalidRequirement(
                        "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty".into(),
                    ));
                }
            }
            Operator::Equals | Operator::NotEquals => {
                if values.len() != 1 {
                    return Err(SelectorError::InvalidRequirement(
                        "values: Invalid value: exact-match compatibility requires one single value"
                            .into(),
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    return Err(SelectorError::InvalidRequirement(
                        "values: Forbidden: values set must be empty for exists and does not exist"
                            .into(),
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 || values[0].parse::<i64>().is_err() {
                    return Err(SelectorError::InvalidRequirement(
                        "values: Invalid value: for 'Gt', 'Lt' operators, exactly one integer value is required".into(),
                    ));
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            if matches!(operator, Operator::GreaterThan | Operator::LessThan) {
                continue;
            }
            let errs = validation::is_valid_label_value(v);
            if !errs.is_empty() {
                return Err(SelectorError::InvalidRequirement(format!(
                    "values[{i}][{key}]: Invalid value: {}: {}",
                    validation::go_quote(v),
                    errs.join("; ")
                )));
            }
        }
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    /// Whether a label set satisfies this requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::Equals | Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotEquals | Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let (Some(v), Some(want)) = (
                    value.and_then(|v| v.parse::<i64>().ok()),
                    self.values.first().and_then(|v| v.parse::<i64>().ok()),
                ) else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    v > want
                } else {
                    v < want
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.values.first().map(String::as_str).unwrap_or("");
        match self.operator {
            Operator::Equals => write!(f, "{}={}", self.key, first),
            Operator::NotEquals => write!(f, "{}!={}", self.key, first),
            Operator::In => write!(f, "{} in ({})", self.key, self.values.join(",")),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, self.values.join(",")),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::GreaterThan => write!(f, "{}>{}", self.key, first),
            Operator::LessThan => write!(f, "{}<{}", self.key, first),
        }
    }
}

/// A label selector: all requirements must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// The selector that matches everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Parses the query-string form (`labelSelector=` of a list or watch).
    pub fn parse(s: &str) -> Result<LabelSelector, SelectorError> {
        let tokens = lex(s)?;
        let mut p = Parser { tokens, pos: 0 };
        let mut requirements = Vec::new();
        loop {
            match p.peek() {
                Token::End => break,
                Token::Comma if requirements.is_empty() => {
                    return Err(SelectorError::Syntax(
                        "found ',', expected: !, identifier, or 'end of string'".into(),
                    ))
                }
                _ => {}
            }
            requirements.push(p.requirement()?);
            match p.next() {
                Token::End => break,
                Token::Comma => {
                    if matches!(p.peek(), Token::End) {
                        return Err(SelectorError::Syntax(
                            "found '', expected: identifier after ','".into(),
                        ));
                    }
                }
                t => {
                    return Err(SelectorError::Syntax(format!(
                        "found '{}', expected: ',' or 'end of string'",
                        t.text()
                    )))
                }
            }
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// Converts a `metav1.LabelSelector` (matchLabels + matchExpressions).
    pub fn from_label_selector(
        sel: &metav1::LabelSelector,
    ) -> Result<LabelSelector, SelectorError> {
        let mut requirements = Vec::new();
        for (k, v) in sel.match_labels.iter().flatten() {
            requirements.push(
                Requirement::new(k, Operator::Equals, vec![v.clone()])
                    .map_err(|e| SelectorError::LabelSelector(e.to_string()))?,
            );
        }
        for expr in sel.match_expressions.iter().flatten() {
            let op = match expr.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(SelectorError::LabelSelector(format!(
                        "{} is not a valid label selector operator",
                        validation::go_quote(other)
                    )))
                }
            };
            let values = expr.values.clone().unwrap_or_default();
            requirements.push(
                Requirement::new(&expr.key, op, values)
                    .map_err(|e| SelectorError::LabelSelector(e.to_string()))?,
            );
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector { requirements })
    }

    /// A selector requiring exactly these labels (as a Service selector does).
    pub fn from_map(labels: &BTreeMap<String, String>) -> LabelSelector {
        LabelSelector {
            requirements: labels
                .iter()
                .map(|(k, v)| Requirement {
                    key: k.clone(),
                    operator: Operator::Equals,
                    values: vec![v.clone()],
                })
                .collect(),
        }
    }

    /// Whether the labels satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True when the selector has no requirements (it matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Ident(String),
    Not,
    Eq,
    DoubleEq,
    NotEq,
    Gt,
    Lt,
    In,
    NotIn,
    Open,
    Close,
    Comma,
    End,
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Ident(s) => s.clone(),
            Token::Not => "!".into(),
            Token::Eq => "=".into(),
            Token::DoubleEq => "==".into(),
            Token::NotEq => "!=".into(),
            Token::Gt => ">".into(),
            Token::Lt => "<".into(),
            Token::In => "in".into(),
            Token::NotIn => "notin".into(),
            Token::Open => "(".into(),
            Token::Close => ")".into(),
            Token::Comma => ",".into(),
            Token::End => "".into(),
        }
    }
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn lex(s: &str) -> Result<Vec<Token>, SelectorError> {
    let chars: Vec<char> = s.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if is_special(c) {
            let next = chars.get(i + 1).copied();
            let (tok, len) = match (c, next) {
                ('=', Some('=')) => (Token::DoubleEq, 2),
                ('!', Some('=')) => (Token::NotEq, 2),
                ('=', _) => (Token::Eq, 1),
                ('!', _) => (Token::Not, 1),
                ('(', _) => (Token::Open, 1),
                (')', _) => (Token::Close, 1),
                (',', _) => (Token::Comma, 1),
                ('>', _) => (Token::Gt, 1),
                ('<', _) => (Token::Lt, 1),
                _ => unreachable!("special characters are all listed"),
            };
            out.push(tok);
            i += len;
            continue;
        }
        let start = i;
        while i < chars.len() && !chars[i].is_whitespace() && !is_special(chars[i]) {
            i += 1;
        }
        let word: String = chars[start..i].iter().collect();
        out.push(match word.as_str() {
            "in" => Token::In,
            "notin" => Token::NotIn,
            _ => Token::Ident(word),
        });
    }
    out.push(Token::End);
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> &Token {
        &self.tokens[self.pos.min(self.tokens.len() - 1)]
    }

    fn next(&mut self) -> Token {
        let t = self.peek().clone();
        if self.pos < self.tokens.len() - 1 {
            self.pos += 1;
        }
        t
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        let negated = if *self.peek() == Token::Not {
            self.next();
            true
        } else {
            false
        };
        let key = match self.next() {
            Token::Ident(k) => k,
            // Keywords are valid keys too (`in=x`).
            Token::In => "in".into(),
            Token::NotIn => "notin".into(),
            t => {
                return Err(SelectorError::Syntax(format!(
                    "found '{}', expected: identifier",
                    t.text()
                )))
            }
        };
        if negated {
            return Requirement::new(&key, Operator::DoesNotExist, vec![]);
        }
        if matches!(self.peek(), Token::Comma | Token::End) {
            return Requirement::new(&key, Operator::Exists, vec![]);
        }
        let op = match self.next() {
            Token::Eq | Token::DoubleEq => Operator::Equals,
            Token::NotEq => Operator::NotEquals,
            Token::In => Operator::In,
            Token::NotIn => Operator::NotIn,
            Token::Gt => Operator::GreaterThan,
            Token::Lt => Operator::LessThan,
            t => {
                return Err(SelectorError::Syntax(format!(
                    "found '{}', expected: {}",
                    t.text(),
                    "'=', '!=', '==', 'in', notin'"
                )))
            }
        };
        let values = match op {
            Operator::In | Operator::NotIn => self.value_set()?,
            _ => match self.peek().clone() {
                Token::Ident(v) => {
                    self.next();
                    vec![v]
                }
                Token::In | Token::NotIn => vec![self.next().text()],
                Token::Comma | Token::End => vec![String::new()],
                t => {
                    return Err(SelectorError::Syntax(format!(
                        "found '{}', expected: identifier",
                        t.text()
                    )))
                }
            },
        };
        Requirement::new(&key, op, values)
    }

    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        match self.next() {
            Token::Open => {}
            t => {
                return Err(SelectorError::Syntax(format!(
                    "found '{}', expected: '('",
                    t.text()
                )))
            }
        }
        let mut values = Vec::new();
        let mut expect_value = true;
        loop {
            match self.next() {
                Token::Close => {
                    if expect_value {
                        // `()` or a trailing comma stands for the empty value.
                        values.push(String::new());
                    }
                    break;
                }
                Token::Comma => {
                    if expect_value {
                        values.push(String::new());
                    }
                    expect_value = true;
                }
                Token::Ident(v) if expect_value => {
                    values.push(v);
                    expect_value = false;
                }
                t @ (Token::In | Token::NotIn) if expect_value => {
                    values.push(t.text());
                    expect_value = false;
                }
                t => {
                    return Err(SelectorError::Syntax(format!(
                        "found '{}', expected: ',', ')' or identifier",
                        t.text()
                    )))
                }
            }
        }
        values.sort();
        values.dedup();
        Ok(values)
    }
}

/// The operator of a field requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldOp {
    /// `field=value` or `field==value`.
    Equals,
    /// `field!=value`.
    NotEquals,
}

/// One term of a field selector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// The field path, e.g. `metadata.name`, `spec.nodeName`.
    pub field: String,
    /// The operator.
    pub op: FieldOp,
    /// The value (unescaped).
    pub value: String,
}

/// A field selector: all terms must hold.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parses `a=b,c!=d` (with `\,`, `\=`, `\!` and `\\` escapes in values).
    pub fn parse(s: &str) -> Result<FieldSelector, SelectorError> {
        let mut requirements = Vec::new();
        for part in split_unescaped(s, ',') {
            if part.is_empty() {
                continue;
            }
            let Some((field, op, value)) = split_term(&part) else {
                return Err(SelectorError::FieldSyntax {
                    selector: s.to_string(),
                    term: part,
                });
            };
            requirements.push(FieldRequirement {
                field: field.trim().to_string(),
                op,
                value: unescape(value),
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// Whether the object whose fields `get` returns satisfies every term. A field that is
    /// absent (`None`) compares as the empty string.
    pub fn matches(&self, get: impl Fn(&str) -> Option<String>) -> bool {
        self.requirements.iter().all(|r| {
            let actual = get(&r.field).unwrap_or_default();
            match r.op {
                FieldOp::Equals => actual == r.value,
                FieldOp::NotEquals => actual != r.value,
            }
        })
    }

    /// The terms, in the order given.
    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// True when the selector has no terms (it matches everything).
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            let op = match r.op {
                FieldOp::Equals => "=",
                FieldOp::NotEquals => "!=",
            };
            write!(f, "{}{}{}", r.field, op, escape(&r.value))?;
        }
        Ok(())
    }
}

fn split_unescaped(s: &str, sep: char) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut escaped = false;
    for c in s.chars() {
        if escaped {
            cur.push('\\');
            cur.push(c);
            escaped = false;
        } else if c == '\\' {
            escaped = true;
        } else if c == sep {
            out.push(std::mem::take(&mut cur));
        } else {
            cur.push(c);
        }
    }
    if escaped {
        cur.push('\\');
    }
    out.push(cur);
    out
}

fn split_term(term: &str) -> Option<(&str, FieldOp, &str)> {
    let bytes = term.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' {
            i += 2;
            continue;
        }
        let rest = &term[i..];
        if rest.starts_with("!=") {
            return Some((&term[..i], FieldOp::NotEquals, &term[i + 2..]));
        }
        if rest.starts_with("==") {
            return Some((&term[..i], FieldOp::Equals, &term[i + 2..]));
        }
        if rest.starts_with('=') {
            return Some((&term[..i], FieldOp::Equals, &term[i + 1..]));
        }
        i += 1;
    }
    None
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(n) = chars.next() {
                out.push(n);
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=' | '!') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn parse_all_forms() {
        let s = LabelSelector::parse("a=b,c==d,e!=f,g in (x,y),h notin (z),i,!j").unwrap();
        assert_eq!(s.requirements().len(), 7);
        let l = labels(&[("a", "b"), ("c", "d"), ("g", "y"), ("i", "")]);
        assert!(s.matches(&l));
        let mut l2 = l.clone();
        l2.insert("j".into(), "1".into());
        assert!(!s.matches(&l2));
        let mut l3 = l.clone();
        l3.insert("e".into(), "f".into());
        assert!(!s.matches(&l3));
        let mut l4 = l.clone();
        l4.insert("h".into(), "z".into());
        assert!(!s.matches(&l4));
        let mut l5 = l.clone();
        l5.remove("i");
        assert!(!s.matches(&l5));
        assert_eq!(s.to_string(), "a=b,c=d,e!=f,g in (x,y),h notin (z),i,!j");
    }

    #[test]
    fn empty_matches_everything() {
        let s = LabelSelector::parse("").unwrap();
        assert!(s.is_empty());
        assert!(s.matches(&labels(&[("x", "y")])));
        assert!(LabelSelector::parse("   ").unwrap().is_empty());
    }

    #[test]
    fn spaces_and_empty_values() {
        let s = LabelSelector::parse(" app = web , tier in ( a , b ) ").unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "b")])));
        let e = LabelSelector::parse("a=").unwrap();
        assert!(e.matches(&labels(&[("a", "")])));
        assert!(!e.matches(&labels(&[])));
        let gt = LabelSelector::parse("n>3").unwrap();
        assert!(gt.matches(&labels(&[("n", "4")])));
        assert!(!gt.matches(&labels(&[("n", "3")])));
        let prefixed = LabelSelector::parse("app.kubernetes.io/name=x").unwrap();
        assert!(prefixed.matches(&labels(&[("app.kubernetes.io/name", "x")])));
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "a in x",
            "a in (x",
            ",a",
            "a,",
            "a=b=c",
            "a b",
            "=b",
            "a in (x y)",
            "!",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad} should fail");
        }
        assert!(LabelSelector::parse("a=b c").is_err());
        assert!(LabelSelector::parse("-bad-=x").is_err());
        assert!(LabelSelector::parse("a=-bad-").is_err());
    }

    #[test]
    fn from_metav1() {
        let sel = metav1::LabelSelector {
            match_labels: Some(labels(&[("app", "web")])),
            match_expressions: Some(vec![
                metav1::LabelSelectorRequirement {
                    key: "tier".into(),
                    operator: "In".into(),
                    values: Some(vec!["fe".into(), "be".into()]),
                },
                metav1::LabelSelectorRequirement {
                    key: "canary".into(),
                    operator: "DoesNotExist".into(),
                    values: None,
                },
            ]),
        };
        let s = LabelSelector::from_label_selector(&sel).unwrap();
        assert!(s.matches(&labels(&[("app", "web"), ("tier", "fe")])));
        assert!(!s.matches(&labels(&[("app", "web"), ("tier", "fe"), ("canary", "1")])));
        assert!(!s.matches(&labels(&[("app", "web")])));
        let bad = metav1::LabelSelector {
            match_expressions: Some(vec![metav1::LabelSelectorRequirement {
                key: "x".into(),
                operator: "Like".into(),
                values: None,
            }]),
            ..Default::default()
        };
        assert_eq!(
            LabelSelector::from_label_selector(&bad)
                .unwrap_err()
                .to_string(),
            "\"Like\" is not a valid label selector operator"
        );
        let empty_in = metav1::LabelSelector {
            match_expressions: Some(vec![metav1::LabelSelectorRequirement {
                key: "x".into(),
                operator: "In".into(),
                values: Some(vec![]),
            }]),
            ..Default::default()
        };
        assert!(LabelSelector::from_label_selector(&empty_in).is_err());
        assert!(LabelSelector::from_label_selector(&Default::default())
            .unwrap()
            .is_empty());
    }

    #[test]
    fn field_selector() {
        let f = FieldSelector::parse("metadata.name=a,spec.nodeName!=n1,status.phase==Running")
            .unwrap();
        assert_eq!(f.requirements().len(), 3);
        assert_eq!(f.requirements()[1].op, FieldOp::NotEquals);
        let get = |field: &str| match field {
            "metadata.name" => Some("a".to_string()),
            "spec.nodeName" => Some("n2".to_string()),
            "status.phase" => Some("Running".to_string()),
            _ => None,
        };
        assert!(f.matches(get));
        let g = FieldSelector::parse("spec.nodeName=").unwrap();
        assert!(g.matches(|_| None));
        assert!(FieldSelector::parse("").unwrap().is_empty());
        let esc = FieldSelector::parse(r"metadata.name=a\,b").unwrap();
        assert_eq!(esc.requirements()[0].value, "a,b");
        assert_eq!(esc.to_string(), r"metadata.name=a\,b");
        assert_eq!(
            FieldSelector::parse("foo").unwrap_err().to_string(),
            "invalid selector: 'foo'; can't understand 'foo'"
        );
    }
}
