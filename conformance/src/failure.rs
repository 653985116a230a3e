//! [`Failure`]: why a conformance case failed, and the `ensure!` family of checks that
//! return one instead of panicking, so every failure carries its context (the step, the
//! seed) up to the test harness.

use std::fmt;

use datoms_storage::StorageError;

/// Why a conformance case failed: a behaviour that did not hold, or an error where none
/// was expected. Its `Debug` form is the readable message, which is what the test harness
/// prints for a test that returns `Err`.
pub struct Failure {
    message: String,
}

impl Failure {
    /// A failure with this message.
    pub fn new(message: impl fmt::Display) -> Failure {
        Failure {
            message: message.to_string(),
        }
    }

    /// The same failure, prefixed with where it happened.
    #[must_use]
    pub fn context(self, what: impl fmt::Display) -> Failure {
        Failure {
            message: format!("{what}: {}", self.message),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<StorageError> for Failure {
    fn from(e: StorageError) -> Failure {
        Failure::new(format_args!("unexpected storage error: {e} ({e:?})"))
    }
}

impl From<datoms_core::Error> for Failure {
    fn from(e: datoms_core::Error) -> Failure {
        Failure::new(format_args!("unexpected database error: {e} ({e:?})"))
    }
}

impl From<datoms_storage::PeerError> for Failure {
    fn from(e: datoms_storage::PeerError) -> Failure {
        Failure::new(format_args!("unexpected peer error: {e} ({e:?})"))
    }
}

impl From<datoms_storage::OutboxError> for Failure {
    fn from(e: datoms_storage::OutboxError) -> Failure {
        Failure::new(format_args!("unexpected outbox error: {e} ({e:?})"))
    }
}

impl From<tokio::task::JoinError> for Failure {
    fn from(e: tokio::task::JoinError) -> Failure {
        Failure::new(format_args!("a task of the case failed: {e}"))
    }
}

impl From<std::io::Error> for Failure {
    fn from(e: std::io::Error) -> Failure {
        Failure::new(format_args!("unexpected I/O error: {e}"))
    }
}

/// Adds context to the error of a `Result`.
pub trait Context<T> {
    /// Converts the error to a [`Failure`] that says `what` was being done.
    ///
    /// # Errors
    /// The error, converted and prefixed.
    fn context(self, what: impl fmt::Display) -> Result<T, Failure>;
}

impl<T, E: Into<Failure>> Context<T> for Result<T, E> {
    fn context(self, what: impl fmt::Display) -> Result<T, Failure> {
        self.map_err(|e| e.into().context(what))
    }
}

/// Returns a [`Failure`] from the enclosing function unless the condition holds.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err($crate::Failure::new(format_args!($($msg)+)));
        }
    };
}

/// Returns a [`Failure`] showing both sides unless they are equal.
macro_rules! ensure_eq {
    ($left:expr, $right:expr, $($msg:tt)+) => {
        match (&$left, &$right) {
            (left, right) => {
                if left != right {
                    return Err($crate::Failure::new(format_args!(
                        "{}\n  left:  {:?}\n  right: {:?}",
                        format_args!($($msg)+),
                        left,
                        right
                    )));
                }
            }
        }
    };
}

pub(crate) use {ensure, ensure_eq};
