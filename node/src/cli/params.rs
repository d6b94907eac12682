//! From the words after the method to JSON-RPC params, typed by the method table.
//!
//! Each word is a positional param, or `name=value` when `name` is one of the method's
//! params (all of them named then, none positional: the node takes one form or the other).
//! A param the table types as text (an address, a txid, hex) is sent as typed, so a hex id
//! made of digits stays a string; a block is a height when it is all digits, else an id;
//! any other word is JSON when it parses as JSON (`5`, `true`, `[1,2]`, `"quoted"`) and a
//! string otherwise. For a method missing from the table (a newer node) every word is
//! treated as that last kind, and `name=value` is named when `name` is an identifier.

use crate::table::{MethodSpec, ParamType};
use serde_json::{Map, Value};

/// The params for `method` from `words`, or a usage error (said before anything is sent).
pub fn build(method: &str, spec: Option<&MethodSpec>, words: &[String]) -> Result<Value, String> {
    let named: Vec<Option<(&str, &str)>> = words.iter().map(|w| named_word(spec, w)).collect();
    if named.iter().all(Option::is_none) {
        return positional(method, spec, words);
    }
    let mut out = Map::new();
    for (word, named) in words.iter().zip(&named) {
        let Some((name, text)) = named else {
            return Err(match spec.filter(|_| word.contains('=')) {
                Some(s) => format!(
                    "{method} has no parameter {:?}; its parameters are {}",
                    word.split('=').next().unwrap_or_default(),
                    names(s)
                ),
                None => format!(
                    "{word:?} is positional but others are name=value: give {method}'s \
                     parameters all by position or all by name"
                ),
            });
        };
        let ty = spec.and_then(|s| s.params.iter().find(|p| p.name == *name)).map(|p| p.ty);
        if out.insert(name.to_string(), value(ty, text)).is_some() {
            return Err(format!("parameter {name:?} is given twice"));
        }
    }
    Ok(Value::Object(out))
}

fn positional(method: &str, spec: Option<&MethodSpec>, words: &[String]) -> Result<Value, String> {
    if let Some(s) = spec {
        if words.len() > s.params.len() {
            return Err(match s.params.len() {
                0 => format!("{method} takes no parameters, got {}", words.len()),
                1 => format!(
                    "{method} takes at most 1 parameter ({}), got {}",
                    names(s),
                    words.len()
                ),
                n => format!(
                    "{method} takes at most {n} parameters ({}), got {}",
                    names(s),
                    words.len()
                ),
            });
        }
    }
    let ty = |i: usize| spec.and_then(|s| s.params.get(i)).map(|p| p.ty);
    Ok(Value::Array(words.iter().enumerate().map(|(i, w)| value(ty(i), w)).collect()))
}

/// `Some((name, value))` when `word` is `name=value` for a param of the method (any
/// identifier when the method is not in the table).
fn named_word<'w>(spec: Option<&MethodSpec>, word: &'w str) -> Option<(&'w str, &'w str)> {
    let (name, text) = word.split_once('=')?;
    let ident = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    let known = match spec {
        Some(s) => s.params.iter().any(|p| p.name == name),
        None => ident,
    };
    known.then_some((name, text))
}

/// One word as the JSON value of a param of type `ty` (`None`: not in the table).
fn value(ty: Option<ParamType>, word: &str) -> Value {
    match ty {
        Some(t) if t.is_text() => Value::String(word.to_string()),
        Some(ParamType::Block) => match word.parse::<u64>() {
            Ok(h) if word.bytes().all(|b| b.is_ascii_digit()) => Value::from(h),
            _ => Value::String(word.to_string()),
        },
        _ => serde_json::from_str(word).unwrap_or_else(|_| Value::String(word.to_string())),
    }
}

fn names(spec: &MethodSpec) -> String {
    spec.params.iter().map(|p| p.name).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::find;
    use serde_json::json;

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    fn build_for(method: &str, w: &[&str]) -> Result<Value, String> {
        build(method, find(method), &words(w))
    }

    #[test]
    fn positional_words_are_typed_by_the_table() {
        assert_eq!(
            build_for("net_ban", &["10.0.0.1", "60", "spam=yes"]).unwrap(),
            json!(["10.0.0.1", 60, "spam=yes"])
        );
        // A txid of digits only stays text; a block of digits is a height.
        let digits = "1".repeat(64);
        assert_eq!(build_for("chain_getTransaction", &[&digits]).unwrap(), json!([digits]));
        assert_eq!(build_for("chain_getBlock", &["12"]).unwrap(), json!([12]));
        assert_eq!(build_for("chain_getBlock", &[&digits]).unwrap(), json!([digits]));
        // A u64 param that is not a number goes as text, for the node to refuse by name.
        assert_eq!(build_for("mempool_list", &["many"]).unwrap(), json!(["many"]));
        assert_eq!(build_for("node_info", &[]).unwrap(), json!([]));
    }

    #[test]
    fn named_words_make_an_object() {
        assert_eq!(
            build_for("net_ban", &["address=10.0.0.1", "seconds=60"]).unwrap(),
            json!({ "address": "10.0.0.1", "seconds": 60 })
        );
        let e = build_for("net_ban", &["address=10.0.0.1", "secs=60"]).unwrap_err();
        assert!(e.contains("no parameter \"secs\"") && e.contains("seconds"), "{e}");
        let e = build_for("net_ban", &["address=10.0.0.1", "60"]).unwrap_err();
        assert!(e.contains("all by position or all by name"), "{e}");
        let e = build_for("net_ban", &["address=1.1.1.1", "address=2.2.2.2"]).unwrap_err();
        assert!(e.contains("twice"), "{e}");
    }

    #[test]
    fn too_many_words_are_a_usage_error() {
        let e = build_for("node_info", &["--wait"]).unwrap_err();
        assert!(e.contains("takes no parameters"), "{e}");
        let e = build_for("net_unban", &["a", "b"]).unwrap_err();
        assert!(e.contains("at most 1 parameter (address), got 2"), "{e}");
    }

    #[test]
    fn methods_outside_the_table_take_json_or_text() {
        assert_eq!(
            build("future_method", None, &words(&["1", "x", "[true]"])).unwrap(),
            json!([1, "x", [true]])
        );
        assert_eq!(
            build("future_method", None, &words(&["a=1", "b=x"])).unwrap(),
            json!({ "a": 1, "b": "x" })
        );
    }
}
