//! Evaluating expressions: slots, array elements and their keys, aggregates and their
//! figures, formats, and the long and string expressions.

use super::*;
use crate::kernel::fetch::extend;

impl Machine {
    pub(super) fn int_slot(&mut self, slot: Slot) -> &mut i64 {
        match slot {
            Slot::Local(i) => &mut self.int_locals[i],
            Slot::Global(i) => &mut self.int_globals[i],
        }
    }

    pub(super) fn str_slot(&mut self, slot: Slot) -> &mut Vec<u8> {
        match slot {
            Slot::Local(i) => &mut self.str_locals[i],
            Slot::Global(i) => &mut self.str_globals[i],
        }
    }

    pub(super) fn set_str(&mut self, slot: Slot, value: &[u8]) {
        let target = self.str_slot(slot);
        target.clear();
        target.extend_from_slice(value);
    }

    /// Evaluates an element's keys.
    pub(super) fn key(
        &mut self,
        element: &ElementRef,
        ctx: &dyn ProbeContext,
    ) -> Result<Key, Stop> {
        let mut key = Vec::with_capacity(element.keys.len());
        for part in &element.keys {
            key.push(self.key_part(part, ctx)?);
        }
        Ok(key)
    }

    /// Whether the running probe reads its event's task for the functions it calls.
    fn caller_has_task(&self) -> bool {
        self.current_task_reads
            .get(self.current_probe)
            .is_some_and(Option::is_some)
    }

    /// A late read of kernel memory, from the address its expression gives now.
    fn late_read(&mut self, late: &LateValue, ctx: &dyn ProbeContext) -> Result<Kept, Stop> {
        let address = self.int(&late.address, ctx)? as u64;
        let read = match self.late_memory.as_mut() {
            Some(memory) => memory.read(late.read, address),
            None => Err(ReadFault::NoLateMemory),
        };
        read.map_err(|fault| self.read_fault(fault, late.span))
    }

    /// The keys a slice wants, evaluated: `None` where it has `*`.
    pub(super) fn key_pattern(
        &mut self,
        slice: &KeySlice,
        ctx: &dyn ProbeContext,
    ) -> Result<Vec<Option<KeyPart>>, Stop> {
        let mut pattern = Vec::with_capacity(slice.keys.len());
        for part in &slice.keys {
            pattern.push(match part {
                Some(part) => Some(self.key_part(part, ctx)?),
                None => None,
            });
        }
        Ok(pattern)
    }

    pub(super) fn key_part(
        &mut self,
        part: &Value,
        ctx: &dyn ProbeContext,
    ) -> Result<KeyPart, Stop> {
        Ok(match part {
            Value::Str(e) => {
                let mut text = self.take_buffer();
                let result = self.str(e, ctx, &mut text);
                let part = KeyPart::Str(text.as_slice().into());
                self.pool.push(text);
                result?;
                part
            }
            Value::Int(e) => KeyPart::Int(self.int(e, ctx)?),
            Value::Hist(_) => KeyPart::Int(0),
        })
    }

    /// The element `element` names, made if new.
    pub(super) fn entry(
        &mut self,
        element: &ElementRef,
        ctx: &dyn ProbeContext,
    ) -> Result<&mut Element, Stop> {
        let key = self.key(element, ctx)?;
        let Machine { arrays, source, .. } = self;
        let array = &mut arrays[element.array];
        let limit = array.limit_name();
        array.entry(key).map_err(|Full| {
            Stop::Error(RuntimeError::ArrayFull {
                limit,
                near: source.near(element.span),
            })
        })
    }

    /// The aggregate `place` names, made if it is a new array element.
    pub(super) fn stats_entry(
        &mut self,
        place: &Place,
        ctx: &dyn ProbeContext,
    ) -> Result<&mut Stats, Stop> {
        match place {
            Place::Var(Slot::Global(i) | Slot::Local(i)) => Ok(&mut self.stats_globals[*i]),
            Place::Element(element) => Ok(self.entry(element, ctx)?.stats_mut()),
        }
    }

    /// Reads an aggregate without making it: `f` gets `None` for an absent element.
    pub(super) fn with_stats<T>(
        &mut self,
        place: &Place,
        ctx: &dyn ProbeContext,
        f: impl FnOnce(Option<&Stats>) -> T,
    ) -> Result<T, Stop> {
        Ok(match place {
            Place::Var(Slot::Global(i) | Slot::Local(i)) => f(Some(&self.stats_globals[*i])),
            Place::Element(element) => {
                let key = self.key(element, ctx)?;
                match self.arrays[element.array].get(&key) {
                    Some(Element::Stats(stats)) => f(Some(stats)),
                    _ => f(None),
                }
            }
        })
    }

    pub(super) fn stat(
        &mut self,
        op: StatOp,
        place: &Place,
        span: Span,
        ctx: &dyn ProbeContext,
    ) -> Result<i64, Stop> {
        let value = self.with_stats(place, ctx, |stats| {
            let Some(stats) = stats else {
                return match op {
                    StatOp::Count | StatOp::Sum => Some(0),
                    _ => None,
                };
            };
            match op {
                StatOp::Count => Some(stats.count()),
                StatOp::Sum => Some(stats.sum()),
                StatOp::Min => stats.min(),
                StatOp::Max => stats.max(),
                StatOp::Avg => stats.avg(),
                StatOp::Variance => stats.variance(matches!(place, Place::Var(_))),
            }
        })?;
        value.ok_or_else(|| {
            Stop::Error(RuntimeError::EmptyAggregate {
                near: self.source.near(span),
            })
        })
    }

    pub(super) fn histogram(
        &mut self,
        histogram: &Histogram,
        ctx: &dyn ProbeContext,
        dst: &mut Vec<u8>,
    ) -> Result<(), Stop> {
        let drawn = self.with_stats(&histogram.place, ctx, |stats| match stats {
            Some(stats) if stats.count() > 0 => {
                stats.write_histogram(histogram.kind, dst);
                true
            }
            _ => false,
        })?;
        if drawn {
            Ok(())
        } else {
            Err(Stop::Error(RuntimeError::EmptyAggregate {
                near: self.source.near(histogram.print_span),
            }))
        }
    }

    pub(super) fn take_buffer(&mut self) -> Vec<u8> {
        let mut buffer = self.pool.pop().unwrap_or_default();
        buffer.clear();
        buffer
    }

    /// Evaluates the arguments, then formats them into `dst`.
    pub(super) fn format(
        &mut self,
        call: &PrintCall,
        ctx: &dyn ProbeContext,
        dst: &mut Vec<u8>,
        limit: usize,
    ) -> Result<(), Stop> {
        // The strings go one after the other into one buffer; each argument keeps its long
        // or where its string is. Both are reused, and a format inside an argument (a
        // sprintf) takes fresh ones.
        let mut strings = self.take_buffer();
        let mut evaluated = std::mem::take(&mut self.print_args);
        evaluated.clear();
        let mut result = Ok(());
        for arg in &call.args {
            let start = strings.len();
            let value = match arg {
                Value::Int(e) => self.int(e, ctx).map(Evaluated::Int),
                Value::Str(e) => self
                    .str(e, ctx, &mut strings)
                    .map(|()| Evaluated::Str(start)),
                Value::Hist(histogram) => self
                    .histogram(histogram, ctx, &mut strings)
                    .map(|()| Evaluated::Str(start)),
            };
            match value {
                Ok(value) => evaluated.push((value, strings.len())),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        if result.is_ok() {
            let arg = |&(value, end): &(Evaluated, usize)| match value {
                Evaluated::Int(n) => Arg::Int(n),
                Evaluated::Str(start) => Arg::Str(&strings[start..end]),
            };
            // Most calls have a few arguments: those need no allocation.
            if evaluated.len() <= INLINE_PRINT_ARGS {
                let mut args = [Arg::Int(0); INLINE_PRINT_ARGS];
                for (slot, value) in args.iter_mut().zip(&evaluated) {
                    *slot = arg(value);
                }
                call.format.write(&args[..evaluated.len()], dst, limit);
            } else {
                let args: Vec<Arg<'_>> = evaluated.iter().map(arg).collect();
                call.format.write(&args, dst, limit);
            }
        }
        self.pool.push(strings);
        self.print_args = evaluated;
        result
    }

    pub(super) fn int(&mut self, e: &IntExpr, ctx: &dyn ProbeContext) -> Result<i64, Stop> {
        Ok(match e {
            IntExpr::Const(n) => *n,
            IntExpr::Var(Slot::Local(i)) => self.int_locals[*i],
            IntExpr::Var(Slot::Global(i)) => self.int_globals[*i],
            IntExpr::Neg(x) => self.int(x, ctx)?.wrapping_neg(),
            IntExpr::Not(x) => i64::from(self.int(x, ctx)? == 0),
            IntExpr::BitNot(x) => !self.int(x, ctx)?,
            IntExpr::Arith(op, l, r, span) => {
                let (a, b) = (self.int(l, ctx)?, self.int(r, ctx)?);
                arith(*op, a, b).ok_or_else(|| self.division_by_zero(*span))?
            }
            IntExpr::Compare(op, l, r) => {
                let (a, b) = (self.int(l, ctx)?, self.int(r, ctx)?);
                i64::from(compare(*op, &a, &b))
            }
            IntExpr::StrCompare(op, l, r) => {
                let mut a = self.take_buffer();
                let mut b = self.take_buffer();
                let result = self
                    .str(l, ctx, &mut a)
                    .and_then(|()| self.str(r, ctx, &mut b))
                    .map(|()| i64::from(compare(*op, a.as_slice(), b.as_slice())));
                self.pool.push(a);
                self.pool.push(b);
                result?
            }
            IntExpr::And(l, r) => i64::from(self.int(l, ctx)? != 0 && self.int(r, ctx)? != 0),
            IntExpr::Or(l, r) => i64::from(self.int(l, ctx)? != 0 || self.int(r, ctx)? != 0),
            IntExpr::Cond(c, t, f) => {
                if self.int(c, ctx)? != 0 {
                    self.int(t, ctx)?
                } else {
                    self.int(f, ctx)?
                }
            }
            IntExpr::Element(element) => {
                let key = self.key(element, ctx)?;
                match self.arrays[element.array].get(&key) {
                    Some(Element::Int(n)) => *n,
                    _ => 0,
                }
            }
            IntExpr::Matches {
                subject,
                regex,
                negate,
            } => {
                let mut text = std::mem::take(&mut self.match_subject);
                text.clear();
                let result = self.str(subject, ctx, &mut text);
                self.match_groups.clear();
                self.matched = false;
                if result.is_ok() {
                    if let Some(captures) = regex.captures(&text) {
                        self.matched = true;
                        self.match_groups.extend(
                            captures
                                .iter()
                                .map(|group| group.map(|g| (g.start(), g.end()))),
                        );
                    }
                }
                self.match_subject = text;
                result?;
                i64::from(self.matched != *negate)
            }
            IntExpr::Contains(element) => {
                let key = self.key(element, ctx)?;
                i64::from(self.arrays[element.array].contains(&key))
            }
            IntExpr::ContainsSlice(slice) => {
                let pattern = self.key_pattern(slice, ctx)?;
                i64::from(self.arrays[slice.array].contains_matching(&pattern))
            }
            IntExpr::Assign(place, op, value, span) => {
                let value = self.int(value, ctx)?;
                let current = self.int_place(place, ctx)?;
                let new = match op {
                    Some(op) => arith(*op, *current, value),
                    None => Some(value),
                };
                match new {
                    Some(new) => *current = new,
                    None => return Err(self.division_by_zero(*span)),
                }
                *current
            }
            IntExpr::Increment {
                place,
                delta,
                postfix,
            } => {
                let current = self.int_place(place, ctx)?;
                let old = *current;
                *current = old.wrapping_add(*delta);
                if *postfix {
                    old
                } else {
                    *current
                }
            }
            IntExpr::Stat(op, place, span) => self.stat(*op, place, *span, ctx)?,
            IntExpr::Call(call) => {
                self.call_in_expression(call, ctx)?;
                self.returned_int
            }
            IntExpr::Library(call) => {
                let mut unused = self.take_buffer();
                let answer = self.library(call, ctx, &mut unused);
                self.pool.push(unused);
                match answer? {
                    Answer::Int(n) => n,
                    Answer::Done => 0,
                }
            }
            // The dispatcher runs a `.return` body only with what its entry kept.
            IntExpr::Defined(index) => i64::from(ctx.target_defined(*index)),
            IntExpr::Entry(index) => match ctx.entry_value(*index) {
                Some(Kept::Int(value)) => *value,
                _ => 0,
            },
            IntExpr::ByCaller { event, own } => {
                if self.caller_has_task() {
                    self.int(event, ctx)?
                } else {
                    self.int(own, ctx)?
                }
            }
            IntExpr::CurrentTask(span) => {
                let read = self
                    .current_task_reads
                    .get(self.current_probe)
                    .copied()
                    .flatten();
                let task = match read {
                    Some(read) => ctx.target_read(read),
                    None => Err(ReadFault::Unavailable(
                        "task_current() in a function called from a probe that has no task \
                         (begin, end, timers)"
                            .into(),
                    )),
                };
                match task {
                    Ok(TargetValue::Int(task)) => task,
                    Ok(_) => return Err(self.read_fault(ReadFault::NotCarried(0), *span)),
                    Err(fault) => return Err(self.read_fault(fault, *span)),
                }
            }
            IntExpr::Late(late) => match self.late_read(late, ctx)? {
                Kept::Int(value) => value,
                Kept::Str(_) => {
                    return Err(self.read_fault(ReadFault::NotCarried(late.read), late.span))
                }
            },
            IntExpr::UserLate(read) => {
                let address = self.int(&read.address, ctx)? as u64;
                let bytes = usize::from(read.bytes);
                match crate::system::process_memory(ctx.pid(), address, bytes) {
                    Some(raw) => extend(raw, u32::from(read.bytes) * 8, read.signed),
                    None => {
                        let fault = ReadFault::Copy {
                            function: read.function,
                            address,
                        };
                        return Err(self.read_fault(fault, read.span));
                    }
                }
            }
            IntExpr::FaultGivesZero { value, warn } => match self.int(value, ctx) {
                Err(Stop::Error(RuntimeError::Read { fault, .. })) => {
                    if *warn {
                        self.warnings.push(fault.to_string());
                    }
                    0
                }
                other => other?,
            },
            IntExpr::Target(index, span) => match ctx.target_read(*index) {
                Ok(TargetValue::Int(value)) => value,
                Ok(TargetValue::Str(_) | TargetValue::Owned(_)) => {
                    return Err(self.read_fault(ReadFault::NotCarried(*index), *span))
                }
                Err(fault) => return Err(self.read_fault(fault, *span)),
            },
            IntExpr::Context(what) => match what {
                IntContext::Tid => ctx.tid(),
                IntContext::Pid => ctx.pid(),
                IntContext::Cpu => ctx.cpu(),
                IntContext::Addr => ctx.addr() as i64,
                IntContext::Target => ctx.target(),
                IntContext::TimeNs => ctx.gettimeofday_ns(),
                IntContext::TimeUs => ctx.gettimeofday_us(),
                IntContext::TimeMs => ctx.gettimeofday_us() / 1000,
                IntContext::TimeS => ctx.gettimeofday_us() / 1_000_000,
                IntContext::LocalClockNs => ctx.monotonic_ns(),
                IntContext::LocalClockUs => ctx.monotonic_ns() / 1_000,
                IntContext::LocalClockMs => ctx.monotonic_ns() / 1_000_000,
                IntContext::LocalClockS => ctx.monotonic_ns() / 1_000_000_000,
                IntContext::UserMode => i64::from(ctx.user_mode()),
                IntContext::Jiffies => {
                    self.library
                        .jiffies(ctx.monotonic_ns())
                        .map_err(|Failure(message)| RuntimeError::Library {
                            message,
                            near: None,
                        })?
                }
            },
            IntExpr::IndentDepth { thread, delta } => {
                let delta = self.int(delta, ctx)?;
                if *thread {
                    self.indent.thread_indent_depth(ctx.tid(), delta)
                } else {
                    self.indent.indent_depth(delta)
                }
            }
        })
    }

    pub(super) fn read_fault(&self, fault: ReadFault, span: Span) -> Stop {
        Stop::Error(RuntimeError::Read {
            fault,
            near: self.source.near(span),
        })
    }

    pub(super) fn division_by_zero(&self, span: Span) -> Stop {
        Stop::Error(RuntimeError::DivisionByZero {
            near: self.source.near(span),
        })
    }

    /// The long `place` names, made if it is a new array element.
    pub(super) fn int_place(
        &mut self,
        place: &Place,
        ctx: &dyn ProbeContext,
    ) -> Result<&mut i64, Stop> {
        match place {
            Place::Var(slot) => Ok(self.int_slot(*slot)),
            Place::Element(element) => Ok(self.entry(element, ctx)?.long_mut()),
        }
    }

    /// The string `place` names, made if it is a new array element.
    pub(super) fn str_place(
        &mut self,
        place: &Place,
        ctx: &dyn ProbeContext,
    ) -> Result<&mut Vec<u8>, Stop> {
        match place {
            Place::Var(slot) => Ok(self.str_slot(*slot)),
            Place::Element(element) => Ok(self.entry(element, ctx)?.str_mut()),
        }
    }

    /// Appends the string value of `e` to `dst`.
    pub(super) fn str(
        &mut self,
        e: &StrExpr,
        ctx: &dyn ProbeContext,
        dst: &mut Vec<u8>,
    ) -> Result<(), Stop> {
        match e {
            StrExpr::Const(s) => dst.extend_from_slice(s),
            StrExpr::Var(Slot::Local(i)) => dst.extend_from_slice(&self.str_locals[*i]),
            StrExpr::Var(Slot::Global(i)) => dst.extend_from_slice(&self.str_globals[*i]),
            StrExpr::Element(element) => {
                let key = self.key(element, ctx)?;
                if let Some(Element::Str(s)) = self.arrays[element.array].get(&key) {
                    dst.extend_from_slice(s);
                }
            }
            StrExpr::Concat(l, r) => {
                let mut joined = self.take_buffer();
                let result = self.str(l, ctx, &mut joined).and_then(|()| {
                    let mut right = self.take_buffer();
                    let result = self.str(r, ctx, &mut right);
                    append_limited(&mut joined, &right, self.max_string_len);
                    self.pool.push(right);
                    result
                });
                dst.extend_from_slice(&joined);
                self.pool.push(joined);
                result?
            }
            StrExpr::Cond(c, t, f) => {
                if self.int(c, ctx)? != 0 {
                    self.str(t, ctx, dst)?
                } else {
                    self.str(f, ctx, dst)?
                }
            }
            StrExpr::Assign(place, append, value) => {
                let mut new = self.take_buffer();
                let max_string_len = match (place, self.long_value) {
                    // A procfs read's `$value` holds what its `.maxsize` allows.
                    (Place::Var(Slot::Local(slot)), Some((long, limit))) if *slot == long => limit,
                    _ => self.max_string_len,
                };
                let result = self.str(value, ctx, &mut new).and_then(|()| {
                    let target = self.str_place(place, ctx)?;
                    if !append {
                        target.clear();
                    }
                    append_limited(target, &new, max_string_len);
                    dst.extend_from_slice(target);
                    Ok(())
                });
                self.pool.push(new);
                result?
            }
            StrExpr::Entry(index) => {
                if let Some(Kept::Str(text)) = ctx.entry_value(*index) {
                    dst.extend_from_slice(text);
                }
            }
            StrExpr::ByCaller { event, own } => {
                let chosen = if self.caller_has_task() { event } else { own };
                self.str(chosen, ctx, dst)?
            }
            StrExpr::Late(late) => match self.late_read(late, ctx)? {
                Kept::Str(text) => dst.extend_from_slice(&text),
                Kept::Int(_) => {
                    return Err(self.read_fault(ReadFault::NotCarried(late.read), late.span))
                }
            },
            StrExpr::Target(index, span) => match ctx.target_read(*index) {
                Ok(TargetValue::Str(text)) => dst.extend_from_slice(text),
                Ok(TargetValue::Owned(text)) => dst.extend_from_slice(&text),
                Ok(TargetValue::Int(_)) => {
                    return Err(self.read_fault(ReadFault::NotCarried(*index), *span))
                }
                Err(fault) => return Err(self.read_fault(fault, *span)),
            },
            StrExpr::TargetOr(index, fallback) => match ctx.target_read(*index) {
                Ok(TargetValue::Str(text)) => dst.extend_from_slice(text),
                Ok(TargetValue::Owned(text)) => dst.extend_from_slice(&text),
                Ok(TargetValue::Int(_)) | Err(_) => dst.extend_from_slice(fallback),
            },
            StrExpr::TargetQuoted(index, address) => match ctx.target_read(*index) {
                Ok(TargetValue::Str(text)) => library::quote(text, self.max_string_len, dst),
                Ok(TargetValue::Owned(text)) => library::quote(&text, self.max_string_len, dst),
                Ok(TargetValue::Int(_)) | Err(_) => {
                    let address = self.int(address, ctx)?;
                    dst.extend_from_slice(format!("{address:#x}").as_bytes())
                }
            },
            StrExpr::Context(StrContext::ProcfsWritten) => {
                dst.extend_from_slice(ctx.procfs_written())
            }
            StrExpr::Context(what) => dst.extend_from_slice(
                match what {
                    StrContext::Execname => ctx.execname(),
                    StrContext::Probefunc => ctx.probefunc(),
                    StrContext::Ppfunc => ctx.ppfunc(),
                    StrContext::Pp => ctx.pp(),
                    StrContext::Pn => match &self.probe_names[self.current_probe] {
                        Some(name) => name,
                        None => ctx.pp(),
                    },
                    StrContext::ProcfsWritten => "",
                }
                .as_bytes(),
            ),
            StrExpr::Indent { thread, delta } => {
                let delta = self.int(delta, ctx)?;
                let now = ctx.gettimeofday_us();
                if *thread {
                    self.indent.thread_indent(
                        ctx.tid(),
                        ctx.execname().as_bytes(),
                        delta,
                        now,
                        dst,
                    );
                } else {
                    self.indent.indent(delta, now, dst);
                }
            }
            StrExpr::Call(call) => {
                self.call_in_expression(call, ctx)?;
                dst.extend_from_slice(&self.returned_str);
            }
            StrExpr::Matched(group, span) => {
                let group = self.int(group, ctx)?;
                let failure = |message: String| {
                    Stop::Error(RuntimeError::Library {
                        message,
                        near: Some(self.source.near(*span)),
                    })
                };
                if !self.matched {
                    return Err(failure(format!(
                        "Attempted to get subexpression {group} from failed match"
                    )));
                }
                match usize::try_from(group)
                    .ok()
                    .and_then(|g| self.match_groups.get(g))
                {
                    Some(Some((start, end))) => {
                        dst.extend_from_slice(&self.match_subject[*start..*end])
                    }
                    // A group the match left out (`a|(b)` matching "a") is "".
                    Some(None) => {}
                    None => {
                        return Err(failure(format!(
                            "Attempted to get nonexistent subexpression {group}"
                        )))
                    }
                }
            }
            StrExpr::Library(call) => {
                // A string result is a string value: within the length limit.
                let start = dst.len();
                self.library(call, ctx, dst)?;
                dst.truncate(start + (dst.len() - start).min(self.max_string_len - 1));
            }
            StrExpr::Sprintf(call) => {
                let start = dst.len();
                self.format(call, ctx, dst, self.max_string_len)?;
                // The result is a C string of at most MAXSTRINGLEN - 1 bytes.
                let end = dst[start..]
                    .iter()
                    .position(|&b| b == 0)
                    .map_or(dst.len(), |n| start + n);
                dst.truncate(end.min(start + self.max_string_len - 1));
            }
        }
        Ok(())
    }
}
