//! Resolving an expression within its module, under the module's defaults: what does
//! `kms_key_id` actually evaluate to when nobody passes anything? Variables (with
//! `terraform.tfvars` / `*.auto.tfvars` (and `.json`) overrides and `optional()` defaults), locals,
//! conditionals, `try`, `coalesce`, `lookup`, `join`, `one` and splats over resources whose
//! `count` is known are followed; anything else becomes [`Value::Unknown`] or
//! [`Value::External`], never a guess.

use std::cell::RefCell;
use std::collections::BTreeMap;

use hcl_edit::expr::{BinaryOperator, Expression, ObjectKey, TraversalOperator, UnaryOperator};
use hcl_edit::template::{Element, Template};

use crate::module::{BlockRef, Module};

/// How deep locals and variables may chain before ctfix gives up (cycles, pathological input).
const MAX_DEPTH: usize = 32;

/// What an expression evaluates to, as far as ctfix can tell.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// A boolean.
    Bool(bool),
    /// A number.
    Number(f64),
    /// A fully known string.
    String(String),
    /// A string whose unknown parts are marked with [`UNKNOWN_PART`].
    Partial(String),
    /// A list or tuple.
    List(Vec<Value>),
    /// An object or map.
    Object(BTreeMap<String, Value>),
    /// An attribute of a `resource "aws_kms_key"` in this module.
    KeyAttribute {
        /// The key's label.
        label: String,
        /// The attribute (`arn`, `key_id`, `id`, …).
        attribute: String,
    },
    /// A key managed by AWS (an `alias/aws/...` alias or a data source looking one up).
    AwsManagedKey(String),
    /// The ARN of a KMS alias (not a key ARN).
    AliasArn(String),
    /// A key's id, not its ARN, from outside the module's resources
    /// (`data.aws_kms_key.<k>.key_id` / `.id`); the text names it.
    KeyId(String),
    /// Something outside the module that ctfix cannot inspect (a module output, a data
    /// source); the text names it.
    External(String),
    /// One of several values, depending on a condition ctfix cannot decide.
    OneOf(Vec<Value>),
    /// Evaluating failed the way Terraform would fail (a missing attribute); `try` catches it.
    Error(String),
    /// Not decidable from the module; the text says why.
    Unknown(String),
}

/// Marks an unknown part inside [`Value::Partial`].
pub const UNKNOWN_PART: char = '\u{1}';

/// One step taken while resolving, kept so verdicts can say where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Read `var.<name>`: from a tfvars file, its default, or neither.
    Variable {
        /// The variable's name.
        name: String,
        /// Where the value came from.
        source: VariableSource,
    },
    /// Followed `local.<name>`.
    Local(String),
}

/// Where a variable's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VariableSource {
    /// `terraform.tfvars` or `*.auto.tfvars` (or their `.json` forms).
    Tfvars,
    /// The `default` argument.
    Default,
    /// No default: the caller must pass it.
    NoDefault,
    /// Passed by the `module` block that calls this module.
    Caller,
}

/// Evaluates expressions of one module.
#[derive(Debug, Clone)]
pub struct Resolver<'m> {
    module: &'m Module,
    steps: RefCell<Vec<Step>>,
    /// The arguments of the `module` block calling this module, when it is judged as a
    /// called module: they replace defaults, and tfvars (read by roots only) do not apply.
    inputs: Option<std::rc::Rc<BTreeMap<String, Value>>>,
    /// `each.key` / `each.value` / `count.index` of the instance being evaluated.
    instance: Option<std::rc::Rc<BTreeMap<String, Value>>>,
}

impl<'m> Resolver<'m> {
    /// A resolver for `module`.
    pub fn new(module: &'m Module) -> Self {
        Resolver {
            module,
            steps: RefCell::new(Vec::new()),
            inputs: None,
            instance: None,
        }
    }

    /// A resolver for `module` called with `inputs` (the evaluated arguments of its `module`
    /// block): an omitted argument takes the variable's default, and tfvars do not apply.
    pub fn with_inputs(module: &'m Module, inputs: BTreeMap<String, Value>) -> Self {
        Resolver {
            inputs: Some(std::rc::Rc::new(inputs)),
            ..Resolver::new(module)
        }
    }

    /// This resolver with `each.key`, `each.value` or `count.index` bound (names as written,
    /// e.g. `each.key`), for the arguments of one instance of a `module` block.
    pub fn for_instance(&self, bindings: BTreeMap<String, Value>) -> Self {
        Resolver {
            module: self.module,
            steps: RefCell::new(Vec::new()),
            inputs: self.inputs.clone(),
            instance: Some(std::rc::Rc::new(bindings)),
        }
    }

    /// The module this resolver evaluates in.
    pub fn module(&self) -> &'m Module {
        self.module
    }

    /// Evaluates `expr`, found in file `file` of the module, and returns the value with the
    /// variables and locals followed on the way.
    pub fn resolve(&self, expr: &Expression, file: usize) -> (Value, Vec<Step>) {
        self.steps.borrow_mut().clear();
        let value = self.eval(expr, file, 0);
        (value, self.steps.borrow().clone())
    }

    /// Evaluates without recording steps (for conditions, counts, policies).
    pub fn value_of(&self, expr: &Expression, file: usize) -> Value {
        let saved = self.steps.borrow().clone();
        let value = self.eval(expr, file, 0);
        *self.steps.borrow_mut() = saved;
        value
    }

    fn eval(&self, expr: &Expression, file: usize, depth: usize) -> Value {
        if depth > MAX_DEPTH {
            return Value::Unknown("expression nests too deeply to follow".into());
        }
        let depth = depth + 1;
        match expr {
            Expression::Null(_) => Value::Null,
            Expression::Bool(b) => Value::Bool(*b.value()),
            Expression::Number(n) => n
                .value()
                .as_f64()
                .map_or(Value::Unknown("number".into()), Value::Number),
            Expression::String(s) => Value::String(s.value().clone()),
            Expression::StringTemplate(t) => self.eval_template(t, file, depth),
            Expression::HeredocTemplate(h) => self.eval_template(&h.template, file, depth),
            Expression::Parenthesis(p) => self.eval(p.inner(), file, depth),
            Expression::Array(array) => {
                Value::List(array.iter().map(|e| self.eval(e, file, depth)).collect())
            }
            Expression::Object(object) => {
                let mut map = BTreeMap::new();
                for (key, value) in object.iter() {
                    let key = match key {
                        ObjectKey::Ident(ident) => ident.as_str().to_owned(),
                        ObjectKey::Expression(expr) => match self.eval(expr, file, depth) {
                            Value::String(s) => s,
                            _ => {
                                return Value::Unknown(
                                    "an object key that is not a known string".into(),
                                )
                            }
                        },
                    };
                    map.insert(key, self.eval(value.expr(), file, depth));
                }
                Value::Object(map)
            }
            Expression::Variable(ident) => Value::Unknown(format!("`{}`", ident.as_str())),
            Expression::Traversal(traversal) => {
                self.eval_traversal(&traversal.expr, &traversal.operators, file, depth)
            }
            Expression::Conditional(cond) => {
                match truthiness(&self.eval(&cond.cond_expr, file, depth)) {
                    Some(true) => self.eval(&cond.true_expr, file, depth),
                    Some(false) => self.eval(&cond.false_expr, file, depth),
                    None => one_of(vec![
                        self.eval(&cond.true_expr, file, depth),
                        self.eval(&cond.false_expr, file, depth),
                    ]),
                }
            }
            Expression::FuncCall(call) => {
                let args: Vec<&Expression> = call.args.iter().collect();
                if !call.name.namespace.is_empty() {
                    return Value::Unknown(format!("function {}", call.name.name.as_str()));
                }
                self.eval_call(call.name.name.as_str(), &args, file, depth)
            }
            Expression::UnaryOp(op) => {
                match (op.operator.value(), self.eval(&op.expr, file, depth)) {
                    (UnaryOperator::Not, Value::Bool(b)) => Value::Bool(!b),
                    (UnaryOperator::Neg, Value::Number(n)) => Value::Number(-n),
                    _ => Value::Unknown("an operation on unknown values".into()),
                }
            }
            Expression::BinaryOp(op) => {
                let lhs = self.eval(&op.lhs_expr, file, depth);
                let rhs = self.eval(&op.rhs_expr, file, depth);
                binary(*op.operator.value(), &lhs, &rhs)
            }
            Expression::ForExpr(_) => Value::Unknown("a for expression".into()),
        }
    }

    fn eval_template(&self, template: &Template, file: usize, depth: usize) -> Value {
        // `"${x}"` alone is `x` itself, unconverted (HCL's rule; common in 0.11-era code).
        if let [Element::Interpolation(only)] = template.iter().collect::<Vec<_>>().as_slice() {
            return self.eval(&only.expr, file, depth);
        }
        let mut out = String::new();
        let mut partial = false;
        for element in template.iter() {
            match element {
                Element::Literal(literal) => out.push_str(literal.value()),
                Element::Interpolation(interpolation) => {
                    match self.eval(&interpolation.expr, file, depth) {
                        Value::String(s) => out.push_str(&s),
                        Value::Number(n) => out.push_str(&format_number(n)),
                        Value::Bool(b) => out.push_str(if b { "true" } else { "false" }),
                        Value::Partial(s) => {
                            out.push_str(&s);
                            partial = true;
                        }
                        Value::Error(e) => return Value::Error(e),
                        Value::Null => {
                            return Value::Error("null interpolated into a string".into())
                        }
                        _ => {
                            out.push(UNKNOWN_PART);
                            partial = true;
                        }
                    }
                }
                Element::Directive(_) => {
                    out.push(UNKNOWN_PART);
                    partial = true;
                }
            }
        }
        if partial {
            Value::Partial(out)
        } else {
            Value::String(out)
        }
    }

    fn eval_call(&self, name: &str, args: &[&Expression], file: usize, depth: usize) -> Value {
        let arg = |i: usize| args.get(i).map(|e| self.eval(e, file, depth));
        match name {
            "try" => {
                for expr in args {
                    match self.eval(expr, file, depth) {
                        Value::Error(_) => continue,
                        value => return value,
                    }
                }
                Value::Error("no argument of try succeeded".into())
            }
            "coalesce" => {
                let mut pending = Vec::new();
                for expr in args {
                    match self.eval(expr, file, depth) {
                        Value::Null => continue,
                        Value::String(s) if s.is_empty() => continue,
                        Value::Error(e) => return Value::Error(e),
                        value @ (Value::String(_)
                        | Value::Number(_)
                        | Value::Bool(_)
                        | Value::KeyAttribute { .. }
                        | Value::AwsManagedKey(_)
                        | Value::AliasArn(_)) => {
                            if pending.is_empty() {
                                return value;
                            }
                            pending.push(value);
                            return one_of(pending);
                        }
                        value => pending.push(value),
                    }
                }
                if pending.is_empty() {
                    Value::Error("coalesce has no non-null, non-empty argument".into())
                } else {
                    one_of(pending)
                }
            }
            "lookup" => match (arg(0), arg(1)) {
                (Some(Value::Object(map)), Some(Value::String(key))) => match map.get(&key) {
                    Some(value) => value.clone(),
                    None => {
                        arg(2).unwrap_or(Value::Error(format!("no key {key:?} and no default")))
                    }
                },
                (Some(Value::Error(e)), _) => Value::Error(e),
                _ => Value::Unknown("lookup in an unknown map".into()),
            },
            "join" => match (arg(0), arg(1)) {
                (Some(Value::String(sep)), Some(Value::List(items))) => {
                    let mut parts = Vec::new();
                    for item in items {
                        match item {
                            Value::String(s) => parts.push(s),
                            Value::Null => {}
                            other => {
                                return if parts.is_empty() {
                                    other
                                } else {
                                    Value::Unknown("join of unknown values".into())
                                }
                            }
                        }
                    }
                    Value::String(parts.join(&sep))
                }
                _ => Value::Unknown("join of unknown values".into()),
            },
            "one" => match arg(0) {
                Some(Value::List(items)) if items.is_empty() => Value::Null,
                Some(Value::List(mut items)) if items.len() == 1 => items.remove(0),
                Some(Value::List(_)) => {
                    Value::Error("one() of a list with several elements".into())
                }
                Some(Value::Error(e)) => Value::Error(e),
                _ => Value::Unknown("one() of an unknown list".into()),
            },
            "element" => match (arg(0), arg(1)) {
                (Some(Value::List(items)), Some(Value::Number(n))) if !items.is_empty() => {
                    items[(n as usize) % items.len()].clone()
                }
                (Some(Value::List(items)), _) if items.is_empty() => {
                    Value::Error("element() of an empty list".into())
                }
                _ => Value::Unknown("element() of unknown values".into()),
            },
            "tostring" | "trimspace" | "nonsensitive" | "sensitive" | "toset" | "tolist" => {
                match arg(0) {
                    Some(Value::String(s)) if name == "trimspace" => {
                        Value::String(s.trim().to_owned())
                    }
                    Some(value) => value,
                    None => Value::Unknown(name.into()),
                }
            }
            "length" => match arg(0) {
                Some(Value::List(items)) => Value::Number(items.len() as f64),
                Some(Value::Object(map)) => Value::Number(map.len() as f64),
                Some(Value::String(s)) => Value::Number(s.chars().count() as f64),
                _ => Value::Unknown("length of an unknown value".into()),
            },
            "format" => Value::Unknown("format()".into()),
            other => Value::Unknown(format!("function {other}()")),
        }
    }

    fn eval_traversal(
        &self,
        root: &Expression,
        operators: &[hcl_edit::Decorated<TraversalOperator>],
        file: usize,
        depth: usize,
    ) -> Value {
        let ops: Vec<&TraversalOperator> = operators.iter().map(|op| op.value()).collect();
        let Expression::Variable(root_ident) = root else {
            let base = self.eval(root, file, depth);
            return self.apply_operators(base, &ops, file, depth);
        };
        let attr = |i: usize| match ops.get(i) {
            Some(TraversalOperator::GetAttr(ident)) => Some(ident.as_str()),
            _ => None,
        };
        match root_ident.as_str() {
            "var" => {
                let Some(name) = attr(0) else {
                    return Value::Unknown("var".into());
                };
                let value = self.variable(name, depth);
                self.apply_operators_typed(value, &ops[1..], name, file, depth)
            }
            "local" => {
                let Some(name) = attr(0) else {
                    return Value::Unknown("local".into());
                };
                self.steps.borrow_mut().push(Step::Local(name.to_owned()));
                let value = match self.find_local(name) {
                    Some((local_file, expr)) => self.eval(expr, local_file, depth),
                    None => Value::Error(format!("local.{name} is not declared")),
                };
                self.apply_operators(value, &ops[1..], file, depth)
            }
            "module" => Value::External(format!("module.{}", attr(0).unwrap_or("?"))),
            "data" => {
                let (Some(data_type), Some(label)) = (attr(0), attr(1)) else {
                    return Value::Unknown("data".into());
                };
                self.data_source(data_type, label, &ops[2..], file, depth)
            }
            "count" | "each" if self.instance.is_some() => {
                let bound = attr(0).and_then(|name| {
                    self.instance
                        .as_ref()?
                        .get(&format!("{}.{name}", root_ident.as_str()))
                        .cloned()
                });
                match bound {
                    Some(value) => self.apply_operators(value, &ops[1..], file, depth),
                    None => Value::Unknown(format!("`{}`", root_ident.as_str())),
                }
            }
            "count" | "each" | "path" | "terraform" | "self" => {
                Value::Unknown(format!("`{}`", root_ident.as_str()))
            }
            resource_type => {
                let Some(label) = attr(0) else {
                    return Value::Unknown(resource_type.into());
                };
                self.resource(resource_type, label, &ops[1..], file, depth)
            }
        }
    }

    /// The value of a variable under the module's defaults, recording where it came from.
    fn variable(&self, name: &str, depth: usize) -> Value {
        if let Some(inputs) = &self.inputs {
            if let Some(value) = inputs.get(name) {
                self.steps.borrow_mut().push(Step::Variable {
                    name: name.to_owned(),
                    source: VariableSource::Caller,
                });
                return value.clone();
            }
        }
        if let Some((tfvars_file, expr)) = self
            .module
            .tfvars_value(name)
            .filter(|_| self.inputs.is_none())
        {
            self.steps.borrow_mut().push(Step::Variable {
                name: name.to_owned(),
                source: VariableSource::Tfvars,
            });
            return self.eval_in_tfvars(expr, tfvars_file, depth);
        }
        let Some(at) = self.module.find_blocks("variable", Some(name), None).next() else {
            return Value::Error(format!("var.{name} is not declared"));
        };
        let block = self.module.block(at);
        match block.body.get_attribute("default") {
            Some(default) => {
                self.steps.borrow_mut().push(Step::Variable {
                    name: name.to_owned(),
                    source: VariableSource::Default,
                });
                self.eval(&default.value, at.file, depth)
            }
            None => {
                self.steps.borrow_mut().push(Step::Variable {
                    name: name.to_owned(),
                    source: VariableSource::NoDefault,
                });
                Value::Unknown(format!(
                    "var.{name}, which has no default: the module's caller decides"
                ))
            }
        }
    }

    fn eval_in_tfvars(&self, expr: &Expression, _tfvars_file: usize, depth: usize) -> Value {
        // tfvars hold only literal values; evaluating in file 0's context is enough.
        self.eval(expr, 0, depth)
    }

    fn find_local(&self, name: &str) -> Option<(usize, &'m Expression)> {
        self.module
            .find_blocks("locals", None, None)
            .find_map(|at| {
                let block = self.module.block(at);
                block
                    .body
                    .get_attribute(name)
                    .map(|attr| (at.file, &attr.value))
            })
    }

    /// Applies operators after `var.<name>`, using the variable's type for `optional()`
    /// attribute defaults when the value lacks the attribute.
    fn apply_operators_typed(
        &self,
        value: Value,
        ops: &[&TraversalOperator],
        var_name: &str,
        file: usize,
        depth: usize,
    ) -> Value {
        if let (Value::Object(map), Some(TraversalOperator::GetAttr(attr))) = (&value, ops.first())
        {
            if !map.contains_key(attr.as_str()) {
                if let Some(default) = self.optional_default(var_name, attr.as_str()) {
                    return self.apply_operators(default, &ops[1..], file, depth);
                }
            }
        }
        self.apply_operators(value, ops, file, depth)
    }

    /// For `variable "<var>" { type = object({ <attr> = optional(T, D) }) }`, the value an
    /// absent `<attr>` takes: `D`, or `null` without one.
    fn optional_default(&self, var_name: &str, attr: &str) -> Option<Value> {
        let at = self
            .module
            .find_blocks("variable", Some(var_name), None)
            .next()?;
        let block = self.module.block(at);
        let ty = &block.body.get_attribute("type")?.value;
        let Expression::FuncCall(call) = ty else {
            return None;
        };
        if call.name.name.as_str() != "object" {
            return None;
        }
        let Some(Expression::Object(fields)) = call.args.iter().next() else {
            return None;
        };
        let field = fields.iter().find_map(|(key, value)| match key {
            ObjectKey::Ident(ident) if ident.as_str() == attr => Some(value.expr()),
            _ => None,
        })?;
        match field {
            Expression::FuncCall(optional) if optional.name.name.as_str() == "optional" => {
                Some(match optional.args.iter().nth(1) {
                    Some(default) => self.value_of(default, at.file),
                    None => Value::Null,
                })
            }
            _ => None,
        }
    }

    fn apply_operators(
        &self,
        mut value: Value,
        ops: &[&TraversalOperator],
        file: usize,
        depth: usize,
    ) -> Value {
        for op in ops {
            value = match (value, op) {
                (Value::Error(e), _) => return Value::Error(e),
                (Value::Object(mut map), TraversalOperator::GetAttr(attr)) => {
                    match map.remove(attr.as_str()) {
                        Some(v) => v,
                        None => return Value::Error(format!("no attribute {}", attr.as_str())),
                    }
                }
                (Value::Object(mut map), TraversalOperator::Index(index)) => {
                    match self.eval(index, file, depth) {
                        Value::String(key) => match map.remove(&key) {
                            Some(v) => v,
                            None => return Value::Error(format!("no key {key:?}")),
                        },
                        _ => return Value::Unknown("an index that is not known".into()),
                    }
                }
                (Value::List(items), TraversalOperator::Index(index)) => {
                    match self.eval(index, file, depth) {
                        Value::Number(n) if n >= 0.0 && (n as usize) < items.len() => {
                            items[n as usize].clone()
                        }
                        Value::Number(_) => return Value::Error("index out of range".into()),
                        _ => return Value::Unknown("an index that is not known".into()),
                    }
                }
                (Value::List(items), TraversalOperator::LegacyIndex(n)) => {
                    match items.get(*n.value() as usize) {
                        Some(v) => v.clone(),
                        None => return Value::Error("index out of range".into()),
                    }
                }
                (Value::Null, TraversalOperator::GetAttr(_) | TraversalOperator::Index(_)) => {
                    return Value::Error("attribute of null".into())
                }
                (Value::Unknown(reason), _) => return Value::Unknown(reason),
                (Value::External(what), _) => return Value::External(what),
                (_, _) => return Value::Unknown("a traversal ctfix does not follow".into()),
            };
        }
        value
    }

    /// `aws_kms_key.<label>...` and friends.
    fn resource(
        &self,
        resource_type: &str,
        label: &str,
        ops: &[&TraversalOperator],
        file: usize,
        depth: usize,
    ) -> Value {
        let Some(at) = self
            .module
            .find_blocks("resource", Some(resource_type), Some(label))
            .next()
        else {
            return match resource_type {
                "aws_kms_key" => Value::KeyAttribute {
                    label: label.to_owned(),
                    attribute: final_attribute(ops).unwrap_or("arn").to_owned(),
                },
                _ => Value::Error(format!(
                    "{resource_type}.{label} is not declared in this module"
                )),
            };
        };
        let block = self.module.block(at);
        // `[count.index]` / `[each.key]` select the instance that goes with the referring
        // resource's own: their counts agree by construction, so the instance exists.
        let own_instance =
            matches!(ops.first(), Some(TraversalOperator::Index(index)) if is_own_instance(index));
        // Otherwise the count decides what the reference yields, so the variables it reads
        // are part of the value's provenance (a fix must not treat them as the module's own
        // choice).
        let instances = self.count_instances(at, !own_instance);
        // Split `[index]` / splat from the attribute access.
        let (splat, indexed, rest) = match ops.first() {
            Some(TraversalOperator::AttrSplat(_) | TraversalOperator::FullSplat(_)) => {
                (true, false, &ops[1..])
            }
            Some(TraversalOperator::Index(_) | TraversalOperator::LegacyIndex(_)) => {
                (false, true, &ops[1..])
            }
            _ => (false, false, ops),
        };
        let attribute = match rest.first() {
            Some(TraversalOperator::GetAttr(a)) => a.as_str().to_owned(),
            _ => return Value::Unknown(format!("{resource_type}.{label} without an attribute")),
        };
        let single = match resource_type {
            "aws_kms_key" => Value::KeyAttribute {
                label: label.to_owned(),
                attribute: attribute.clone(),
            },
            "aws_kms_alias" => match attribute.as_str() {
                "target_key_arn" | "target_key_id" => {
                    match block.body.get_attribute("target_key_id") {
                        Some(target) => match self.eval(&target.value, at.file, depth) {
                            Value::KeyAttribute { label, .. } => Value::KeyAttribute {
                                label,
                                attribute: if attribute == "target_key_arn" {
                                    "arn".into()
                                } else {
                                    "key_id".into()
                                },
                            },
                            other => other,
                        },
                        None => Value::Unknown("aws_kms_alias without target_key_id".into()),
                    }
                }
                "arn" => Value::AliasArn(format!("{resource_type}.{label}.arn")),
                _ => Value::Unknown(format!("{resource_type}.{label}.{attribute}")),
            },
            _ => Value::External(format!("{resource_type}.{label}.{attribute}")),
        };
        let _ = file;
        if splat {
            return match instances {
                Instances::Count(n) => Value::List(vec![single; n]),
                Instances::Single => Value::List(vec![single]),
                Instances::Unknown => {
                    Value::Unknown(format!("how many {resource_type}.{label} exist"))
                }
            };
        }
        match (indexed, instances) {
            (true, Instances::Count(0)) if !own_instance => {
                Value::Error(format!("{resource_type}.{label} has count = 0"))
            }
            (false, Instances::Count(_)) => Value::Error(format!(
                "{resource_type}.{label} has count and needs an index"
            )),
            _ => single,
        }
    }

    /// How many instances a resource has under the module's defaults.
    pub fn instance_count(&self, at: BlockRef) -> Instances {
        self.count_instances(at, false)
    }

    fn count_instances(&self, at: BlockRef, record_steps: bool) -> Instances {
        let block = self.module.block(at);
        if let Some(count) = block.body.get_attribute("count") {
            let value = if record_steps {
                self.eval(&count.value, at.file, 0)
            } else {
                self.value_of(&count.value, at.file)
            };
            return match value {
                Value::Number(n) if n >= 0.0 => Instances::Count(n as usize),
                Value::Bool(b) => Instances::Count(usize::from(b)),
                _ => Instances::Unknown,
            };
        }
        if block.body.has_attribute("for_each") {
            return Instances::Unknown;
        }
        Instances::Single
    }

    /// `data.<type>.<label>...`: AWS-managed keys and aliases are recognised; anything else
    /// is outside the module's control.
    fn data_source(
        &self,
        data_type: &str,
        label: &str,
        ops: &[&TraversalOperator],
        _file: usize,
        _depth: usize,
    ) -> Value {
        let attribute = final_attribute(ops).unwrap_or("");
        let at = self
            .module
            .find_blocks("data", Some(data_type), Some(label))
            .next();
        let arg = |name: &str| {
            at.and_then(|at| {
                let block = self.module.block(at);
                block
                    .body
                    .get_attribute(name)
                    .map(|a| self.value_of(&a.value, at.file))
            })
        };
        match data_type {
            "aws_kms_key" => match arg("key_id") {
                Some(Value::String(id)) if is_aws_managed_alias(&id) => Value::AwsManagedKey(id),
                // Looked up through an AWS-managed alias (`data.aws_kms_alias.x.target_key_id`).
                Some(Value::AwsManagedKey(id)) => Value::AwsManagedKey(id),
                // The `key_id` argument as written: a key ARN stays one.
                Some(Value::String(id)) if attribute == "key_id" && is_key_arn(&id) => {
                    Value::String(id)
                }
                _ if matches!(attribute, "key_id" | "id") => {
                    Value::KeyId(format!("data.{data_type}.{label}.{attribute}"))
                }
                Some(Value::String(id)) if attribute == "arn" && is_key_arn(&id) => {
                    Value::String(id)
                }
                _ => Value::External(format!("data.{data_type}.{label}.{attribute}")),
            },
            "aws_kms_alias" => match (arg("name"), attribute) {
                (Some(Value::String(name)), _) if is_aws_managed_alias(&name) => {
                    Value::AwsManagedKey(name)
                }
                (_, "arn") => Value::AliasArn(format!("data.{data_type}.{label}.arn")),
                _ => Value::External(format!("data.{data_type}.{label}.{attribute}")),
            },
            _ => Value::External(format!("data.{data_type}.{label}.{attribute}")),
        }
    }
}

/// How many instances a resource has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Instances {
    /// No `count` or `for_each`.
    Single,
    /// `count` with a known value.
    Count(usize),
    /// `for_each`, or a `count` ctfix cannot evaluate.
    Unknown,
}

/// `count.index`, `each.key` or `each.value`.
fn is_own_instance(index: &Expression) -> bool {
    let Expression::Traversal(traversal) = index else {
        return false;
    };
    let Expression::Variable(root) = &traversal.expr else {
        return false;
    };
    matches!(root.as_str(), "count" | "each")
}

fn final_attribute<'a>(ops: &[&'a TraversalOperator]) -> Option<&'a str> {
    ops.iter().rev().find_map(|op| match op {
        TraversalOperator::GetAttr(ident) => Some(ident.as_str()),
        _ => None,
    })
}

/// Collapses nested and duplicate alternatives.
fn one_of(values: Vec<Value>) -> Value {
    let mut flat: Vec<Value> = Vec::new();
    for value in values {
        match value {
            Value::OneOf(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    flat.dedup();
    if flat.len() == 1 {
        flat.remove(0)
    } else {
        Value::OneOf(flat)
    }
}

fn truthiness(value: &Value) -> Option<bool> {
    match value {
        Value::Bool(b) => Some(*b),
        Value::String(s) if s == "true" => Some(true),
        Value::String(s) if s == "false" => Some(false),
        _ => None,
    }
}

fn format_number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{}", n as i64)
    } else {
        n.to_string()
    }
}

fn is_known(value: &Value) -> bool {
    matches!(
        value,
        Value::Null
            | Value::Bool(_)
            | Value::Number(_)
            | Value::String(_)
            | Value::List(_)
            | Value::Object(_)
    ) && match value {
        Value::List(items) => items.iter().all(is_known),
        Value::Object(map) => map.values().all(is_known),
        _ => true,
    }
}

fn binary(op: BinaryOperator, lhs: &Value, rhs: &Value) -> Value {
    use BinaryOperator as B;
    if let Value::Error(e) = lhs {
        return Value::Error(e.clone());
    }
    if let Value::Error(e) = rhs {
        return Value::Error(e.clone());
    }
    match op {
        B::Eq | B::NotEq => {
            if !is_known(lhs) || !is_known(rhs) {
                return Value::Unknown("a comparison with unknown values".into());
            }
            let equal = lhs == rhs;
            Value::Bool(if op == B::Eq { equal } else { !equal })
        }
        B::And | B::Or => match (truthiness(lhs), truthiness(rhs)) {
            (Some(a), Some(b)) => Value::Bool(if op == B::And { a && b } else { a || b }),
            (Some(false), None) | (None, Some(false)) if op == B::And => Value::Bool(false),
            (Some(true), None) | (None, Some(true)) if op == B::Or => Value::Bool(true),
            _ => Value::Unknown("a condition with unknown values".into()),
        },
        _ => match (lhs, rhs) {
            (Value::Number(a), Value::Number(b)) => match op {
                B::Less => Value::Bool(a < b),
                B::LessEq => Value::Bool(a <= b),
                B::Greater => Value::Bool(a > b),
                B::GreaterEq => Value::Bool(a >= b),
                B::Plus => Value::Number(a + b),
                B::Minus => Value::Number(a - b),
                B::Mul => Value::Number(a * b),
                B::Div if *b != 0.0 => Value::Number(a / b),
                B::Mod if *b != 0.0 => Value::Number(a % b),
                _ => Value::Unknown("arithmetic".into()),
            },
            _ => Value::Unknown("an operation on unknown values".into()),
        },
    }
}

/// `alias/aws/...` or an alias ARN ending in `:alias/aws/...`: keys AWS manages.
pub fn is_aws_managed_alias(text: &str) -> bool {
    text.starts_with("alias/aws/") || text.contains(":alias/aws/")
}

/// `arn:<partition>:kms:<region>:<account>:key/<id>`, checked part by part as `.ctfix.toml`'s
/// `use-key` is (a known partition, a region, 12 digits, a UUID or `mrk-` and 32 hex digits).
/// Unknown parts are allowed where they could hold such text.
pub fn is_key_arn(text: &str) -> bool {
    key_arn_problem(text).is_none()
}

/// Why `text` is not a key ARN, or `None` when it may be one (see [`is_key_arn`]).
pub fn key_arn_problem(text: &str) -> Option<String> {
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    if parts.len() != 6 || parts[0] != "arn" {
        return Some("not an ARN".to_owned());
    }
    let unknown = |s: &str| s.contains(UNKNOWN_PART);
    // An unknown part stands for a valid one; the known parts are checked as written.
    let resource = match parts[5].strip_prefix("key/") {
        Some(id) if unknown(id) => {
            let known_ok = id
                .chars()
                .all(|c| c == UNKNOWN_PART || c == '-' || c.is_ascii_hexdigit())
                || id.starts_with("mrk-");
            if !known_ok {
                return Some(format!(
                    "{:?} is not a key ID",
                    id.replace(UNKNOWN_PART, "…")
                ));
            }
            "key/12345678-1234-1234-1234-123456789012".to_owned()
        }
        _ if parts[5] == UNKNOWN_PART.to_string() => {
            "key/12345678-1234-1234-1234-123456789012".to_owned()
        }
        _ => parts[5].to_owned(),
    };
    let probe = [
        if unknown(parts[1]) { "aws" } else { parts[1] },
        if unknown(parts[2]) { "kms" } else { parts[2] },
        if unknown(parts[3]) {
            "us-east-1"
        } else {
            parts[3]
        },
        if unknown(parts[4]) {
            "123456789012"
        } else {
            parts[4]
        },
    ];
    let probe = format!(
        "arn:{}:{}:{}:{}:{resource}",
        probe[0], probe[1], probe[2], probe[3]
    );
    crate::config::check_key_arn(&probe).err().map(|why| {
        // The checker names the ARN first; the caller shows the value already.
        let named = format!("{probe:?}");
        match why.strip_prefix(&named) {
            Some(rest) => match rest.strip_prefix(": ") {
                Some(rest) => rest.to_owned(),
                None => format!("it{rest}"),
            },
            None => why,
        }
    })
}

/// `arn:...:kms:...:alias/<name>` or `alias/<name>`.
pub fn is_alias(text: &str) -> bool {
    text.starts_with("alias/") || (text.starts_with("arn:") && text.contains(":alias/"))
}

impl Module {
    /// The value a tfvars file gives `name`, with the index of that tfvars file.
    pub fn tfvars_value(&self, name: &str) -> Option<(usize, &Expression)> {
        // Later files win: terraform.tfvars(.json), then *.auto.tfvars(.json) in lexical order.
        self.tfvars
            .iter()
            .enumerate()
            .rev()
            .find_map(|(i, (_, body))| body.get_attribute(name).map(|attr| (i, &attr.value)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_arns() {
        assert!(is_key_arn(
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
        ));
        assert!(is_key_arn(
            "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/mrk-1234567890abcdef1234567890abcdef"
        ));
        // Checked part by part, as `use-key` is: placeholders and typos are no key ARN.
        for bad in [
            "arn:aws-us-gov:kms:us-gov-west-1:123456789012:key/x",
            "arn:aws:kms:us-east-1:123456789012:key/alias/aws/s3",
            "arn:aws:kms:us-east-1:123456789012:key/REPLACE_ME",
            "arn:aws:kms:us-east-1:123456789012:key/12345678-1234-1234-1234-12345678901Z",
            "arn:aws:kms:us-east-1:123456789012:key/12345678-1234-1234-1234-123456789012 ",
            "arn:aws:kms:us-east-1:12345678901:key/12345678-1234-1234-1234-123456789012",
            "arn:aws:kms:useast1:123456789012:key/12345678-1234-1234-1234-123456789012",
        ] {
            assert!(!is_key_arn(bad), "{bad}");
        }
        assert!(is_key_arn(&format!(
            "arn:aws:kms:us-east-1:{u}:key/12345678-1234-1234-1234-123456789012",
            u = UNKNOWN_PART
        )));
        assert!(!is_key_arn(&format!(
            "arn:aws:kms:us-east-1:123456789012:key/REPLACE_{u}",
            u = UNKNOWN_PART
        )));
        assert!(is_key_arn(&format!(
            "arn:aws:kms:{u}:{u}:key/{u}",
            u = UNKNOWN_PART
        )));
        assert!(!is_key_arn(
            "arn:aws:kms:us-east-1:123456789012:alias/trail"
        ));
        assert!(!is_key_arn("kms-key"));
        assert!(!is_key_arn("1234abcd-12ab-34cd-56ef-1234567890ab"));
        assert!(!is_key_arn("arn:aws:s3:::bucket"));
        assert!(is_alias("alias/trail"));
        assert!(is_aws_managed_alias(
            "arn:aws:kms:us-east-1:123456789012:alias/aws/s3"
        ));
    }
}
