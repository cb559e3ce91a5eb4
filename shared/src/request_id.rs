//! `Luna-Request-Id`: `<unix time, 10 digits>,<uuid>`, taken from the client or generated.

use std::fmt;

use uuid::Uuid;

/// Name of the header carrying the request id, in and out.
pub const HEADER: &str = "Luna-Request-Id";

/// A validated request id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(String);

impl RequestId {
    /// Validates a client-supplied id against `^[0-9]{10},[a-f0-9]{8}-…-[a-f0-9]{12}$`.
    pub fn parse(raw: &str) -> Option<RequestId> {
        let (time, uuid) = raw.split_once(',')?;
        let time_ok = time.len() == 10 && time.bytes().all(|b| b.is_ascii_digit());
        let groups: Vec<&str> = uuid.split('-').collect();
        let uuid_ok = groups.len() == 5
            && groups
                .iter()
                .zip([8, 4, 4, 4, 12])
                .all(|(group, len)| group.len() == len && group.bytes().all(is_lower_hex));
        (time_ok && uuid_ok).then(|| RequestId(raw.to_string()))
    }

    /// A fresh id for a request that came without one.
    pub fn generate() -> RequestId {
        let now = chrono::Utc::now().timestamp();
        RequestId(format!("{now:010},{}", Uuid::new_v4()))
    }

    /// The id as sent in the header.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

fn is_lower_hex(b: u8) -> bool {
    b.is_ascii_digit() || (b'a'..=b'f').contains(&b)
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_the_documented_example() {
        let raw = "1536751345,8b8b5937-2e9c-4e8b-a7a7-5caf86621b5a";
        assert_eq!(RequestId::parse(raw).unwrap().as_str(), raw);
    }

    #[test]
    fn rejects_malformed_ids() {
        for raw in [
            "",
            "1536751345",
            "153675134,8b8b5937-2e9c-4e8b-a7a7-5caf86621b5a",
            "1536751345,8B8B5937-2E9C-4E8B-A7A7-5CAF86621B5A",
            "1536751345,8b8b5937-2e9c-4e8b-a7a7-5caf86621b5",
            "1536751345,8b8b59372e9c4e8ba7a75caf86621b5a",
            "abcdefghij,8b8b5937-2e9c-4e8b-a7a7-5caf86621b5a",
        ] {
            assert!(RequestId::parse(raw).is_none(), "{raw:?} accepted");
        }
    }

    #[test]
    fn generated_ids_validate() {
        let id = RequestId::generate();
        assert_eq!(RequestId::parse(id.as_str()), Some(id));
    }
}
