//! The registry of in-VM tests. Add a test to a module and list it in `all`.

mod basic;
mod modules;

use crate::harness::{Allowed, Test};

/// Every test, in the order it runs (special tests first, then the
/// differential ones, once per implementation).
pub fn all() -> Vec<Test> {
    let mut v = Vec::new();
    v.extend(modules::tests());
    v.extend(basic::tests());
    v
}

/// Deliberate, documented differences between the C module and ours:
/// `(test, observation key, reason)`. Every entry needs a reason a reviewer
/// can check against Documentation/.
pub const ALLOWED: &[Allowed] = &[];
