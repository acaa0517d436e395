//! Reading the IR's opaque JSON (`extra`, traffic policies) as serve's Python read it: truthiness,
//! `str(x)`, `str(int(x))`. Used only when the table is built.

use serde_json::Value;

/// Python truthiness of a JSON value.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// `obj.get(key)` of a JSON object, `None` for anything else or a missing key.
pub(crate) fn get<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    v.as_object()?.get(key)
}

/// `obj.get(key)` when it is truthy (Python's `obj.get(key) or ...`).
pub(crate) fn get_truthy<'v>(v: &'v Value, key: &str) -> Option<&'v Value> {
    get(v, key).filter(|x| truthy(x))
}

/// Python's `str(x)` for the scalars the IR holds.
pub(crate) fn py_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// Python's `str(int(x))`; `None` where Python would raise (or for JSON `null`).
pub(crate) fn py_int_str(v: &Value) -> Option<String> {
    match v {
        Value::Bool(b) => Some(u8::from(*b).to_string()),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Some(i.to_string())
            } else if let Some(u) = n.as_u64() {
                Some(u.to_string())
            } else {
                let f = n.as_f64()?.trunc();
                // `{:.0}` prints a float's exact integer value, as Python's int() does.
                f.is_finite().then(|| {
                    if f == 0.0 {
                        "0".to_owned()
                    } else {
                        format!("{f:.0}")
                    }
                })
            }
        }
        Value::String(s) => s.trim().parse::<i128>().ok().map(|i| i.to_string()),
        _ => None,
    }
}

/// Python's `float(x)` for a JSON value.
pub(crate) fn py_float(v: &Value) -> Option<f64> {
    match v {
        Value::Bool(b) => Some(f64::from(u8::from(*b))),
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_semantics() {
        assert!(!truthy(&json!(0)) && !truthy(&json!("")) && !truthy(&json!({})));
        assert!(truthy(&json!(0.5)) && truthy(&json!([0])));
        assert_eq!(py_int_str(&json!(300)).as_deref(), Some("300"));
        assert_eq!(py_int_str(&json!(2.9)).as_deref(), Some("2"));
        assert_eq!(py_int_str(&json!(-0.5)).as_deref(), Some("0"));
        assert_eq!(
            py_int_str(&json!(1e20)).as_deref(),
            Some("100000000000000000000")
        );
        assert_eq!(py_int_str(&json!(true)).as_deref(), Some("1"));
        assert_eq!(py_int_str(&json!(null)), None);
        assert_eq!(py_str(&json!("x")), "x");
        assert_eq!(py_str(&json!(5)), "5");
        assert_eq!(py_float(&json!("12.5")), Some(12.5));
        assert_eq!(get_truthy(&json!({"a": ""}), "a"), None);
    }
}
