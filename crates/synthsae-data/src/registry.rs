//! Name-keyed registries: the extension point for user-defined firing
//! probability and magnitude distributions.
//!
//! A config object is serialised as its parameters followed by the key
//! `"generator_name"` (the sae-lens layout). Built-in names are handled by
//! the config enums; any other name is looked up here, so a user can
//! register a factory once and then read and write configs that use it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::{invalid, DataError, Result};

/// JSON key holding the registered name of a distribution.
pub const GENERATOR_NAME_KEY: &str = "generator_name";

/// Builds a user-defined distribution from its JSON parameters
/// (the object without `generator_name`).
pub type Factory<T> = fn(Map<String, Value>) -> Result<Arc<T>>;

/// A thread-safe name → factory map.
pub struct Registry<T: ?Sized + 'static> {
    kind: &'static str,
    builtin: &'static [&'static str],
    entries: RwLock<BTreeMap<String, Factory<T>>>,
}

impl<T: ?Sized + 'static> Registry<T> {
    /// An empty registry; `builtin` names are reserved.
    pub const fn new(kind: &'static str, builtin: &'static [&'static str]) -> Self {
        Self {
            kind,
            builtin,
            entries: RwLock::new(BTreeMap::new()),
        }
    }

    /// Registers `factory` under `name`; a name may be registered once.
    pub fn register(&self, name: &str, factory: Factory<T>) -> Result<()> {
        let mut map = self.entries.write().unwrap_or_else(|p| p.into_inner());
        if self.builtin.contains(&name) || map.contains_key(name) {
            return Err(DataError::AlreadyRegistered {
                kind: self.kind,
                name: name.to_string(),
            });
        }
        map.insert(name.to_string(), factory);
        Ok(())
    }

    /// Builds the distribution registered as `name` from `params`.
    pub fn build(&self, name: &str, params: Map<String, Value>) -> Result<Arc<T>> {
        let factory = {
            let map = self.entries.read().unwrap_or_else(|p| p.into_inner());
            map.get(name).copied()
        };
        match factory {
            Some(f) => f(params),
            None => Err(DataError::UnknownGenerator {
                kind: self.kind,
                name: name.to_string(),
                available: self.names(),
            }),
        }
    }

    /// Every known name, built-in first.
    pub fn names(&self) -> Vec<String> {
        let map = self.entries.read().unwrap_or_else(|p| p.into_inner());
        self.builtin
            .iter()
            .map(|s| s.to_string())
            .chain(map.keys().cloned())
            .collect()
    }
}

/// Serialises `params` (a struct or map) followed by `generator_name`.
pub(crate) fn tagged_value<P: Serialize + ?Sized>(params: &P, name: &str) -> Value {
    let mut obj = match serde_json::to_value(params) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    obj.insert(
        GENERATOR_NAME_KEY.to_string(),
        Value::String(name.to_string()),
    );
    Value::Object(obj)
}

/// Splits a tagged JSON object into its `generator_name` and parameters.
pub(crate) fn split_tagged(value: Value, what: &str) -> Result<(String, Map<String, Value>)> {
    let Value::Object(mut obj) = value else {
        return Err(invalid(
            what,
            "expected a JSON object with a `generator_name` key",
        ));
    };
    match obj.remove(GENERATOR_NAME_KEY) {
        Some(Value::String(name)) => Ok((name, obj)),
        Some(other) => Err(invalid(
            format!("{what}.generator_name"),
            format!("expected a string, got {other}"),
        )),
        None => Err(invalid(what, "generator_name required in config dict")),
    }
}

/// Parses the parameters of a built-in distribution, rejecting unknown keys.
pub(crate) fn parse_params<P: serde::de::DeserializeOwned>(
    params: Map<String, Value>,
    what: &str,
) -> Result<P> {
    serde_json::from_value(Value::Object(params)).map_err(|source| DataError::Json {
        what: what.to_string(),
        source,
    })
}

/// Implements `PartialEq`, `Serialize` and `Deserialize` for a tagged config
/// enum through its `to_value` / `from_value` (the sae-lens JSON form).
macro_rules! tagged_config_serde {
    ($ty:ty) => {
        impl PartialEq for $ty {
            fn eq(&self, other: &Self) -> bool {
                self.to_value() == other.to_value()
            }
        }

        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(
                &self,
                s: S,
            ) -> std::result::Result<S::Ok, S::Error> {
                self.to_value().serialize(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $ty {
            fn deserialize<D: serde::Deserializer<'de>>(
                d: D,
            ) -> std::result::Result<Self, D::Error> {
                Self::from_value(<serde_json::Value as serde::Deserialize>::deserialize(d)?)
                    .map_err(serde::de::Error::custom)
            }
        }
    };
}
pub(crate) use tagged_config_serde;
