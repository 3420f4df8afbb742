//! Small shared pieces with no knowledge of the agent: [`fs`] (atomic 0600 writes), [`join`]
//! (the one bounded thread join), [`reopen`] (log files that follow logrotate), [`statefile`]
//! (reading back state files), [`sketch`] (bounded heavy-hitter and distinct counters), [`child`]
//! (a child process with a deadline over its whole run), [`http`] (the one outbound HTTP client:
//! no redirects, capped bodies).

pub mod child;
pub mod fs;
pub mod http;
pub mod join;
pub mod reopen;
pub mod sketch;
#[cfg(test)]
pub mod skip;
pub mod statefile;
