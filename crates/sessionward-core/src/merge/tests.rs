//! The merge against the full parse it replaces: the same text, byte for byte, and the same
//! errors.

use proptest::prelude::*;
use serde_json::{Map, Value, json};

use super::{MAX_DEPTH, Shape, shape};
use crate::{DataChanges, DataError, SessionData};

/// The old `apply`: parse everything, change, serialize, then the limit.
fn reference(
    d: &SessionData,
    c: &DataChanges,
    limit: Option<usize>,
) -> Result<SessionData, DataError> {
    if c.is_empty() {
        return Ok(d.clone());
    }
    let out = d.apply_parsed(c)?;
    match limit {
        Some(limit) if out.len_bytes() > limit => Err(DataError::TooLarge {
            size: out.len_bytes(),
            limit,
        }),
        _ => Ok(out),
    }
}

/// `apply` and `merged_len` agree with the reference: the same text, or the same error.
fn agrees(d: &SessionData, c: &DataChanges, limit: Option<usize>) -> Result<(), String> {
    let got = d.apply(c, limit);
    let want = reference(d, c, limit);
    match (&got, &want) {
        (Ok(g), Ok(w)) if g.as_json() == w.as_json() => {}
        (Err(DataError::NotAnObject(_)), Err(DataError::NotAnObject(_))) => {}
        (
            Err(DataError::TooLarge { size, limit }),
            Err(DataError::TooLarge {
                size: s2,
                limit: l2,
            }),
        ) if (size, limit) == (s2, l2) => {}
        _ => return Err(format!("{:?}: got {got:?}, want {want:?}", d.as_json())),
    }
    if let Ok(g) = &got {
        let parsed: Value = serde_json::from_str(g.as_json()).map_err(|e| e.to_string())?;
        let w: Value = serde_json::from_str(want.as_ref().map_err(|e| e.to_string())?.as_json())
            .map_err(|e| e.to_string())?;
        if parsed != w {
            return Err(format!("values differ: {parsed} / {w}"));
        }
    }
    let len = d.merged_len(c);
    let want_len = reference(d, c, None).map(|w| w.len_bytes());
    match (&len, &want_len) {
        (Ok(a), Ok(b)) if a == b => Ok(()),
        (Err(DataError::NotAnObject(_)), Err(DataError::NotAnObject(_))) => Ok(()),
        _ => Err(format!(
            "{:?}: merged_len {len:?}, want {want_len:?}",
            d.as_json()
        )),
    }
}

fn data(text: &str) -> SessionData {
    SessionData::from_json(text).expect("object")
}

fn set(key: &str, value: Value) -> DataChanges {
    let mut c = DataChanges::default();
    c.insert(key, value);
    c
}

fn check(text: &str, c: &DataChanges) {
    if let Err(e) = agrees(&data(text), c, None) {
        panic!("{e}");
    }
}

#[test]
fn keeps_canonical_values_and_sorts_in_new_keys() {
    let d = data(r#"{"a":1,"c":{"x":[true,null,"s"]},"e":"v"}"#);
    let mut c = set("b", json!("new"));
    c.insert("z", json!([1, 2]));
    c.remove("e");
    let out = d.apply(&c, None).expect("apply");
    assert_eq!(
        out.as_json(),
        r#"{"a":1,"b":"new","c":{"x":[true,null,"s"]},"z":[1,2]}"#
    );
    check(d.as_json(), &c);
    assert!(super::merge(d.as_json(), &c, &mut Vec::new()));
}

#[test]
fn escaped_and_unicode_keys_come_out_as_serde_json_writes_them() {
    for text in [
        r#"{"a\"b":1,"\u00e9":2,"\/":3,"\n":4,"\u0001":5,"é":6}"#,
        r#"{"snow ☃":"☃ é","\ud83d\ude00":"\ud83d\ude00"}"#,
        r#"{"k":"\u0041\/\u001F\u001f\u000a\u000b\t"}"#,
    ] {
        check(text, &set("b", json!(1)));
        check(text, &set("é", json!("ü\"\\\u{1}")));
        let mut c = DataChanges::default();
        c.remove("a\"b");
        c.remove("\u{1}");
        check(text, &c);
    }
    let out = data(r#"{"\u00e9":"\u00e9"}"#)
        .apply(&set("a", json!(0)), None)
        .expect("apply");
    assert_eq!(out.as_json(), r#"{"a":0,"é":"é"}"#);
}

#[test]
fn other_text_is_made_canonical_value_by_value() {
    for text in [
        r#"{"a": "x", "n": {"z": 1, "b": [1, 2.5, null]}}"#,
        "{\n  \"a\": [\n    1\n  ]\n}",
        r#"{"f":1.0,"g":1e2,"h":-0,"i":-0.0,"j":2.5E-3}"#,
        r#"{"u":18446744073709551615,"v":18446744073709551616,"w":-9223372036854775808,"x":-9223372036854775809}"#,
        r#"{"nested":{"b":1,"a":2,"b":3},"o":{"a":{}},"p":[[],{}]}"#,
    ] {
        check(text, &set("zz", json!(null)));
        check(text, &set("a", json!({"k": [1]})));
        let mut c = DataChanges::default();
        c.remove("a");
        check(text, &c);
    }
    let out = data(r#"{"a": [1, 2], "b": 1e2}"#)
        .apply(&set("c", json!(3)), None)
        .expect("apply");
    assert_eq!(out.as_json(), r#"{"a":[1,2],"b":100.0,"c":3}"#);
}

#[test]
fn duplicate_and_unsorted_keys_keep_the_last() {
    let d = data(r#"{"b":1,"a":2,"b":3,"a":{"x":1}}"#);
    let out = d.apply(&set("c", json!(4)), None).expect("apply");
    assert_eq!(out.as_json(), r#"{"a":{"x":1},"b":3,"c":4}"#);
    check(d.as_json(), &set("b", json!(5)));
    let mut c = DataChanges::default();
    c.remove("b");
    check(d.as_json(), &c);
}

#[test]
fn removing_absent_keys_and_clearing() {
    let d = data(r#"{"a":1}"#);
    let mut c = DataChanges::default();
    c.remove("nope");
    assert_eq!(d.apply(&c, None).expect("apply").as_json(), r#"{"a":1}"#);
    check(d.as_json(), &c);
    c.remove("a");
    let out = d.apply(&c, None).expect("apply");
    assert!(out.is_empty());
    assert_eq!(out, SessionData::empty());
    let mut c = DataChanges::default();
    c.clear();
    assert_eq!(d.apply(&c, None).expect("apply"), SessionData::empty());
    c.insert("b", json!(true));
    assert_eq!(d.apply(&c, None).expect("apply").as_json(), r#"{"b":true}"#);
    // A clear never reads the stored text, corrupt or not (as before).
    let corrupt = data(r#"{"a":1e400}"#);
    assert_eq!(
        corrupt.apply(&c, None).expect("apply").as_json(),
        r#"{"b":true}"#
    );
    assert_eq!(corrupt.merged_len(&c).expect("len"), 10);
}

#[test]
fn the_limit_holds_at_the_bound_and_refuses_one_over() {
    let d = data(r#"{"a":"xyz"}"#);
    let c = set("b", json!([1, 2]));
    let size = r#"{"a":"xyz","b":[1,2]}"#.len();
    assert_eq!(d.merged_len(&c).expect("len"), size);
    assert_eq!(d.apply(&c, Some(size)).expect("at").len_bytes(), size);
    match d.apply(&c, Some(size - 1)) {
        Err(DataError::TooLarge { size: s, limit }) => assert_eq!((s, limit), (size, size - 1)),
        other => panic!("{other:?}"),
    }
    for limit in [size - 1, size, size + 1] {
        agrees(&d, &c, Some(limit)).expect("agrees");
    }
}

#[test]
fn corrupt_stored_text_is_not_an_object() {
    // Text that passes the syntax check of `from_json` but not a full parse: a number out
    // of range, a lone surrogate, nesting past serde_json's limit.
    let deep = format!("{{\"d\":{}{}}}", "[".repeat(200), "]".repeat(200));
    for text in [
        r#"{"a":1e400,"b":1}"#.to_owned(),
        r#"{"a":"\ud800","b":1}"#.to_owned(),
        r#"{"\ud800":1}"#.to_owned(),
        deep,
    ] {
        let d = data(&text);
        for c in [set("a", json!(1)), set("c", json!(1)), {
            let mut c = DataChanges::default();
            c.remove("a");
            c
        }] {
            assert!(
                matches!(d.apply(&c, None), Err(DataError::NotAnObject(Some(_)))),
                "{text}"
            );
            assert!(matches!(
                d.merged_len(&c),
                Err(DataError::NotAnObject(Some(_)))
            ));
            agrees(&d, &c, None).expect("agrees");
        }
    }
}

#[test]
fn deep_values_are_left_to_the_full_parse() {
    let nested = |n: usize| format!("{}1{}", "[".repeat(n), "]".repeat(n));
    assert_eq!(shape(&nested(MAX_DEPTH)), Shape::Canonical);
    assert_eq!(shape(&nested(MAX_DEPTH + 1)), Shape::TooDeep);
    for n in [MAX_DEPTH, MAX_DEPTH + 1, 120, 126, 127, 128] {
        let text = format!("{{\"d\":{}}}", nested(n));
        check(&text, &set("a", json!(1)));
        let mut c = DataChanges::default();
        c.remove("d");
        check(&text, &c);
    }
}

#[test]
fn canonical_text_is_walked_without_serde() {
    fn walk(t: &str) -> Vec<Option<(&str, &str)>> {
        super::Canonical::new(t)
            .map(|e| e.map(|e| (e.key, e.raw)))
            .collect()
    }
    assert!(walk("{}").is_empty());
    assert_eq!(
        walk(r#"{"a":1,"b":{"x":[]},"é":"s\"q"}"#),
        [
            Some(("a", "1")),
            Some(("b", r#"{"x":[]}"#)),
            Some(("é", r#""s\"q""#))
        ]
    );
    for text in [
        r#"{"b":1,"a":2}"#,
        r#"{"a":1,"a":2}"#,
        r#"{"a": 1}"#,
        r#"{"a\"":1}"#,
        r#"{"a":1.5}"#,
        r#"{"a":1} "#,
        r#" {"a":1}"#,
        r#"{"a":01}"#,
        r#"{"a":1,}"#,
        "[1]",
        "{ }",
    ] {
        assert_eq!(walk(text).last(), Some(&None), "{text}");
    }
}

#[test]
fn shapes() {
    for raw in [
        r#""plain""#,
        r#""q\"b\\\n\t\r\b\f\u0001\u001f\u000b""#,
        "\"☃\u{7f}\"",
        "0",
        "-1",
        "18446744073709551615",
        "-9223372036854775808",
        "true",
        "false",
        "null",
        "[]",
        "{}",
        r#"{"a":[1,{"b":null}],"b":{}}"#,
    ] {
        assert_eq!(shape(raw), Shape::Canonical, "{raw}");
    }
    for raw in [
        r#""\/""#,
        r#""\u0041""#,
        r#""\u001F""#,
        r#""\u000a""#,
        "-0",
        "1.5",
        "1e2",
        "18446744073709551616",
        "-9223372036854775809",
        "[1, 2]",
        r#"{"b":1,"a":2}"#,
        r#"{"a":1,"a":2}"#,
        r#"{"\u0041":1}"#,
    ] {
        assert_eq!(shape(raw), Shape::Other, "{raw}");
    }
}

#[test]
fn empty_data_needs_no_text_and_behaves_as_before() {
    let e = SessionData::empty();
    assert_eq!(e.as_json(), "{}");
    assert!(e.is_empty());
    assert_eq!(e.len_bytes(), 2);
    assert_eq!(format!("{e:?}"), "SessionData(2 bytes)");
    assert_eq!(e, SessionData::default());
    assert_eq!(e, data("{}"));
    assert_eq!(e, SessionData::from_map(&Map::new()).expect("map"));
    assert_eq!(e.to_map().expect("map"), Map::new());
    assert_ne!(e, data("{ }"));
    assert!(!data("{ }").is_empty());
    assert_eq!(
        e.apply(&set("a", json!(1)), None).expect("apply").as_json(),
        r#"{"a":1}"#
    );
    assert_eq!(e.merged_len(&set("a", json!(1))).expect("len"), 7);
    assert_eq!(e.merged_len(&DataChanges::default()).expect("len"), 2);
}

/// Whether the walk of canonical text takes `v` as it is: no floats, and no object key
/// with an escape (the cases it leaves to the general merge).
fn walkable(v: &Value) -> bool {
    match v {
        Value::Number(n) => !n.is_f64(),
        Value::Array(a) => a.iter().all(walkable),
        Value::Object(m) => m
            .iter()
            .all(|(k, v)| !k.bytes().any(|c| c < 0x20 || c == b'"' || c == b'\\') && walkable(v)),
        _ => true,
    }
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("a".to_owned()),
        Just("b".to_owned()),
        Just("pref:theme".to_owned()),
        Just("é".to_owned()),
        Just("q\"\\".to_owned()),
        Just("\n\u{1}".to_owned()),
        "[a-c☃]{0,3}",
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e6f64..1e6).prop_map(Value::from),
        "[a-z\"\\\\\u{0}-\u{1f}é☃/]{0,6}".prop_map(Value::from),
    ]
}

fn value() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::vec((key(), inner), 0..4)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

/// Object text in the forms stores hand back: compact, pretty, or written by hand with
/// spaces, unsorted and duplicate keys.
fn stored() -> impl Strategy<Value = String> {
    let entries = prop::collection::vec((key(), value()), 0..6);
    (entries, 0..3u8).prop_map(|(entries, form)| match form {
        0 => serde_json::to_string(&entries.into_iter().collect::<Map<_, _>>()).expect("ser"),
        1 => {
            serde_json::to_string_pretty(&entries.into_iter().collect::<Map<_, _>>()).expect("ser")
        }
        _ => {
            let parts: Vec<String> = entries
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}: {}",
                        serde_json::to_string(k).expect("key"),
                        serde_json::to_string_pretty(v).expect("value")
                    )
                })
                .collect();
            format!("{{ {} }}", parts.join(" , "))
        }
    })
}

fn changes() -> impl Strategy<Value = DataChanges> {
    (
        any::<bool>(),
        prop::collection::vec((key(), prop::option::of(value())), 0..5),
    )
        .prop_map(|(clear, ops)| {
            let mut c = DataChanges::default();
            if clear {
                c.clear();
            }
            for (k, v) in ops {
                match v {
                    Some(v) => c.insert(k, v),
                    None => c.remove(k),
                }
            }
            c
        })
}

proptest! {
    #[test]
    fn apply_equals_parse_and_serialize(
        text in stored(),
        c in changes(),
        slack in prop::option::of(-3i64..3),
    ) {
        let d = data(&text);
        let limit = slack.and_then(|s| {
            let len = reference(&d, &c, None).ok()?.len_bytes();
            usize::try_from(i64::try_from(len).ok()? + s).ok()
        });
        if let Err(e) = agrees(&d, &c, limit) {
            prop_assert!(false, "{}", e);
        }
        // Valid, shallow text never needs the full parse.
        let base = if c.clear { "{}" } else { d.as_json() };
        prop_assert!(super::merge(base, &c, &mut Vec::new()));
        // And once more on the result, which is canonical: the merge copies it whole.
        if let Ok(out) = d.apply(&c, None) {
            let parsed: Value = serde_json::from_str(out.as_json()).expect("json");
            prop_assert!(
                c.is_empty()
                    || !walkable(&parsed)
                    || super::Canonical::new(out.as_json()).all(|e| e.is_some()),
                "not walked as canonical: {}",
                out.as_json()
            );
            if let Err(e) = agrees(&out, &c, None) {
                prop_assert!(false, "{}", e);
            }
        }
    }
}
