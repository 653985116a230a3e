//! Parsed queries, cached by their text, as Datascript caches them (an LRU of 100 parsed
//! queries): [`super::q`] and [`super::q_with`] parse a query once, not on every call.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::parse::Query;
use crate::error::Error;

/// Queries kept (Datascript keeps 100).
const CAPACITY: usize = 100;

#[derive(Default)]
struct Lru {
    entries: HashMap<Arc<str>, (Arc<Query>, u64)>,
    clock: u64,
}

fn cache() -> &'static Mutex<Lru> {
    static CACHE: OnceLock<Mutex<Lru>> = OnceLock::new();
    CACHE.get_or_init(Mutex::default)
}

/// The parsed query of `text`, from the cache or parsed (and cached) now. A query that
/// does not parse is not cached: its error comes back each time.
pub(crate) fn parsed(text: &str) -> Result<Arc<Query>, Error> {
    {
        let mut lru = cache().lock().unwrap_or_else(|e| e.into_inner());
        lru.clock += 1;
        let now = lru.clock;
        if let Some((q, used)) = lru.entries.get_mut(text) {
            *used = now;
            return Ok(q.clone());
        }
    }
    let query = Arc::new(Query::parse(text)?);
    let mut lru = cache().lock().unwrap_or_else(|e| e.into_inner());
    if lru.entries.len() >= CAPACITY {
        if let Some(oldest) = lru
            .entries
            .iter()
            .min_by_key(|(_, (_, used))| *used)
            .map(|(k, _)| k.clone())
        {
            lru.entries.remove(&oldest);
        }
    }
    let now = lru.clock;
    lru.entries.insert(Arc::from(text), (query.clone(), now));
    Ok(query)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_is_parsed_once_and_the_oldest_goes_first() {
        let text = "[:find ?e :where [?e :cache-test/a 1]]";
        let a = parsed(text).unwrap();
        let b = parsed(text).unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        for i in 0..CAPACITY + 5 {
            parsed(&format!("[:find ?e :where [?e :cache-test/n {i}]]")).unwrap();
        }
        let lru = cache().lock().unwrap();
        assert!(lru.entries.len() <= CAPACITY);
        drop(lru);
        assert!(parsed("[:find ?e :where").is_err());
    }
}
