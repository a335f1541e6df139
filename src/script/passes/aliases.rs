//! Probe aliases and the tapset library. Every probe on an alias becomes a probe on the
//! alias's points whose body is the alias's prologue, the probe's body and the alias's
//! epilogue; the tapset files the script uses (an alias they define, a function it calls)
//! join the script, with everything in them. As in SystemTap, an alias's assignments to
//! locals that the expanded probe never reads are left out, so that a tapset can offer
//! many variables and a probe pays only for those it reads.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::ops::Range;

use crate::script::ast::{
    self, Alias, Block, Expansion, Expr, ExprKind, Function, PointComponent, PointSyntax, Probe,
    Script, Stmt,
};
use crate::script::builtins;
use crate::script::lexer::Op;
use crate::script::points::wildcard_matches;
use crate::script::source::{FileId, ScriptError, SourceMap, Span};

/// The script with its aliases expanded and the tapset files it uses joined to it;
/// `elide` leaves out the aliases' unused assignments.
pub(super) fn expand(
    source: &SourceMap,
    script: Script,
    elide: bool,
) -> Result<Script, ScriptError> {
    let script = without_hidden_aliases(source, script);
    let included = included_files(source, &script);
    let used = |span: Span| included.contains(&span.file);
    let Script {
        globals,
        probes,
        functions,
        aliases,
    } = script;
    // A script's own function hides a tapset's of the same name.
    let mut defined = HashSet::new();
    let functions: Vec<Function> = functions
        .into_iter()
        .filter(|f| used(f.name.span))
        .filter(|f| defined.insert(f.name.name.clone()) || !source.is_library(f.name.span.file))
        .collect();
    let globals: Vec<_> = globals.into_iter().filter(|g| used(g.span)).collect();
    let mut expander = Expander {
        source,
        aliases: &aliases,
        globals: globals.iter().map(|g| g.name.as_str()).collect(),
        functions: functions
            .iter()
            .map(|f| (f.name.name.as_str(), f))
            .collect(),
        purity: HashMap::new(),
        elide,
        errors: Vec::new(),
    };
    let mut expanded = Vec::new();
    for probe in probes.into_iter().filter(|p| used(p.body.span)) {
        let user = 0..probe.body.statements.len();
        expander.derive(probe, user, &[], &mut expanded);
    }
    if let Some(errors) = ScriptError::several(std::mem::take(&mut expander.errors)) {
        return Err(errors);
    }
    Ok(Script {
        globals,
        probes: expanded,
        functions,
        aliases: Vec::new(),
    })
}

/// The script without the generated aliases that a written alias of the same name hides.
fn without_hidden_aliases(source: &SourceMap, mut script: Script) -> Script {
    let key = |name: &PointSyntax| {
        name.components
            .iter()
            .map(|c| format!("{}{:?}", c.name, c.argument))
            .collect::<Vec<_>>()
    };
    let written: HashSet<Vec<String>> = script
        .aliases
        .iter()
        .filter(|a| !source.is_generated(a.names[0].span.file))
        .flat_map(|a| a.names.iter().map(key))
        .collect();
    script.aliases.retain(|alias| {
        !source.is_generated(alias.names[0].span.file)
            || !alias.names.iter().all(|name| written.contains(&key(name)))
    });
    script
}

/// The script's own files and every tapset file it uses, directly or through another:
/// those defining an alias one of their points names, a function one of them calls or a
/// global one of them reads or writes without declaring it (as SystemTap resolves a
/// variable no file declares against the library's globals).
fn included_files(source: &SourceMap, script: &Script) -> BTreeSet<FileId> {
    let mut included: BTreeSet<FileId> = source
        .files()
        .map(|(id, _)| id)
        .filter(|&id| !source.is_library(id))
        .collect();
    let mut defining: HashMap<&str, FileId> = HashMap::new();
    for function in &script.functions {
        let file = function.name.span.file;
        if source.is_library(file) {
            defining.entry(&function.name.name).or_insert(file);
        }
    }
    let mut declaring: HashMap<&str, FileId> = HashMap::new();
    for global in &script.globals {
        if source.is_library(global.span.file) {
            declaring.entry(&global.name).or_insert(global.span.file);
        }
    }
    let declared_by_script: HashSet<&str> = script
        .globals
        .iter()
        .filter(|g| !source.is_library(g.span.file))
        .map(|g| g.name.as_str())
        .collect();
    loop {
        let is_in = |span: Span| included.contains(&span.file);
        let mut wanted = Vec::new();
        let points = script
            .probes
            .iter()
            .filter(|p| is_in(p.body.span))
            .flat_map(|p| &p.points)
            .chain(
                script
                    .aliases
                    .iter()
                    .filter(|a| is_in(a.names[0].span))
                    .flat_map(|a| &a.points),
            );
        for point in points {
            wanted.extend(
                matches(&script.aliases, point)
                    .into_iter()
                    .map(|m| script.aliases[m.alias].names[m.name].span.file),
            );
        }
        let known: HashSet<&str> = script
            .functions
            .iter()
            .filter(|f| is_in(f.name.span))
            .map(|f| f.name.name.as_str())
            .collect();
        // Each body with the names that are its own there: a function's parameters.
        let no_params: &[(ast::Name, Option<ast::TypeName>)] = &[];
        let bodies = script
            .probes
            .iter()
            .filter(|p| is_in(p.body.span))
            .map(|p| (&p.body, no_params))
            .chain(
                script
                    .functions
                    .iter()
                    .filter(|f| is_in(f.name.span))
                    .map(|f| (&f.body, f.params.as_slice())),
            )
            .chain(
                script
                    .aliases
                    .iter()
                    .filter(|a| is_in(a.names[0].span))
                    .flat_map(|a| a.prologue.iter().chain(&a.epilogue))
                    .map(|body| (body, no_params)),
            );
        for (body, params) in bodies {
            ast::visit_exprs(&body.statements, &mut |expr| {
                let variable = match &expr.kind {
                    ExprKind::Call { name, .. } => {
                        if !known.contains(name.as_str()) && builtins::lookup(name).is_none() {
                            wanted.extend(defining.get(name.as_str()));
                        }
                        return;
                    }
                    ExprKind::Var(name) => name.as_str(),
                    ExprKind::Index { array, .. } | ExprKind::In { array, .. } => &array.name,
                    _ => return,
                };
                if !declared_by_script.contains(variable)
                    && !params.iter().any(|(param, _)| param.name == variable)
                {
                    wanted.extend(declaring.get(variable));
                }
            });
        }
        let before = included.len();
        included.extend(wanted);
        if included.len() == before {
            return included;
        }
    }
}

/// A point naming an alias: which alias, by which of its names, and the components the
/// point has past the name (its suffix, added to each of the alias's points).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Match {
    alias: usize,
    name: usize,
    length: usize,
}

/// The aliases a point names. A point whose wildcards match both an alias and a longer
/// one below it (`syscall.*.return` and the aliases `syscall.read` and
/// `syscall.read.return`) names only the longer, as SystemTap prefers a full match to a
/// suffix.
fn matches(aliases: &[Alias], point: &PointSyntax) -> Vec<Match> {
    let written = &point.components;
    let names_match = |name: &[PointComponent], written: &[PointComponent]| {
        name.len() <= written.len()
            && name.iter().zip(written).all(|(name, written)| {
                wildcard_matches(&written.name, &name.name) && written.argument == name.argument
            })
    };
    let found: Vec<Match> = aliases
        .iter()
        .enumerate()
        .flat_map(|(alias, a)| {
            a.names
                .iter()
                .enumerate()
                .filter(|(_, name)| names_match(&name.components, written))
                .map(move |(name, syntax)| Match {
                    alias,
                    name,
                    length: syntax.components.len(),
                })
        })
        .collect();
    let components = |m: &Match| &aliases[m.alias].names[m.name].components;
    found
        .iter()
        .copied()
        .filter(|m| {
            !found.iter().any(|longer| {
                longer.length > m.length && names_match(components(m), components(longer))
            })
        })
        .collect()
}

struct Expander<'a> {
    source: &'a SourceMap,
    aliases: &'a [Alias],
    globals: HashSet<&'a str>,
    functions: HashMap<&'a str, &'a Function>,
    /// Whether each script function called from an alias's assignments is free of
    /// effects, once found.
    purity: HashMap<String, bool>,
    elide: bool,
    errors: Vec<ScriptError>,
}

impl Expander<'_> {
    /// Expands the probe's points that name aliases, each into a probe of its own, and
    /// those again; the points that name none stay together in one probe. `user` is where
    /// the script's own statements are in the body, `chain` the aliases expanded to get
    /// here.
    fn derive(&mut self, probe: Probe, user: Range<usize>, chain: &[usize], out: &mut Vec<Probe>) {
        let mut plain: Vec<PointSyntax> = Vec::new();
        for point in &probe.points {
            let found = matches(self.aliases, point);
            if found.is_empty() {
                plain.push(point.clone());
                continue;
            }
            if !plain.is_empty() {
                let points = std::mem::take(&mut plain);
                out.push(self.finished(&probe, points, user.clone()));
            }
            for m in found {
                self.expand_one(&probe, point, m, user.clone(), chain, out);
            }
        }
        if !plain.is_empty() {
            out.push(self.finished(&probe, plain, user));
        }
    }

    fn expand_one(
        &mut self,
        probe: &Probe,
        point: &PointSyntax,
        m: Match,
        user: Range<usize>,
        chain: &[usize],
        out: &mut Vec<Probe>,
    ) {
        let alias = &self.aliases[m.alias];
        let alias_name = &alias.names[m.name];
        let mut from = vec![point.span];
        from.extend(probe.expansion.iter().flat_map(|e| e.from.iter().copied()));
        if chain.contains(&m.alias) {
            let error = ScriptError::at(
                self.source,
                point.span,
                format!(
                    "the alias '{}' expands into itself",
                    alias_name.text(self.source)
                ),
            );
            self.errors.push(match &probe.expansion {
                Some(expansion) => expansion.annotate(self.source, error),
                None => error,
            });
            return;
        }
        let suffix = &point.components[m.length..];
        let points = alias
            .points
            .iter()
            .map(|alias_point| {
                let mut derived = alias_point.clone();
                if !suffix.is_empty() {
                    derived.components.extend(suffix.iter().cloned());
                    derived.grouped = true;
                }
                derived.optional |= point.optional;
                derived
            })
            .collect();
        let name = match &probe.expansion {
            Some(outer) => outer.name.clone(),
            None => {
                // The point as written, its names as the alias spells them.
                let mut named = point.clone();
                named.components[..m.length].clone_from_slice(&alias_name.components);
                named.grouped = true;
                named.text(self.source)
            }
        };
        let prologue = alias.prologue.iter().flat_map(|b| &b.statements);
        let epilogue = alias.epilogue.iter().flat_map(|b| &b.statements);
        let before = prologue.clone().count();
        let mut variables = probe
            .expansion
            .as_ref()
            .map_or_else(Vec::new, |outer| outer.variables.clone());
        for stmt in prologue.clone().chain(epilogue.clone()) {
            if let Some((name, _)) = self.local_assignment(stmt) {
                if !variables.iter().any(|known| known == name) {
                    variables.push(name.to_string());
                }
            }
        }
        let statements: Vec<Stmt> = prologue
            .chain(&probe.body.statements)
            .chain(epilogue)
            .cloned()
            .collect();
        let written = probe
            .expansion
            .as_ref()
            .map_or(probe.body.span, |outer| outer.written);
        let derived = Probe {
            points,
            body: Block {
                statements,
                span: probe.body.span,
            },
            expansion: Some(Expansion {
                name,
                from,
                written,
                variables,
            }),
        };
        let mut chain = chain.to_vec();
        chain.push(m.alias);
        let user = user.start + before..user.end + before;
        self.derive(derived, user, &chain, out);
    }

    /// The probe on `points`, its alias code's unused assignments left out.
    fn finished(
        &mut self,
        probe: &Probe,
        points: Vec<PointSyntax>,
        mut user: Range<usize>,
    ) -> Probe {
        let mut statements = probe.body.statements.clone();
        if self.elide && probe.expansion.is_some() {
            while let Some(unused) = self.unused_assignment(&statements, &user) {
                statements.remove(unused);
                if unused < user.start {
                    user = user.start - 1..user.end - 1;
                }
            }
        }
        Probe {
            points,
            body: Block {
                statements,
                span: probe.body.span,
            },
            expansion: probe.expansion.clone(),
        }
    }

    /// The first statement outside `user` that assigns, without effects, a local nothing
    /// in the body reads.
    fn unused_assignment(&mut self, statements: &[Stmt], user: &Range<usize>) -> Option<usize> {
        let read = locals_read(statements);
        (0..statements.len())
            .filter(|i| !user.contains(i))
            .find(|&i| {
                self.local_assignment(&statements[i])
                    .is_some_and(|(name, value)| {
                        !read.contains(name) && !self.has_effects(value, false)
                    })
            })
    }

    /// The local and the value of a statement `NAME = VALUE`.
    fn local_assignment<'s>(&self, stmt: &'s Stmt) -> Option<(&'s str, &'s Expr)> {
        let Stmt::Expr(Expr {
            kind:
                ExprKind::Assign {
                    op: Op::Assign,
                    target,
                    value,
                },
            ..
        }) = stmt
        else {
            return None;
        };
        match &target.kind {
            ExprKind::Var(name) if !self.globals.contains(name.as_str()) => Some((name, value)),
            _ => None,
        }
    }

    /// Whether evaluating `expr` could change anything but its value: print, stop the
    /// probe, write a global or (unless `locals_may_change`) a local, or move state a
    /// later call sees, such as the last regular expression match.
    fn has_effects(&mut self, expr: &Expr, locals_may_change: bool) -> bool {
        let mut inside = Vec::new();
        ast::visit_expr(expr, &mut |e| inside.push(e));
        inside
            .into_iter()
            .any(|e| self.has_own_effects(e, locals_may_change))
    }

    /// Whether the expression itself, not counting those inside it, has effects.
    fn has_own_effects(&mut self, expr: &Expr, locals_may_change: bool) -> bool {
        match &expr.kind {
            ExprKind::Assign { target, .. } | ExprKind::Increment { target, .. } => {
                !locals_may_change || !self.is_local(target)
            }
            ExprKind::Aggregate { .. } => true,
            ExprKind::Binary { op, .. } => matches!(op, Op::Match | Op::NotMatch),
            ExprKind::Call { name, args, .. } => {
                if self.functions.contains_key(name.as_str()) {
                    !self.function_is_pure(name)
                } else {
                    builtins::lookup_by_arity(name, args.len()).is_none_or(|b| b.has_effects())
                }
            }
            _ => false,
        }
    }

    fn is_local(&self, target: &Expr) -> bool {
        matches!(&target.kind, ExprKind::Var(name) if !self.globals.contains(name.as_str()))
    }

    /// Whether a script function has no effects beyond its value and its locals; one
    /// that calls itself is taken to have them.
    fn function_is_pure(&mut self, name: &str) -> bool {
        if let Some(&known) = self.purity.get(name) {
            return known;
        }
        self.purity.insert(name.to_string(), false);
        let Some(function) = self.functions.get(name).copied() else {
            return false;
        };
        let statements = &function.body.statements;
        let mut inside = Vec::new();
        ast::visit_exprs(statements, &mut |e| inside.push(e));
        let pure = !any_statement(statements, &|stmt| matches!(stmt, Stmt::Delete(_)))
            && !inside.into_iter().any(|e| self.has_own_effects(e, true));
        self.purity.insert(name.to_string(), pure);
        pure
    }
}

/// Whether any statement, at any depth, is one `pred` takes.
fn any_statement(statements: &[Stmt], pred: &dyn Fn(&Stmt) -> bool) -> bool {
    statements.iter().any(|stmt| {
        pred(stmt)
            || stmt.parts().into_iter().any(|part| match part {
                ast::Part::Stmt(inner) => any_statement(std::slice::from_ref(inner), pred),
                ast::Part::Expr(_) => false,
            })
    })
}

/// The variables the statements read: every use but as the target of a plain `=`.
fn locals_read(statements: &[Stmt]) -> HashSet<&str> {
    let mut uses: HashMap<&str, i64> = HashMap::new();
    ast::visit_exprs(statements, &mut |expr| match &expr.kind {
        ExprKind::Var(name) => *uses.entry(name).or_default() += 1,
        ExprKind::Assign {
            op: Op::Assign,
            target,
            ..
        } => {
            if let ExprKind::Var(name) = &target.kind {
                *uses.entry(name).or_default() -= 1;
            }
        }
        // The variables a cast starts from.
        ExprKind::Target(target) => {
            for name in target.cast_variables() {
                *uses.entry(&name.name).or_default() += 1;
            }
        }
        _ => {}
    });
    uses.into_iter()
        .filter(|&(_, count)| count > 0)
        .map(|(name, _)| name)
        .collect()
}
