//! Small shared pieces with no knowledge of the agent: [`fs`] (atomic 0600 writes), [`join`]
//! (the one bounded thread join), [`reopen`] (log files that follow logrotate), [`statefile`]
//! (reading back state files), [`sketch`] (bounded heavy-hitter and distinct counters).

pub mod fs;
pub mod join;
pub mod reopen;
pub mod sketch;
#[cfg(test)]
pub mod skip;
pub mod statefile;
