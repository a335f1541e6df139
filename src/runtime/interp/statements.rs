//! Running statements: blocks, loops, `foreach`, `delete`, and calls of script and
//! library functions.

use super::*;

impl Machine {
    /// Runs statements, printing to `out`. What functions called from expressions print
    /// waits in `self.output` until the statement that called them prints or ends.
    pub(super) fn block(
        &mut self,
        body: &[Stmt],
        ctx: &dyn ProbeContext,
        out: &mut dyn Write,
    ) -> Result<(), Stop> {
        for stmt in body {
            self.statement(stmt, ctx, out)?;
            if !self.output.is_empty() {
                self.flush_pending(out)?;
            }
        }
        Ok(())
    }

    /// Prints what functions called from expressions printed.
    pub(super) fn flush_pending(&mut self, out: &mut dyn Write) -> Result<(), Stop> {
        let written = out.write_all(&self.output);
        self.output.clear();
        written.map_err(|e| Stop::Error(e.into()))
    }

    pub(super) fn statement(
        &mut self,
        stmt: &Stmt,
        ctx: &dyn ProbeContext,
        out: &mut dyn Write,
    ) -> Result<(), Stop> {
        match stmt {
            Stmt::Eval(Value::Int(e)) => {
                self.int(e, ctx)?;
            }
            Stmt::Eval(Value::Str(e)) => {
                let mut scratch = self.take_buffer();
                let result = self.str(e, ctx, &mut scratch);
                self.pool.push(scratch);
                result?;
            }
            Stmt::Eval(Value::Hist(_)) => {}
            Stmt::Print(call) => {
                let mut line = self.take_buffer();
                let result = self
                    .format(call, ctx, &mut line, PRINT_LIMIT)
                    .and_then(|()| {
                        if !self.output.is_empty() {
                            self.flush_pending(out)?;
                        }
                        out.write_all(&line).map_err(|e| Stop::Error(e.into()))
                    });
                self.pool.push(line);
                result?;
            }
            Stmt::Exit => self.exit_requested = true,
            Stmt::Abort => return Err(Stop::Abort),
            Stmt::Next => return Err(Stop::Next),
            Stmt::Break => return Err(Stop::Break),
            Stmt::Continue => return Err(Stop::Continue),
            Stmt::If(condition, then, otherwise) => {
                if self.int(condition, ctx)? != 0 {
                    self.block(then, ctx, out)?;
                } else {
                    self.block(otherwise, ctx, out)?;
                }
            }
            Stmt::Loop {
                condition,
                body,
                step,
                body_span,
            } => loop {
                self.iteration(*body_span)?;
                if let Some(condition) = condition {
                    if self.int(condition, ctx)? == 0 {
                        break;
                    }
                }
                match self.block(body, ctx, out) {
                    Ok(()) | Err(Stop::Continue) => {}
                    Err(Stop::Break) => break,
                    Err(other) => return Err(other),
                }
                self.block(step, ctx, out)?;
            },
            Stmt::Foreach(foreach) => self.foreach(foreach, ctx, out)?,
            Stmt::Delete(deletion) => self.delete(deletion, ctx)?,
            Stmt::Aggregate(place, value) => {
                let value = self.int(value, ctx)?;
                self.stats_entry(place, ctx)?.add(value);
            }
            Stmt::Call(call) => self.call(call, ctx, out)?,
            Stmt::Try {
                body,
                message,
                handler,
            } => match self.block(body, ctx, out) {
                Err(Stop::Error(error)) if error.catchable() => {
                    if let Some(slot) = message {
                        self.set_str(*slot, error.words().as_bytes());
                    }
                    self.block(handler, ctx, out)?;
                }
                other => other?,
            },
            Stmt::Library(call) => {
                let mut said = self.take_buffer();
                let result = self.library(call, ctx, &mut said);
                if result.is_ok() && call.function == Library::Warn {
                    self.warnings
                        .push(String::from_utf8_lossy(&said).into_owned());
                } else if call.function.prints() {
                    self.output.extend_from_slice(&said);
                    self.flush_pending(out)?;
                }
                self.pool.push(said);
                result?;
            }
            Stmt::Return(value) => {
                match value {
                    Some(Value::Int(e)) => self.returned_int = self.int(e, ctx)?,
                    Some(Value::Str(e)) => {
                        let mut text = self.take_buffer();
                        let result = self.str(e, ctx, &mut text);
                        std::mem::swap(&mut self.returned_str, &mut text);
                        self.pool.push(text);
                        result?;
                    }
                    Some(Value::Hist(_)) | None => {}
                }
                return Err(Stop::Return);
            }
        }
        Ok(())
    }

    pub(super) fn foreach(
        &mut self,
        foreach: &ForeachLoop,
        ctx: &dyn ProbeContext,
        out: &mut dyn Write,
    ) -> Result<(), Stop> {
        let limit = match &foreach.limit {
            Some(limit) => usize::try_from(self.int(limit, ctx)?).unwrap_or(0),
            None => usize::MAX,
        };
        let pattern = match &foreach.slice {
            Some(slice) => Some(self.key_pattern(slice, ctx)?),
            None => None,
        };
        // The body cannot change the array (lowering refuses it), so a snapshot of the
        // elements in their order is what the loop walks.
        let array = &self.arrays[foreach.array];
        let mut elements: Vec<(&Key, &Element)> = array
            .iter()
            .filter(|(key, _)| pattern.as_ref().is_none_or(|p| key_matches(key, p)))
            .collect();
        if let Some(order) = foreach.sort {
            elements.sort_by(|a, b| {
                let ordering = match order.key {
                    Some(i) => a.0[i].cmp(&b.0[i]),
                    None => compare_elements(a.1, b.1, order.figure),
                };
                if order.descending {
                    ordering.reverse()
                } else {
                    ordering
                }
            });
        }
        let snapshot: Vec<(Key, Option<Element>)> = elements
            .into_iter()
            .take(limit)
            .map(|(key, element)| {
                let value = foreach.value.map(|_| element.clone());
                (key.clone(), value)
            })
            .collect();
        for (key, value) in snapshot {
            self.iteration(foreach.body_span)?;
            for ((ty, slot), part) in foreach.keys.iter().zip(key) {
                match (ty, part) {
                    (Ty::Str, KeyPart::Str(s)) => self.set_str(*slot, &s),
                    (_, KeyPart::Int(n)) => *self.int_slot(*slot) = n,
                    (_, KeyPart::Str(_)) => {}
                }
            }
            if let (Some((_, slot)), Some(element)) = (foreach.value, value) {
                match element {
                    Element::Int(n) => *self.int_slot(slot) = n,
                    Element::Str(s) => self.set_str(slot, &s),
                    Element::Stats(_) => {}
                }
            }
            match self.block(&foreach.body, ctx, out) {
                Ok(()) | Err(Stop::Continue) => {}
                Err(Stop::Break) => break,
                Err(other) => return Err(other),
            }
        }
        Ok(())
    }

    pub(super) fn delete(
        &mut self,
        deletion: &Deletion,
        ctx: &dyn ProbeContext,
    ) -> Result<(), Stop> {
        match deletion {
            Deletion::Element(element) => {
                let key = self.key(element, ctx)?;
                self.arrays[element.array].remove(&key);
            }
            Deletion::Slice(slice) => {
                let pattern = self.key_pattern(slice, ctx)?;
                self.arrays[slice.array].remove_matching(&pattern);
            }
            Deletion::Array(array) => self.arrays[*array].clear(),
            Deletion::Var(Ty::Long, slot) => *self.int_slot(*slot) = 0,
            Deletion::Var(Ty::Str, slot) => self.set_str(*slot, b""),
            Deletion::Var(Ty::Stats, Slot::Global(i) | Slot::Local(i)) => {
                self.stats_globals[*i].clear();
            }
        }
        Ok(())
    }

    /// Runs a script function: its arguments are evaluated in the caller's frame, its body
    /// in a frame of its own; the result is left in the return slots.
    pub(super) fn call(
        &mut self,
        call: &Call,
        ctx: &dyn ProbeContext,
        out: &mut dyn Write,
    ) -> Result<(), Stop> {
        let functions = Rc::clone(&self.functions);
        let function = &functions[call.function];
        let mut ints = vec![0; function.int_locals];
        let mut strs = vec![Vec::new(); function.str_locals];
        for (arg, &(_, slot)) in call.args.iter().zip(&function.params) {
            let (Slot::Local(index) | Slot::Global(index)) = slot;
            match arg {
                Value::Str(e) => self.str(e, ctx, &mut strs[index])?,
                Value::Int(e) => ints[index] = self.int(e, ctx)?,
                Value::Hist(_) => {}
            }
        }
        if self.nesting + 1 > self.max_nesting {
            return Err(Stop::Error(RuntimeError::NestingLimit {
                near: self.source.near(function.name_span),
            }));
        }
        std::mem::swap(&mut self.int_locals, &mut ints);
        std::mem::swap(&mut self.str_locals, &mut strs);
        self.nesting += 1;
        self.returned_int = 0;
        self.returned_str.clear();
        let result = self.block(&function.body, ctx, out);
        self.nesting -= 1;
        std::mem::swap(&mut self.int_locals, &mut ints);
        std::mem::swap(&mut self.str_locals, &mut strs);
        match result {
            Ok(()) | Err(Stop::Return) => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// Runs a library function: its arguments first, then the function, whose string
    /// result (if any) goes to `dst`.
    pub(super) fn library(
        &mut self,
        call: &LibraryCall,
        ctx: &dyn ProbeContext,
        dst: &mut Vec<u8>,
    ) -> Result<Answer, Stop> {
        let mut ints = Vec::with_capacity(call.args.len());
        let mut texts: Vec<Vec<u8>> = Vec::with_capacity(call.args.len());
        for arg in &call.args {
            match arg {
                Value::Str(e) => {
                    let mut text = self.take_buffer();
                    let result = self.str(e, ctx, &mut text);
                    texts.push(text);
                    if let Err(stop) = result {
                        self.pool.extend(texts);
                        return Err(stop);
                    }
                }
                Value::Int(e) => ints.push(self.int(e, ctx)?),
                Value::Hist(_) => ints.push(0),
            }
        }
        let (mut next_int, mut next_text) = (ints.iter(), texts.iter());
        let args: Vec<library::Arg<'_>> = call
            .args
            .iter()
            .map(|arg| match arg {
                Value::Str(_) => library::Arg::Str(next_text.next().map_or(&[][..], Vec::as_slice)),
                _ => library::Arg::Int(next_int.next().copied().unwrap_or(0)),
            })
            .collect();
        let symbols = ctx.kernel_symbols();
        let result = library::call(call.function, &args, &mut self.library, symbols, dst);
        drop(args);
        self.pool.extend(texts);
        result.map_err(|Failure(message)| {
            Stop::Error(RuntimeError::Library {
                message,
                near: (call.function != Library::Error).then(|| self.source.near(call.span)),
            })
        })
    }

    /// A call whose value an expression uses: what it prints waits in `self.output`.
    pub(super) fn call_in_expression(
        &mut self,
        call: &Call,
        ctx: &dyn ProbeContext,
    ) -> Result<(), Stop> {
        let mut printed = self.take_buffer();
        let result = self.call(call, ctx, &mut printed);
        self.output.extend_from_slice(&printed);
        self.pool.push(printed);
        result
    }

    /// Charges one loop iteration against the probe's budget.
    pub(super) fn iteration(&mut self, body: Span) -> Result<(), Stop> {
        match self.iterations_left.checked_sub(1) {
            Some(left) => {
                self.iterations_left = left;
                Ok(())
            }
            None => Err(Stop::Error(RuntimeError::ActionLimit {
                near: self.source.near(body),
            })),
        }
    }
}
