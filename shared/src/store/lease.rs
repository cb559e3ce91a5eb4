//! Leases: one item per lease, taken by a conditional write and lasting until a time, so
//! that at most one holder works at once (and a holder that dies frees it by expiring).

use std::collections::HashMap;
use std::time::Duration;

use super::dynamo::s;
use super::keys;
use crate::Services;
use crate::error::ApiError;
use crate::timestamps;

/// Takes the lease `name` for `holder` for `length`, unless another holder has it and it
/// has not expired; `true` when taken.
pub async fn take(
    svc: &Services,
    name: &str,
    holder: &str,
    length: Duration,
) -> Result<bool, ApiError> {
    let now = timestamps::now();
    let until = now + chrono::Duration::from_std(length).unwrap_or(chrono::Duration::MAX);
    let values = HashMap::from([
        (":holder".to_string(), s(holder)),
        (":until".to_string(), s(&timestamps::format(until))),
        (":now".to_string(), s(&timestamps::format(now))),
    ]);
    let taken = svc
        .table
        .update(
            keys::LEASES,
            name,
            "SET holder = :holder, lease_until = :until",
            Some("attribute_not_exists(pk) OR lease_until < :now OR holder = :holder"),
            values,
        )
        .await?;
    Ok(taken.is_some())
}

/// Gives the lease `name` back if `holder` still has it.
pub async fn release(svc: &Services, name: &str, holder: &str) -> Result<(), ApiError> {
    let values = HashMap::from([
        (":holder".to_string(), s(holder)),
        (
            ":past".to_string(),
            s(&timestamps::format(chrono::DateTime::UNIX_EPOCH)),
        ),
    ]);
    svc.table
        .update(
            keys::LEASES,
            name,
            "SET lease_until = :past",
            Some("holder = :holder"),
            values,
        )
        .await?;
    Ok(())
}
