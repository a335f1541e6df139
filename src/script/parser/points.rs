//! Parsing probe declarations and their points: dotted components with arguments,
//! `{...}` groups, `*` wildcards, and the `?` and `!` marks.

use super::*;

impl Parser<'_> {
    /// After `probe`: a probe, or an alias (`probe NAME = POINT, ... { PROLOGUE }`).
    pub(super) fn probe(&mut self, script: &mut Script) -> Result<(), ScriptError> {
        let mut names = Vec::new();
        let mut epilogue_style = false;
        let points = loop {
            let mut points = self.probe_point()?;
            while self.eat_op(Op::Comma) {
                points.extend(self.probe_point()?);
            }
            let assign = self.peek().span;
            let defines = if self.eat_op(Op::Assign) {
                true
            } else if self.eat_op(Op::AddAssign) {
                epilogue_style = true;
                true
            } else {
                false
            };
            if !defines {
                break points;
            }
            let [name] = <[PointSyntax; 1]>::try_from(points).map_err(|_| {
                self.error(
                    assign,
                    "an alias defines one name before each '=': write `probe A = B = POINT`",
                )
            })?;
            self.check_alias_name(&name)?;
            names.push(name);
        };
        if self.peek_keyword("if") {
            return Err(self.error(
                self.peek().span,
                "not supported yet: conditional probes (`probe POINT if (CONDITION)`)",
            ));
        }
        let body = self.block()?;
        if names.is_empty() {
            script.probes.push(Probe {
                points,
                body,
                expansion: None,
            });
            return Ok(());
        }
        let (prologue, epilogue) = if epilogue_style {
            (None, Some(body))
        } else if self.eat_op(Op::Comma) {
            (Some(body), Some(self.block()?))
        } else {
            (Some(body), None)
        };
        script.aliases.push(Alias {
            names,
            points,
            prologue,
            epilogue,
        });
        Ok(())
    }

    /// An alias's name is a plain point: no marks and no wildcards, which would leave
    /// the points it stands for unclear.
    fn check_alias_name(&self, name: &PointSyntax) -> Result<(), ScriptError> {
        if name.optional {
            return Err(self.error(
                name.span,
                "an alias's name cannot be optional ('?' or '!'): mark the points it uses",
            ));
        }
        if let Some(wild) = name.components.iter().find(|c| c.name.contains('*')) {
            return Err(self.error(
                wild.span,
                "an alias's name cannot hold a wildcard: name each alias in full",
            ));
        }
        Ok(())
    }

    /// One probe point as written, which a group (`kernel.{function("a"), function("b")}`)
    /// makes several.
    pub(super) fn probe_point(&mut self) -> Result<Vec<PointSyntax>, ScriptError> {
        let start = self.peek().span;
        let (chains, grouped) = self.point_chain()?;
        let span = start.to(self.tokens[self.pos.saturating_sub(1)].span);
        let (optional, sufficient) = self.point_marks();
        Ok(chains
            .into_iter()
            .map(|chain| PointSyntax {
                components: chain.components,
                span,
                optional: optional || chain.optional,
                sufficient: sufficient || chain.sufficient,
                grouped,
            })
            .collect())
    }

    /// `!` or `?` after a point: whether it is optional, and sufficient.
    pub(super) fn point_marks(&mut self) -> (bool, bool) {
        let sufficient = self.eat_op(Op::Bang);
        (sufficient || self.eat_op(Op::Question), sufficient)
    }

    /// Dotted components, each a name with an optional argument or a `{...}` group of
    /// alternatives: every chain they spell, and whether a group was among them.
    pub(super) fn point_chain(&mut self) -> Result<(Vec<Chain>, bool), ScriptError> {
        let mut chains = vec![Chain::default()];
        let mut grouped = false;
        loop {
            let at = self.peek().span;
            if self.eat_op(Op::LBrace) {
                self.nest(at)?;
                grouped = true;
                let mut group = Vec::new();
                loop {
                    let (mut members, _) = self.point_chain()?;
                    // Marks on a member: `kernel.{trace("a")!, trace("b")}`.
                    let (optional, sufficient) = self.point_marks();
                    for member in &mut members {
                        member.optional |= optional;
                        member.sufficient |= sufficient;
                    }
                    group.extend(members);
                    if !self.eat_op(Op::Comma) {
                        break;
                    }
                }
                self.expect_op(Op::RBrace)?;
                self.depth -= 1;
                chains = chains
                    .iter()
                    .flat_map(|prefix| {
                        group.iter().map(move |alternative| Chain {
                            components: prefix
                                .components
                                .iter()
                                .chain(&alternative.components)
                                .cloned()
                                .collect(),
                            optional: prefix.optional || alternative.optional,
                            sufficient: prefix.sufficient || alternative.sufficient,
                        })
                    })
                    .collect();
            } else {
                let component = self.point_component()?;
                for chain in &mut chains {
                    chain.components.push(component.clone());
                }
            }
            if !self.eat_op(Op::Dot) {
                return Ok((chains, grouped));
            }
        }
    }

    pub(super) fn point_component(&mut self) -> Result<PointComponent, ScriptError> {
        let (name, name_span) = self.point_component_name()?;
        let mut span = name_span;
        let argument = if self.eat_op(Op::LParen) {
            let negative = self.eat_op(Op::Minus);
            let token = self.advance();
            let argument = match token.kind {
                TokenKind::Str(lit) if !negative => PointArg::Str(self.adjacent_strings(lit)),
                TokenKind::Number(n) if negative => PointArg::Number(n.wrapping_neg()),
                TokenKind::Number(n) => PointArg::Number(n),
                _ => return Err(self.error(token.span, "expected a string in quotes or a number")),
            };
            span = span.to(self.expect_op(Op::RParen)?);
            Some(argument)
        } else {
            None
        };
        Ok(PointComponent {
            name,
            argument,
            span,
        })
    }
}
