//! Expression evaluation: `var.*`, `local.*`, functions, and leaving the
//! references Nomad resolves on the client as literal text.
//!
//! Nomad's jobspec2 evaluates every expression with an "undefined variable"
//! hook: a reference whose root is neither `var` nor `local` (`attr.kernel.name`,
//! `node.unique.id`, `meta.x`, `NOMAD_PORT_http`, `env["X"]`) evaluates to the
//! string `${<its source text>}`, so the client can interpolate it later.
//! hcl-rs has no such hook, so before evaluating we rewrite those references in
//! the syntax tree into string literals holding that text.

use hcl::edit::expr::{BinaryOperator, Expression};
use hcl::edit::template::{Directive, Element};
use hcl::edit::visit_mut::{self, VisitMut};
use hcl::edit::{Decorated, Span};
use hcl::eval::{Context, Evaluate};
use hcl::Value;

use crate::error::{ErrorKind, ParseError};
use crate::source::Source;

/// Evaluates expressions of one source against the job's variables and
/// locals.
pub(crate) struct Evaluator<'s> {
    pub source: Source<'s>,
    ctx: Context<'static>,
    /// Iterator names of enclosing `dynamic` blocks, which expressions may
    /// refer to besides `var` and `local`.
    iterators: Vec<String>,
}

impl<'s> Evaluator<'s> {
    /// An evaluator whose context holds `var` and `local` objects and the
    /// functions of `funcs`.
    pub fn new(
        source: Source<'s>,
        vars: hcl::Map<String, Value>,
        locals: hcl::Map<String, Value>,
    ) -> Self {
        let mut ctx = Context::new();
        crate::funcs::declare(&mut ctx);
        ctx.declare_var("var", Value::Object(vars));
        ctx.declare_var("local", Value::Object(locals));
        Evaluator {
            source,
            ctx,
            iterators: Vec::new(),
        }
    }

    /// The value of `expr`.
    pub fn value(&self, expr: &Expression) -> Result<Value, ParseError> {
        evaluate_with(self.source, &self.ctx, &self.iterators, expr)
    }

    /// This evaluator plus a `dynamic` block's iterator `name` holding
    /// `{key, value}`. (hcl-rs keeps child scopes private, so the context is
    /// copied: cheap next to what a jobspec holds.)
    pub fn with_iterator(&self, name: &str, key: Value, value: Value) -> Evaluator<'s> {
        let mut ctx = self.ctx.clone();
        let mut iterator = hcl::Map::new();
        iterator.insert("key".to_string(), key);
        iterator.insert("value".to_string(), value);
        ctx.declare_var(name.to_string(), Value::Object(iterator));
        let mut iterators = self.iterators.clone();
        iterators.push(name.to_string());
        Evaluator {
            source: self.source,
            ctx,
            iterators,
        }
    }
}

/// Evaluates `expr` in `ctx`, keeping runtime references as text.
pub(crate) fn evaluate(
    source: Source<'_>,
    ctx: &Context<'_>,
    expr: &Expression,
) -> Result<Value, ParseError> {
    evaluate_with(source, ctx, &[], expr)
}

fn evaluate_with(
    source: Source<'_>,
    ctx: &Context<'_>,
    iterators: &[String],
    expr: &Expression,
) -> Result<Value, ParseError> {
    let mut rewritten = expr.clone();
    let mut keep = KeepRuntimeRefs {
        source,
        scopes: iterators.to_vec(),
    };
    keep.visit_expr_mut(&mut rewritten);
    hcl::Expression::from(rewritten)
        .evaluate(ctx)
        .map_err(|error| {
            source.error_at(
                ErrorKind::Eval {
                    detail: describe(&error),
                },
                expr,
            )
        })
}

/// hcl-rs's message, naming the failing sub-expression only when it is
/// short (the position already points at the argument).
fn describe(error: &hcl::eval::Error) -> String {
    match error.expr().map(ToString::to_string) {
        Some(text) if text.len() <= 60 && !text.contains('\n') => {
            format!("{} in `{text}`", error.kind())
        }
        _ => error.kind().to_string(),
    }
}

/// The roots an expression may refer to: everything else is the client's.
const KNOWN_ROOTS: [&str; 2] = ["var", "local"];

struct KeepRuntimeRefs<'s> {
    source: Source<'s>,
    /// Names bound by enclosing `for` expressions and directives.
    scopes: Vec<String>,
}

impl KeepRuntimeRefs<'_> {
    fn is_known(&self, name: &str) -> bool {
        KNOWN_ROOTS.contains(&name) || self.scopes.iter().any(|bound| bound == name)
    }

    fn literal(&self, span: &Option<std::ops::Range<usize>>, fallback: String) -> Expression {
        let text = span
            .clone()
            .and_then(|span| self.source.text.get(span))
            .map(str::to_string)
            .unwrap_or(fallback);
        Expression::String(Decorated::new(format!("${{{}}}", text.trim())))
    }

    /// A reference to something only the client knows, or a dashed name
    /// made of such references.
    fn is_client_ref(&self, expr: &Expression) -> bool {
        let unknown_root = |expr: &Expression| match expr {
            Expression::Variable(ident) => !self.is_known(ident.as_str()),
            Expression::Traversal(traversal) => {
                matches!(&traversal.expr, Expression::Variable(ident) if !self.is_known(ident.as_str()))
            }
            _ => false,
        };
        match expr {
            Expression::BinaryOp(op) if *op.operator.value() == BinaryOperator::Minus => {
                let part =
                    |e: &Expression| self.is_client_ref(e) || matches!(e, Expression::Number(_));
                part(&op.lhs_expr)
                    && part(&op.rhs_expr)
                    && (self.is_client_ref(&op.lhs_expr) || self.is_client_ref(&op.rhs_expr))
            }
            other => unknown_root(other),
        }
    }

    fn with_bound(&mut self, names: Vec<String>, f: impl FnOnce(&mut Self)) {
        let depth = self.scopes.len();
        self.scopes.extend(names);
        f(self);
        self.scopes.truncate(depth);
    }
}

impl VisitMut for KeepRuntimeRefs<'_> {
    fn visit_expr_mut(&mut self, node: &mut Expression) {
        match node {
            Expression::Variable(ident) if !self.is_known(ident.as_str()) => {
                let span = ident.span();
                let fallback = ident.as_str().to_string();
                *node = self.literal(&span, fallback);
            }
            Expression::Traversal(traversal) if matches!(&traversal.expr, Expression::Variable(ident) if !self.is_known(ident.as_str())) =>
            {
                let span = traversal.span();
                let fallback = node.to_string();
                *node = self.literal(&span, fallback);
            }
            Expression::ForExpr(for_expr) => {
                self.visit_expr_mut(&mut for_expr.intro.collection_expr);
                let mut names = vec![for_expr.intro.value_var.as_str().to_string()];
                if let Some(key) = &for_expr.intro.key_var {
                    names.push(key.as_str().to_string());
                }
                self.with_bound(names, |this| {
                    if let Some(key_expr) = &mut for_expr.key_expr {
                        this.visit_expr_mut(key_expr);
                    }
                    this.visit_expr_mut(&mut for_expr.value_expr);
                    if let Some(cond) = &mut for_expr.cond {
                        this.visit_expr_mut(&mut cond.expr);
                    }
                });
            }
            _ => visit_mut::visit_expr_mut(self, node),
        }
    }

    fn visit_element_mut(&mut self, element: &mut Element) {
        // An interpolation that is nothing but a client-side reference is
        // kept verbatim, spaces and all. That includes names with dashes
        // (`${attr.unique.network.dev-eu-1}`), which HCL reads as
        // subtractions and Nomad keeps as written. Other interpolations are
        // evaluated with their client-side references replaced.
        if let Element::Interpolation(interp) = element {
            if self.is_client_ref(&interp.expr) {
                let verbatim = element.span().and_then(|span| self.source.text.get(span));
                if let (Some(text), Element::Interpolation(interp)) = (verbatim, &mut *element) {
                    interp.expr = Expression::String(Decorated::new(text.to_string()));
                    return;
                }
            }
        }
        if let Element::Directive(directive) = element {
            if let Directive::For(for_directive) = directive.as_mut() {
                let for_expr = &mut for_directive.for_expr;
                self.visit_expr_mut(&mut for_expr.collection_expr);
                let mut names = vec![for_expr.value_var.as_str().to_string()];
                if let Some(key) = &for_expr.key_var {
                    names.push(key.as_str().to_string());
                }
                self.with_bound(names, |this| {
                    this.visit_template_mut(&mut for_expr.template)
                });
                return;
            }
        }
        visit_mut::visit_element_mut(self, element);
    }
}

/// Converts an evaluated HCL value to JSON.
pub(crate) fn to_json(value: Value) -> serde_json::Value {
    match value {
        Value::Null => serde_json::Value::Null,
        Value::Bool(b) => serde_json::Value::Bool(b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                serde_json::Value::from(i)
            } else if let Some(u) = n.as_u64() {
                serde_json::Value::from(u)
            } else {
                n.as_f64()
                    .and_then(serde_json::Number::from_f64)
                    .map_or(serde_json::Value::Null, serde_json::Value::Number)
            }
        }
        Value::String(s) => serde_json::Value::String(s),
        Value::Array(items) => serde_json::Value::Array(items.into_iter().map(to_json).collect()),
        Value::Object(map) => {
            serde_json::Value::Object(map.into_iter().map(|(k, v)| (k, to_json(v))).collect())
        }
    }
}
