//! Lowering of calls: script functions, the builtins' answers, library functions,
//! histograms, and the print family with its formats.

use super::*;

impl Lowering<'_> {
    /// The error for a call of a function that is neither the script's nor rstap's: the
    /// names it is close to, if any, else where else it might have come from.
    fn unknown_function(&self, name: &str, span: Span) -> ScriptError {
        let is_close = |known: &&str| strsim::levenshtein(name, known) <= 2;
        let mut close: Vec<&str> = builtins::names().filter(is_close).collect();
        close.extend(
            self.symbols
                .functions
                .keys()
                .map(String::as_str)
                .filter(is_close),
        );
        close.sort_unstable();
        close.dedup();
        let hint = match close.as_slice() {
            [] => "; SystemTap's tapset functions are not all in rstap's library yet".to_string(),
            names => format!("; did you mean {}?", names[..names.len().min(3)].join(", ")),
        };
        self.error(span, format!("unknown function '{name}'{hint}"))
    }

    pub(super) fn arity(
        &self,
        name: &str,
        span: Span,
        args: &[Expr],
        wanted: usize,
    ) -> Result<(), ScriptError> {
        if args.len() == wanted {
            Ok(())
        } else {
            Err(self.error(
                span,
                format!(
                    "{name}() takes {wanted} argument{}, given {}",
                    if wanted == 1 { "" } else { "s" },
                    args.len()
                ),
            ))
        }
    }

    /// A call of the script's own function `name`, if it has one: its value (`None` for a
    /// function that returns nothing) and the call.
    pub(super) fn function_call(
        &mut self,
        name: &str,
        span: Span,
        args: &[Expr],
    ) -> Result<Option<FunctionCall>, ScriptError> {
        let Some(function) = self.symbols.functions.get(name) else {
            return Ok(None);
        };
        let params = &self.symbols.params[function.body];
        self.arity(name, span, args, params.len())?;
        let mut values = Vec::with_capacity(args.len());
        for (arg, param) in args.iter().zip(params) {
            let ty = self.symbols.var(function.body, param).unwrap_or(Ty::Long);
            values.push(match ty {
                Ty::Str => Value::Str(self.str(arg)?),
                _ => Value::Int(self.int(arg)?),
            });
        }
        self.callees.push(function.index);
        Ok(Some((
            function.returns,
            Box::new(Call {
                function: function.index,
                args: values,
            }),
        )))
    }

    pub(super) fn call(
        &mut self,
        name: &str,
        span: Span,
        args: &[Expr],
    ) -> Result<Value, ScriptError> {
        if let Some(function) = self.symbols.functions.get(name) {
            if let Some(body) = &function.expanded {
                let params = &self.symbols.params[function.body];
                self.arity(name, span, args, params.len())?;
                let symbols = self.symbols;
                let lookup = |name: &str| {
                    let function = symbols.functions.get(name)?;
                    let body = function.expanded.as_ref()?;
                    Some((&symbols.params[function.body][..], body))
                };
                let Some(expanded) = inline::expand_call((params, body), args, &lookup) else {
                    return Err(self.error(
                        span,
                        format!(
                            "{name}() reads kernel memory through its parameters, so each \
                             call is expanded where it is made, and its expansion calls it \
                             again: it cannot be expanded"
                        ),
                    ));
                };
                return self.value(&expanded);
            }
        }
        if let Some((returns, call)) = self.function_call(name, span, args)? {
            return match returns {
                Some(Ty::Str) => Ok(Value::Str(StrExpr::Call(call))),
                Some(_) => Ok(Value::Int(IntExpr::Call(call))),
                None => Err(self.error(span, format!("{name}() returns no value to use"))),
            };
        }
        let Some(builtin) = builtins::lookup_by_arity(name, args.len()) else {
            return Err(self.unknown_function(name, span));
        };
        if let Answer::Print(kind) = builtin.answer {
            if !kind.gives_string() {
                return Err(self.error(span, format!("{name}() prints and has no value to use")));
            }
            return Ok(Value::Str(StrExpr::Sprintf(Box::new(
                self.print_call(name, kind, span, args)?,
            ))));
        }
        self.arity(name, span, args, builtin.params.len())?;
        Ok(match builtin.answer {
            Answer::IntFact(what) => Value::Int(IntExpr::Context(what)),
            Answer::StrFact(what) => Value::Str(StrExpr::Context(what)),
            Answer::Indent { thread } => Value::Str(StrExpr::Indent {
                thread,
                delta: Box::new(self.int(&args[0])?),
            }),
            Answer::IndentDepth { thread } => Value::Int(IntExpr::IndentDepth {
                thread,
                delta: Box::new(self.int(&args[0])?),
            }),
            Answer::Matched => {
                let group = match args.first() {
                    Some(arg) => self.int(arg)?,
                    None => IntExpr::Const(0),
                };
                Value::Str(StrExpr::Matched(Box::new(group), span))
            }
            Answer::Library(function)
                if function.is_own_process_fact() && self.target_site.has_event_task() =>
            {
                return self.value(&targets::event_task_fact(function, span));
            }
            Answer::Library(function) => {
                let call = self.library_call(name, function, span, args)?;
                let own = match builtin.returns {
                    Some(Ty::Str) => Value::Str(StrExpr::Library(call)),
                    Some(_) => Value::Int(IntExpr::Library(call)),
                    None => return Err(self.error(span, format!("{name}() has no value to use"))),
                };
                if !(function.is_own_process_fact() && self.target_site == TargetSite::Function) {
                    return Ok(own);
                }
                // A function serves every caller: the event's task's fact for a probe on
                // kernel events, rstap's own process's for the others.
                let event = self.value(&targets::event_task_fact(function, span))?;
                match (event, own) {
                    (Value::Int(event), Value::Int(own)) => Value::Int(IntExpr::ByCaller {
                        event: Box::new(event),
                        own: Box::new(own),
                    }),
                    (Value::Str(event), Value::Str(own)) => Value::Str(StrExpr::ByCaller {
                        event: Box::new(event),
                        own: Box::new(own),
                    }),
                    _ => return Err(self.error(span, format!("{name}(): mismatched forms"))),
                }
            }
            Answer::KernelRead(kind) => return self.kernel_read(name, kind, span, args),
            Answer::UserNumber { kind, on_fault } => {
                return self.user_number(name, kind, on_fault, span, args)
            }
            Answer::QuotedString { user } => return self.quoted_string(name, user, span, args),
            Answer::CurrentTask => return self.current_task(span),
            Answer::ReturnValue => return self.return_value(span),
            Answer::Argument { bytes, signed } => {
                return self.argument(name, bytes, signed, &args[0], span)
            }
            Answer::Exit | Answer::Abort | Answer::Print(_) => {
                return Err(self.error(span, format!("{name}() has no value to use")))
            }
        })
    }

    /// A library call's arguments, each of its parameter's type.
    pub(super) fn library_call(
        &mut self,
        name: &str,
        function: Library,
        span: Span,
        args: &[Expr],
    ) -> Result<Box<LibraryCall>, ScriptError> {
        let params = builtins::lookup_by_arity(name, args.len()).map_or(&[][..], |b| b.params);
        self.arity(name, span, args, params.len())?;
        let mut values = Vec::with_capacity(args.len());
        for (arg, ty) in args.iter().zip(params) {
            values.push(match ty {
                Ty::Str => Value::Str(self.str(arg)?),
                _ => Value::Int(self.int(arg)?),
            });
        }
        Ok(Box::new(LibraryCall {
            function,
            args: values,
            span,
        }))
    }

    /// `print(@hist_log(x))`: a histogram, which SystemTap prints only on its own.
    pub(super) fn histogram(
        &mut self,
        name: &str,
        print_span: Span,
        arg: &Expr,
        others: usize,
    ) -> Result<Option<Value>, ScriptError> {
        let ExprKind::Stat {
            op,
            op_span,
            operand,
            args,
        } = &arg.kind
        else {
            return Ok(None);
        };
        if stat_op(op).is_some() {
            return Ok(None);
        }
        if others > 0 {
            return Err(self.error(
                *op_span,
                format!("a histogram is printed on its own, as in {name}(@{op}(x))"),
            ));
        }
        let kind = match (op.as_str(), args.as_slice()) {
            ("hist_log", []) => HistKind::Log,
            ("hist_linear", [low, high, step]) => {
                let [low, high, step] = [low, high, step].map(|e| match e.kind {
                    ExprKind::Number(n) => Ok(n),
                    ExprKind::Unary {
                        op: Op::Minus,
                        ref operand,
                    } => match operand.kind {
                        ExprKind::Number(n) => Ok(n.wrapping_neg()),
                        _ => Err(e.span),
                    },
                    _ => Err(e.span),
                });
                let literal = |n: Result<i64, Span>| {
                    n.map_err(|span| {
                        self.error(
                            span,
                            "@hist_linear's bounds and step must be literal numbers",
                        )
                    })
                };
                let (low, high, step) = (literal(low)?, literal(high)?, literal(step)?);
                if step <= 0 {
                    return Err(self.error(arg.span, "@hist_linear's step must be positive"));
                }
                if high <= low {
                    return Err(self.error(
                        arg.span,
                        "@hist_linear's upper bound must be above its lower bound",
                    ));
                }
                // SystemTap's limit, which it checks as the script starts.
                let buckets = (i128::from(high) - i128::from(low)) / i128::from(step);
                if buckets > 125 {
                    return Err(self.error(
                        arg.span,
                        format!(
                            "@hist_linear would have {buckets} buckets: the number of buckets \
                             ((high - low) / step) must be between 1 and 126"
                        ),
                    ));
                }
                HistKind::Linear { low, high, step }
            }
            ("hist_log", _) => {
                return Err(self.error(*op_span, "@hist_log takes only the aggregate"))
            }
            _ => {
                return Err(self.error(
                    *op_span,
                    "@hist_linear takes the aggregate, a low bound, a high bound and a step",
                ))
            }
        };
        let place = self.aggregate(operand)?;
        if let HistKind::Linear { .. } = kind {
            let shape = self.wide.shapes.entry(Aggregates::of(&place)).or_default();
            if !shape.linear.contains(&kind) {
                shape.linear.push(kind);
            }
        }
        Ok(Some(Value::Hist(Box::new(Histogram {
            place,
            kind,
            print_span,
        }))))
    }

    /// `args` as print shows them (a long in decimal, anything else as text), `delimiter`
    /// between them, and a newline after them if `newline`.
    fn values_printed(
        &mut self,
        args: &[Expr],
        delimiter: &[u8],
        newline: bool,
    ) -> Result<PrintCall, ScriptError> {
        let values = args
            .iter()
            .map(|a| self.value(a))
            .collect::<Result<Vec<_>, _>>()?;
        let kinds: Vec<_> = values
            .iter()
            .map(|value| match value {
                Value::Int(_) => ArgKind::Int,
                Value::Str(_) | Value::Hist(_) => ArgKind::Str,
            })
            .collect();
        Ok(PrintCall {
            format: Format::delimited(&kinds, delimiter, newline),
            args: values,
        })
    }

    pub(super) fn print_call(
        &mut self,
        name: &str,
        kind: PrintKind,
        span: Span,
        args: &[Expr],
    ) -> Result<PrintCall, ScriptError> {
        if args.len() > MAX_PRINT_ARGS + 1 {
            return Err(self.error(
                span,
                format!("too many arguments to {name}() (at most {MAX_PRINT_ARGS})"),
            ));
        }
        if matches!(kind, PrintKind::Print | PrintKind::Sprint) && args.is_empty() {
            return Err(self.error(span, format!("{name}() needs at least one argument")));
        }
        let delimited = matches!(
            kind,
            PrintKind::Printd | PrintKind::Printdln | PrintKind::Sprintd | PrintKind::Sprintdln
        );
        if delimited {
            let delimiter = match args.first().map(|first| &first.kind) {
                Some(ExprKind::Str(lit)) => lit.value.clone(),
                _ => {
                    return Err(self.error(
                        span,
                        format!("{name}() takes a literal string, the delimiter, first"),
                    ))
                }
            };
            if args.len() < 2 {
                return Err(self.error(span, format!("{name}() needs a value to print")));
            }
            let newline = matches!(kind, PrintKind::Printdln | PrintKind::Sprintdln);
            return self.values_printed(&args[1..], &delimiter, newline);
        }
        if kind != PrintKind::Printf && kind != PrintKind::Sprintf {
            let first_histogram = match args.first() {
                Some(first) => self.histogram(name, span, first, args.len() - 1)?,
                None => None,
            };
            if let Some(histogram) = first_histogram {
                // Without the newline println would add: a histogram ends with a blank line.
                return Ok(PrintCall {
                    format: Format::for_values(&[ArgKind::Str], false),
                    args: vec![histogram],
                });
            }
            let newline = matches!(kind, PrintKind::Println | PrintKind::Sprintln);
            return self.values_printed(args, b"", newline);
        }
        let Some((format_arg, rest)) = args.split_first() else {
            return Err(self.error(span, format!("{name}() needs a format string")));
        };
        let ExprKind::Str(lit) = &format_arg.kind else {
            return Err(self.error(
                format_arg.span,
                format!("the format of {name}() must be a literal string"),
            ));
        };
        let format = Format::parse(&lit.value, &lit.escaped).map_err(|e| {
            let message = match e {
                FormatError::BadConversion(_) => {
                    "invalid or missing conversion specifier in format".to_string()
                }
                FormatError::Incomplete => e.to_string(),
            };
            self.error(format_arg.span, message)
        })?;
        let expected = format.arg_kinds();
        if expected.len() != rest.len() {
            return Err(self.error(
                span,
                format!(
                    "the format of {name}() wants {} argument{}, given {}",
                    expected.len(),
                    if expected.len() == 1 { "" } else { "s" },
                    rest.len()
                ),
            ));
        }
        let mut values = Vec::with_capacity(rest.len());
        for (arg, wanted) in rest.iter().zip(expected) {
            if let ExprKind::Stat { op, op_span, .. } = &arg.kind {
                if stat_op(op).is_none() {
                    return Err(self.error(
                        *op_span,
                        format!(
                            "a histogram is printed with print or println, as in print(@{op}(x))"
                        ),
                    ));
                }
            }
            let value = self.value(arg)?;
            let fits = matches!(
                (&value, wanted),
                (Value::Int(_), ArgKind::Int) | (Value::Str(_), ArgKind::Str)
            );
            if !fits {
                return Err(self.error(arg.span, format!("the format wants a {wanted} here")));
            }
            values.push(value);
        }
        Ok(PrintCall {
            format,
            args: values,
        })
    }
}
