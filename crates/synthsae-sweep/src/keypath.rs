//! Dotted key paths into JSON objects (`sae.k`, `synthetic_model.hidden_dim`).

use serde_json::{Map, Value};

/// The value at `path` in `root`, if every segment exists.
pub fn get<'a>(root: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.')
        .try_fold(root, |v, seg| v.as_object()?.get(seg))
}

/// Sets `path` in `root` to `value`, creating the last key if needed. Every
/// segment before the last must be an existing object; the error says which
/// one is not.
pub fn set(root: &mut Value, path: &str, value: Value) -> Result<(), String> {
    let segments: Vec<&str> = path.split('.').collect();
    if segments.iter().any(|s| s.is_empty()) {
        return Err("is not a key path (empty segment)".into());
    }
    let (last, parents) = segments.split_last().expect("split yields one segment");
    let mut node = root;
    let mut walked = String::new();
    for seg in parents {
        if !walked.is_empty() {
            walked.push('.');
        }
        walked.push_str(seg);
        node = match node {
            Value::Object(m) => m
                .get_mut(*seg)
                .ok_or_else(|| format!("`{walked}` does not exist"))?,
            _ => return Err(format!("`{walked}` is not an object")),
        };
        if !node.is_object() {
            return Err(format!("`{walked}` is {}, not an object", kind(node)));
        }
    }
    match node {
        Value::Object(m) => {
            m.insert((*last).to_string(), value);
            Ok(())
        }
        other => Err(format!("the parent of `{last}` is {}", kind(other))),
    }
}

/// Whether one of `a`, `b` is `b`, `a` or a prefix path of the other.
pub fn overlaps(a: &str, b: &str) -> bool {
    a == b
        || b.strip_prefix(a).is_some_and(|r| r.starts_with('.'))
        || a.strip_prefix(b).is_some_and(|r| r.starts_with('.'))
}

/// The last segment of `path`.
pub fn leaf(path: &str) -> &str {
    path.rsplit('.').next().unwrap_or(path)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `value` as a name fragment: strings as they are, other values as JSON,
/// characters other than letters, digits, `.` and `-` replaced by `-`.
pub fn name_fragment(value: &Value) -> String {
    let raw = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    raw.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// An empty JSON object.
pub fn object() -> Value {
    Value::Object(Map::new())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn set_get_and_errors() {
        let mut v = json!({"sae": {"k": 4}, "lr": 1.0, "model": "x"});
        set(&mut v, "sae.k", json!(8)).unwrap();
        set(&mut v, "sae.d_sae", json!(16)).unwrap();
        assert_eq!(get(&v, "sae.k"), Some(&json!(8)));
        assert_eq!(get(&v, "sae.d_sae"), Some(&json!(16)));
        assert!(set(&mut v, "lr.x", json!(1))
            .unwrap_err()
            .contains("`lr` is a number"));
        assert!(set(&mut v, "nope.x", json!(1))
            .unwrap_err()
            .contains("`nope` does not exist"));
        assert!(set(&mut v, "sae..k", json!(1)).is_err());
        assert_eq!(get(&v, "sae.nope"), None);
    }

    #[test]
    fn overlap_and_names() {
        assert!(overlaps("sae", "sae.k"));
        assert!(overlaps("sae.k", "sae.k"));
        assert!(!overlaps("sae.k", "sae.kk"));
        assert_eq!(leaf("recipe.l0"), "l0");
        assert_eq!(
            name_fragment(&json!("matryoshka_batchtopk")),
            "matryoshka-batchtopk"
        );
        assert_eq!(name_fragment(&json!(0.001)), "0.001");
        assert_eq!(name_fragment(&json!([1, 2])), "-1-2-");
    }
}
