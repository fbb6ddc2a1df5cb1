//! Input variables (`variable` and `variables` blocks, var-file contents,
//! `-var` arguments) and `locals`, resolved the way Nomad's jobspec2 does:
//! default, then the var file, then `-var`, the last one winning; every
//! declared variable must end up with a value; an assignment to an undeclared
//! variable is an error (jobspec2 in strict mode, as `nomad job run` and the
//! parse API use it).

use std::collections::HashMap;

use hcl::edit::expr::Expression;
use hcl::edit::structure::{Block, Body, Structure};
use hcl::edit::Span;
use hcl::eval::Context;
use hcl::{Map, Value};

use crate::error::{ErrorKind, ParseError};
use crate::eval::evaluate;
use crate::funcs::{self, parse_number};
use crate::source::Source;

/// A variable's type constraint.
#[derive(Debug, Clone, PartialEq)]
enum VarType {
    /// No `type` and no default: `-var` values are taken as strings.
    Unset,
    Any,
    String,
    Number,
    Bool,
    List(Box<VarType>),
    Map(Box<VarType>),
    Object(Vec<(String, VarType)>),
    Tuple(Vec<VarType>),
}

struct Variable<'a> {
    name: String,
    ty: VarType,
    value: Option<(Value, &'static str)>,
    block: Option<&'a Block>,
}

/// The resolved `var` and `local` objects.
pub(crate) struct Resolved {
    pub vars: Map<String, Value>,
    pub locals: Map<String, Value>,
}

/// The values given from outside the jobspec, lowest precedence first.
pub(crate) struct Inputs<'a> {
    /// `NOMAD_VAR_<name>` environment values (names without the prefix);
    /// ones the jobspec does not declare are ignored, as in Nomad.
    pub env: &'a HashMap<String, String>,
    pub var_file: Option<Source<'a>>,
    /// `-var name=value`.
    pub args: &'a HashMap<String, String>,
}

pub(crate) fn resolve(
    body: &Body,
    source: Source<'_>,
    inputs: Inputs<'_>,
) -> Result<Resolved, ParseError> {
    let plain = plain_context();
    let mut variables: Vec<Variable<'_>> = Vec::new();
    let mut locals: Vec<(String, &Expression)> = Vec::new();
    let declare = |variables: &mut Vec<Variable<'_>>, name: &str, at: &dyn Span| {
        if variables.iter().any(|v| v.name == name) {
            return Err(source.error_at(
                ErrorKind::DuplicateVariable {
                    name: name.to_string(),
                },
                at,
            ));
        }
        Ok(())
    };
    for structure in body.iter() {
        match structure {
            Structure::Block(block) if block.ident.as_str() == "variable" => {
                let name = single_label(source, block)?;
                declare(&mut variables, &name, block)?;
                variables.push(decode_variable_block(source, &plain, block, name)?);
            }
            Structure::Block(block) if block.ident.as_str() == "variables" => {
                for attr in block.body.attributes() {
                    let name = attr.key.as_str().to_string();
                    declare(&mut variables, &name, attr)?;
                    let value = evaluate(source, &plain, &attr.value)?;
                    variables.push(Variable {
                        ty: type_of(&value),
                        name,
                        value: Some((value, "default")),
                        block: None,
                    });
                }
            }
            Structure::Block(block) if block.ident.as_str() == "locals" => {
                for attr in block.body.attributes() {
                    let name = attr.key.as_str();
                    if locals.iter().any(|(n, _)| n == name) {
                        return Err(source.error_at(
                            ErrorKind::DuplicateLocal {
                                name: name.to_string(),
                            },
                            attr,
                        ));
                    }
                    locals.push((name.to_string(), &attr.value));
                }
            }
            Structure::Block(block) if block.ident.as_str() == "job" => {}
            Structure::Block(block) => {
                return Err(source.error_at(
                    ErrorKind::UnsupportedBlock {
                        name: block.ident.as_str().to_string(),
                    },
                    &block.ident,
                ))
            }
            Structure::Attribute(attr) => {
                return Err(source.error_at(
                    ErrorKind::UnsupportedArgument {
                        name: attr.key.as_str().to_string(),
                    },
                    &attr.key,
                ))
            }
        }
    }

    for (name, text) in sorted(inputs.env) {
        if let Some(variable) = variables.iter_mut().find(|v| &v.name == name) {
            variable.value = Some((text_value(&plain, variable, text)?, "env"));
        }
    }
    if let Some(var_source) = inputs.var_file {
        assign_from_var_file(&mut variables, var_source, &plain)?;
    }
    for (name, text) in sorted(inputs.args) {
        let Some(variable) = variables.iter_mut().find(|v| &v.name == name) else {
            return Err(ParseError::new(ErrorKind::UndefinedArgVariable {
                name: name.clone(),
            }));
        };
        variable.value = Some((text_value(&plain, variable, text)?, "cmd"));
    }

    let mut vars = Map::new();
    for variable in &variables {
        let Some((value, _)) = &variable.value else {
            return Err(source.error(
                ErrorKind::UnsetVariable {
                    name: variable.name.clone(),
                },
                variable.block.and_then(|b| b.ident.span()),
            ));
        };
        vars.insert(variable.name.clone(), value.clone());
    }
    for variable in &variables {
        check_validations(source, variable, &vars)?;
    }
    let locals = evaluate_locals(source, &vars, locals)?;
    Ok(Resolved { vars, locals })
}

fn sorted(map: &HashMap<String, String>) -> Vec<(&String, &String)> {
    let mut entries: Vec<_> = map.iter().collect();
    entries.sort();
    entries
}

/// A value given as text (`-var`, environment): taken literally for string,
/// number and untyped variables, parsed as an HCL expression for the others
/// (so `-var 'dcs=["a","b"]'` gives a list), then converted to the type.
fn text_value(
    plain: &Context<'_>,
    variable: &Variable<'_>,
    text: &str,
) -> Result<Value, ParseError> {
    let name = &variable.name;
    let type_error = |reason: String| {
        ParseError::new(ErrorKind::VariableType {
            name: name.clone(),
            reason,
        })
    };
    let value = match variable.ty {
        VarType::Unset | VarType::String | VarType::Number => Value::String(text.to_string()),
        _ => {
            let expr = hcl::edit::parser::parse_expr(text)
                .map_err(|e| type_error(e.message().to_string()))?;
            let text_source = Source {
                file: "<value for var from arguments>",
                text,
            };
            evaluate(text_source, plain, &expr)?
        }
    };
    convert(value, &variable.ty).map_err(type_error)
}

fn plain_context() -> Context<'static> {
    let mut ctx = Context::new();
    funcs::declare(&mut ctx);
    ctx
}

pub(crate) fn single_label(source: Source<'_>, block: &Block) -> Result<String, ParseError> {
    match block.labels.as_slice() {
        [label] => Ok(label.as_str().to_string()),
        _ => Err(source.error_at(
            ErrorKind::Labels {
                block: block.ident.as_str().to_string(),
                expected: 1,
                given: block.labels.len(),
            },
            &block.ident,
        )),
    }
}

fn decode_variable_block<'a>(
    source: Source<'_>,
    plain: &Context<'_>,
    block: &'a Block,
    name: String,
) -> Result<Variable<'a>, ParseError> {
    let mut ty = VarType::Unset;
    let mut default = None;
    for structure in block.body.iter() {
        match structure {
            Structure::Attribute(attr) => match attr.key.as_str() {
                "description" => {}
                "type" => ty = parse_type(source, &attr.value)?,
                "default" => default = Some(evaluate(source, plain, &attr.value)?),
                other => {
                    return Err(source.error_at(
                        ErrorKind::UnsupportedArgument {
                            name: other.to_string(),
                        },
                        &attr.key,
                    ))
                }
            },
            Structure::Block(inner) if inner.ident.as_str() == "validation" => {}
            Structure::Block(inner) => {
                return Err(source.error_at(
                    ErrorKind::UnsupportedBlock {
                        name: inner.ident.as_str().to_string(),
                    },
                    &inner.ident,
                ))
            }
        }
    }
    let value = match default {
        Some(value) => {
            let value = convert(value, &ty).map_err(|reason| {
                source.error_at(
                    ErrorKind::VariableType {
                        name: name.clone(),
                        reason,
                    },
                    block,
                )
            })?;
            if ty == VarType::Unset {
                ty = type_of(&value);
            }
            Some((value, "default"))
        }
        None => None,
    };
    Ok(Variable {
        name,
        ty,
        value,
        block: Some(block),
    })
}

fn assign_from_var_file(
    variables: &mut [Variable<'_>],
    source: Source<'_>,
    plain: &Context<'_>,
) -> Result<(), ParseError> {
    let body = source.parse_body()?;
    for structure in body.iter() {
        match structure {
            Structure::Block(block) if block.ident.as_str() == "variable" => {
                let name = block
                    .labels
                    .first()
                    .map(|l| l.as_str().to_string())
                    .unwrap_or_default();
                return Err(source.error_at(ErrorKind::VariableInVarFile { name }, &block.ident));
            }
            Structure::Block(block) => {
                return Err(source.error_at(
                    ErrorKind::UnsupportedBlock {
                        name: block.ident.as_str().to_string(),
                    },
                    &block.ident,
                ))
            }
            Structure::Attribute(attr) => {
                let name = attr.key.as_str();
                let Some(variable) = variables.iter_mut().find(|v| v.name == name) else {
                    return Err(source.error_at(
                        ErrorKind::UndefinedFileVariable {
                            name: name.to_string(),
                        },
                        &attr.key,
                    ));
                };
                let value = evaluate(source, plain, &attr.value)?;
                let value = convert(value, &variable.ty).map_err(|reason| {
                    source.error_at(
                        ErrorKind::VariableType {
                            name: name.to_string(),
                            reason,
                        },
                        &attr.value,
                    )
                })?;
                variable.value = Some((value, "varfile"));
            }
        }
    }
    Ok(())
}

/// `validation { condition = ..., error_message = ... }`: the condition is
/// evaluated with the variable's final value.
fn check_validations(
    source: Source<'_>,
    variable: &Variable<'_>,
    vars: &Map<String, Value>,
) -> Result<(), ParseError> {
    let Some(block) = variable.block else {
        return Ok(());
    };
    let mut ctx = plain_context();
    ctx.declare_var("var", Value::Object(vars.clone()));
    for validation in block.body.get_blocks("validation") {
        let mut condition = None;
        let mut message = String::new();
        for attr in validation.body.attributes() {
            match attr.key.as_str() {
                "condition" => condition = Some(&attr.value),
                "error_message" => {
                    message = funcs::plain_string(&evaluate(source, &ctx, &attr.value)?)
                }
                other => {
                    return Err(source.error_at(
                        ErrorKind::UnsupportedArgument {
                            name: other.to_string(),
                        },
                        &attr.key,
                    ))
                }
            }
        }
        let Some(condition) = condition else {
            return Err(source.error_at(
                ErrorKind::MissingArgument {
                    name: "condition".to_string(),
                },
                &validation.ident,
            ));
        };
        if evaluate(source, &ctx, condition)? != Value::Bool(true) {
            let from = variable.value.as_ref().map_or("default", |(_, from)| from);
            return Err(source.error_at(
                ErrorKind::VariableValidation {
                    source_kind: from.to_string(),
                    message,
                },
                condition,
            ));
        }
    }
    Ok(())
}

/// Locals may refer to each other in any order: evaluate in passes until
/// none is left, failing with the first error of a pass that made no
/// progress (a cycle or a real error).
fn evaluate_locals(
    source: Source<'_>,
    vars: &Map<String, Value>,
    mut pending: Vec<(String, &Expression)>,
) -> Result<Map<String, Value>, ParseError> {
    let mut locals = Map::new();
    while !pending.is_empty() {
        let mut ctx = plain_context();
        ctx.declare_var("var", Value::Object(vars.clone()));
        ctx.declare_var("local", Value::Object(locals.clone()));
        let mut first_error = None;
        let before = pending.len();
        pending.retain(|(name, expr)| match evaluate(source, &ctx, expr) {
            Ok(value) => {
                locals.insert(name.clone(), value);
                false
            }
            Err(error) => {
                first_error.get_or_insert(error);
                true
            }
        });
        if pending.len() == before {
            if let Some(error) = first_error {
                return Err(error);
            }
        }
    }
    Ok(locals)
}

fn parse_type(source: Source<'_>, expr: &Expression) -> Result<VarType, ParseError> {
    let bad = |detail: &str| {
        source.error_at(
            ErrorKind::TypeSpec {
                detail: detail.to_string(),
            },
            expr,
        )
    };
    match expr {
        Expression::Variable(ident) => match ident.as_str() {
            "string" => Ok(VarType::String),
            "number" => Ok(VarType::Number),
            "bool" => Ok(VarType::Bool),
            "any" => Ok(VarType::Any),
            other => Err(bad(&format!("The keyword \"{other}\" is not a valid type specification."))),
        },
        Expression::FuncCall(call) => {
            let name = call.name.name.as_str();
            let args: Vec<&Expression> = call.args.iter().collect();
            let [arg] = args.as_slice() else {
                return Err(bad(&format!("The {name} type constructor requires one argument.")));
            };
            match (name, arg) {
                ("list" | "set", _) => Ok(VarType::List(Box::new(parse_type(source, arg)?))),
                ("map", _) => Ok(VarType::Map(Box::new(parse_type(source, arg)?))),
                ("tuple", Expression::Array(items)) => Ok(VarType::Tuple(
                    items.iter().map(|item| parse_type(source, item)).collect::<Result<_, _>>()?,
                )),
                ("object", Expression::Object(object)) => {
                    let mut fields = Vec::new();
                    for (key, value) in object.iter() {
                        let key = match key {
                            hcl::edit::expr::ObjectKey::Ident(ident) => ident.as_str().to_string(),
                            hcl::edit::expr::ObjectKey::Expression(Expression::String(s)) => s.as_str().to_string(),
                            _ => return Err(bad("Object attribute names must be identifiers.")),
                        };
                        fields.push((key, parse_type(source, value.expr())?));
                    }
                    Ok(VarType::Object(fields))
                }
                _ => Err(bad(&format!("Keyword \"{name}\" is not a valid type constructor."))),
            }
        }
        _ => Err(bad("A type specification is either a primitive type keyword (bool, number, string) or a complex type constructor call, like list(string).")),
    }
}

/// The type a default gives an untyped variable (`-var` values for arrays and
/// objects are then parsed as HCL expressions).
fn type_of(value: &Value) -> VarType {
    match value {
        Value::String(_) => VarType::String,
        Value::Number(_) => VarType::Number,
        Value::Bool(_) => VarType::Bool,
        _ => VarType::Any,
    }
}

/// go-cty's conversion, for the types above.
fn convert(value: Value, ty: &VarType) -> Result<Value, String> {
    match (ty, value) {
        (VarType::Unset | VarType::Any, value) => Ok(value),
        (_, Value::Null) => Ok(Value::Null),
        (VarType::String, Value::String(s)) => Ok(Value::String(s)),
        (VarType::String, value @ (Value::Number(_) | Value::Bool(_))) => {
            Ok(Value::String(value.to_string()))
        }
        (VarType::Number, Value::Number(n)) => Ok(Value::Number(n)),
        (VarType::Number, Value::String(s)) => {
            parse_number(&s).ok_or_else(|| "a number is required".to_string())
        }
        (VarType::Bool, Value::Bool(b)) => Ok(Value::Bool(b)),
        (VarType::Bool, Value::String(s)) if s == "true" || s == "false" => {
            Ok(Value::Bool(s == "true"))
        }
        (VarType::List(inner), Value::Array(items)) => items
            .into_iter()
            .map(|item| convert(item, inner))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        (VarType::Tuple(types), Value::Array(items)) if types.len() == items.len() => items
            .into_iter()
            .zip(types)
            .map(|(item, ty)| convert(item, ty))
            .collect::<Result<_, _>>()
            .map(Value::Array),
        (VarType::Map(inner), Value::Object(map)) => map
            .into_iter()
            .map(|(k, v)| convert(v, inner).map(|v| (k, v)))
            .collect::<Result<_, _>>()
            .map(Value::Object),
        (VarType::Object(fields), Value::Object(mut map)) => {
            let mut out = Map::new();
            for (name, ty) in fields {
                let value = map
                    .shift_remove(name)
                    .ok_or_else(|| format!("attribute \"{name}\" is required"))?;
                out.insert(name.clone(), convert(value, ty)?);
            }
            Ok(Value::Object(out))
        }
        (VarType::String, _) => Err("string required".to_string()),
        (VarType::Number, _) => Err("number required".to_string()),
        (VarType::Bool, _) => Err("bool required".to_string()),
        (VarType::List(_), _) => Err("list required".to_string()),
        (VarType::Tuple(_), _) => Err("tuple required".to_string()),
        (VarType::Map(_), _) => Err("map required".to_string()),
        (VarType::Object(_), _) => Err("object required".to_string()),
    }
}
