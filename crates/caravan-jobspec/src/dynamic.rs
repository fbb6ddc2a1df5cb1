//! `dynamic "TYPE" { for_each = ..., iterator = ..., labels = [...],
//! content { ... } }`: HCL's dynblock extension, which jobspec2 applies to
//! the job body. Each element of `for_each` yields one `TYPE` block whose
//! content sees the iterator (named `TYPE` unless `iterator` says otherwise)
//! as `<iterator>.key` and `<iterator>.value`.

use hcl::edit::expr::Expression;
use hcl::edit::structure::{Block, BlockLabel, Structure};
use hcl::edit::{Decorated, Ident};
use serde_json::{Map, Value};

use crate::decode::{decode_block, find_block_field};
use crate::error::{ErrorKind, ParseError};
use crate::eval::Evaluator;
use crate::schema::Schema;

pub(crate) fn expand(
    ev: &Evaluator<'_>,
    schema: &Schema,
    block: &Block,
    out: &mut Map<String, Value>,
) -> Result<(), ParseError> {
    let src = ev.source;
    let type_name = match block.labels.as_slice() {
        [label] => label.as_str(),
        _ => {
            return Err(src.error_at(
                ErrorKind::Labels {
                    block: "dynamic".into(),
                    expected: 1,
                    given: block.labels.len(),
                },
                &block.ident,
            ))
        }
    };
    let field = find_block_field(schema, type_name).ok_or_else(|| {
        src.error_at(
            ErrorKind::UnsupportedBlock {
                name: type_name.to_string(),
            },
            &block.ident,
        )
    })?;

    let mut for_each = None;
    let mut iterator = type_name.to_string();
    let mut labels: Option<&Expression> = None;
    let mut content = None;
    for structure in block.body.iter() {
        match structure {
            Structure::Attribute(attr) => match attr.key.as_str() {
                "for_each" => for_each = Some(&attr.value),
                "labels" => labels = Some(&attr.value),
                "iterator" => match &attr.value {
                    Expression::Variable(name) => iterator = name.as_str().to_string(),
                    other => {
                        return Err(src.error_at(
                            ErrorKind::Unsuitable {
                                detail: "Invalid dynamic iterator name: must be a single name"
                                    .into(),
                            },
                            other,
                        ))
                    }
                },
                other => {
                    return Err(src.error_at(
                        ErrorKind::UnsupportedArgument {
                            name: other.to_string(),
                        },
                        &attr.key,
                    ))
                }
            },
            Structure::Block(inner) if inner.ident.as_str() == "content" && content.is_none() => {
                content = Some(inner)
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
    let missing = |name: &str| {
        src.error_at(
            ErrorKind::MissingArgument {
                name: name.to_string(),
            },
            &block.ident,
        )
    };
    let for_each = for_each.ok_or_else(|| missing("for_each"))?;
    let content = content.ok_or_else(|| missing("content"))?;

    let items: Vec<(hcl::Value, hcl::Value)> = match ev.value(for_each)? {
        hcl::Value::Array(items) => items
            .into_iter()
            .enumerate()
            .map(|(i, v)| (hcl::Value::from(i as u64), v))
            .collect(),
        hcl::Value::Object(map) => map
            .into_iter()
            .map(|(k, v)| (hcl::Value::String(k), v))
            .collect(),
        hcl::Value::Null => Vec::new(),
        _ => {
            return Err(src.error_at(
                ErrorKind::Unsuitable {
                    detail: "Invalid dynamic for_each value: a collection is required".into(),
                },
                for_each,
            ))
        }
    };
    for (key, value) in items {
        let child = ev.with_iterator(&iterator, key, value);
        let mut synthetic = Block::new(Decorated::new(Ident::new(type_name)));
        synthetic.body = content.body.clone();
        if let Some(labels) = labels {
            let hcl::Value::Array(values) = child.value(labels)? else {
                return Err(src.error_at(
                    ErrorKind::Unsuitable {
                        detail: "Invalid dynamic labels: a list of strings is required".into(),
                    },
                    labels,
                ));
            };
            synthetic.labels = values
                .iter()
                .map(|v| BlockLabel::String(Decorated::new(crate::funcs::plain_string(v))))
                .collect();
        }
        decode_block(&child, field, &synthetic, out)?;
    }
    Ok(())
}
