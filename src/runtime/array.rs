//! Associative arrays at run time: elements in insertion order under keys of one to nine
//! longs or strings, with SystemTap's size limit.

use indexmap::IndexMap;
use rustc_hash::FxBuildHasher;

use super::stats::Stats;
use crate::script::{ArrayInfo, StatsShape, Ty};

/// One key component.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyPart {
    Int(i64),
    Str(Box<[u8]>),
}

pub type Key = Vec<KeyPart>;

/// An element's value, of the array's value type.
#[derive(Debug, Clone)]
pub enum Element {
    Int(i64),
    Str(Vec<u8>),
    Stats(Stats),
}

impl Element {
    /// The element as a long. Lowering types every element by its array, so it is one; were
    /// it not, it would become 0.
    pub fn long_mut(&mut self) -> &mut i64 {
        if !matches!(self, Element::Int(_)) {
            *self = Element::Int(0);
        }
        match self {
            Element::Int(n) => n,
            _ => unreachable!("made a long above"),
        }
    }

    pub fn str_mut(&mut self) -> &mut Vec<u8> {
        if !matches!(self, Element::Str(_)) {
            *self = Element::Str(Vec::new());
        }
        match self {
            Element::Str(s) => s,
            _ => unreachable!("made a string above"),
        }
    }

    pub fn stats_mut(&mut self) -> &mut Stats {
        if !matches!(self, Element::Stats(_)) {
            *self = Element::Stats(Stats::new(&StatsShape::default()));
        }
        match self {
            Element::Stats(stats) => stats,
            _ => unreachable!("made an aggregate above"),
        }
    }
}

/// Whether `key` has, at each position, the part `pattern` wants (`None` takes any).
pub fn key_matches(key: &[KeyPart], pattern: &[Option<KeyPart>]) -> bool {
    key.iter()
        .zip(pattern)
        .all(|(part, wanted)| wanted.as_ref().is_none_or(|w| w == part))
}

/// The array is full and does not wrap: SystemTap's MAXMAPENTRIES error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

#[derive(Debug, Clone)]
pub struct Array {
    elements: IndexMap<Key, Element, FxBuildHasher>,
    max_entries: usize,
    /// Whether `global a[N]` set `max_entries`.
    declared_size: bool,
    wraps: bool,
    value: Ty,
    /// How this array's aggregates are kept.
    stats: StatsShape,
}

impl Array {
    pub(crate) fn new(info: &ArrayInfo) -> Self {
        Array {
            elements: IndexMap::default(),
            max_entries: info.max_entries,
            declared_size: info.declared_size,
            wraps: info.wraps,
            value: info.value,
            stats: info.stats.clone(),
        }
    }

    /// What limits the array's size, as SystemTap's overflow error names it.
    pub fn limit_name(&self) -> String {
        if self.declared_size {
            format!("size limit ({})", self.max_entries)
        } else {
            "MAXMAPENTRIES".to_string()
        }
    }

    pub fn get(&self, key: &[KeyPart]) -> Option<&Element> {
        self.elements.get(key)
    }

    pub fn contains(&self, key: &[KeyPart]) -> bool {
        self.elements.contains_key(key)
    }

    /// The element under `key`, made with the type's empty value if it is new. A full
    /// array drops its oldest element if it wraps, and refuses otherwise.
    pub fn entry(&mut self, key: Key) -> Result<&mut Element, Full> {
        if !self.elements.contains_key(&key) && self.elements.len() >= self.max_entries {
            if !self.wraps {
                return Err(Full);
            }
            self.elements.shift_remove_index(0);
        }
        let (value, shape) = (self.value, &self.stats);
        Ok(self.elements.entry(key).or_insert_with(|| match value {
            Ty::Long => Element::Int(0),
            Ty::Str => Element::Str(Vec::new()),
            Ty::Stats => Element::Stats(Stats::new(shape)),
        }))
    }

    pub fn remove(&mut self, key: &[KeyPart]) {
        self.elements.shift_remove(key);
    }

    pub fn clear(&mut self) {
        self.elements.clear();
    }

    /// Removes every element whose key matches `pattern`, keeping the others' order.
    pub fn remove_matching(&mut self, pattern: &[Option<KeyPart>]) {
        self.elements.retain(|key, _| !key_matches(key, pattern));
    }

    pub fn contains_matching(&self, pattern: &[Option<KeyPart>]) -> bool {
        self.elements.keys().any(|key| key_matches(key, pattern))
    }

    pub fn iter(&self) -> impl Iterator<Item = (&Key, &Element)> {
        self.elements.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn array(max_entries: usize, wraps: bool) -> Array {
        Array::new(&ArrayInfo {
            name: "a".into(),
            keys: vec![Ty::Long],
            value: Ty::Long,
            max_entries,
            declared_size: true,
            wraps,
            stats: StatsShape::default(),
        })
    }

    #[test]
    fn a_full_array_refuses_new_keys_unless_it_wraps() {
        let mut full = array(2, false);
        for k in 0..2 {
            *full.entry(vec![KeyPart::Int(k)]).unwrap() = Element::Int(k);
        }
        assert_eq!(full.entry(vec![KeyPart::Int(5)]).err(), Some(Full));
        assert!(
            full.entry(vec![KeyPart::Int(1)]).is_ok(),
            "an old key still takes values"
        );
        let mut wrapping = array(2, true);
        for k in 0..3 {
            wrapping.entry(vec![KeyPart::Int(k)]).unwrap();
        }
        let keys: Vec<&Key> = wrapping.iter().map(|(k, _)| k).collect();
        assert_eq!(keys, [&vec![KeyPart::Int(1)], &vec![KeyPart::Int(2)]]);
    }
}
