//! Log levels and the free `log` function, for code that has no [`crate::Context`] (e.g. init).

use std::fmt;

use switchyard_abi::level;

/// Severity of a log line sent to the host, which forwards it to its own logs with the
/// plugin's name attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    Error,
    Warn,
    Info,
    Debug,
    Trace,
}

impl Level {
    /// The integer the `log` import takes.
    pub const fn as_abi(self) -> i32 {
        match self {
            Level::Error => level::ERROR,
            Level::Warn => level::WARN,
            Level::Info => level::INFO,
            Level::Debug => level::DEBUG,
            Level::Trace => level::TRACE,
        }
    }

    /// The level for an integer the `log` import received, if it is one.
    pub const fn from_abi(value: i32) -> Option<Level> {
        match value {
            level::ERROR => Some(Level::Error),
            level::WARN => Some(Level::Warn),
            level::INFO => Some(Level::Info),
            level::DEBUG => Some(Level::Debug),
            level::TRACE => Some(Level::Trace),
            _ => None,
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Error => "error",
            Level::Warn => "warn",
            Level::Info => "info",
            Level::Debug => "debug",
            Level::Trace => "trace",
        })
    }
}

/// Send one line to the host's log. Logging never fails from the plugin's point of view: a line
/// the host cannot take is dropped, because there is nothing useful a handler could do instead.
pub fn log(level: Level, line: &str) {
    let _status = crate::host::log(level.as_abi(), line);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_round_trip_through_abi_codes() {
        for level in [Level::Error, Level::Warn, Level::Info, Level::Debug, Level::Trace] {
            assert_eq!(Level::from_abi(level.as_abi()), Some(level));
        }
        assert_eq!(Level::from_abi(0), None);
        assert_eq!(Level::from_abi(6), None);
    }
}
