//! Walks the HCL syntax tree of a `job` block against the `schema` tables,
//! evaluating every argument and converting it to the JSON type its api field
//! has. An argument or block a schema does not list is refused with its name
//! and position, as Nomad's decoder refuses it; only free maps (`config`,
//! `meta`, `env`, scaling `policy`) take any key.

use std::collections::HashSet;

use hcl::edit::expr::Expression;
use hcl::edit::structure::{Block, Body, Structure};
use hcl::edit::Span;
use serde_json::{Map, Value};

use crate::error::{ErrorKind, ParseError};
use crate::eval::{to_json, Evaluator};
use crate::schema::{Field, Kind, Schema};

type Object = Map<String, Value>;

/// Decodes the body of a block described by `schema`; `label` is the block's
/// label when the schema takes one, `at` the block (for errors about it as a
/// whole).
pub(crate) fn decode_body(
    ev: &Evaluator<'_>,
    schema: &Schema,
    body: &Body,
    label: Option<String>,
    at: &dyn Span,
) -> Result<Object, ParseError> {
    let src = ev.source;
    let mut out = Object::new();
    if let (Some(field), Some(label)) = (schema.label, label) {
        out.insert(field.to_string(), Value::String(label));
    }
    let mut seen_attrs = HashSet::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => {
                let name = attr.key.as_str();
                let field = find(schema, name)
                    .filter(|f| {
                        !matches!(
                            f.kind,
                            Kind::Block(_) | Kind::Blocks(_) | Kind::BlockMap(_) | Kind::FreeMap
                        )
                    })
                    .ok_or_else(|| {
                        src.error_at(
                            ErrorKind::UnsupportedArgument {
                                name: name.to_string(),
                            },
                            &attr.key,
                        )
                    })?;
                if !seen_attrs.insert(name) || out.contains_key(field.json) {
                    return Err(src.error_at(
                        ErrorKind::DuplicateArgument {
                            name: name.to_string(),
                        },
                        &attr.key,
                    ));
                }
                let value = ev.value(&attr.value)?;
                if matches!(value, hcl::Value::Null) {
                    continue; // `x = null` leaves the field unset, as in gohcl
                }
                let value = convert(field.kind, value).map_err(|detail| {
                    src.error_at(ErrorKind::Unsuitable { detail }, &attr.value)
                })?;
                out.insert(field.json.to_string(), value);
            }
            Structure::Block(block) if block.ident.as_str() == "dynamic" => {
                crate::dynamic::expand(ev, schema, block, &mut out)?;
            }
            Structure::Block(block) => {
                let name = block.ident.as_str();
                let field = find(schema, name)
                    .filter(|f| {
                        matches!(
                            f.kind,
                            Kind::Block(_)
                                | Kind::Blocks(_)
                                | Kind::BlockMap(_)
                                | Kind::FreeMap
                                | Kind::StrMap
                                | Kind::StrListMap
                        )
                    })
                    .ok_or_else(|| {
                        src.error_at(
                            ErrorKind::UnsupportedBlock {
                                name: name.to_string(),
                            },
                            &block.ident,
                        )
                    })?;
                decode_block(ev, field, block, &mut out)?;
            }
        }
    }
    if let Some(missing) = schema
        .fields
        .iter()
        .find(|f| f.required && !out.contains_key(f.json))
    {
        return Err(src.error_at(
            ErrorKind::MissingArgument {
                name: missing.hcl.to_string(),
            },
            at,
        ));
    }
    if let Some(post) = schema.post {
        post(&mut out).map_err(|kind| src.error_at(kind, at))?;
    }
    Ok(out)
}

pub(crate) fn find_block_field<'s>(schema: &'s Schema, name: &str) -> Option<&'s Field> {
    find(schema, name).filter(|f| {
        matches!(
            f.kind,
            Kind::Block(_)
                | Kind::Blocks(_)
                | Kind::BlockMap(_)
                | Kind::FreeMap
                | Kind::StrMap
                | Kind::StrListMap
        )
    })
}

fn find<'s>(schema: &'s Schema, name: &str) -> Option<&'s Field> {
    schema.fields.iter().find(|f| f.hcl == name)
}

pub(crate) fn decode_block(
    ev: &Evaluator<'_>,
    field: &Field,
    block: &Block,
    out: &mut Object,
) -> Result<(), ParseError> {
    let src = ev.source;
    let duplicate = || {
        src.error_at(
            ErrorKind::DuplicateBlock {
                name: field.hcl.to_string(),
            },
            &block.ident,
        )
    };
    match field.kind {
        Kind::Block(schema) => {
            if out.contains_key(field.json) {
                return Err(duplicate());
            }
            let label = labels(ev, schema, block)?;
            let value = decode_body(ev, schema, &block.body, label, block)?;
            out.insert(field.json.to_string(), Value::Object(value));
        }
        Kind::Blocks(schema) => {
            let label = labels(ev, schema, block)?;
            let value = decode_body(ev, schema, &block.body, label, block)?;
            let list = out
                .entry(field.json)
                .or_insert_with(|| Value::Array(Vec::new()));
            if let Value::Array(items) = list {
                items.push(Value::Object(value));
            }
        }
        Kind::BlockMap(schema) => {
            let label = labels(ev, schema, block)?.unwrap_or_default();
            let value = decode_body(ev, schema, &block.body, Some(label.clone()), block)?;
            let map = out
                .entry(field.json)
                .or_insert_with(|| Value::Object(Object::new()));
            if let Value::Object(map) = map {
                if map.insert(label, Value::Object(value)).is_some() {
                    return Err(duplicate());
                }
            }
        }
        Kind::StrMap | Kind::StrListMap => {
            no_labels(ev, block)?;
            if out.contains_key(field.json) {
                return Err(duplicate());
            }
            let mut map = Object::new();
            for structure in block.body.iter() {
                match structure {
                    Structure::Attribute(attr) => {
                        let value = ev.value(&attr.value)?;
                        let inner = if matches!(field.kind, Kind::StrMap) {
                            Kind::Str
                        } else {
                            Kind::StrList
                        };
                        let value = convert(inner, value).map_err(|detail| {
                            src.error_at(ErrorKind::Unsuitable { detail }, &attr.value)
                        })?;
                        map.insert(attr.key.as_str().to_string(), value);
                    }
                    Structure::Block(inner) => {
                        return Err(src.error_at(
                            ErrorKind::UnsupportedBlock {
                                name: inner.ident.as_str().to_string(),
                            },
                            &inner.ident,
                        ))
                    }
                }
            }
            out.insert(field.json.to_string(), Value::Object(map));
        }
        Kind::FreeMap => {
            no_labels(ev, block)?;
            if out.contains_key(field.json) {
                return Err(duplicate());
            }
            out.insert(
                field.json.to_string(),
                Value::Object(free_map(ev, &block.body)?),
            );
        }
        _ => unreachable!("filtered by decode_body"),
    }
    Ok(())
}

/// The block's one label when its schema takes one; an error when the count
/// is wrong.
fn labels(
    ev: &Evaluator<'_>,
    schema: &Schema,
    block: &Block,
) -> Result<Option<String>, ParseError> {
    let expected = usize::from(schema.label.is_some());
    if block.labels.len() != expected {
        return Err(ev.source.error_at(
            ErrorKind::Labels {
                block: schema.name.to_string(),
                expected,
                given: block.labels.len(),
            },
            &block.ident,
        ));
    }
    Ok(block.labels.first().map(|l| l.as_str().to_string()))
}

fn no_labels(ev: &Evaluator<'_>, block: &Block) -> Result<(), ParseError> {
    if block.labels.is_empty() {
        Ok(())
    } else {
        Err(ev.source.error_at(
            ErrorKind::Labels {
                block: block.ident.as_str().to_string(),
                expected: 0,
                given: block.labels.len(),
            },
            &block.ident,
        ))
    }
}

/// A free map the way jobspec2 builds one (`hclutil.BlocksAsAttrs`): each
/// argument as evaluated, except that an object written inline (`x = {...}`)
/// becomes a one-element list; nested blocks of one type become a list of
/// objects, one per block; a labelled block `b "l" {...}` becomes
/// `{"b": [{"l": [{...}]}]}`.
pub(crate) fn free_map(ev: &Evaluator<'_>, body: &Body) -> Result<Object, ParseError> {
    let mut out = Object::new();
    for structure in body.iter() {
        match structure {
            Structure::Attribute(attr) => {
                let name = attr.key.as_str();
                if out.contains_key(name) {
                    return Err(ev.source.error_at(
                        ErrorKind::DuplicateArgument {
                            name: name.to_string(),
                        },
                        &attr.key,
                    ));
                }
                let value = to_json(ev.value(&attr.value)?);
                let value = if matches!(attr.value, Expression::Object(_)) {
                    Value::Array(vec![value])
                } else {
                    value
                };
                out.insert(name.to_string(), value);
            }
            Structure::Block(block) => {
                let mut value = Value::Object(free_map(ev, &block.body)?);
                for label in block.labels.iter().rev() {
                    let mut wrapper = Object::new();
                    wrapper.insert(label.as_str().to_string(), Value::Array(vec![value]));
                    value = Value::Object(wrapper);
                }
                let list = out
                    .entry(block.ident.as_str())
                    .or_insert_with(|| Value::Array(Vec::new()));
                match list {
                    Value::Array(items) => items.push(value),
                    other => *other = Value::Array(vec![value]),
                }
            }
        }
    }
    Ok(out)
}

/// Converts an evaluated argument to its field's JSON type, with go-cty's
/// conversions (numbers and bools to strings, numeric strings to numbers).
fn convert(kind: Kind, value: hcl::Value) -> Result<Value, String> {
    use hcl::Value as V;
    match (kind, value) {
        (Kind::Str, V::String(s)) => Ok(Value::String(s)),
        (Kind::Str, v @ (V::Number(_) | V::Bool(_))) => Ok(Value::String(v.to_string())),
        (Kind::Str, _) => Err("Unsuitable value: string required".to_string()),
        (Kind::Int | Kind::Dur, V::Number(n)) => number(n),
        (Kind::Int, V::String(s)) => whole(
            s.trim()
                .parse::<f64>()
                .map_err(|_| "a number is required".to_string())?,
        ),
        (Kind::Int, _) => Err("Unsuitable value: number required".to_string()),
        (Kind::Bool, V::Bool(b)) => Ok(Value::Bool(b)),
        (Kind::Bool, V::String(s)) if s == "true" || s == "false" => Ok(Value::Bool(s == "true")),
        (Kind::Bool, _) => Err("Unsuitable value: bool required".to_string()),
        (Kind::Dur, V::String(s)) => caravan_api_types::duration::parse_go_duration_nanos(&s)
            .map(Value::from)
            .map_err(|_| format!("Unsuitable duration value: time: invalid duration {s:?}")),
        (Kind::Dur, other) => Err(format!(
            "Unsuitable value: expected a string but found {}",
            type_name(&other)
        )),
        (Kind::StrList, V::Array(items)) => items
            .into_iter()
            .map(|item| convert(Kind::Str, item))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        (Kind::StrList, _) => Err("Unsuitable value: list of string required".to_string()),
        (Kind::IntList, V::Array(items)) => items
            .into_iter()
            .map(|item| convert(Kind::Int, item))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        (Kind::IntList, _) => Err("Unsuitable value: list of number required".to_string()),
        (Kind::StrMap | Kind::StrListMap, V::Object(map)) => {
            let inner = if matches!(kind, Kind::StrMap) {
                Kind::Str
            } else {
                Kind::StrList
            };
            map.into_iter()
                .filter(|(_, v)| !matches!(v, V::Null))
                .map(|(k, v)| convert(inner, v).map(|v| (k, v)))
                .collect::<Result<_, _>>()
                .map(Value::Object)
        }
        (Kind::StrMap | Kind::StrListMap, _) => {
            Err("Unsuitable value: map of string required".to_string())
        }
        (_, other) => Err(format!(
            "Unsuitable value: {} not expected here",
            type_name(&other)
        )),
    }
}

fn number(n: hcl::Number) -> Result<Value, String> {
    match n.as_i64() {
        Some(i) => Ok(Value::from(i)),
        None => whole(n.as_f64().unwrap_or(f64::NAN)),
    }
}

fn whole(number: f64) -> Result<Value, String> {
    if number.is_finite() && number.fract() == 0.0 && number.abs() < 9.2e18 {
        Ok(Value::from(number as i64))
    } else {
        Err("Unsuitable value: value must be a whole number".to_string())
    }
}

fn type_name(value: &hcl::Value) -> &'static str {
    match value {
        hcl::Value::Null => "null",
        hcl::Value::Bool(_) => "bool",
        hcl::Value::Number(_) => "number",
        hcl::Value::String(_) => "string",
        hcl::Value::Array(_) => "tuple",
        hcl::Value::Object(_) => "object",
    }
}
