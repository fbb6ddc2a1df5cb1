//! A recursive-descent parser for go-bexpr expressions.
//!
//! The input bounds the recursion: an expression longer than
//! [`MAX_FILTER_LEN`] bytes is refused before it is tokenized, and each
//! `(` or `not` counts one level, refused past [`MAX_FILTER_DEPTH`], before
//! the parser recurses. `and`/`or` chains are parsed in loops into n-ary
//! nodes, so the tree is never deeper than the nesting.

use regex::Regex;

use crate::{Expr, FilterError, MatchOp, MAX_FILTER_DEPTH, MAX_FILTER_LEN};

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Word(String),
    Quoted(String),
    Symbol(&'static str),
    Index(String),
}

fn tokenize(text: &str) -> Result<Vec<Token>, FilterError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut at = 0;
    while at < chars.len() {
        let c = chars[at];
        match c {
            ' ' | '\t' | '\n' | '\r' => at += 1,
            '(' => {
                tokens.push(Token::Symbol("("));
                at += 1;
            }
            ')' => {
                tokens.push(Token::Symbol(")"));
                at += 1;
            }
            '=' | '!' => {
                if chars.get(at + 1) != Some(&'=') {
                    return Err(FilterError::Syntax(format!(
                        "unexpected {c:?} at position {at}"
                    )));
                }
                tokens.push(Token::Symbol(if c == '=' { "==" } else { "!=" }));
                at += 2;
            }
            '"' => {
                let (text, next) = quoted(&chars, at)?;
                tokens.push(Token::Quoted(text));
                at = next;
            }
            '`' => {
                let end = chars[at + 1..]
                    .iter()
                    .position(|c| *c == '`')
                    .ok_or_else(|| FilterError::Syntax("unterminated raw string".into()))?;
                tokens.push(Token::Quoted(chars[at + 1..at + 1 + end].iter().collect()));
                at += end + 2;
            }
            '[' => {
                // Map index: ["key"] right after a selector part.
                if chars.get(at + 1) != Some(&'"') {
                    return Err(FilterError::Syntax("expected a quoted key after [".into()));
                }
                let (key, next) = quoted(&chars, at + 1)?;
                if chars.get(next) != Some(&']') {
                    return Err(FilterError::Syntax("expected ] after index".into()));
                }
                tokens.push(Token::Index(key));
                at = next + 1;
            }
            _ => {
                let start = at;
                while at < chars.len()
                    && !matches!(
                        chars[at],
                        ' ' | '\t' | '\n' | '\r' | '(' | ')' | '=' | '!' | '"' | '`' | '['
                    )
                {
                    at += 1;
                }
                tokens.push(Token::Word(chars[start..at].iter().collect()));
            }
        }
    }
    Ok(tokens)
}

fn quoted(chars: &[char], start: usize) -> Result<(String, usize), FilterError> {
    let mut text = String::new();
    let mut at = start + 1;
    while at < chars.len() {
        match chars[at] {
            '"' => return Ok((text, at + 1)),
            '\\' if at + 1 < chars.len() => {
                text.push(match chars[at + 1] {
                    'n' => '\n',
                    't' => '\t',
                    other => other,
                });
                at += 2;
            }
            other => {
                text.push(other);
                at += 1;
            }
        }
    }
    Err(FilterError::Syntax("unterminated string".into()))
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
    /// How many `(` and `not` enclose the current position.
    depth: usize,
}

/// Parses a go-bexpr expression.
pub fn parse(text: &str) -> Result<Expr, FilterError> {
    if text.len() > MAX_FILTER_LEN {
        return Err(FilterError::TooLong(text.len()));
    }
    let mut parser = Parser {
        tokens: tokenize(text)?,
        at: 0,
        depth: 0,
    };
    let expr = parser.or()?;
    if let Some(token) = parser.peek() {
        return Err(FilterError::Syntax(format!("unexpected {token:?}")));
    }
    Ok(expr)
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let token = self.tokens.get(self.at).cloned();
        self.at += 1;
        token
    }

    fn peek_word(&self, word: &str) -> bool {
        matches!(self.peek(), Some(Token::Word(w)) if w == word)
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let first = self.and()?;
        if !self.peek_word("or") {
            return Ok(first);
        }
        let mut terms = vec![first];
        while self.peek_word("or") {
            self.at += 1;
            terms.push(self.and()?);
        }
        Ok(Expr::Or(terms))
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let first = self.not()?;
        if !self.peek_word("and") {
            return Ok(first);
        }
        let mut terms = vec![first];
        while self.peek_word("and") {
            self.at += 1;
            terms.push(self.not()?);
        }
        Ok(Expr::And(terms))
    }

    /// Enters one level of `(` or `not`, refusing to go past the limit.
    fn descend(&mut self) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_FILTER_DEPTH {
            return Err(FilterError::TooDeep);
        }
        Ok(())
    }

    fn not(&mut self) -> Result<Expr, FilterError> {
        if self.peek_word("not") {
            self.at += 1;
            self.descend()?;
            let inner = self.not()?;
            self.depth -= 1;
            return Ok(Expr::Not(Box::new(inner)));
        }
        if self.peek() == Some(&Token::Symbol("(")) {
            self.at += 1;
            self.descend()?;
            let inner = self.or()?;
            self.depth -= 1;
            if self.next() != Some(Token::Symbol(")")) {
                return Err(FilterError::Syntax("expected )".into()));
            }
            return Ok(inner);
        }
        self.comparison()
    }

    /// A literal value: quoted, raw, or a bare word.
    fn value(&mut self) -> Result<String, FilterError> {
        match self.next() {
            Some(Token::Quoted(text)) | Some(Token::Word(text)) => Ok(text),
            other => Err(FilterError::Syntax(format!(
                "expected a value, found {other:?}"
            ))),
        }
    }

    fn selector(&mut self) -> Result<Vec<String>, FilterError> {
        let Some(Token::Word(first)) = self.next() else {
            return Err(FilterError::Syntax("expected a selector".into()));
        };
        if ["and", "or", "not", "in", "is", "contains", "matches"].contains(&first.as_str()) {
            return Err(FilterError::Syntax(format!(
                "expected a selector, found {first:?}"
            )));
        }
        let mut parts: Vec<String> = first.split('.').map(str::to_string).collect();
        if parts.iter().any(String::is_empty) {
            return Err(FilterError::Syntax(format!("invalid selector {first:?}")));
        }
        while let Some(Token::Index(key)) = self.peek().cloned() {
            self.at += 1;
            parts.push(key);
        }
        Ok(parts)
    }

    fn comparison(&mut self) -> Result<Expr, FilterError> {
        // `value [not] in Selector` starts with a value.
        let starts_with_value = matches!(self.peek(), Some(Token::Quoted(_)))
            || matches!(
                (self.tokens.get(self.at + 1), self.tokens.get(self.at + 2)),
                (Some(Token::Word(w)), _) if w == "in"
            )
            || matches!(
                (self.tokens.get(self.at + 1), self.tokens.get(self.at + 2)),
                (Some(Token::Word(n)), Some(Token::Word(i))) if n == "not" && i == "in"
            );
        if starts_with_value {
            let value = self.value()?;
            let op = if self.peek_word("not") {
                self.at += 1;
                MatchOp::NotIn
            } else {
                MatchOp::In
            };
            if !self.peek_word("in") {
                return Err(FilterError::Syntax("expected in".into()));
            }
            self.at += 1;
            let selector = self.selector()?;
            return Ok(Expr::Match {
                selector,
                op,
                value: Some(value),
                regex: None,
            });
        }
        let selector = self.selector()?;
        let op = match self.next() {
            Some(Token::Symbol("==")) => MatchOp::Equal,
            Some(Token::Symbol("!=")) => MatchOp::NotEqual,
            Some(Token::Word(word)) if word == "is" => {
                let negated = self.peek_word("not");
                if negated {
                    self.at += 1;
                }
                if !self.peek_word("empty") {
                    return Err(FilterError::Syntax("expected empty after is".into()));
                }
                self.at += 1;
                let op = if negated {
                    MatchOp::IsNotEmpty
                } else {
                    MatchOp::IsEmpty
                };
                return Ok(Expr::Match {
                    selector,
                    op,
                    value: None,
                    regex: None,
                });
            }
            Some(Token::Word(word)) if word == "contains" => MatchOp::Contains,
            Some(Token::Word(word)) if word == "matches" => MatchOp::Matches,
            Some(Token::Word(word)) if word == "not" => match self.next() {
                Some(Token::Word(w)) if w == "contains" => MatchOp::NotContains,
                Some(Token::Word(w)) if w == "matches" => MatchOp::NotMatches,
                other => {
                    return Err(FilterError::Syntax(format!(
                        "expected contains or matches after not, found {other:?}"
                    )))
                }
            },
            other => {
                return Err(FilterError::Syntax(format!(
                    "expected an operator, found {other:?}"
                )))
            }
        };
        let value = self.value()?;
        let regex = match op {
            MatchOp::Matches | MatchOp::NotMatches => {
                Some(Regex::new(&value).map_err(|_| FilterError::BadRegex(value.clone()))?)
            }
            _ => None,
        };
        Ok(Expr::Match {
            selector,
            op,
            value: Some(value),
            regex,
        })
    }
}
