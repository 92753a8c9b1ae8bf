//! One request checked as qemu-ga checks it, with its messages: the
//! members (`execute`, `arguments`, `id`, nothing else), then the command,
//! then the arguments against the command's parameters. Pure.

use super::{Args, CommandDef, Param, QgaError, Ty};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// A request whose members are well formed.
#[derive(PartialEq)]
pub struct Request {
    /// The command name (not yet looked up).
    pub execute: String,
    /// The arguments, unchecked (an empty object when absent).
    pub arguments: Args,
    /// The `id` to echo, if any.
    pub id: Option<Value>,
}

/// Names the arguments, never their values: they may be a password.
impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Request")
            .field("execute", &self.execute)
            .field("arguments", &self.arguments.keys().collect::<Vec<_>>())
            .field("id", &self.id)
            .finish()
    }
}

/// A request that is answered with an error at once; `id` is echoed when the
/// request had one.
#[derive(Debug, PartialEq)]
pub struct Refused {
    /// The error.
    pub error: QgaError,
    /// The request's `id`.
    pub id: Option<Value>,
}

/// serde_json's message without its position (qemu-ga's have none).
fn without_position(e: &serde_json::Error) -> String {
    let text = e.to_string();
    match text.find(" at line ") {
        Some(at) => text[..at].to_string(),
        None => text,
    }
}

/// A JSON value read as qemu-ga reads it: an object that names a member
/// twice is an error ("duplicate key"), not the last one winning.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Strict, D::Error> {
        d.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Value::Bool(v)))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Value::from(v)))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Strict, E> {
        Ok(Strict(Number::from_f64(v).map_or(Value::Null, Value::Number)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Value::String(v.to_string())))
    }

    fn visit_string<E>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Value::String(v)))
    }

    fn visit_unit<E>(self) -> Result<Strict, E> {
        Ok(Strict(Value::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Strict(Value::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut members = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if members.insert(key, value).is_some() {
                return Err(de::Error::custom("duplicate key"));
            }
        }
        Ok(Strict(Value::Object(members)))
    }
}

/// Parses one complete value from the stream into a request.
pub fn parse(bytes: &[u8]) -> Result<Request, Refused> {
    let refuse = |desc: String, id: Option<Value>| Refused {
        error: QgaError::generic(desc),
        id,
    };
    let Strict(value) = serde_json::from_slice(bytes)
        .map_err(|e| refuse(format!("JSON parse error, {}", without_position(&e)), None))?;
    let Value::Object(mut members) = value else {
        return Err(refuse("QMP input must be a JSON object".into(), None));
    };
    let id = members.remove("id");
    // qemu-ga reports the first unexpected member in its own order; the
    // message names one.
    if let Some(other) = members.keys().find(|k| !matches!(k.as_str(), "execute" | "arguments")) {
        return Err(refuse(format!("QMP input member '{other}' is unexpected"), id));
    }
    let execute = match members.remove("execute") {
        Some(Value::String(name)) => name,
        Some(_) => return Err(refuse("QMP input member 'execute' must be a string".into(), id)),
        None => return Err(refuse("QMP input lacks member 'execute'".into(), id)),
    };
    let arguments = match members.remove("arguments") {
        Some(Value::Object(args)) => args,
        None => Map::new(),
        Some(_) => return Err(refuse("QMP input member 'arguments' must be an object".into(), id)),
    };
    Ok(Request { execute, arguments, id })
}

fn type_name(ty: &Ty) -> &'static str {
    match ty {
        Ty::Int => "integer",
        Ty::Str => "string",
        Ty::Bool => "boolean",
        Ty::List(_) => "array",
        Ty::Struct(_) => "object",
    }
}

fn check_value(value: &Value, ty: &Ty, path: &str) -> Result<(), QgaError> {
    let fits = match (ty, value) {
        (Ty::Int, Value::Number(n)) => n.is_i64(),
        (Ty::Str, Value::String(_)) | (Ty::Bool, Value::Bool(_)) => true,
        (Ty::List(inner), Value::Array(items)) => {
            for (i, item) in items.iter().enumerate() {
                check_value(item, inner, &format!("{path}[{i}]"))?;
            }
            true
        }
        (Ty::Struct(params), Value::Object(members)) => {
            check_members(members, params, &format!("{path}."))?;
            true
        }
        _ => false,
    };
    if fits {
        Ok(())
    } else {
        Err(QgaError::generic(format!(
            "Invalid parameter type for '{path}', expected: {}",
            type_name(ty)
        )))
    }
}

/// Checks `members` against `params`: each in order (missing, then its
/// type), then anything left over. `prefix` names nested members
/// (`vcpus[0].`).
fn check_members(members: &Map<String, Value>, params: &[Param], prefix: &str) -> Result<(), QgaError> {
    for p in params {
        match members.get(p.name) {
            Some(v) => check_value(v, &p.ty, &format!("{prefix}{}", p.name))?,
            None if p.required => return Err(QgaError::generic(format!("Parameter '{prefix}{}' is missing", p.name))),
            None => {}
        }
    }
    if let Some(other) = members.keys().find(|k| !params.iter().any(|p| p.name == k.as_str())) {
        return Err(QgaError::generic(format!("Parameter '{prefix}{other}' is unexpected")));
    }
    Ok(())
}

/// Checks a request's arguments against its command's parameters.
pub fn check_arguments(def: &CommandDef, args: &Args) -> Result<(), QgaError> {
    check_members(args, def.params, "")
}

/// The reply to a request: `{"return": value}` or `{"error": ...}`, with the
/// request's `id` when it had one, as one line.
pub fn reply(result: &Result<Value, QgaError>, id: Option<&Value>) -> Vec<u8> {
    let mut object = Map::new();
    match result {
        Ok(value) => object.insert("return".into(), value.clone()),
        Err(e) => object.insert("error".into(), e.to_json()),
    };
    if let Some(id) = id {
        object.insert("id".into(), id.clone());
    }
    let mut line = serde_json::to_vec(&Value::Object(object)).unwrap_or_default();
    line.push(b'\n');
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_debug_print_names_the_arguments_and_never_their_values() {
        let r =
            parse(br#"{"execute":"guest-set-user-password","arguments":{"username":"root","password":"c2VjcmV0"}}"#)
                .unwrap();
        let debug = format!("{r:?}");
        assert!(debug.contains("password") && !debug.contains("c2VjcmV0"), "{debug}");
    }
    use crate::qga::Ctx;

    fn refused(text: &str) -> (String, Option<Value>) {
        let r = parse(text.as_bytes()).unwrap_err();
        (r.error.desc, r.id)
    }

    #[test]
    fn members_are_checked_as_qemu_ga_does() {
        let ok = parse(br#"{"execute":"guest-ping","id":[1,{"a":2}]}"#).unwrap();
        assert_eq!(ok.execute, "guest-ping");
        assert_eq!(ok.id, Some(serde_json::json!([1, {"a": 2}])));
        assert!(ok.arguments.is_empty());
        let id7 = Some(serde_json::json!(7));
        for (text, desc, id) in [
            ("[1]", "QMP input must be a JSON object", None),
            ("\"s\"", "QMP input must be a JSON object", None),
            (r#"{"arguments":{}}"#, "QMP input lacks member 'execute'", None),
            (
                r#"{"execute":1,"id":7}"#,
                "QMP input member 'execute' must be a string",
                id7.clone(),
            ),
            (
                r#"{"execute":"x","arguments":[]}"#,
                "QMP input member 'arguments' must be an object",
                None,
            ),
            (
                r#"{"execute":"x","arguments":null}"#,
                "QMP input member 'arguments' must be an object",
                None,
            ),
            (
                r#"{"execute":"x","exec-oob":1}"#,
                "QMP input member 'exec-oob' is unexpected",
                None,
            ),
            (
                r#"{"execute":"x","id":7,"zz":1}"#,
                "QMP input member 'zz' is unexpected",
                id7,
            ),
        ] {
            assert_eq!(refused(text), (desc.to_string(), id), "{text}");
        }
        assert!(refused("{\"execute\":\"x\",\"id\":\"\u{0}\"")
            .0
            .starts_with("JSON parse error, "));
    }

    fn nothing(_: &mut Ctx<'_>, _: &Args) -> Result<Value, QgaError> {
        Ok(Value::Null)
    }

    static VCPU: &[Param] = &[
        Param::required("logical-id", Ty::Int),
        Param::required("online", Ty::Bool),
    ];
    static DEF: CommandDef = CommandDef {
        name: "guest-test",
        params: &[
            Param::required("id", Ty::Int),
            Param::optional("names", Ty::List(&Ty::Str)),
            Param::optional("vcpus", Ty::List(&Ty::Struct(VCPU))),
        ],
        function: None,
        success_response: true,
        while_frozen: true,
        run: nothing,
    };

    fn check(args: &str) -> Result<(), String> {
        let args: Args = serde_json::from_str(args).unwrap();
        check_arguments(&DEF, &args).map_err(|e| e.desc)
    }

    #[test]
    fn arguments_are_checked_strictly_with_qemu_ga_messages() {
        assert_eq!(
            check(r#"{"id":-5,"names":["a"],"vcpus":[{"logical-id":0,"online":true}]}"#),
            Ok(())
        );
        for (args, desc) in [
            ("{}", "Parameter 'id' is missing"),
            (r#"{"id":"x"}"#, "Invalid parameter type for 'id', expected: integer"),
            (r#"{"id":1.5}"#, "Invalid parameter type for 'id', expected: integer"),
            (
                r#"{"id":18446744073709551615}"#,
                "Invalid parameter type for 'id', expected: integer",
            ),
            (r#"{"id":null}"#, "Invalid parameter type for 'id', expected: integer"),
            (r#"{"id":1,"z":2}"#, "Parameter 'z' is unexpected"),
            (r#"{"z":2}"#, "Parameter 'id' is missing"),
            (
                r#"{"id":1,"names":[1]}"#,
                "Invalid parameter type for 'names[0]', expected: string",
            ),
            (
                r#"{"id":1,"names":"a"}"#,
                "Invalid parameter type for 'names', expected: array",
            ),
            (
                r#"{"id":1,"vcpus":[{"logical-id":"a"}]}"#,
                "Invalid parameter type for 'vcpus[0].logical-id', expected: integer",
            ),
            (
                r#"{"id":1,"vcpus":[{"logical-id":1}]}"#,
                "Parameter 'vcpus[0].online' is missing",
            ),
        ] {
            assert_eq!(check(args), Err(desc.to_string()), "{args}");
        }
    }

    #[test]
    fn replies_are_one_line_with_the_id() {
        let ok = reply(&Ok(serde_json::json!({})), Some(&serde_json::json!("x\ny")));
        assert_eq!(ok, b"{\"id\":\"x\\ny\",\"return\":{}}\n");
        let err = reply(&Err(QgaError::not_found("nope")), None);
        assert_eq!(
            err,
            b"{\"error\":{\"class\":\"CommandNotFound\",\"desc\":\"The command nope has not been found\"}}\n"
        );
    }
}
