//! The HCL functions a jobspec may call: a subset of Nomad's jobspec2 list
//! (which comes from go-cty's stdlib), the pure ones with no filesystem, time
//! or randomness. A call to any other function is an evaluation error naming
//! it, as in Nomad when the function is unknown.

use hcl::eval::{Context, FuncArgs, FuncDef, ParamType};
use hcl::{Number, Value};

pub(crate) fn declare(ctx: &mut Context<'_>) {
    use ParamType::{Any, Array, Number as Num, Object, String as Str};
    let one_str = |f| FuncDef::builder().param(Str).build(f);
    ctx.declare_func(
        "upper",
        one_str(|a| Ok(str_arg(&a, 0).to_uppercase().into())),
    );
    ctx.declare_func(
        "lower",
        one_str(|a| Ok(str_arg(&a, 0).to_lowercase().into())),
    );
    ctx.declare_func("trimspace", one_str(|a| Ok(str_arg(&a, 0).trim().into())));
    ctx.declare_func(
        "strlen",
        one_str(|a| Ok(Value::from(str_arg(&a, 0).chars().count() as u64))),
    );
    ctx.declare_func("title", one_str(|a| Ok(title(str_arg(&a, 0)).into())));
    ctx.declare_func(
        "trimprefix",
        FuncDef::builder().params([Str, Str]).build(|a| {
            let (s, p) = (str_arg(&a, 0), str_arg(&a, 1));
            Ok(s.strip_prefix(p).unwrap_or(s).into())
        }),
    );
    ctx.declare_func(
        "trimsuffix",
        FuncDef::builder().params([Str, Str]).build(|a| {
            let (s, p) = (str_arg(&a, 0), str_arg(&a, 1));
            Ok(s.strip_suffix(p).unwrap_or(s).into())
        }),
    );
    ctx.declare_func(
        "replace",
        FuncDef::builder().params([Str, Str, Str]).build(|a| {
            Ok(str_arg(&a, 0)
                .replace(str_arg(&a, 1), str_arg(&a, 2))
                .into())
        }),
    );
    ctx.declare_func(
        "split",
        FuncDef::builder().params([Str, Str]).build(|a| {
            let parts = str_arg(&a, 1).split(str_arg(&a, 0)).map(Value::from);
            Ok(Value::Array(parts.collect()))
        }),
    );
    ctx.declare_func(
        "join",
        FuncDef::builder()
            .param(Str)
            .variadic_param(ParamType::array_of(Str))
            .build(|a| {
                let mut parts = Vec::new();
                for list in a.iter().skip(1) {
                    if let Value::Array(items) = list {
                        parts.extend(items.iter().map(plain_string));
                    }
                }
                Ok(parts.join(str_arg(&a, 0)).into())
            }),
    );
    ctx.declare_func(
        "format",
        FuncDef::builder()
            .param(Str)
            .variadic_param(Any)
            .build(format),
    );
    ctx.declare_func(
        "concat",
        FuncDef::builder()
            .variadic_param(Array(Box::new(Any)))
            .build(|a| {
                let mut out = Vec::new();
                for list in a.iter() {
                    if let Value::Array(items) = list {
                        out.extend(items.iter().cloned());
                    }
                }
                Ok(Value::Array(out))
            }),
    );
    ctx.declare_func(
        "length",
        FuncDef::builder().param(Any).build(|a| match &a[0] {
            Value::Array(items) => Ok(Value::from(items.len() as u64)),
            Value::Object(map) => Ok(Value::from(map.len() as u64)),
            Value::String(s) => Ok(Value::from(s.chars().count() as u64)),
            other => Err(format!("length of {other} is not defined")),
        }),
    );
    ctx.declare_func(
        "coalesce",
        FuncDef::builder().variadic_param(Any).build(|a| {
            a.iter()
                .find(|v| {
                    !matches!(v, Value::Null) && !matches!(v, Value::String(s) if s.is_empty())
                })
                .cloned()
                .ok_or_else(|| "no non-null, non-empty-string arguments".to_string())
        }),
    );
    ctx.declare_func(
        "contains",
        FuncDef::builder()
            .params([Array(Box::new(Any)), Any])
            .build(|a| match &a[0] {
                Value::Array(items) => Ok(Value::Bool(items.contains(&a[1]))),
                _ => Ok(Value::Bool(false)),
            }),
    );
    ctx.declare_func(
        "keys",
        FuncDef::builder()
            .param(Object(Box::new(Any)))
            .build(|a| match &a[0] {
                Value::Object(map) => {
                    Ok(Value::Array(map.keys().cloned().map(Value::from).collect()))
                }
                _ => Ok(Value::Array(Vec::new())),
            }),
    );
    ctx.declare_func(
        "values",
        FuncDef::builder()
            .param(Object(Box::new(Any)))
            .build(|a| match &a[0] {
                Value::Object(map) => Ok(Value::Array(map.values().cloned().collect())),
                _ => Ok(Value::Array(Vec::new())),
            }),
    );
    ctx.declare_func(
        "merge",
        FuncDef::builder()
            .variadic_param(Object(Box::new(Any)))
            .build(|a| {
                let mut out = hcl::Map::new();
                for map in a.iter() {
                    if let Value::Object(map) = map {
                        out.extend(map.clone());
                    }
                }
                Ok(Value::Object(out))
            }),
    );
    ctx.declare_func(
        "lookup",
        FuncDef::builder()
            .params([Object(Box::new(Any)), Str])
            .variadic_param(Any)
            .build(|a| match (&a[0], a.get(2)) {
                (Value::Object(map), default) => {
                    map.get(str_arg(&a, 1)).or(default).cloned().ok_or_else(|| {
                        format!("the given object has no attribute {:?}", str_arg(&a, 1))
                    })
                }
                _ => Err("lookup needs an object".to_string()),
            }),
    );
    ctx.declare_func(
        "tostring",
        FuncDef::builder().param(Any).build(|a| match &a[0] {
            Value::Array(_) | Value::Object(_) => {
                Err("cannot convert a collection to a string".to_string())
            }
            Value::Null => Ok(Value::Null),
            other => Ok(plain_string(other).into()),
        }),
    );
    ctx.declare_func(
        "tonumber",
        FuncDef::builder().param(Any).build(|a| match &a[0] {
            Value::Number(n) => Ok(Value::Number(*n)),
            Value::String(s) => {
                parse_number(s).ok_or_else(|| format!("cannot convert {s:?} to number"))
            }
            other => Err(format!("cannot convert {other} to number")),
        }),
    );
    ctx.declare_func(
        "max",
        FuncDef::builder()
            .variadic_param(Num)
            .build(|a| extreme(&a, f64::max)),
    );
    ctx.declare_func(
        "min",
        FuncDef::builder()
            .variadic_param(Num)
            .build(|a| extreme(&a, f64::min)),
    );
}

fn str_arg(args: &FuncArgs, index: usize) -> &str {
    args.get(index).and_then(Value::as_str).unwrap_or_default()
}

/// A value as HCL's string conversion writes it (numbers and bools bare).
pub(crate) fn plain_string(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub(crate) fn parse_number(text: &str) -> Option<Value> {
    let text = text.trim();
    if let Ok(i) = text.parse::<i64>() {
        return Some(Value::from(i));
    }
    text.parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Value::Number)
}

fn extreme(args: &FuncArgs, pick: fn(f64, f64) -> f64) -> Result<Value, String> {
    let mut numbers = args.iter().filter_map(|v| v.as_f64());
    let first = numbers.next().ok_or("must pass at least one number")?;
    let best = numbers.fold(first, pick);
    Ok(Number::from_f64(best).map_or(Value::Null, |n| {
        if best.fract() == 0.0 && best.abs() < 9.0e15 {
            Value::from(best as i64)
        } else {
            Value::Number(n)
        }
    }))
}

fn title(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut start = true;
    for c in text.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !c.is_alphanumeric();
    }
    out
}

/// `format` with the common verbs of go-cty's: `%s`, `%d`, `%v`, `%q`, `%f`,
/// `%t` and `%%` (no widths or flags).
fn format(args: FuncArgs) -> Result<Value, String> {
    let spec = str_arg(&args, 0).to_string();
    let mut rest = args.iter().skip(1);
    let mut out = String::new();
    let mut chars = spec.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let verb = chars.next().ok_or("unterminated format verb")?;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = rest.next().ok_or("too few arguments for format string")?;
        match verb {
            's' | 'v' | 'd' | 't' => out.push_str(&plain_string(arg)),
            'f' => out.push_str(&format!("{:.6}", arg.as_f64().ok_or("%f needs a number")?)),
            'q' => out.push_str(&format!("{:?}", plain_string(arg))),
            other => return Err(format!("unsupported format verb %{other}")),
        }
    }
    Ok(out.into())
}
