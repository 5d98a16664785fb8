//! Sets of fields as trees of map keys, and what managedFields needs of
//! them: union, difference, the fields related to another set's.

use std::collections::BTreeMap;

/// A set of fields, as a tree of map keys: each key of an object is stored
/// once, however many fields lie below it, so a set is never larger than the
/// object it was taken from. A node is a field (`leaf`), an ancestor of
/// fields, or both (in sets merged over time).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    /// This node is a field.
    pub leaf: bool,
    /// The fields below, by key.
    pub children: BTreeMap<String, FieldSet>,
}

impl FieldSet {
    /// True when it holds no field.
    pub fn is_empty(&self) -> bool {
        !self.leaf && self.children.is_empty()
    }

    /// Adds every field of `other`.
    pub fn union(&mut self, other: &FieldSet) {
        self.leaf |= other.leaf;
        for (k, c) in &other.children {
            self.children.entry(k.clone()).or_default().union(c);
        }
    }

    /// Removes every field related to (equal to, above or below) a field of `other`.
    pub fn prune_related(&mut self, other: &FieldSet) {
        if other.leaf {
            *self = FieldSet::default();
            return;
        }
        if self.leaf && !other.children.is_empty() {
            self.leaf = false;
        }
        for (k, o) in &other.children {
            if let Some(c) = self.children.get_mut(k) {
                c.prune_related(o);
                if c.is_empty() {
                    self.children.remove(k);
                }
            }
        }
    }

    /// The fields of `self` that are not fields of `other` (exact paths).
    pub fn minus(&self, other: Option<&FieldSet>) -> FieldSet {
        let mut out = FieldSet { leaf: self.leaf && !other.is_some_and(|o| o.leaf), ..Default::default() };
        for (k, c) in &self.children {
            let d = c.minus(other.and_then(|o| o.children.get(k)));
            if !d.is_empty() {
                out.children.insert(k.clone(), d);
            }
        }
        out
    }

    /// True if some field of `self` is related to the path `p`.
    pub fn owns_related(&self, p: &[String]) -> bool {
        let mut node = self;
        for k in p {
            if node.leaf {
                return true;
            }
            match node.children.get(k) {
                Some(c) => node = c,
                None => return false,
            }
        }
        !node.is_empty()
    }

    /// Calls `f` with the path of every field (depth-first, key order).
    pub fn for_each(&self, prefix: &mut Vec<String>, f: &mut impl FnMut(&[String])) {
        if self.leaf {
            f(prefix);
        }
        for (k, c) in &self.children {
            prefix.push(k.clone());
            c.for_each(prefix, f);
            prefix.pop();
        }
    }

    /// Counts the fields of `self` related to a field of `other`, keeping the
    /// paths of the first `max`.
    pub fn related_paths(
        &self,
        other: &FieldSet,
        prefix: &mut Vec<String>,
        max: usize,
        out: &mut Vec<Vec<String>>,
    ) -> usize {
        let mut keep = |p: &[String]| {
            if out.len() < max {
                out.push(p.to_vec());
            }
        };
        if other.leaf && !self.is_empty() {
            // `other` owns this node: every field of `self` from here is related.
            let mut n = 0;
            self.for_each(prefix, &mut |p: &[String]| {
                keep(p);
                n += 1;
            });
            return n;
        }
        let mut n = 0;
        if self.leaf && !other.is_empty() {
            keep(prefix);
            n += 1;
        }
        for (k, c) in &self.children {
            if let Some(o) = other.children.get(k) {
                prefix.push(k.clone());
                n += c.related_paths(o, prefix, max, out);
                prefix.pop();
            }
        }
        n
    }
}
