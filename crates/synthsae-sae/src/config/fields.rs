//! Reading config structs out of a sae-lens JSON object with serde derive,
//! under sae-lens's rules:
//!
//! * a missing key and a `null` value both mean "the default";
//! * keys the struct does not know are ignored (a `cfg.json` holds the
//!   fields of several configs, and sae-lens's metadata);
//! * a value of the wrong type is an error naming the field, with the
//!   reason (`must be a number, got "x"`), in the struct's field order;
//! * an integer field accepts an integral float (`100.0`: Python writes
//!   those).
//!
//! [`read`] deserialises a whole struct this way, [`read_field`] one key.

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, MapAccess, Visitor};
use serde::forward_to_deserialize_any;
use serde::{Deserialize, Deserializer, Serializer};
use serde_json::{Map, Value};

use crate::error::{invalid, Result, SaeError};

/// Reads `T` (a struct with serde derive) from the keys of `m` (see the
/// module docs).
pub(crate) fn read<T: DeserializeOwned>(m: &Map<String, Value>) -> Result<T> {
    T::deserialize(Fields(m)).map_err(FieldError::into_sae)
}

/// Reads one key of `m` as `T`; `None` when it is absent or `null`.
pub(crate) fn read_field<T: DeserializeOwned>(
    m: &Map<String, Value>,
    key: &str,
) -> Result<Option<T>> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => T::deserialize(FieldValue(v))
            .map(Some)
            .map_err(|e| e.at(key).into_sae()),
    }
}

/// A float written as an integer when it is one (sae-lens writes `k: 6` for
/// `k=6`); for `#[serde(serialize_with = ...)]`.
pub(crate) fn number<S: Serializer>(x: &f64, s: S) -> std::result::Result<S::Ok, S::Error> {
    if x.fract() == 0.0 && x.abs() < 9.0e15 {
        s.serialize_i64(*x as i64)
    } else {
        s.serialize_f64(*x)
    }
}

/// `T` as the JSON object serde writes for it (field order = declaration
/// order).
pub(crate) fn to_map<T: serde::Serialize>(value: &T) -> Map<String, Value> {
    match serde_json::to_value(value) {
        Ok(Value::Object(m)) => m,
        _ => unreachable!("config structs serialise to JSON objects"),
    }
}

/// Why a field could not be read: its name (once known) and the reason.
#[derive(Debug)]
pub(crate) struct FieldError {
    field: Option<String>,
    reason: String,
}

impl FieldError {
    /// Names the field, unless a deeper level already did.
    fn at(mut self, field: &str) -> Self {
        self.field.get_or_insert_with(|| field.to_string());
        self
    }

    fn into_sae(self) -> SaeError {
        invalid(self.field.as_deref().unwrap_or("cfg"), self.reason)
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.reason)
    }
}

impl std::error::Error for FieldError {}

impl de::Error for FieldError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        Self {
            field: None,
            reason: msg.to_string(),
        }
    }

    fn missing_field(field: &'static str) -> Self {
        Self {
            field: Some(field.to_string()),
            reason: "is required".into(),
        }
    }

    fn unknown_variant(variant: &str, expected: &'static [&'static str]) -> Self {
        Self::custom(format!("`{variant}` is not one of {}", expected.join(", ")))
    }
}

fn wrong(reason: &str, v: &Value) -> FieldError {
    de::Error::custom(format!("{reason}, got {v}"))
}

/// A JSON object read as a struct: its fields are visited in declaration
/// order, absent and `null` ones skipped (so that serde's defaults apply).
struct Fields<'a>(&'a Map<String, Value>);

impl<'de, 'a> Deserializer<'de> for Fields<'a> {
    type Error = FieldError;

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> std::result::Result<V::Value, FieldError> {
        visitor.visit_map(FieldsAccess {
            map: self.0,
            fields: fields.iter(),
            current: None,
        })
    }

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> std::result::Result<V::Value, FieldError> {
        Err(de::Error::custom("must be a JSON object"))
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf option unit unit_struct newtype_struct seq tuple
        tuple_struct map enum identifier ignored_any
    }
}

struct FieldsAccess<'a> {
    map: &'a Map<String, Value>,
    fields: std::slice::Iter<'static, &'static str>,
    current: Option<(&'static str, &'a Value)>,
}

impl<'de, 'a> MapAccess<'de> for FieldsAccess<'a> {
    type Error = FieldError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> std::result::Result<Option<K::Value>, FieldError> {
        for &field in self.fields.by_ref() {
            match self.map.get(field) {
                None | Some(Value::Null) => continue,
                Some(v) => {
                    self.current = Some((field, v));
                    return seed.deserialize(field.into_deserializer()).map(Some);
                }
            }
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(
        &mut self,
        seed: V,
    ) -> std::result::Result<V::Value, FieldError> {
        let (field, v) = self
            .current
            .take()
            .expect("serde asks for a value after its key");
        seed.deserialize(FieldValue(v)).map_err(|e| e.at(field))
    }
}

/// One JSON value read with sae-lens's type rules and messages.
struct FieldValue<'a>(&'a Value);

impl<'de, 'a> Deserializer<'de> for FieldValue<'a> {
    type Error = FieldError;

    fn deserialize_any<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, FieldError> {
        self.0
            .clone()
            .deserialize_any(visitor)
            .map_err(de::Error::custom)
    }

    fn deserialize_bool<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, FieldError> {
        match self.0 {
            Value::Bool(b) => visitor.visit_bool(*b),
            v => Err(wrong("must be true or false", v)),
        }
    }

    fn deserialize_u64<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, FieldError> {
        let v = self.0;
        if let Some(u) = v.as_u64() {
            return visitor.visit_u64(u);
        }
        // Python may write an integral float (`100.0`).
        match v.as_f64() {
            Some(f) if f >= 0.0 && f.fract() == 0.0 && f < 9.0e15 => visitor.visit_u64(f as u64),
            _ => Err(wrong("must be a non-negative integer", v)),
        }
    }

    fn deserialize_u8<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, FieldError> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u16<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, FieldError> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_u32<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, FieldError> {
        self.deserialize_u64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, FieldError> {
        match self.0.as_f64() {
            Some(f) => visitor.visit_f64(f),
            None => Err(wrong("must be a number", self.0)),
        }
    }

    fn deserialize_f32<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, FieldError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, FieldError> {
        match self.0 {
            Value::String(s) => visitor.visit_str(s),
            v => Err(wrong("must be a string", v)),
        }
    }

    fn deserialize_string<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, FieldError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, FieldError> {
        match self.0 {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, FieldError> {
        match self.0 {
            Value::Object(_) => self.deserialize_any(visitor),
            _ => Err(de::Error::custom("must be an object")),
        }
    }

    fn deserialize_seq<V: Visitor<'de>>(
        self,
        visitor: V,
    ) -> std::result::Result<V::Value, FieldError> {
        match self.0 {
            Value::Array(_) => self.deserialize_any(visitor),
            _ => Err(de::Error::custom("must be a list")),
        }
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _variants: &'static [&'static str],
        visitor: V,
    ) -> std::result::Result<V::Value, FieldError> {
        match self.0 {
            Value::String(s) => visitor.visit_enum(s.as_str().into_deserializer()),
            v => Err(wrong("must be a string", v)),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> std::result::Result<V::Value, FieldError> {
        visitor.visit_newtype_struct(self)
    }

    forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u128 char bytes byte_buf unit unit_struct tuple
        tuple_struct struct identifier ignored_any
    }
}

/// `matryoshka_widths`: a list of non-negative integers (no integral
/// floats, as sae-lens).
pub(crate) fn widths<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<Vec<usize>, D::Error> {
    match Value::deserialize(d)? {
        Value::Array(a) => a
            .iter()
            .map(|v| {
                v.as_u64()
                    .map(|w| w as usize)
                    .ok_or_else(|| de::Error::custom("must contain only positive widths"))
            })
            .collect(),
        _ => Err(de::Error::custom("must be a list")),
    }
}
