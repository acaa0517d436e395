//! `HeaderOps`: header mutations returned as data (Python applies them), pre-rendered as JSON.

use crate::spec::HeaderOpsSpec;

/// set / add / remove operations in application order, as resolved by Python (Istio merges
/// route-level and destination-level `headers`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HeaderOps {
    pub(crate) ops: HeaderOpsSpec,
    /// `{"set":[[k,v]],"add":[[k,v]],"remove":[k]}`, rendered once at compile time.
    pub(crate) json: Box<str>,
}

/// The JSON of empty header operations.
pub(crate) const EMPTY_JSON: &str = r#"{"set":[],"add":[],"remove":[]}"#;

impl HeaderOps {
    pub(crate) fn new(ops: HeaderOpsSpec) -> Self {
        let json =
            serde_json::json!({"set": ops.set, "add": ops.add, "remove": ops.remove}).to_string();
        Self {
            ops,
            json: json.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_in_order() {
        let ops = HeaderOps::new(HeaderOpsSpec {
            set: vec![("b".into(), "1".into()), ("a".into(), "2".into())],
            add: vec![],
            remove: vec!["x".into()],
        });
        assert_eq!(
            &*ops.json,
            r#"{"add":[],"remove":["x"],"set":[["b","1"],["a","2"]]}"#
        );
        assert_eq!(
            HeaderOps::new(HeaderOpsSpec::default()).json.len(),
            EMPTY_JSON.len()
        );
    }
}
