//! Running a parsed template over JSON data, with Go's printing rules.

use serde_json::Value;

use super::parse::{Arg, Node, Pipe};
use super::TemplateError;

/// How many template nodes one render may run, and how much it may print:
/// nested `range`s multiply, so a short template over a big answer could
/// otherwise run (and allocate) without end.
const MAX_STEPS: u64 = 1_000_000;
const MAX_OUTPUT: usize = 64 << 20;

struct State {
    out: String,
    /// Nodes run so far (bounded by [`MAX_STEPS`]).
    steps: u64,
    /// Variables in scope, innermost last; `$` is the data.
    variables: Vec<(String, Value)>,
}

pub fn execute(nodes: &[Node], data: &Value) -> Result<String, TemplateError> {
    let mut state = State {
        out: String::new(),
        steps: 0,
        variables: vec![("$".to_string(), data.clone())],
    };
    list(nodes, data, &mut state)?;
    Ok(state.out)
}

fn list(nodes: &[Node], dot: &Value, state: &mut State) -> Result<(), TemplateError> {
    // Variables declared in a block end with it, as in Go.
    let scope = state.variables.len();
    for node in nodes {
        charge(state, 1)?;
        match node {
            Node::Text(text) => state.out.push_str(text),
            Node::Action(pipe) => {
                let value = run(pipe, dot, state)?;
                if pipe.variables.is_empty() {
                    state.out.push_str(&print(&value));
                } else {
                    declare(pipe, value, state);
                }
            }
            Node::If {
                branches,
                otherwise,
            } => {
                let mut taken = false;
                for (condition, body) in branches {
                    let value = run(condition, dot, state)?;
                    declare(condition, value.clone(), state);
                    if truthy(&value) {
                        list(body, dot, state)?;
                        taken = true;
                        break;
                    }
                }
                if !taken {
                    list(otherwise, dot, state)?;
                }
            }
            Node::With {
                pipe,
                body,
                otherwise,
            } => {
                let value = run(pipe, dot, state)?;
                declare(pipe, value.clone(), state);
                match truthy(&value) {
                    true => list(body, &value, state)?,
                    false => list(otherwise, dot, state)?,
                }
            }
            Node::Range {
                pipe,
                body,
                otherwise,
            } => range(pipe, body, otherwise, dot, state)?,
        }
    }
    state.variables.truncate(scope);
    Ok(())
}

fn range(
    pipe: &Pipe,
    body: &[Node],
    otherwise: &[Node],
    dot: &Value,
    state: &mut State,
) -> Result<(), TemplateError> {
    let value = run(pipe, dot, state)?;
    let items: Vec<(Value, Value)> = match value {
        Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| (Value::from(index), item))
            .collect(),
        Value::Object(map) => {
            // Go ranges over a map's keys in sorted order.
            let mut entries: Vec<(String, Value)> = map.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            entries
                .into_iter()
                .map(|(key, item)| (Value::String(key), item))
                .collect()
        }
        Value::Null => Vec::new(),
        other => {
            return Err(TemplateError::new(format!(
                "range can't iterate over {}",
                print(&other)
            )))
        }
    };
    if items.is_empty() {
        return list(otherwise, dot, state);
    }
    // Each turn costs, even with an empty body, and so does the copy of
    // what was ranged over: nested ranges over the data multiply.
    charge(state, items.len() as u64 * 2)?;
    for (key, item) in items {
        let scope = state.variables.len();
        match pipe.variables.as_slice() {
            [element] => state.variables.push((element.clone(), item.clone())),
            [index, element] => {
                state.variables.push((index.clone(), key));
                state.variables.push((element.clone(), item.clone()));
            }
            _ => {}
        }
        list(body, &item, state)?;
        state.variables.truncate(scope);
    }
    Ok(())
}

/// Counts `steps` against the render's budget.
fn charge(state: &mut State, steps: u64) -> Result<(), TemplateError> {
    state.steps = state.steps.saturating_add(steps);
    if state.steps > MAX_STEPS || state.out.len() > MAX_OUTPUT {
        return Err(TemplateError::new(
            "template too expensive: it runs more than a million steps or prints more than 64 MiB",
        ));
    }
    Ok(())
}

fn declare(pipe: &Pipe, value: Value, state: &mut State) {
    if let Some(name) = pipe.variables.first() {
        state.variables.push((name.clone(), value));
    }
}

fn run(pipe: &Pipe, dot: &Value, state: &State) -> Result<Value, TemplateError> {
    let mut piped: Option<Value> = None;
    for command in &pipe.commands {
        piped = Some(call(command, dot, piped.take(), state)?);
    }
    Ok(piped.unwrap_or(Value::Null))
}

fn call(
    command: &[Arg],
    dot: &Value,
    piped: Option<Value>,
    state: &State,
) -> Result<Value, TemplateError> {
    let Some((first, rest)) = command.split_first() else {
        return Err(TemplateError::new("missing value for command"));
    };
    let Arg::Function(name) = first else {
        if !rest.is_empty() || piped.is_some() {
            return Err(TemplateError::new("can't give argument to non-function"));
        }
        return operand(first, dot, state);
    };
    let mut args = rest
        .iter()
        .map(|arg| operand(arg, dot, state))
        .collect::<Result<Vec<_>, _>>()?;
    args.extend(piped);
    function(name, &args)
}

fn operand(arg: &Arg, dot: &Value, state: &State) -> Result<Value, TemplateError> {
    match arg {
        Arg::Dot(path) => walk(dot, path),
        Arg::Variable(name, path) => {
            let value = state
                .variables
                .iter()
                .rev()
                .find(|(known, _)| known == name)
                .map(|(_, value)| value)
                .ok_or_else(|| TemplateError::new(format!("undefined variable: {name}")))?;
            walk(value, path)
        }
        Arg::Literal(value) => Ok(value.clone()),
        Arg::Sub(pipe, path) => walk(&run(pipe, dot, state)?, path),
        Arg::Function(name) => function(name, &[]),
    }
}

fn walk(value: &Value, path: &[String]) -> Result<Value, TemplateError> {
    let mut current = value;
    for field in path {
        current = match current {
            Value::Object(map) => map
                .get(field)
                .ok_or_else(|| TemplateError::new(format!("can't evaluate field {field}")))?,
            // A missing (nil) object has no fields but is no error in
            // Nomad's data, where such fields are nil maps.
            Value::Null => return Ok(Value::Null),
            other => {
                return Err(TemplateError::new(format!(
                    "can't evaluate field {field} in {}",
                    kind(other)
                )))
            }
        };
    }
    Ok(current.clone())
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nil",
        Value::Bool(_) => "bool",
        Value::Number(number) if number.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "slice",
        Value::Object(_) => "map",
    }
}

/// Go's truthiness: false, 0, nil and empty values are false.
pub fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(flag) => *flag,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(items) => !items.is_empty(),
        Value::Object(map) => !map.is_empty(),
    }
}

/// A value as Go's `%v` prints it.
pub fn print(value: &Value) -> String {
    match value {
        Value::Null => "<nil>".to_string(),
        Value::Bool(flag) => flag.to_string(),
        Value::Number(number) => number.to_string(),
        Value::String(text) => text.clone(),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(print).collect::<Vec<_>>().join(" ")
        ),
        Value::Object(map) => {
            let mut entries: Vec<(&String, &Value)> = map.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            let inner: Vec<String> = entries
                .iter()
                .map(|(key, value)| format!("{key}:{}", print(value)))
                .collect();
            format!("map[{}]", inner.join(" "))
        }
    }
}

fn function(name: &str, args: &[Value]) -> Result<Value, TemplateError> {
    let arity = |count: usize| match args.len() == count {
        true => Ok(()),
        false => Err(TemplateError::new(format!(
            "wrong number of args for {name}: want {count} got {}",
            args.len()
        ))),
    };
    let compare = |test: fn(std::cmp::Ordering) -> bool| -> Result<Value, TemplateError> {
        arity(2)?;
        Ok(Value::Bool(test(order(&args[0], &args[1])?)))
    };
    match name {
        "printf" => match args.split_first() {
            Some((Value::String(format), rest)) => {
                Ok(Value::String(super::printf::printf(format, rest)))
            }
            _ => Err(TemplateError::new("printf needs a format string")),
        },
        "print" => Ok(Value::String(go_print(args))),
        "println" => Ok(Value::String(
            args.iter().map(print).collect::<Vec<_>>().join(" ") + "\n",
        )),
        "len" => {
            arity(1)?;
            match &args[0] {
                Value::String(text) => Ok(Value::from(text.len())),
                Value::Array(items) => Ok(Value::from(items.len())),
                Value::Object(map) => Ok(Value::from(map.len())),
                Value::Null => Ok(Value::from(0)),
                other => Err(TemplateError::new(format!("len of type {}", kind(other)))),
            }
        }
        "index" => {
            let Some((first, keys)) = args.split_first() else {
                return Err(TemplateError::new(
                    "wrong number of args for index: want at least 1 got 0",
                ));
            };
            keys.iter()
                .try_fold(first.clone(), |value, key| index(&value, key))
        }
        "json" => {
            arity(1)?;
            serde_json::to_string(&args[0])
                .map(Value::String)
                .map_err(|error| TemplateError::new(error.to_string()))
        }
        "not" => {
            arity(1)?;
            Ok(Value::Bool(!truthy(&args[0])))
        }
        // Go returns the deciding argument itself.
        "and" => Ok(args
            .iter()
            .find(|arg| !truthy(arg))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null)),
        "or" => Ok(args
            .iter()
            .find(|arg| truthy(arg))
            .or(args.last())
            .cloned()
            .unwrap_or(Value::Null)),
        "eq" => match args.split_first() {
            Some((first, rest)) if !rest.is_empty() => {
                Ok(Value::Bool(rest.iter().any(|other| equal(first, other))))
            }
            _ => Err(TemplateError::new("missing argument for comparison")),
        },
        "ne" => {
            arity(2)?;
            Ok(Value::Bool(!equal(&args[0], &args[1])))
        }
        "lt" => compare(|o| o.is_lt()),
        "le" => compare(|o| o.is_le()),
        "gt" => compare(|o| o.is_gt()),
        "ge" => compare(|o| o.is_ge()),
        _ => Err(TemplateError::new(format!("function {name:?} not defined"))),
    }
}

/// Go's `print`: spaces only between operands that are not both strings.
fn go_print(args: &[Value]) -> String {
    let mut out = String::new();
    for (position, arg) in args.iter().enumerate() {
        if position > 0 && !(arg.is_string() || args[position - 1].is_string()) {
            out.push(' ');
        }
        out.push_str(&print(arg));
    }
    out
}

fn index(value: &Value, key: &Value) -> Result<Value, TemplateError> {
    match (value, key) {
        (Value::Array(items), Value::Number(number)) => {
            let position = number.as_u64().and_then(|n| usize::try_from(n).ok());
            position
                .and_then(|position| items.get(position))
                .cloned()
                .ok_or_else(|| {
                    TemplateError::new(format!("error calling index: index out of range: {number}"))
                })
        }
        (Value::Object(map), Value::String(key)) => {
            Ok(map.get(key).cloned().unwrap_or(Value::Null))
        }
        (Value::Null, _) => Ok(Value::Null),
        _ => Err(TemplateError::new(format!(
            "can't index item of type {}",
            kind(value)
        ))),
    }
}

fn equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn order(a: &Value, b: &Value) -> Result<std::cmp::Ordering, TemplateError> {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
            x.partial_cmp(&y)
                .ok_or_else(|| TemplateError::new("incomparable numbers"))
        }
        (Value::String(x), Value::String(y)) => Ok(x.cmp(y)),
        _ => Err(TemplateError::new(format!(
            "incompatible types for comparison: {} and {}",
            kind(a),
            kind(b)
        ))),
    }
}
