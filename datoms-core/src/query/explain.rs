//! `explain`: the plan a query ran with, as a user can print it.

use std::fmt;
use std::time::Duration;

use super::QueryResult;

/// What [`super::Query::explain`] returns: the steps of the plan in the order they ran,
/// and the result.
///
/// Each step is a line: a star join (the patterns of one entity variable run together)
/// with, per pattern, the index read chosen, its estimated and actual size; or a clause
/// the general path ran, its cost class (lower runs earlier: predicates 0, `not` 1,
/// functions 2, patterns 10–130 by the index access they get, `or` and rules 45) and the
/// sizes of the relations after it.
#[derive(Clone, Debug)]
pub struct Explain {
    /// The steps, one line each.
    pub steps: Vec<String>,
    /// The query's result.
    pub result: QueryResult,
    /// How long planning and running took.
    pub elapsed: Duration,
}

impl fmt::Display for Explain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "plan:")?;
        for s in &self.steps {
            writeln!(f, "  {s}")?;
        }
        write!(
            f,
            "result: {} rows in {:.3} ms",
            self.result.len(),
            self.elapsed.as_secs_f64() * 1e3
        )
    }
}
