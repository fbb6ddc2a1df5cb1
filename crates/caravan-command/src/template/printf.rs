//! Go's `fmt.Sprintf` for template values: the verbs `%v %s %d %q %t %f
//! %e %g %x %X %%`, the flags `-`, `+` and `0`, widths and precisions, and
//! Go's `%!verb(...)` texts for missing, extra and mismatched operands.

use serde_json::Value;

use super::exec::print;

/// A value's Go type name, for the `%!verb(type=value)` texts.
fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "<nil>",
        Value::Bool(_) => "bool",
        Value::Number(number) if number.is_f64() => "float64",
        Value::Number(_) => "int",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

struct Spec {
    left: bool,
    plus: bool,
    zero: bool,
    width: Option<usize>,
    precision: Option<usize>,
}

pub fn printf(format: &str, args: &[Value]) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    let mut next = 0;
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut spec = Spec {
            left: false,
            plus: false,
            zero: false,
            width: None,
            precision: None,
        };
        while let Some(&flag) = chars.peek() {
            match flag {
                '-' => spec.left = true,
                '+' => spec.plus = true,
                '0' => spec.zero = true,
                ' ' | '#' => {}
                _ => break,
            }
            chars.next();
        }
        spec.width = digits(&mut chars);
        if chars.peek() == Some(&'.') {
            chars.next();
            spec.precision = Some(digits(&mut chars).unwrap_or(0));
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let Some(arg) = args.get(next) else {
            out.push_str(&format!("%!{verb}(MISSING)"));
            continue;
        };
        next += 1;
        out.push_str(&pad(&spec, format_one(verb, &spec, arg), arg.is_number()));
    }
    if next < args.len() {
        let extra: Vec<String> = args[next..]
            .iter()
            .map(|arg| format!("{}={}", type_name(arg), print(arg)))
            .collect();
        out.push_str(&format!("%!(EXTRA {})", extra.join(", ")));
    }
    out
}

fn digits(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Option<usize> {
    let mut number: Option<usize> = None;
    while let Some(digit) = chars.peek().and_then(|c| c.to_digit(10)) {
        // Widths past this are nonsense; cap rather than overflow.
        number = Some((number.unwrap_or(0) * 10 + digit as usize).min(10_000));
        chars.next();
    }
    number
}

fn format_one(verb: char, spec: &Spec, arg: &Value) -> String {
    let bad = || format!("%!{verb}({}={})", type_name(arg), print(arg));
    let sign = |text: String, negative: bool| match spec.plus && !negative {
        true => format!("+{text}"),
        false => text,
    };
    match (verb, arg) {
        ('v', _) => print(arg),
        ('s', Value::String(text)) => match spec.precision {
            Some(limit) => text.chars().take(limit).collect(),
            None => text.clone(),
        },
        ('s', Value::Array(_) | Value::Object(_) | Value::Null) => print(arg),
        ('d', Value::Number(number)) if !number.is_f64() => {
            sign(number.to_string(), number.as_i64().is_some_and(|n| n < 0))
        }
        ('q', Value::String(text)) => serde_json::to_string(text).unwrap_or_else(|_| bad()),
        ('t', Value::Bool(flag)) => flag.to_string(),
        ('f' | 'F' | 'e' | 'g', Value::Number(number)) => {
            let value = number.as_f64().unwrap_or(0.0);
            let text = match verb {
                'e' => format!("{:.*e}", spec.precision.unwrap_or(6), value),
                'g' => match spec.precision {
                    Some(precision) => format!("{:.*}", precision, value),
                    None => value.to_string(),
                },
                _ => format!("{:.*}", spec.precision.unwrap_or(6), value),
            };
            sign(text, value < 0.0)
        }
        ('x' | 'X', Value::Number(number)) if !number.is_f64() => {
            let text = match (number.as_i64(), number.as_u64()) {
                (Some(n), _) if n < 0 => format!("-{:x}", n.unsigned_abs()),
                (_, Some(n)) => format!("{n:x}"),
                _ => return bad(),
            };
            if verb == 'X' {
                text.to_uppercase()
            } else {
                text
            }
        }
        ('x' | 'X', Value::String(text)) => {
            let hex: String = text.bytes().map(|byte| format!("{byte:02x}")).collect();
            if verb == 'X' {
                hex.to_uppercase()
            } else {
                hex
            }
        }
        _ => bad(),
    }
}

fn pad(spec: &Spec, text: String, numeric: bool) -> String {
    let Some(width) = spec.width else {
        return text;
    };
    let length = text.chars().count();
    if length >= width {
        return text;
    }
    let fill = width - length;
    if spec.left {
        return format!("{text}{}", " ".repeat(fill));
    }
    if spec.zero && numeric {
        // Zeros go after the sign.
        let (sign, digits) = match text.strip_prefix(['-', '+']) {
            Some(rest) => (&text[..1], rest),
            None => ("", text.as_str()),
        };
        return format!("{sign}{}{digits}", "0".repeat(fill));
    }
    format!("{}{text}", " ".repeat(fill))
}
