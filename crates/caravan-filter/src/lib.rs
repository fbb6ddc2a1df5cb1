//! `?filter=` expressions in go-bexpr's syntax, evaluated against the JSON
//! form of an object (which carries Nomad's field names).
//!
//! ```text
//! Status == "ready" and Meta.rack != "r1"
//! not (Drain == true or "docker" not in Drivers)
//! Attributes["os.name"] matches "deb.*"
//! NodeClass is empty
//! ```

mod parse;

use regex::Regex;
use serde_json::Value;

pub use parse::parse;

/// The longest expression, in bytes, that is parsed. Filters people write
/// are a line or two; this keeps a query string from costing more than a
/// moment to parse.
pub const MAX_FILTER_LEN: usize = 4096;

/// How many `(` and `not` may enclose one another. The parser and the
/// evaluator recurse once per level, so this bounds their stack use.
pub const MAX_FILTER_DEPTH: usize = 64;

/// Why an expression could not be parsed or evaluated.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FilterError {
    #[error("{0}")]
    Syntax(String),
    #[error("error finding value in datum: {0}")]
    UnknownSelector(String),
    #[error("invalid regular expression {0:?}")]
    BadRegex(String),
    #[error("filter is too long: {0} bytes, limit {MAX_FILTER_LEN}")]
    TooLong(usize),
    #[error("filter nests too deeply: limit {MAX_FILTER_DEPTH}")]
    TooDeep,
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MatchOp {
    Equal,
    NotEqual,
    IsEmpty,
    IsNotEmpty,
    /// `value in Selector`
    In,
    NotIn,
    /// `Selector contains value`
    Contains,
    NotContains,
    Matches,
    NotMatches,
}

/// A parsed expression.
#[derive(Debug, Clone)]
pub enum Expr {
    /// Every term holds (two or more terms).
    And(Vec<Expr>),
    /// Some term holds (two or more terms).
    Or(Vec<Expr>),
    Not(Box<Expr>),
    Match {
        selector: Vec<String>,
        op: MatchOp,
        value: Option<String>,
        regex: Option<Regex>,
    },
}

/// A compiled filter.
#[derive(Debug, Clone)]
pub struct Filter {
    expr: Expr,
}

impl Filter {
    pub fn new(text: &str) -> Result<Self, FilterError> {
        Ok(Self { expr: parse(text)? })
    }

    /// Whether `datum` passes the filter. A selector whose first field the
    /// datum does not have is an error, as in go-bexpr.
    pub fn matches(&self, datum: &Value) -> Result<bool, FilterError> {
        evaluate(&self.expr, datum)
    }
}

fn evaluate(expr: &Expr, datum: &Value) -> Result<bool, FilterError> {
    match expr {
        // Short-circuits like `&&` and `||`: a later term's error only
        // surfaces if that term is reached.
        Expr::And(terms) => {
            for term in terms {
                if !evaluate(term, datum)? {
                    return Ok(false);
                }
            }
            Ok(true)
        }
        Expr::Or(terms) => {
            for term in terms {
                if evaluate(term, datum)? {
                    return Ok(true);
                }
            }
            Ok(false)
        }
        Expr::Not(inner) => Ok(!evaluate(inner, datum)?),
        Expr::Match {
            selector,
            op,
            value,
            regex,
        } => {
            let found = lookup(datum, selector)?;
            let literal = value.as_deref().unwrap_or_default();
            Ok(match op {
                MatchOp::Equal => found.is_some_and(|v| equals(v, literal)),
                MatchOp::NotEqual => !found.is_some_and(|v| equals(v, literal)),
                MatchOp::IsEmpty => found.is_none_or(is_empty),
                MatchOp::IsNotEmpty => !found.is_none_or(is_empty),
                MatchOp::In | MatchOp::Contains => found.is_some_and(|v| contains(v, literal)),
                MatchOp::NotIn | MatchOp::NotContains => {
                    !found.is_some_and(|v| contains(v, literal))
                }
                MatchOp::Matches => found.is_some_and(|v| regex_matches(v, regex.as_ref())),
                MatchOp::NotMatches => !found.is_some_and(|v| regex_matches(v, regex.as_ref())),
            })
        }
    }
}

/// Follows `selector` into `datum`. `Ok(None)` is a missing map key;
/// an unknown top-level field is an error.
fn lookup<'a>(datum: &'a Value, selector: &[String]) -> Result<Option<&'a Value>, FilterError> {
    let mut current = datum;
    for (position, part) in selector.iter().enumerate() {
        let next = match current {
            Value::Object(map) => map.get(part),
            Value::Array(items) => part.parse::<usize>().ok().and_then(|i| items.get(i)),
            _ => None,
        };
        match next {
            Some(value) => current = value,
            None if position == 0 => {
                return Err(FilterError::UnknownSelector(selector.join(".")));
            }
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

fn scalar_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Bool(flag) => Some(flag.to_string()),
        Value::Number(number) => Some(number.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

fn equals(value: &Value, literal: &str) -> bool {
    match value {
        Value::Number(number) => match (number.as_f64(), literal.parse::<f64>()) {
            (Some(a), Ok(b)) => a == b,
            _ => false,
        },
        Value::Bool(flag) => literal.parse::<bool>().is_ok_and(|b| b == *flag),
        other => scalar_text(other).is_some_and(|text| text == literal),
    }
}

fn is_empty(value: &Value) -> bool {
    match value {
        Value::Null => true,
        Value::String(text) => text.is_empty(),
        Value::Array(items) => items.is_empty(),
        Value::Object(map) => map.is_empty(),
        _ => false,
    }
}

fn contains(value: &Value, literal: &str) -> bool {
    match value {
        Value::Array(items) => items.iter().any(|item| equals(item, literal)),
        Value::Object(map) => map.contains_key(literal),
        Value::String(text) => text.contains(literal),
        _ => false,
    }
}

fn regex_matches(value: &Value, regex: Option<&Regex>) -> bool {
    match (scalar_text(value), regex) {
        (Some(text), Some(regex)) => regex.is_match(&text),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node() -> Value {
        json!({
            "ID": "f7476465-4d6e-c0de-26d0-e383c49be941",
            "Status": "ready",
            "Drain": false,
            "NodeClass": "",
            "Meta": {"rack": "r1", "env": "prod"},
            "Attributes": {"os.name": "debian", "cpu.numcores": "8"},
            "Drivers": {"docker": {"Healthy": true}, "exec": {"Healthy": false}},
            "Events": [{"Message": "Node registered"}],
            "Tags": ["a", "b"],
            "CreateIndex": 6
        })
    }

    fn check(expression: &str) -> bool {
        Filter::new(expression)
            .unwrap_or_else(|e| panic!("{expression}: {e}"))
            .matches(&node())
            .unwrap_or_else(|e| panic!("{expression}: {e}"))
    }

    #[test]
    fn operators() {
        assert!(check(r#"Status == "ready""#));
        assert!(check(r#"Status != "down""#));
        assert!(check("Drain == false"));
        assert!(check("CreateIndex == 6"));
        assert!(check("NodeClass is empty"));
        assert!(check("Meta is not empty"));
        assert!(check(r#""docker" in Drivers"#));
        assert!(check(r#""qemu" not in Drivers"#));
        assert!(check(r#"Tags contains "a""#));
        assert!(check(r#"Tags not contains "z""#));
        assert!(check(r#"Meta.rack == "r1""#));
        assert!(check(r#"Attributes["os.name"] matches "^deb""#));
        assert!(check(r#"Attributes["os.name"] not matches "^rhel""#));
        assert!(check("Drivers.docker.Healthy == true"));
        assert!(check("Status == `ready`"));
        assert!(check("Status == ready"));
    }

    #[test]
    fn combinations() {
        assert!(check(r#"Status == "ready" and Meta.env == "prod""#));
        assert!(check(r#"Status == "down" or Meta.env == "prod""#));
        assert!(!check(r#"not (Status == "ready")"#));
        assert!(check(
            r#"not Status == "down" and (Drain == true or Meta.rack == "r1")"#
        ));
    }

    #[test]
    fn missing_map_keys_are_not_errors_but_unknown_fields_are() {
        assert!(!check(r#"Meta.missing == "x""#));
        assert!(check(r#"Meta.missing is empty"#));
        let filter = Filter::new(r#"Nonsense == "x""#).unwrap();
        assert!(matches!(
            filter.matches(&node()),
            Err(FilterError::UnknownSelector(_))
        ));
    }

    #[test]
    fn syntax_errors() {
        for bad in [
            "",
            "Status ==",
            "Status = \"x\"",
            "(Status == \"x\"",
            "Status == \"unterminated",
            "and",
            "Status matches \"(\"",
            "Status is full",
        ] {
            assert!(Filter::new(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn limits_are_errors_that_name_them() {
        let parens = format!(
            "{}Status == ready{}",
            "(".repeat(10_000),
            ")".repeat(10_000)
        );
        let error = Filter::new(&parens).unwrap_err();
        assert_eq!(error, FilterError::TooLong(parens.len()));
        assert_eq!(
            error.to_string(),
            format!("filter is too long: {} bytes, limit 4096", parens.len())
        );
        let nots = format!("{}Status == ready", "not ".repeat(MAX_FILTER_DEPTH + 1));
        assert_eq!(
            Filter::new(&nots).unwrap_err().to_string(),
            "filter nests too deeply: limit 64"
        );
        let parens = format!(
            "{}Status == ready{}",
            "(".repeat(MAX_FILTER_DEPTH + 1),
            ")".repeat(MAX_FILTER_DEPTH + 1)
        );
        assert_eq!(Filter::new(&parens).unwrap_err(), FilterError::TooDeep);
        // At the limit, it parses and evaluates.
        let nots = format!("{}Status == ready", "not ".repeat(MAX_FILTER_DEPTH));
        assert!(check(&nots));
        let parens = format!(
            "{}Status == ready{}",
            "(".repeat(MAX_FILTER_DEPTH),
            ")".repeat(MAX_FILTER_DEPTH)
        );
        assert!(check(&parens));
    }

    #[test]
    fn long_chains_are_flat() {
        let chain = vec!["Drain == false"; 200].join(" and ");
        assert!(chain.len() <= MAX_FILTER_LEN);
        assert!(check(&chain));
        let chain = vec!["Drain == true"; 200].join(" or ");
        assert!(!check(&chain));
        match Filter::new(&chain).unwrap().expr {
            Expr::Or(terms) => assert_eq!(terms.len(), 200),
            other => panic!("{other:?}"),
        }
    }
}
