//! The binary encoding of what Caravan stores: MessagePack with named
//! fields (every struct is a map keyed by its field names) in serde's
//! human-readable mode.
//!
//! Named fields keep the encoding self-describing, as JSON was: a field
//! added later with `#[serde(default)]` reads from older data, a field
//! this version does not know is skipped, and a value can be read without
//! its type (a command of a newer version, or a table this version does not
//! know). The human-readable mode makes every type encode as it does in
//! JSON (UUIDs, addresses and times as strings rather than raw bytes), so
//! a value read into `serde_json::Value` and written again comes out the
//! same, which the rule for unknown commands relies on.

use serde::de::DeserializeOwned;
use serde::Serialize;

/// Why a value could not be encoded or decoded.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("{0}")]
    Encode(#[from] rmp_serde::encode::Error),
    #[error("{0}")]
    Decode(#[from] rmp_serde::decode::Error),
    #[error("{0} bytes left over after the value")]
    Trailing(usize),
}

/// Appends `value`'s encoding to `out`.
pub fn encode_into<T: Serialize + ?Sized>(value: &T, out: &mut Vec<u8>) -> Result<(), CodecError> {
    let mut serializer = rmp_serde::Serializer::new(out)
        .with_struct_map()
        .with_human_readable();
    value.serialize(&mut serializer)?;
    Ok(())
}

/// `value`'s encoding.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, CodecError> {
    let mut out = Vec::new();
    encode_into(value, &mut out)?;
    Ok(out)
}

/// Decodes one value that must fill `bytes` exactly (bytes after it mean
/// the length or the data is damaged).
pub fn decode<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, CodecError> {
    let mut input = bytes;
    let mut deserializer = rmp_serde::Deserializer::new(&mut input).with_human_readable();
    let value = T::deserialize(&mut deserializer)?;
    match input.len() {
        0 => Ok(value),
        left => Err(CodecError::Trailing(left)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Old {
        name: String,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct New {
        name: String,
        #[serde(default)]
        added: u32,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    enum Kind {
        Unit,
        Tuple(u8),
        Fields { x: i64 },
    }

    #[test]
    fn fields_are_named_so_either_side_may_be_newer() {
        let old = encode(&Old { name: "a".into() }).unwrap();
        assert_eq!(
            decode::<New>(&old).unwrap(),
            New {
                name: "a".into(),
                added: 0
            }
        );
        let new = encode(&New {
            name: "b".into(),
            added: 3,
        })
        .unwrap();
        assert_eq!(decode::<Old>(&new).unwrap(), Old { name: "b".into() });
    }

    #[test]
    fn values_read_untyped_as_in_json() {
        for kind in [Kind::Unit, Kind::Tuple(4), Kind::Fields { x: -9 }] {
            let bytes = encode(&kind).unwrap();
            let value: serde_json::Value = decode(&bytes).unwrap();
            assert_eq!(value, serde_json::to_value(&kind).unwrap());
            assert_eq!(encode(&value).unwrap(), bytes, "{kind:?}");
            assert_eq!(decode::<Kind>(&bytes).unwrap(), kind);
        }
        // Types that are bytes in a binary format stay strings here.
        let id = address();
        let bytes = encode(&id).unwrap();
        assert_eq!(decode::<serde_json::Value>(&bytes).unwrap(), id.to_string());
    }

    fn address() -> std::net::SocketAddr {
        "127.0.0.1:4647".parse().unwrap()
    }

    #[test]
    fn leftovers_and_garbage_are_errors() {
        let mut bytes = encode(&Old { name: "a".into() }).unwrap();
        bytes.push(0);
        assert!(matches!(
            decode::<Old>(&bytes),
            Err(CodecError::Trailing(1))
        ));
        assert!(decode::<Old>(&[0xc1]).is_err());
        assert!(decode::<Old>(&[]).is_err());
    }
}
