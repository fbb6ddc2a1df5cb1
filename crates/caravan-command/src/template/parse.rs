//! Splitting a template into text and actions, and actions into a tree.

use super::TemplateError;

/// How deeply blocks and parentheses may nest: the parser and executor
/// recurse, and a template is user input.
const MAX_DEPTH: usize = 64;

/// A part of a parsed template.
#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    Text(String),
    /// `{{pipeline}}` (prints) or `{{$x := pipeline}}` (does not).
    Action(Pipe),
    /// `{{if}}`, each `{{else if}}`, then `{{else}}`.
    If {
        branches: Vec<(Pipe, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
    Range {
        pipe: Pipe,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    With {
        pipe: Pipe,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

/// Commands joined by `|`, optionally declaring variables.
#[derive(Debug, Clone, PartialEq)]
pub struct Pipe {
    pub variables: Vec<String>,
    pub commands: Vec<Vec<Arg>>,
}

/// An operand of a command.
#[derive(Debug, Clone, PartialEq)]
pub enum Arg {
    /// `.` followed by fields (none for `.` itself).
    Dot(Vec<String>),
    /// `$name` followed by fields.
    Variable(String, Vec<String>),
    Function(String),
    Literal(serde_json::Value),
    /// `(pipeline)` followed by fields.
    Sub(Box<Pipe>, Vec<String>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Dot(Vec<String>),
    Variable(String, Vec<String>),
    Ident(String),
    Literal(serde_json::Value),
    Fields(Vec<String>),
    Open,
    Close,
    Pipe,
    Declare,
    Comma,
}

/// Go's space characters for trimming and token separation.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

/// Text and action bodies, trim markers applied.
fn split(template: &str) -> Result<Vec<Result<String, String>>, TemplateError> {
    let mut pieces = Vec::new();
    let mut rest = template;
    let mut trim_next = false;
    loop {
        let Some(start) = rest.find("{{") else {
            let text = if trim_next {
                rest.trim_start_matches(is_space)
            } else {
                rest
            };
            if !text.is_empty() {
                pieces.push(Ok(text.to_string()));
            }
            return Ok(pieces);
        };
        let mut text = &rest[..start];
        if trim_next {
            text = text.trim_start_matches(is_space);
        }
        let mut body = &rest[start + 2..];
        if body.starts_with('-') && body[1..].starts_with(is_space) {
            text = text.trim_end_matches(is_space);
            body = &body[1..];
        }
        if !text.is_empty() {
            pieces.push(Ok(text.to_string()));
        }
        let end = close_of(body)?;
        let mut inner = &body[..end];
        trim_next = inner.ends_with('-') && inner[..inner.len() - 1].ends_with(is_space);
        if trim_next {
            inner = &inner[..inner.len() - 1];
        }
        pieces.push(Err(inner.trim_matches(is_space).to_string()));
        rest = &body[end + 2..];
    }
}

/// Where the action starting `body` ends (`}}` outside quotes).
fn close_of(body: &str) -> Result<usize, TemplateError> {
    // A comment (`{{/* ... */}}`, `{{- /* ... */ -}}`) holds any text,
    // quotes and braces included, up to its `*/`.
    let opening = body.len() - body.trim_start_matches('-').trim_start().len();
    if body[opening..].starts_with("/*") {
        let end = body[opening..]
            .find("*/")
            .ok_or_else(|| TemplateError::new("unclosed comment"))?;
        let after = opening + end + 2;
        return body[after..]
            .find("}}")
            .map(|close| after + close)
            .ok_or_else(|| TemplateError::new("unclosed action"));
    }
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (index, c) in body.char_indices() {
        match quote {
            Some(q) => {
                if escaped {
                    escaped = false;
                } else if c == '\\' && q != '`' {
                    escaped = true;
                } else if c == q {
                    quote = None;
                }
            }
            None if matches!(c, '"' | '`' | '\'') => quote = Some(c),
            None if body[index..].starts_with("}}") => return Ok(index),
            None => {}
        }
    }
    Err(TemplateError::new(match quote {
        Some(_) => "unterminated quoted string",
        None => "unclosed action",
    }))
}

/// `.A.B` after something: the field names.
fn fields(text: &str) -> Result<Vec<String>, TemplateError> {
    text.split('.')
        .skip(1)
        .map(|field| {
            match field.chars().all(|c| c.is_alphanumeric() || c == '_') && !field.is_empty() {
                true => Ok(field.to_string()),
                false => Err(TemplateError::new(format!("bad field name in {text:?}"))),
            }
        })
        .collect()
}

fn tokenize(action: &str) -> Result<Vec<Token>, TemplateError> {
    let chars: Vec<char> = action.chars().collect();
    let mut tokens = Vec::new();
    let mut index = 0;
    let word_end = |from: usize| {
        let mut end = from;
        while end < chars.len()
            && (chars[end].is_alphanumeric() || matches!(chars[end], '_' | '.' | '$' | '-' | '+'))
        {
            end += 1;
        }
        end
    };
    while index < chars.len() {
        let c = chars[index];
        match c {
            _ if is_space(c) => index += 1,
            '(' => (tokens.push(Token::Open), index += 1).1,
            ')' => {
                tokens.push(Token::Close);
                index += 1;
                // `(...).Field`
                if chars.get(index) == Some(&'.') {
                    let end = word_end(index);
                    let text: String = chars[index..end].iter().collect();
                    tokens.push(Token::Fields(fields(&text)?));
                    index = end;
                }
            }
            '|' => (tokens.push(Token::Pipe), index += 1).1,
            ',' => (tokens.push(Token::Comma), index += 1).1,
            ':' if chars.get(index + 1) == Some(&'=') => {
                (tokens.push(Token::Declare), index += 2).1
            }
            '=' => {
                return Err(TemplateError::new(
                    "assigning to a variable with = is not supported; use :=",
                ))
            }
            '"' | '`' => {
                let end = (index + 1..chars.len())
                    .scan(false, |escaped, at| {
                        let done = !*escaped && chars[at] == c;
                        *escaped = c == '"' && !*escaped && chars[at] == '\\';
                        Some((at, done))
                    })
                    .find(|(_, done)| *done)
                    .map(|(at, _)| at)
                    .ok_or_else(|| TemplateError::new("unterminated quoted string"))?;
                let raw: String = chars[index..=end].iter().collect();
                let text = match c {
                    '`' => raw[1..raw.len() - 1].to_string(),
                    _ => serde_json::from_str::<String>(&raw)
                        .map_err(|_| TemplateError::new(format!("bad string literal {raw}")))?,
                };
                tokens.push(Token::Literal(serde_json::Value::String(text)));
                index = end + 1;
            }
            '\'' => return Err(TemplateError::new("character constants are not supported")),
            _ => {
                let end = word_end(index);
                if end == index {
                    return Err(TemplateError::new(format!("unexpected {c:?} in action")));
                }
                let word: String = chars[index..end].iter().collect();
                tokens.push(word_token(&word)?);
                index = end;
            }
        }
    }
    Ok(tokens)
}

fn word_token(word: &str) -> Result<Token, TemplateError> {
    let first = word.chars().next().unwrap_or(' ');
    if first == '.' {
        return Ok(Token::Dot(if word == "." {
            Vec::new()
        } else {
            fields(word)?
        }));
    }
    if first == '$' {
        let (name, rest) = word.split_at(word.find('.').unwrap_or(word.len()));
        return Ok(Token::Variable(name.to_string(), fields(rest)?));
    }
    if first.is_ascii_digit() || first == '-' || first == '+' {
        let number: serde_json::Number = word
            .trim_start_matches('+')
            .parse()
            .map_err(|_| TemplateError::new(format!("bad number syntax: {word:?}")))?;
        return Ok(Token::Literal(serde_json::Value::Number(number)));
    }
    match word {
        "true" => Ok(Token::Literal(serde_json::Value::Bool(true))),
        "false" => Ok(Token::Literal(serde_json::Value::Bool(false))),
        "nil" => Ok(Token::Literal(serde_json::Value::Null)),
        _ if word.chars().all(|c| c.is_alphanumeric() || c == '_') => {
            Ok(Token::Ident(word.to_string()))
        }
        _ => Err(TemplateError::new(format!("unexpected {word:?} in action"))),
    }
}

/// A pipeline from an action's tokens (after any keyword).
fn pipe(tokens: &[Token], depth: usize) -> Result<Pipe, TemplateError> {
    if depth > MAX_DEPTH {
        return Err(TemplateError::new("template nested too deeply"));
    }
    let mut variables = Vec::new();
    let mut rest = tokens;
    if let Some(position) = tokens.iter().position(|token| *token == Token::Declare) {
        for (index, token) in tokens[..position].iter().enumerate() {
            match (index % 2, token) {
                (0, Token::Variable(name, path)) if path.is_empty() => variables.push(name.clone()),
                (1, Token::Comma) => {}
                _ => return Err(TemplateError::new("bad variable declaration")),
            }
        }
        if variables.is_empty() || variables.len() > 2 || tokens[..position].len().is_multiple_of(2)
        {
            return Err(TemplateError::new("bad variable declaration"));
        }
        rest = &tokens[position + 1..];
    }
    let mut commands = vec![Vec::new()];
    let mut index = 0;
    while index < rest.len() {
        let arg = match &rest[index] {
            Token::Pipe => {
                commands.push(Vec::new());
                index += 1;
                continue;
            }
            Token::Open => {
                let close = matching_close(rest, index)?;
                let inner = pipe(&rest[index + 1..close], depth + 1)?;
                index = close;
                let path = match rest.get(index + 1) {
                    Some(Token::Fields(path)) => {
                        index += 1;
                        path.clone()
                    }
                    _ => Vec::new(),
                };
                Arg::Sub(Box::new(inner), path)
            }
            Token::Dot(path) => Arg::Dot(path.clone()),
            Token::Variable(name, path) => Arg::Variable(name.clone(), path.clone()),
            Token::Ident(name) => Arg::Function(name.clone()),
            Token::Literal(value) => Arg::Literal(value.clone()),
            Token::Close | Token::Fields(_) => {
                return Err(TemplateError::new("unexpected \")\" in command"))
            }
            Token::Declare | Token::Comma => {
                return Err(TemplateError::new("unexpected \":=\" or \",\" in command"))
            }
        };
        if let Some(command) = commands.last_mut() {
            command.push(arg);
        }
        index += 1;
    }
    if commands.iter().any(Vec::is_empty) {
        return Err(TemplateError::new("missing value for command"));
    }
    Ok(Pipe {
        variables,
        commands,
    })
}

fn matching_close(tokens: &[Token], open: usize) -> Result<usize, TemplateError> {
    let mut level = 0usize;
    for (index, token) in tokens.iter().enumerate().skip(open) {
        match token {
            Token::Open => level += 1,
            Token::Close => {
                level -= 1;
                if level == 0 {
                    return Ok(index);
                }
            }
            _ => {}
        }
    }
    Err(TemplateError::new("unclosed left paren"))
}

/// How a list of nodes ended.
enum Terminator {
    Eof,
    End,
    Else(Option<Pipe>),
}

struct Parser {
    pieces: std::vec::IntoIter<Result<String, String>>,
}

impl Parser {
    fn list(&mut self, depth: usize) -> Result<(Vec<Node>, Terminator), TemplateError> {
        if depth > MAX_DEPTH {
            return Err(TemplateError::new("template nested too deeply"));
        }
        let mut nodes = Vec::new();
        while let Some(piece) = self.pieces.next() {
            let action = match piece {
                Ok(text) => {
                    nodes.push(Node::Text(text));
                    continue;
                }
                Err(action) => action,
            };
            if action.starts_with("/*") {
                if !action.ends_with("*/") {
                    return Err(TemplateError::new("unclosed comment"));
                }
                continue;
            }
            let tokens = tokenize(&action)?;
            let keyword = match tokens.first() {
                Some(Token::Ident(word)) => word.as_str(),
                None => return Err(TemplateError::new("missing value for command")),
                _ => "",
            };
            let rest = tokens.get(1..).unwrap_or_default();
            match keyword {
                "end" if rest.is_empty() => return Ok((nodes, Terminator::End)),
                "else" if rest.is_empty() => return Ok((nodes, Terminator::Else(None))),
                "else" => match rest.first() {
                    Some(Token::Ident(word)) if word == "if" => {
                        return Ok((nodes, Terminator::Else(Some(pipe(&rest[1..], depth)?))))
                    }
                    _ => return Err(TemplateError::new("only {{else if}} may follow else")),
                },
                "if" => nodes.push(self.conditional(pipe(rest, depth)?, depth)?),
                "range" | "with" => {
                    let pipe = pipe(rest, depth)?;
                    let (body, end) = self.list(depth + 1)?;
                    let otherwise = match end {
                        Terminator::End => Vec::new(),
                        Terminator::Else(None) => self.closing(depth)?,
                        Terminator::Else(Some(_)) => {
                            return Err(TemplateError::new(format!(
                                "{{{{else if}}}} is not supported in {keyword}"
                            )))
                        }
                        Terminator::Eof => {
                            return Err(TemplateError::new(format!(
                                "unexpected EOF: {{{{{keyword}}}}} without {{{{end}}}}"
                            )))
                        }
                    };
                    nodes.push(match keyword {
                        "range" => Node::Range {
                            pipe,
                            body,
                            otherwise,
                        },
                        _ => Node::With {
                            pipe,
                            body,
                            otherwise,
                        },
                    });
                }
                "end" | "define" | "template" | "block" | "break" | "continue" => {
                    return Err(TemplateError::new(format!(
                        "{{{{{action}}}}} is not supported"
                    )))
                }
                _ => nodes.push(Node::Action(pipe(&tokens, depth)?)),
            }
        }
        Ok((nodes, Terminator::Eof))
    }

    /// An `if` whose condition was parsed: its branches up to `{{end}}`.
    fn conditional(&mut self, condition: Pipe, depth: usize) -> Result<Node, TemplateError> {
        let mut branches = Vec::new();
        let mut condition = condition;
        loop {
            let (body, end) = self.list(depth + 1)?;
            branches.push((condition, body));
            match end {
                Terminator::End => {
                    return Ok(Node::If {
                        branches,
                        otherwise: Vec::new(),
                    })
                }
                Terminator::Else(None) => {
                    let otherwise = self.closing(depth)?;
                    return Ok(Node::If {
                        branches,
                        otherwise,
                    });
                }
                Terminator::Else(Some(next)) => condition = next,
                Terminator::Eof => {
                    return Err(TemplateError::new("unexpected EOF: {{if}} without {{end}}"))
                }
            }
        }
    }

    /// The `{{else}}` part of a block: nodes up to its `{{end}}`.
    fn closing(&mut self, depth: usize) -> Result<Vec<Node>, TemplateError> {
        match self.list(depth + 1)? {
            (nodes, Terminator::End) => Ok(nodes),
            (_, Terminator::Else(_)) => Err(TemplateError::new("expected {{end}}, found {{else}}")),
            (_, Terminator::Eof) => Err(TemplateError::new(
                "unexpected EOF: {{else}} without {{end}}",
            )),
        }
    }
}

/// Parses `template` into its nodes.
pub fn parse(template: &str) -> Result<Vec<Node>, TemplateError> {
    let mut parser = Parser {
        pieces: split(template)?.into_iter(),
    };
    match parser.list(0)? {
        (nodes, Terminator::Eof) => Ok(nodes),
        (_, Terminator::End) => Err(TemplateError::new("unexpected {{end}}")),
        (_, Terminator::Else(_)) => Err(TemplateError::new("unexpected {{else}}")),
    }
}
