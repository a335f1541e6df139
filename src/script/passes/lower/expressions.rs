//! Lowering of expressions: variables and array elements to their slots, operators to
//! the IR's, assignments, and the aggregate figures.

use super::*;

impl Lowering<'_> {
    pub(super) fn int(&mut self, e: &Expr) -> Result<IntExpr, ScriptError> {
        match self.value(e)? {
            Value::Int(v) => Ok(v),
            Value::Str(_) => Err(self.mismatch(e.span, Ty::Long, Ty::Str)),
            Value::Hist(_) => Err(self.mismatch(e.span, Ty::Long, Ty::Stats)),
        }
    }

    pub(super) fn str(&mut self, e: &Expr) -> Result<StrExpr, ScriptError> {
        match self.value(e)? {
            Value::Str(v) => Ok(v),
            Value::Int(_) => Err(self.mismatch(e.span, Ty::Str, Ty::Long)),
            Value::Hist(_) => Err(self.mismatch(e.span, Ty::Str, Ty::Stats)),
        }
    }

    pub(super) fn slot(&mut self, name: &str, span: Span) -> Result<(Ty, Slot), ScriptError> {
        if self.at_entry && self.symbols.global(self.body, name).is_none() {
            return Err(self.error(
                span,
                format!(
                    "'{name}' is a local of the .return probe, which has no value yet at the \
                     function's entry, where @entry evaluates its expression"
                ),
            ));
        }
        if let Some(&(ty, index)) = self.local_slots.get(name) {
            return Ok((ty, Slot::Local(index)));
        }
        if self.symbols.global(self.body, name).is_some() {
            if let Some(&(ty, index)) = self.layout.scalars.get(name) {
                return Ok((ty, Slot::Global(index)));
            }
            return Err(self.error(
                span,
                format!("'{name}' is an array: name an element, as in {name}[key]"),
            ));
        }
        let ty = self.symbols.var(self.body, name).ok_or_else(|| {
            // In a probe on an alias, most likely a variable the alias does not give.
            let given = match self.expansion {
                Some(expansion) if !expansion.variables.is_empty() => format!(
                    "; {} gives {}",
                    expansion.name,
                    expansion.variables.join(", ")
                ),
                _ => String::new(),
            };
            self.error(
                span,
                format!("cannot tell the type of '{name}': it is never assigned a value{given}"),
            )
        })?;
        Ok((ty, self.local(name, ty, span)?))
    }

    /// A new local of type `ty`.
    pub(super) fn local(&mut self, name: &str, ty: Ty, span: Span) -> Result<Slot, ScriptError> {
        let counter = match ty {
            Ty::Long => &mut self.int_locals,
            Ty::Str => &mut self.str_locals,
            Ty::Stats => {
                return Err(self.error(
                    span,
                    format!("statistics aggregate '{name}' must be declared global"),
                ))
            }
        };
        let index = *counter;
        *counter += 1;
        self.local_slots.insert(name.to_string(), (ty, index));
        Ok(Slot::Local(index))
    }

    pub(super) fn array(&self, name: &Name) -> Result<usize, ScriptError> {
        if let Some(&array) = self.layout.arrays.get(&name.name) {
            return Ok(array);
        }
        let message = if self.layout.scalars.contains_key(&name.name) {
            format!("'{}' is not an array", name.name)
        } else {
            format!(
                "array '{}' is not declared: arrays are global, add `global {}`",
                name.name, name.name
            )
        };
        Err(self.error(name.span, message))
    }

    pub(super) fn key_count(&self, array: &Name, given: usize, wanted: usize) -> ScriptError {
        self.error(
            array.span,
            format!(
                "array '{}' has {wanted} key{} elsewhere, {given} here",
                array.name,
                if wanted == 1 { "" } else { "s" }
            ),
        )
    }

    /// `array[keys]`, with each key checked against the array's key types; also the
    /// element's value type.
    pub(super) fn element(
        &mut self,
        array: &Name,
        keys: &[Expr],
        span: Span,
    ) -> Result<(Ty, ElementRef), ScriptError> {
        let index = self.array(array)?;
        let info = &self.layout.globals.arrays[index];
        let (key_types, value) = (info.keys.clone(), info.value);
        if keys.len() != key_types.len() {
            return Err(self.key_count(array, keys.len(), key_types.len()));
        }
        let mut lowered = Vec::with_capacity(keys.len());
        for (key, ty) in keys.iter().zip(key_types) {
            lowered.push(match ty {
                Ty::Str => Value::Str(self.str(key)?),
                _ => Value::Int(self.int(key)?),
            });
        }
        Ok((
            value,
            ElementRef {
                array: index,
                keys: lowered,
                span,
            },
        ))
    }

    /// `a[k, *]`: the keys given, each lowered to the array's key type, and `None` for `*`.
    pub(super) fn key_slice(
        &mut self,
        array: &Name,
        keys: &[Expr],
    ) -> Result<KeySlice, ScriptError> {
        let index = self.array(array)?;
        let key_types = self.layout.globals.arrays[index].keys.clone();
        if keys.len() != key_types.len() {
            return Err(self.key_count(array, keys.len(), key_types.len()));
        }
        let mut lowered = Vec::with_capacity(keys.len());
        for (key, ty) in keys.iter().zip(key_types) {
            lowered.push(match (&key.kind, ty) {
                (ExprKind::AnyKey, _) => None,
                (_, Ty::Str) => Some(Value::Str(self.str(key)?)),
                (_, _) => Some(Value::Int(self.int(key)?)),
            });
        }
        Ok(KeySlice {
            array: index,
            keys: lowered,
        })
    }

    /// A variable or array element that can be assigned to, with its type.
    pub(super) fn place(&mut self, target: &Expr) -> Result<(Ty, Place), ScriptError> {
        match &target.kind {
            ExprKind::Var(name) => {
                let (ty, slot) = self.slot(name, target.span)?;
                Ok((ty, Place::Var(slot)))
            }
            ExprKind::Index { array, keys } => {
                let (ty, element) = self.element(array, keys, target.span)?;
                Ok((ty, Place::Element(element)))
            }
            // The parser lets `$value` through for procfs probes; this probe is not one.
            ExprKind::Target(written) => Err(self.error(target.span, written.assignment_refusal())),
            _ => Err(self.error(target.span, "expected a variable or an array element")),
        }
    }

    /// A place that is about to change: not an element of an array being iterated.
    pub(super) fn changing_place(&mut self, target: &Expr) -> Result<(Ty, Place), ScriptError> {
        let (ty, place) = self.place(target)?;
        if let Place::Element(element) = &place {
            self.check_unchanged(element.array, target.span)?;
        }
        Ok((ty, place))
    }

    pub(super) fn check_unchanged(&self, array: usize, span: Span) -> Result<(), ScriptError> {
        if self.iterating.contains(&array) {
            let name = &self.layout.globals.arrays[array].name;
            return Err(self.error(
                span,
                format!("variable '{name}' modified during 'foreach' iteration"),
            ));
        }
        Ok(())
    }

    pub(super) fn aggregate_read(&self, ty: Ty, span: Span) -> Result<(), ScriptError> {
        if ty == Ty::Stats {
            return Err(self.error(
                span,
                "a statistics aggregate is read with @count, @sum, @min, @max, @avg, @variance or a histogram",
            ));
        }
        Ok(())
    }

    pub(super) fn value(&mut self, e: &Expr) -> Result<Value, ScriptError> {
        Ok(match &e.kind {
            ExprKind::Number(n) => Value::Int(IntExpr::Const(*n)),
            ExprKind::Target(target) => self.target_value(target, e.span)?,
            ExprKind::Entry(inner) => self.entry_value(inner, e.span)?,
            ExprKind::Defined(inner) => Value::Int(self.defined(inner, e.span)?),
            ExprKind::Str(lit) => Value::Str(StrExpr::Const(string_value(&lit.value, self.limits))),
            ExprKind::Var(name) => {
                let (ty, slot) = self.slot(name, e.span)?;
                self.aggregate_read(ty, e.span)?;
                match ty {
                    Ty::Str => Value::Str(StrExpr::Var(slot)),
                    _ => Value::Int(IntExpr::Var(slot)),
                }
            }
            ExprKind::Index { array, keys } => {
                let (ty, element) = self.element(array, keys, e.span)?;
                self.aggregate_read(ty, e.span)?;
                match ty {
                    Ty::Str => Value::Str(StrExpr::Element(element)),
                    _ => Value::Int(IntExpr::Element(element)),
                }
            }
            ExprKind::In { keys, array } if is_slice(keys) => {
                Value::Int(IntExpr::ContainsSlice(self.key_slice(array, keys)?))
            }
            ExprKind::In { keys, array } => {
                let (_, element) = self.element(array, keys, e.span)?;
                Value::Int(IntExpr::Contains(element))
            }
            ExprKind::AnyKey => {
                return Err(self.error(
                    e.span,
                    "`*` stands for any key only in `delete`, `in` and `foreach`",
                ))
            }
            ExprKind::Call {
                name,
                name_span,
                args,
            } => self.call(name, *name_span, args)?,
            ExprKind::Unary { op, operand } => {
                let operand = Box::new(self.int(operand)?);
                Value::Int(match op {
                    Op::Minus => IntExpr::Neg(operand),
                    Op::Bang => IntExpr::Not(operand),
                    Op::Tilde => IntExpr::BitNot(operand),
                    _ => *operand,
                })
            }
            ExprKind::Binary {
                op,
                op_span,
                left,
                right,
            } => self.binary(*op, *op_span, left, right)?,
            ExprKind::Ternary {
                condition,
                then,
                otherwise,
            } => {
                let condition = Box::new(self.int(condition)?);
                match self.value(then)? {
                    Value::Str(then) => Value::Str(StrExpr::Cond(
                        condition,
                        Box::new(then),
                        Box::new(self.str(otherwise)?),
                    )),
                    Value::Int(then) => Value::Int(IntExpr::Cond(
                        condition,
                        Box::new(then),
                        Box::new(self.int(otherwise)?),
                    )),
                    Value::Hist(_) => return Err(self.mismatch(then.span, Ty::Long, Ty::Stats)),
                }
            }
            ExprKind::Assign {
                op, target, value, ..
            } => self.assignment(e.span, *op, target, value)?,
            ExprKind::Increment {
                target,
                delta,
                postfix,
            } => {
                let (ty, place) = self.changing_place(target)?;
                if ty != Ty::Long {
                    return Err(self.error(
                        e.span,
                        format!(
                            "'{}' applies to a long, not a {}",
                            if *delta > 0 { "++" } else { "--" },
                            ty.name()
                        ),
                    ));
                }
                Value::Int(IntExpr::Increment {
                    place,
                    delta: *delta,
                    postfix: *postfix,
                })
            }
            ExprKind::Aggregate { .. } => {
                return Err(self.error(e.span, "'<<<' is a statement and has no value to use"))
            }
            ExprKind::Stat {
                op,
                op_span,
                operand,
                args,
            } => {
                let Some(what) = stat_op(op) else {
                    return Err(self.error(
                        *op_span,
                        format!("@{op} can only be printed, as in print(@{op}(x))"),
                    ));
                };
                let shift = match (what, args.as_slice()) {
                    (StatOp::Variance, []) => Some(0),
                    (_, []) => None,
                    (StatOp::Variance, [shift]) => match shift.kind {
                        ExprKind::Number(n @ 0..=MAX_VARIANCE_SHIFT) => Some(n as u32),
                        _ => {
                            return Err(self.error(
                                shift.span,
                                format!(
                                    "@variance's bit shift must be a literal number from 0 \
                                     to {MAX_VARIANCE_SHIFT}"
                                ),
                            ))
                        }
                    },
                    (StatOp::Variance, _) => {
                        return Err(self.error(
                            *op_span,
                            "@variance takes the aggregate and, optionally, a bit shift",
                        ))
                    }
                    _ => {
                        return Err(self.error(*op_span, format!("@{op} takes only the aggregate")))
                    }
                };
                let place = self.aggregate(operand)?;
                if let Some(shift) = shift {
                    let shape = self.wide.shapes.entry(Aggregates::of(&place)).or_default();
                    // SystemTap keeps one shift per aggregate; 0 is its "none given".
                    let previous = shape.variance_shift;
                    if previous != 0 && previous != shift {
                        return Err(self.error(
                            *op_span,
                            format!("conflicting bit shifts declared (previously {previous})"),
                        ));
                    }
                    shape.variance_shift = shift;
                }
                Value::Int(IntExpr::Stat(what, place, *op_span))
            }
        })
    }

    /// The aggregate a statistics operator reads.
    pub(super) fn aggregate(&mut self, operand: &Expr) -> Result<Place, ScriptError> {
        let (ty, place) = self.place(operand)?;
        if ty != Ty::Stats {
            return Err(self.error(
                operand.span,
                format!(
                    "expected a statistics aggregate (filled with '<<<'), found a {}",
                    ty.name()
                ),
            ));
        }
        Ok(place)
    }

    pub(super) fn assignment(
        &mut self,
        span: Span,
        op: Op,
        target: &Expr,
        value: &Expr,
    ) -> Result<Value, ScriptError> {
        let value_span = value.span;
        let value = self.value(value)?;
        let (ty, place) = self.changing_place(target)?;
        let refused = |lowering: &Self| {
            lowering.error(
                target.span,
                format!(
                    "'{}' cannot be applied to '{}', a {}",
                    op.text(),
                    lowering.source.slice(target.span),
                    ty.name()
                ),
            )
        };
        Ok(match (ty, value) {
            (Ty::Stats, _) => {
                return Err(self.error(
                    target.span,
                    "a statistics aggregate takes values with '<<<', not an assignment",
                ))
            }
            (Ty::Long, _) if op == Op::DotAssign => return Err(refused(self)),
            (Ty::Long, Value::Int(v)) => Value::Int(IntExpr::Assign(
                place,
                compound_op(op),
                Box::new(v),
                value_span,
            )),
            (Ty::Str, _) if !matches!(op, Op::Assign | Op::DotAssign) => return Err(refused(self)),
            (Ty::Str, Value::Str(v)) => {
                Value::Str(StrExpr::Assign(place, op == Op::DotAssign, Box::new(v)))
            }
            (ty, found) => return Err(self.mismatch(span, ty, value_type(&found))),
        })
    }

    pub(super) fn binary(
        &mut self,
        op: Op,
        op_span: Span,
        left: &Expr,
        right: &Expr,
    ) -> Result<Value, ScriptError> {
        if let Some(arith) = arith_op(op) {
            let (l, r) = (self.int(left)?, self.int(right)?);
            return Ok(Value::Int(IntExpr::Arith(
                arith,
                Box::new(l),
                Box::new(r),
                op_span,
            )));
        }
        if matches!(op, Op::Match | Op::NotMatch) {
            let subject = Box::new(self.str(left)?);
            let ExprKind::Str(pattern) = &right.kind else {
                return Err(self.error(right.span, "a regular expression must be a literal string"));
            };
            let text = String::from_utf8_lossy(&pattern.value);
            let regex = regex::bytes::Regex::new(&text)
                .map_err(|e| self.error(right.span, format!("invalid regular expression: {e}")))?;
            return Ok(Value::Int(IntExpr::Matches {
                subject,
                regex: Box::new(regex),
                negate: op == Op::NotMatch,
            }));
        }
        if let Some(cmp) = compare_op(op) {
            return Ok(Value::Int(match self.value(left)? {
                Value::Str(l) => IntExpr::StrCompare(cmp, Box::new(l), Box::new(self.str(right)?)),
                Value::Int(l) => IntExpr::Compare(cmp, Box::new(l), Box::new(self.int(right)?)),
                Value::Hist(_) => return Err(self.mismatch(left.span, Ty::Long, Ty::Stats)),
            }));
        }
        Ok(match op {
            Op::Dot => Value::Str(StrExpr::Concat(
                Box::new(self.str(left)?),
                Box::new(self.str(right)?),
            )),
            Op::AndAnd => Value::Int(IntExpr::And(
                Box::new(self.int(left)?),
                Box::new(self.int(right)?),
            )),
            _ => Value::Int(IntExpr::Or(
                Box::new(self.int(left)?),
                Box::new(self.int(right)?),
            )),
        })
    }
}

/// Whether a list of keys names a slice of the array rather than one element.
pub(super) fn is_slice(keys: &[Expr]) -> bool {
    keys.iter().any(|key| key.kind == ExprKind::AnyKey)
}
