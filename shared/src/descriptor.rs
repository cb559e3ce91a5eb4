//! Face descriptors: given as a JSON float array or as base64 of little-endian f32,
//! checked against the length declared for their version, stored as raw bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use crate::config::Config;
use crate::error::ApiError;

/// Version of the descriptors Fanout's workers extract with HSE FaceRes (1024 values).
/// LUNA numbers its own networks below 100; Fanout's open networks take 1001 and up.
pub const FACERES_VERSION: u32 = 1001;
/// Version of the descriptors Fanout's workers extract with FaceNet (512 values).
pub const FACENET_VERSION: u32 = 1002;
/// The versions a worker can extract, with their lengths.
pub const EXTRACTABLE: [(u32, usize); 2] = [(FACERES_VERSION, 1024), (FACENET_VERSION, 512)];

/// Checks that `version` is one the workers extract and the configured table knows with
/// the network's length (12027 otherwise: a body field of an extraction task).
pub fn check_extractable(version: u32, config: &Config) -> Result<(), ApiError> {
    let Some(&(_, length)) = EXTRACTABLE.iter().find(|(v, _)| *v == version) else {
        return Err(ApiError::bad_json(format!(
            "descriptor_version {version} cannot be extracted here (extractable: {FACERES_VERSION} FaceRes, {FACENET_VERSION} FaceNet)"
        )));
    };
    match config.descriptor_length(version) {
        Some(known) if known == length => Ok(()),
        Some(known) => Err(ApiError::bad_json(format!(
            "descriptor_version {version} is configured with {known} values, its network gives {length}"
        ))),
        None => Err(ApiError::bad_json(format!(
            "descriptor_version {version} is not in the configured version table"
        ))),
    }
}

/// Base64 of the little-endian f32 values, the form tasks write descriptors in.
pub fn to_base64(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    STANDARD.encode(bytes)
}

/// A validated descriptor of a known version.
#[derive(Debug, Clone, PartialEq)]
pub struct Descriptor {
    /// Descriptor version (which network produced it).
    pub version: u32,
    /// The vector, of the length declared for `version`.
    pub values: Vec<f32>,
}

impl Descriptor {
    /// Validates a descriptor from a request: `raw` is a float array or a base64 string.
    pub fn from_json(raw: &Value, version: Option<u32>, config: &Config) -> Result<Self, ApiError> {
        let version = version.unwrap_or(config.default_descriptor_version);
        let expected = config.descriptor_length(version).ok_or_else(|| {
            ApiError::bad_json(format!(
                "descriptor_version {version} is not supported (known: {:?})",
                config.descriptor_versions.keys().collect::<Vec<_>>()
            ))
        })?;
        let values = match raw {
            Value::Array(items) => items
                .iter()
                .map(|item| {
                    item.as_f64()
                        .map(|v| v as f32)
                        .filter(|v| v.is_finite())
                        .ok_or_else(|| {
                            ApiError::bad_json("descriptor items must be finite numbers")
                        })
                })
                .collect::<Result<Vec<f32>, ApiError>>()?,
            Value::String(text) => {
                let bytes = STANDARD
                    .decode(text)
                    .map_err(|e| ApiError::bad_json(format!("descriptor is not base64: {e}")))?;
                if bytes.len() % 4 != 0 {
                    return Err(ApiError::bad_json(
                        "base64 descriptor must hold whole little-endian f32 values",
                    ));
                }
                let values = floats_from_le_bytes(&bytes);
                if values.iter().any(|v| !v.is_finite()) {
                    return Err(ApiError::bad_json("descriptor values must be finite"));
                }
                values
            }
            _ => {
                return Err(ApiError::bad_json(
                    "descriptor must be an array of numbers or a base64 string",
                ));
            }
        };
        if values.len() != expected {
            return Err(ApiError::bad_json(format!(
                "descriptor of version {version} must have {expected} values, got {}",
                values.len()
            )));
        }
        Ok(Descriptor { version, values })
    }

    /// Little-endian bytes, as stored.
    pub fn to_le_bytes(&self) -> Vec<u8> {
        self.values.iter().flat_map(|v| v.to_le_bytes()).collect()
    }

    /// Rebuilds a stored descriptor.
    pub fn from_le_bytes(version: u32, bytes: &[u8]) -> Descriptor {
        Descriptor {
            version,
            values: floats_from_le_bytes(bytes),
        }
    }
}

fn floats_from_le_bytes(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config() -> Config {
        Config::from_lookup(|name| match name {
            "FANOUT_DESCRIPTOR_VERSIONS" => Some("59:4,60:2".into()),
            "FANOUT_DEFAULT_DESCRIPTOR_VERSION" => Some("59".into()),
            "FANOUT_TOKEN_REQUESTS_PER_MINUTE" | "FANOUT_CLEARML_WATCHDOG_SECONDS" => None,
            other if other.starts_with("FANOUT_") => Some("x".into()),
            _ => None,
        })
        .unwrap()
    }

    #[test]
    fn float_array_and_base64_give_the_same_descriptor() {
        let values = [0.5f32, -1.0, 2.25, 0.0];
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
        let from_array = Descriptor::from_json(&json!(values), None, &config()).unwrap();
        let from_b64 =
            Descriptor::from_json(&json!(STANDARD.encode(&bytes)), Some(59), &config()).unwrap();
        assert_eq!(from_array, from_b64);
        assert_eq!(from_array.to_le_bytes(), bytes);
        assert_eq!(Descriptor::from_le_bytes(59, &bytes), from_array);
    }

    #[test]
    fn length_must_match_the_version() {
        let err = Descriptor::from_json(&json!([1.0, 2.0]), Some(59), &config()).unwrap_err();
        assert!(err.detail.contains("must have 4 values, got 2"), "{err}");
        assert!(Descriptor::from_json(&json!([1.0, 2.0]), Some(60), &config()).is_ok());
        assert!(Descriptor::from_json(&json!([1.0]), Some(61), &config()).is_err());
    }

    #[test]
    fn rejects_non_numbers_and_bad_base64() {
        for raw in [
            json!(["a", 1, 2, 3]),
            json!("***"),
            json!("AAAAAA=="),
            json!(7),
        ] {
            assert!(
                Descriptor::from_json(&raw, None, &config()).is_err(),
                "{raw}"
            );
        }
    }
}
