//! Reading one key of the config object: typed, range-checked, and with errors that name the
//! key and the line and column where it stands (§3.2, §9). Pure; [`super::Settings`] uses it.

use std::path::PathBuf;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// serde_json appends " at line L column C"; we report those separately.
pub(super) fn strip_location(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_string(),
        None => msg.to_string(),
    }
}

/// Typed access to the config object with errors that name the key and where it stands.
pub(super) struct Reader<'a> {
    pub(super) map: &'a Map<String, Value>,
    pub(super) text: &'a str,
    pub(super) path: PathBuf,
}

impl Reader<'_> {
    pub(super) fn get<T: DeserializeOwned>(&self, key: &str, default: T) -> Result<T> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => T::deserialize(v).map_err(|e| self.invalid(key, &strip_location(&e.to_string()))),
        }
    }

    pub(super) fn range<T>(&self, key: &str, default: T, min: T, max: T) -> Result<T>
    where
        T: DeserializeOwned + PartialOrd + std::fmt::Display + Copy,
    {
        let v: T = self.get(key, default)?;
        if v < min || v > max {
            return Err(self.invalid(key, &format!("{v} is out of range; accepted: {min}..={max}")));
        }
        Ok(v)
    }

    pub(super) fn path_or(&self, key: &str, default: PathBuf) -> Result<PathBuf> {
        let s: String = self.get(key, String::new())?;
        Ok(if s.is_empty() { default } else { PathBuf::from(s) })
    }

    /// Absent = default; `""` = off.
    pub(super) fn optional_path(&self, key: &str, default: PathBuf) -> Result<Option<PathBuf>> {
        match self.map.get(key) {
            None | Some(Value::Null) => Ok(Some(default).filter(|p| !p.as_os_str().is_empty())),
            Some(_) => {
                let s: String = self.get(key, String::new())?;
                Ok(Some(PathBuf::from(s)).filter(|p| !p.as_os_str().is_empty()))
            }
        }
    }

    /// An error in a nested object: located at `outer`, named by its full dotted `key`.
    pub(super) fn invalid_nested(&self, outer: &str, key: &str, msg: &str) -> Error {
        let (line, column) = locate_key(self.text, outer);
        Error::ConfigValue { path: self.path.clone(), key: key.to_string(), line, column, msg: msg.to_string() }
    }

    pub(super) fn invalid(&self, key: &str, msg: &str) -> Error {
        let (line, column) = locate_key(self.text, key);
        Error::ConfigValue { path: self.path.clone(), key: key.to_string(), line, column, msg: msg.to_string() }
    }
}

/// Line and column (1-based) of the value of `"key":` in the text, or (0, 0) when not found.
fn locate_key(text: &str, key: &str) -> (usize, usize) {
    let needle = format!("\"{key}\"");
    let mut from = 0;
    while let Some(i) = text[from..].find(&needle) {
        let at = from + i;
        let rest = &text[at + needle.len()..];
        if rest.trim_start().starts_with(':') {
            let before = &text[..at];
            let line = before.matches('\n').count() + 1;
            let column = before.len() - before.rfind('\n').map(|n| n + 1).unwrap_or(0) + 1;
            return (line, column);
        }
        from = at + needle.len();
    }
    (0, 0)
}
