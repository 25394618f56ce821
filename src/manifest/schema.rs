//! The manifest's JSON Schema (draft-07, as editors' YAML language servers read it), made
//! from the one key list the reader checks against, so the two cannot disagree.
//! `avatar-sync --print-schema` prints it; `schema/manifest.schema.json` is its copy in the
//! repository and the package.

use super::keys::{INSTANCE_KEYS, Key, KeyType, TOKEN_KEYS, TOP_KEYS, WINDOW_KIND_KEYS};
use serde_json::{Map, Value, json};

/// The schema, as a JSON document ending in a newline.
pub fn json_schema() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

fn document() -> Value {
    let mut top = object(&TOP_KEYS);
    top["$schema"] = json!("http://json-schema.org/draft-07/schema#");
    top["title"] = json!("avatar-sync manifest");
    top["description"] = json!(
        "Which picture each GREEN-API instance shows. Unknown keys are errors; \
         see `man avatar-sync` (MANIFEST) or the README."
    );
    top["definitions"] = json!({ "instance": instance() });
    top
}

/// An instance: its keys, and exactly one token source.
fn instance() -> Value {
    let mut instance = object(&INSTANCE_KEYS);
    let one_of: Vec<Value> = (TOKEN_KEYS.iter())
        .map(|key| json!({ "required": [key] }))
        .collect();
    instance["oneOf"] = Value::Array(one_of);
    instance
}

/// A mapping of exactly these keys, the required ones required.
fn object(keys: &[Key]) -> Value {
    let mut properties = Map::new();
    for key in keys {
        let mut property = value(key.ty);
        property["description"] = json!(key.doc);
        properties.insert(key.name.to_owned(), property);
    }
    let required: Vec<&str> = (keys.iter().filter(|k| k.required))
        .map(|k| k.name)
        .collect();
    json!({
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": false,
    })
}

/// What a value of type `ty` may be.
fn value(ty: KeyType) -> Value {
    match ty {
        KeyType::Text => json!({ "type": "string", "minLength": 1 }),
        // humantime's units, one or more, such as `10s`, `1h30m`, `1h 30m`, `250ms`.
        KeyType::Duration => json!({
            "type": "string",
            "pattern": "^\\s*([0-9]+\\s*[a-zµ]+\\s*)+$",
        }),
        KeyType::Url => json!({ "type": "string", "pattern": "^https?://" }),
        KeyType::Whole { min, max } => json!({
            "type": "integer",
            "minimum": min,
            "maximum": max,
        }),
        KeyType::Bool => json!({ "type": "boolean" }),
        KeyType::OneOf(words) => json!({ "type": "string", "enum": words }),
        KeyType::Colour => json!({ "type": "string", "pattern": "^#[0-9a-fA-F]{6}$" }),
        // Quoted or not; never starting with 0 (an integer form such as 0x10 is refused by
        // the reader, which sees the digits as written).
        KeyType::Id => json!({
            "type": ["string", "integer"],
            "pattern": "^[1-9][0-9]{0,31}$",
            "minimum": 1,
        }),
        KeyType::Instances => json!({
            "type": "array",
            "items": { "$ref": "#/definitions/instance" },
        }),
        KeyType::Mapping(keys) => object(keys),
        KeyType::Mappings(keys) => {
            let mut item = object(keys);
            // A window says when it opens with exactly one of allow, deny.
            if keys.iter().any(|k| WINDOW_KIND_KEYS.contains(&k.name)) {
                let one_of: Vec<Value> = (WINDOW_KIND_KEYS.iter())
                    .map(|key| json!({ "required": [key] }))
                    .collect();
                item["oneOf"] = Value::Array(one_of);
            }
            json!({ "type": "array", "items": item })
        }
        KeyType::Amount => amount(),
        KeyType::Amounts => json!({ "type": "array", "items": amount(), "minItems": 1 }),
        KeyType::Cron => json!({ "type": "string", "pattern": "^\\S+(\\s+\\S+){4,5}$" }),
        KeyType::TimeZone => json!({ "type": "string", "minLength": 1 }),
        KeyType::Words(words) => json!({
            "type": "array",
            "items": { "type": "string", "enum": words },
            "uniqueItems": true,
        }),
    }
}

/// A count of instances, or a percentage of them.
fn amount() -> Value {
    json!({
        "oneOf": [
            { "type": "integer", "minimum": 0 },
            { "type": "string", "pattern": "^(100|[1-9]?[0-9])%$" },
        ],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::keys::NOTIFY_KEYS;
    use std::path::Path;

    /// The committed copy is what the binary prints.
    #[test]
    fn the_committed_schema_is_the_generated_one() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("schema/manifest.schema.json");
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == json_schema(),
            "{} is not what the key list makes; write it again with\n  \
             cargo run -- --print-schema > schema/manifest.schema.json",
            path.display()
        );
    }

    #[test]
    fn every_key_is_in_the_schema_with_its_doc_and_nothing_else_is() {
        let doc = document();
        let levels = [
            (&doc, &TOP_KEYS[..]),
            (&doc["definitions"]["instance"], &INSTANCE_KEYS[..]),
            (&doc["properties"]["notify"]["items"], &NOTIFY_KEYS[..]),
        ];
        for (level, keys) in levels {
            let properties = level["properties"].as_object().unwrap();
            assert_eq!(properties.len(), keys.len());
            for key in keys {
                assert_eq!(properties[key.name]["description"], key.doc, "{}", key.name);
            }
            assert_eq!(level["additionalProperties"], false);
        }
        assert_eq!(doc["required"], json!(["instances"]));
        assert_eq!(
            doc["definitions"]["instance"]["required"],
            json!(["idInstance", "picture"])
        );
    }
}
