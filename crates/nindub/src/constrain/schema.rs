//! A JSON Schema, compiled to the nodes the [`super::machine`] walks.
//!
//! The subset is what tool calls and structured answers use: objects with
//! `properties` and `required`, written in the order the schema declares
//! them (as llama.cpp's converter does), arrays with `items`, `minItems`
//! and `maxItems`, strings with `minLength` and `maxLength`, integers,
//! numbers, booleans, `null`, `enum`, `const`, and `{}` (any JSON value).
//! A keyword that would constrain what the machine cannot (a `pattern`, a
//! `minimum`, a `$ref`, …) is refused by name: a schema is compiled exactly
//! or not at all, so that every output the machine allows validates.

use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Index of a node in [`Grammar::nodes`].
pub type NodeId = u16;

/// Alternatives of an `enum`, and properties of an object, at most.
pub const MAX_ALTERNATIVES: usize = 64;
/// Nesting of objects and arrays inside an unconstrained value.
pub const MAX_ANY_DEPTH: u8 = 6;

#[derive(Debug, Clone, PartialEq)]
pub enum Node {
    /// Any JSON value (`{}` or `true`), nested at most [`MAX_ANY_DEPTH`].
    Any,
    /// Any JSON object (`{"type": "object"}` with no properties).
    AnyObject,
    /// An object with these properties, in this order.
    Object(Vec<Prop>),
    /// An array of `items`, `min ..= max` long.
    Array { items: NodeId, min: u32, max: u32 },
    /// A string of `min ..= max` characters (an escape counts as one).
    String { min: u32, max: u32 },
    /// An integer (no fraction, no exponent), or any number.
    Number { integer: bool },
    /// One of these JSON texts exactly (`enum`, `const`, booleans, `null`).
    Literals(Vec<Vec<u8>>),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Prop {
    /// The key as JSON writes it, quotes included: `"name"`.
    pub key: Vec<u8>,
    pub node: NodeId,
    pub required: bool,
}

/// A compiled schema: node 0 is the root.
#[derive(Debug, Clone, PartialEq)]
pub struct Grammar {
    pub nodes: Vec<Node>,
}

/// Why a schema was refused: where in it, and what.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaError {
    /// A JSON pointer into the schema: `/properties/args/minimum`.
    pub at: String,
    pub reason: String,
}

impl std::fmt::Display for SchemaError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = if self.at.is_empty() { "/" } else { &self.at };
        write!(f, "JSON schema at {at}: {}", self.reason)
    }
}

impl std::error::Error for SchemaError {}

/// A JSON value whose objects keep their keys in the order written
/// (`serde_json::Value` sorts them).
#[derive(Debug, Clone, PartialEq)]
enum Ordered {
    Scalar(Value),
    Array(Vec<Ordered>),
    Object(Vec<(String, Ordered)>),
}

impl Ordered {
    fn get(&self, key: &str) -> Option<&Ordered> {
        match self {
            Ordered::Object(kv) => kv.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    fn to_value(&self) -> Value {
        match self {
            Ordered::Scalar(v) => v.clone(),
            Ordered::Array(a) => Value::Array(a.iter().map(Ordered::to_value).collect()),
            Ordered::Object(kv) => {
                Value::Object(kv.iter().map(|(k, v)| (k.clone(), v.to_value())).collect())
            }
        }
    }
}

impl std::fmt::Display for Ordered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.to_value())
    }
}

impl<'de> Deserialize<'de> for Ordered {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Ordered;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_bool<E>(self, b: bool) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::Bool(b)))
            }
            fn visit_i64<E>(self, n: i64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::from(n)))
            }
            fn visit_u64<E>(self, n: u64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::from(n)))
            }
            fn visit_f64<E>(self, n: f64) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::from(n)))
            }
            fn visit_str<E>(self, s: &str) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::from(s)))
            }
            fn visit_unit<E>(self) -> Result<Ordered, E> {
                Ok(Ordered::Scalar(Value::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Ordered, A::Error> {
                let mut out = vec![];
                while let Some(v) = seq.next_element()? {
                    out.push(v);
                }
                Ok(Ordered::Array(out))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Ordered, A::Error> {
                let mut out = vec![];
                while let Some((k, v)) = map.next_entry::<String, Ordered>()? {
                    out.push((k, v));
                }
                Ok(Ordered::Object(out))
            }
        }
        d.deserialize_any(V)
    }
}

/// Keywords that only annotate: read past.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "$comment",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
];

/// Keywords the compiler honours.
const KEYWORDS: &[&str] = &[
    "type",
    "properties",
    "required",
    "additionalProperties",
    "items",
    "minItems",
    "maxItems",
    "minLength",
    "maxLength",
    "enum",
    "const",
];

impl Grammar {
    /// Compiles a schema from its JSON text (properties in written order).
    pub fn from_json(text: &str) -> Result<Grammar, SchemaError> {
        let schema: Ordered = serde_json::from_str(text).map_err(|e| SchemaError {
            at: String::new(),
            reason: format!("not JSON: {e}"),
        })?;
        Grammar::compile(&schema)
    }

    /// Compiles the schema found at `pointer` (`/response_format/json_schema/schema`)
    /// inside a JSON document's text, keeping its properties' order.
    pub fn from_json_at(text: &[u8], pointer: &str) -> Result<Grammar, SchemaError> {
        let doc: Ordered = serde_json::from_slice(text).map_err(|e| SchemaError {
            at: String::new(),
            reason: format!("not JSON: {e}"),
        })?;
        let mut at = &doc;
        for part in pointer.split('/').filter(|p| !p.is_empty()) {
            at = at.get(part).ok_or_else(|| SchemaError {
                at: String::new(),
                reason: format!("no schema at {pointer}"),
            })?;
        }
        Grammar::compile(at)
    }

    /// Compiles a parsed schema. `serde_json::Value` keeps object keys
    /// sorted, so properties are written in alphabetical order; use
    /// [`Grammar::from_json`] on the text to keep the schema's order.
    pub fn from_value(schema: &Value) -> Result<Grammar, SchemaError> {
        Grammar::from_json(&schema.to_string())
    }

    /// Any JSON object (OpenAI's `{"type": "json_object"}`).
    pub fn any_object() -> Grammar {
        Grammar {
            nodes: vec![Node::AnyObject],
        }
    }

    fn compile(schema: &Ordered) -> Result<Grammar, SchemaError> {
        let mut g = Grammar { nodes: vec![] };
        g.node(schema, "")?;
        Ok(g)
    }

    fn node(&mut self, schema: &Ordered, at: &str) -> Result<NodeId, SchemaError> {
        // Reserve the slot first, so that the root is node 0 and a parent
        // precedes its children.
        let id = NodeId::try_from(self.nodes.len()).map_err(|_| SchemaError {
            at: at.into(),
            reason: "more than 65,535 nodes".into(),
        })?;
        self.nodes.push(Node::Any);
        let node = self.build(schema, at)?;
        self.nodes[id as usize] = node;
        Ok(id)
    }

    fn build(&mut self, schema: &Ordered, at: &str) -> Result<Node, SchemaError> {
        let err = |reason: String| SchemaError {
            at: at.to_string(),
            reason,
        };
        let keys = match schema {
            Ordered::Scalar(Value::Bool(true)) => return Ok(Node::Any),
            Ordered::Object(kv) => kv,
            other => return Err(err(format!("a schema is an object or `true`, not {other}"))),
        };
        if let Some((k, _)) = keys
            .iter()
            .find(|(k, _)| !ANNOTATIONS.contains(&k.as_str()) && !KEYWORDS.contains(&k.as_str()))
        {
            return Err(err(format!(
                "`{k}` is not supported (the compiler honours {})",
                KEYWORDS.join(", ")
            )));
        }
        let count = |k: &str| -> Result<Option<u32>, SchemaError> {
            match schema.get(k) {
                None => Ok(None),
                Some(v) => v
                    .to_value()
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .map(Some)
                    .ok_or_else(|| err(format!("`{k}` must be a count, not {v}"))),
            }
        };
        if let Some(values) = schema.get("enum") {
            let Ordered::Array(list) = values else {
                return Err(err(format!("`enum` must be an array, not {values}")));
            };
            return literals(list.iter().map(Ordered::to_value).collect(), at);
        }
        if let Some(value) = schema.get("const") {
            return literals(vec![value.to_value()], at);
        }
        let ty = match schema.get("type") {
            Some(Ordered::Scalar(Value::String(t))) => t.as_str(),
            Some(other) => {
                return Err(err(format!(
                    "`type` must name one type, not {other} (unions are not supported)"
                )));
            }
            None if schema.get("properties").is_some() => "object",
            None if schema.get("items").is_some() => "array",
            None => return Ok(Node::Any),
        };
        Ok(match ty {
            "object" => self.object(schema, at)?,
            "array" => {
                let items = match schema.get("items") {
                    None => {
                        self.node(&Ordered::Scalar(Value::Bool(true)), &format!("{at}/items"))?
                    }
                    Some(sub) => self.node(sub, &format!("{at}/items"))?,
                };
                let min = count("minItems")?.unwrap_or(0);
                let max = count("maxItems")?.unwrap_or(u32::MAX);
                if min > max {
                    return Err(err(format!("minItems {min} is more than maxItems {max}")));
                }
                Node::Array { items, min, max }
            }
            "string" => {
                let min = count("minLength")?.unwrap_or(0);
                let max = count("maxLength")?.unwrap_or(u32::MAX);
                if min > max {
                    return Err(err(format!("minLength {min} is more than maxLength {max}")));
                }
                Node::String { min, max }
            }
            "integer" => Node::Number { integer: true },
            "number" => Node::Number { integer: false },
            "boolean" => Node::Literals(vec![b"true".to_vec(), b"false".to_vec()]),
            "null" => Node::Literals(vec![b"null".to_vec()]),
            other => return Err(err(format!("unknown type `{other}`"))),
        })
    }

    fn object(&mut self, schema: &Ordered, at: &str) -> Result<Node, SchemaError> {
        let err = |reason: String| SchemaError {
            at: at.to_string(),
            reason,
        };
        match schema.get("additionalProperties") {
            None | Some(Ordered::Scalar(Value::Bool(false))) => {}
            Some(other) => {
                return Err(err(format!(
                    "`additionalProperties: {other}` is not supported: an object holds the properties declared"
                )));
            }
        }
        let required: Vec<String> = match schema.get("required").map(Ordered::to_value) {
            None => vec![],
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| {
                    v.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| err(format!("`required` lists names, not {v}")))
                })
                .collect::<Result<_, _>>()?,
            Some(other) => return Err(err(format!("`required` must be an array, not {other}"))),
        };
        let props = match schema.get("properties") {
            None if required.is_empty() => return Ok(Node::AnyObject),
            None => {
                return Err(err(
                    "`required` names properties, but none is declared".into()
                ));
            }
            Some(Ordered::Object(props)) => props,
            Some(other) => return Err(err(format!("`properties` must be an object, not {other}"))),
        };
        if props.is_empty() || props.len() > MAX_ALTERNATIVES {
            return Err(err(format!(
                "an object needs 1 to {MAX_ALTERNATIVES} properties, not {}",
                props.len()
            )));
        }
        if let Some(r) = required
            .iter()
            .find(|r| !props.iter().any(|(k, _)| k == *r))
        {
            return Err(err(format!(
                "`required` names `{r}`, which is not a property"
            )));
        }
        let mut out = vec![];
        for (name, sub) in props {
            out.push(Prop {
                key: serde_json::to_vec(name).expect("a string serializes"),
                node: self.node(sub, &format!("{at}/properties/{name}"))?,
                required: required.contains(name),
            });
        }
        Ok(Node::Object(out))
    }
}

/// An `enum` or `const`: the values as compact JSON texts.
fn literals(values: Vec<Value>, at: &str) -> Result<Node, SchemaError> {
    if values.is_empty() || values.len() > MAX_ALTERNATIVES {
        return Err(SchemaError {
            at: at.into(),
            reason: format!(
                "`enum` needs 1 to {MAX_ALTERNATIVES} values, not {}",
                values.len()
            ),
        });
    }
    let mut texts: Vec<Vec<u8>> = values
        .iter()
        .map(|v| serde_json::to_vec(v).expect("a JSON value serializes"))
        .collect();
    texts.dedup();
    Ok(Node::Literals(texts))
}
