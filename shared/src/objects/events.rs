//! Events: what a camera or handler saw, with optional descriptor. Immutable once saved;
//! saved in batches of up to 1000 that are validated whole before anything is written.
//!
//! A batch is written in 40 calls of 25, which is not atomic: a failure part-way answers
//! 500 with the first calls stored. A request with an `Idempotency-Key` can be repeated
//! after any failure: its event ids are derived from the account, the key, the body and
//! the event's place in the batch, its default create time is the one the key's record
//! keeps, and each event is put only if absent, so every retry (or a concurrent
//! duplicate) rebuilds the same events, stores the missing ones once and answers the
//! same ids. The key's record (body fingerprint, time) lives for a day; the same key with
//! another body is refused (40010, 422).

use std::collections::HashMap;
use std::ops::ControlFlow;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use uuid::Uuid;

use super::images::{self, StoredImage};
use super::{Count, SHORT_TEXT_MAX, USER_DATA_MAX, check_text};
use crate::Services;
use crate::descriptor::Descriptor;
use crate::error::{ApiError, ErrorCode};
use crate::query::{Page, PageBuffer, Query, TimeRange};
use crate::store::dynamo::{Item, from_item, s, to_item};
use crate::store::{TableQuery, blobs, keys};
use crate::timestamps;

/// Most events in one `POST /1/events`.
pub const EVENTS_PER_BATCH_MAX: usize = 1000;
/// Most tags on one event.
pub const TAGS_MAX: usize = 32;
/// Emotion names an event may carry.
pub const EMOTIONS: &[&str] = &[
    "anger",
    "disgust",
    "fear",
    "happiness",
    "neutral",
    "sadness",
    "surprise",
];

/// Header that makes `POST /1/events` safe to repeat.
pub const IDEMPOTENCY_HEADER: &str = "Idempotency-Key";
/// Most characters of an idempotency key.
pub const IDEMPOTENCY_KEY_MAX: usize = 255;
/// How long an idempotency key is remembered (its record's TTL).
pub const IDEMPOTENCY_TTL_SECONDS: i64 = 24 * 60 * 60;
/// Namespace of the UUIDv5 event ids and body fingerprints of keyed requests.
const IDEMPOTENCY_NAMESPACE: Uuid = Uuid::from_u128(0x6d1f_4b0e_2c7a_4f55_9a3e_51c8_0b7d_e2a4);

/// Body of `POST /1/events`.
#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvents {
    /// Owner of every event in the batch.
    pub account_id: Uuid,
    /// 1 to 1000 events.
    #[schema(min_items = 1, max_items = 1000)]
    pub events: Vec<NewEvent>,
}

/// One event to save.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewEvent {
    /// Event time; now when absent.
    pub create_time: Option<String>,
    /// End of the event (e.g. of a track); the create time when absent.
    pub end_time: Option<String>,
    /// Source (camera, stream name), at most 128 characters.
    pub source: Option<String>,
    /// Handler that produced the event.
    pub handler_id: Option<Uuid>,
    /// Client-side id, at most 36 characters.
    pub external_id: Option<String>,
    /// Free text, at most 128 characters.
    pub user_data: Option<String>,
    /// Tags, at most 32 of at most 36 characters each.
    pub tags: Option<Vec<String>>,
    /// Track the event belongs to.
    pub track_id: Option<String>,
    /// Video stream the event came from.
    pub stream_id: Option<Uuid>,
    /// 0 female, 1 male.
    #[schema(minimum = 0, maximum = 1)]
    pub gender: Option<u8>,
    /// Estimated age in years (0..=200).
    #[schema(minimum = 0, maximum = 200)]
    pub age: Option<u32>,
    /// Dominant emotion: anger, disgust, fear, happiness, neutral, sadness or surprise.
    pub emotion: Option<String>,
    /// Where the event happened.
    pub location: Option<Location>,
    /// Face made from the event.
    pub face_id: Option<Uuid>,
    /// Float array, or base64 of little-endian f32 values.
    #[schema(value_type = Option<Object>)]
    pub descriptor: Option<Value>,
    /// Version of `descriptor`; the configured default when absent.
    pub descriptor_version: Option<u32>,
}

/// Where an event happened.
#[derive(Debug, Clone, Default, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Location {
    /// City.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub city: Option<String>,
    /// Area.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    /// District.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub district: Option<String>,
    /// Street.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street: Option<String>,
    /// House number.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub house_number: Option<String>,
    /// Coordinates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo_position: Option<GeoPosition>,
}

/// Coordinates in degrees.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GeoPosition {
    /// -180..=180.
    pub longitude: f64,
    /// -90..=90.
    pub latitude: f64,
}

/// One saved event of a batch.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq, Eq)]
pub struct EventCreated {
    /// Id of the new event.
    pub event_id: Uuid,
    /// Path of the new event.
    pub url: String,
}

/// Answer to `POST /1/events`, in the order of the request.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventsCreated {
    /// The saved events.
    pub events: Vec<EventCreated>,
}

/// An event as stored and shown (the descriptor itself is not shown).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema, PartialEq)]
pub struct Event {
    /// Event id.
    pub event_id: Uuid,
    /// Owner.
    pub account_id: Uuid,
    /// Event time.
    pub create_time: String,
    /// End of the event.
    pub end_time: String,
    /// Source.
    pub source: Option<String>,
    /// Handler.
    pub handler_id: Option<Uuid>,
    /// Client-side id.
    pub external_id: Option<String>,
    /// Free text ("" when unset).
    pub user_data: String,
    /// Tags.
    pub tags: Vec<String>,
    /// Track.
    pub track_id: Option<String>,
    /// Stream.
    pub stream_id: Option<Uuid>,
    /// 0 female, 1 male.
    pub gender: Option<u8>,
    /// Age in years.
    pub age: Option<u32>,
    /// Dominant emotion.
    pub emotion: Option<String>,
    /// Where it happened.
    pub location: Option<Location>,
    /// Face made from the event.
    pub face_id: Option<Uuid>,
    /// Version of the stored descriptor; null when none.
    pub descriptor_version: Option<u32>,
}

/// Answer to `GET /1/events`.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct EventPage {
    /// The events of the requested page.
    pub events: Vec<Event>,
}

/// The stored item of an event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EventRecord {
    pk: String,
    sk: String,
    gsi1pk: String,
    gsi1sk: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi3pk: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    gsi3sk: Option<String>,
    /// The event as shown.
    #[serde(flatten)]
    pub event: Event,
    /// Descriptor as little-endian f32 bytes.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "serde_bytes")]
    pub descriptor: Option<Vec<u8>>,
    /// The uploaded sample, whose bytes are in S3 at [`images::event_sample_key`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<StoredImage>,
}

impl EventRecord {
    /// The stored descriptor, if any.
    pub fn descriptor(&self) -> Option<Descriptor> {
        Some(Descriptor::from_le_bytes(
            self.event.descriptor_version?,
            self.descriptor.as_deref()?,
        ))
    }
}

/// Filters of `GET /1/events`.
#[derive(Debug, Clone)]
pub struct EventFilter {
    /// Owner (required).
    pub account_id: Uuid,
    /// Only these events.
    pub event_ids: Option<Vec<Uuid>>,
    /// Only events from one of these sources.
    pub sources: Option<Vec<String>>,
    /// Only events of these handlers.
    pub handler_ids: Option<Vec<Uuid>>,
    /// Only events of these streams.
    pub stream_ids: Option<Vec<Uuid>>,
    /// Only events of these tracks.
    pub track_ids: Option<Vec<String>>,
    /// Only events with at least one of these tags.
    pub tags: Option<Vec<String>>,
    /// Only events with one of these external ids.
    pub external_ids: Option<Vec<String>>,
    /// Only events whose user_data equals this.
    pub user_data: Option<String>,
    /// Only events with this gender.
    pub gender: Option<u8>,
    /// Only events with one of these emotions.
    pub emotions: Option<Vec<String>>,
    /// Included lower bound of age.
    pub age_gte: Option<u32>,
    /// Excluded upper bound of age.
    pub age_lt: Option<u32>,
    /// Creation time range.
    pub create_time: TimeRange,
}

/// Query parameters `GET /1/events` knows.
pub const LIST_PARAMS: &[&str] = &[
    "account_id",
    "event_ids",
    "sources",
    "handler_ids",
    "stream_ids",
    "track_ids",
    "tags",
    "external_ids",
    "user_data",
    "gender",
    "emotions",
    "age__gte",
    "age__lt",
    "create_time__gte",
    "create_time__lt",
    "page",
    "page_size",
];

impl EventFilter {
    /// Reads the filter from a query string.
    pub fn from_query(query: &Query) -> Result<EventFilter, ApiError> {
        Ok(EventFilter {
            account_id: query.account_id()?,
            event_ids: query.uuid_list("event_ids")?,
            sources: query.string_list("sources")?,
            handler_ids: query.uuid_list("handler_ids")?,
            stream_ids: query.uuid_list("stream_ids")?,
            track_ids: query.string_list("track_ids")?,
            tags: query.string_list("tags")?,
            external_ids: query.string_list("external_ids")?,
            user_data: query.single("user_data")?.map(str::to_string),
            gender: query.int("gender", 0, 1)?,
            emotions: query.string_list("emotions")?,
            age_gte: query.int("age__gte", 0, 200)?,
            age_lt: query.int("age__lt", 0, 201)?,
            create_time: query.time_range("create_time")?,
        })
    }

    /// Whether a stored event passes every filter.
    pub fn matches(&self, event: &Event) -> bool {
        fn any_of<T: PartialEq>(wanted: &Option<Vec<T>>, value: Option<&T>) -> bool {
            wanted
                .as_ref()
                .is_none_or(|w| value.is_some_and(|v| w.contains(v)))
        }
        let created = timestamps::parse(&event.create_time);
        event.account_id == self.account_id
            && any_of(&self.event_ids, Some(&event.event_id))
            && any_of(&self.sources, event.source.as_ref())
            && any_of(&self.handler_ids, event.handler_id.as_ref())
            && any_of(&self.stream_ids, event.stream_id.as_ref())
            && any_of(&self.track_ids, event.track_id.as_ref())
            && any_of(&self.external_ids, event.external_id.as_ref())
            && any_of(&self.emotions, event.emotion.as_ref())
            && self
                .tags
                .as_ref()
                .is_none_or(|w| event.tags.iter().any(|t| w.contains(t)))
            && self
                .user_data
                .as_ref()
                .is_none_or(|u| *u == event.user_data)
            && self.gender.is_none_or(|g| event.gender == Some(g))
            && self
                .age_gte
                .is_none_or(|a| event.age.is_some_and(|age| age >= a))
            && self
                .age_lt
                .is_none_or(|a| event.age.is_some_and(|age| age < a))
            && created.is_some_and(|t| self.create_time.contains(t))
    }
}

/// Validates a whole batch, then saves it under fresh random ids.
pub async fn create(svc: &Services, batch: NewEvents) -> Result<EventsCreated, ApiError> {
    create_keyed(svc, batch, None).await
}

/// Validates a whole batch, then saves it. With an idempotency key (see the module doc)
/// the request may be repeated after any failure; without one this is [`create`].
pub async fn create_keyed(
    svc: &Services,
    batch: NewEvents,
    key: Option<&str>,
) -> Result<EventsCreated, ApiError> {
    if batch.events.is_empty() || batch.events.len() > EVENTS_PER_BATCH_MAX {
        return Err(ApiError::bad_json(format!(
            "'events' must hold 1 to {EVENTS_PER_BATCH_MAX} events"
        )));
    }
    let now = timestamps::now();
    let Some(key) = key else {
        let records = new_records(svc, &batch, &timestamps::format(now), |_| Uuid::new_v4())?;
        let items = records.iter().map(to_item).collect::<Result<Vec<_>, _>>()?;
        svc.table.batch_write(items, Vec::new()).await?;
        return Ok(created(&records));
    };
    check_idempotency_key(key)?;
    let fingerprint = Uuid::new_v5(
        &IDEMPOTENCY_NAMESPACE,
        &serde_json::to_vec(&batch).map_err(|e| ApiError::internal("events fingerprint", e))?,
    );
    let event_id = |index: usize| {
        let name = format!("{}/{key}/{fingerprint}/{index}", batch.account_id);
        Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, name.as_bytes())
    };
    // Validated before the key is claimed, so a refused body leaves the key unused.
    let mut records = new_records(svc, &batch, &timestamps::format(now), event_id)?;
    let record = claim_key(svc, batch.account_id, key, fingerprint, now).await?;
    if record.create_time != timestamps::format(now) {
        // A retry: the events the first request did not date get its time, as before.
        records = new_records(svc, &batch, &record.create_time, event_id)?;
    }
    let items = records.iter().map(to_item).collect::<Result<Vec<_>, _>>()?;
    svc.table.put_each_if_absent(items).await?;
    Ok(created(&records))
}

fn created(records: &[EventRecord]) -> EventsCreated {
    let events = records
        .iter()
        .map(|r| EventCreated {
            event_id: r.event.event_id,
            url: format!("/1/events/{}", r.event.event_id),
        })
        .collect();
    EventsCreated { events }
}

/// The condition that `field` is absent or null (events store unset fields as null).
fn still_unset(field: &str) -> String {
    format!("(attribute_not_exists({field}) OR attribute_type({field}, :null))")
}

/// What a task extracted from an event's sample.
#[derive(Debug, Clone, Default)]
pub struct Extracted {
    /// A descriptor (replacing the event's).
    pub descriptor: Option<Descriptor>,
    /// Age and gender (set only where the event has none).
    pub age: Option<u32>,
    /// 0 female, 1 male.
    pub gender: Option<u8>,
}

/// Writes what a task extracted from an event's sample, if the fields it changes are
/// still as `seen` read them (a client or another task writing meanwhile wins). `false`
/// when they were not.
pub async fn set_extracted(
    svc: &Services,
    seen: &EventRecord,
    extracted: &Extracted,
) -> Result<bool, ApiError> {
    let event = &seen.event;
    let mut sets = Vec::new();
    let mut conditions = vec!["account_id = :account".to_string()];
    let mut values = HashMap::from([(":account".to_string(), s(&event.account_id.to_string()))]);
    let number = |n: u32| AttributeValue::N(n.to_string());
    if extracted.descriptor.is_some() {
        match event.descriptor_version {
            Some(old) => {
                conditions.push("descriptor_version = :old_version".into());
                values.insert(":old_version".into(), number(old));
            }
            None => conditions.push(still_unset("descriptor_version")),
        }
        sets.push("#descriptor = :descriptor, descriptor_version = :version, gsi3pk = :gsi3pk, gsi3sk = :gsi3sk");
    }
    if extracted.age.is_some() && event.age.is_none() {
        conditions.push(still_unset("age"));
        sets.push("age = :age");
    }
    if extracted.gender.is_some() && event.gender.is_none() {
        conditions.push(still_unset("gender"));
        sets.push("gender = :gender");
    }
    if conditions.iter().any(|c| c.contains(":null")) {
        values.insert(":null".into(), s("NULL"));
    }
    if sets.is_empty() {
        return Ok(false);
    }
    if let Some(d) = &extracted.descriptor {
        let (gsi3pk, gsi3sk) =
            keys::descriptor_index(event.account_id, "EVENT", Some(d.version), &seen.gsi1sk);
        values.insert(
            ":descriptor".into(),
            AttributeValue::B(d.to_le_bytes().into()),
        );
        values.insert(":version".into(), number(d.version));
        values.insert(":gsi3pk".into(), s(&gsi3pk.unwrap_or_default()));
        values.insert(":gsi3sk".into(), s(&gsi3sk.unwrap_or_default()));
    }
    if sets.iter().any(|s| s.starts_with("age")) {
        values.insert(":age".into(), number(extracted.age.unwrap_or_default()));
    }
    if sets.iter().any(|s| s.starts_with("gender")) {
        values.insert(
            ":gender".into(),
            number(u32::from(extracted.gender.unwrap_or_default())),
        );
    }
    let updated = svc
        .table
        .update(
            &keys::event_pk(event.event_id),
            keys::EVENT_SK,
            &format!("SET {}", sets.join(", ")),
            Some(&conditions.join(" AND ")),
            values,
        )
        .await?;
    Ok(updated.is_some())
}

/// Refuses a key that is empty, longer than [`IDEMPOTENCY_KEY_MAX`] or holds anything but
/// printable ASCII (it becomes part of a DynamoDB key and of log lines).
pub fn check_idempotency_key(key: &str) -> Result<(), ApiError> {
    let printable = key.bytes().all(|b| b.is_ascii_graphic());
    if key.is_empty() || key.len() > IDEMPOTENCY_KEY_MAX || !printable {
        return Err(ApiError::new(
            ErrorCode::BadIdempotencyKey,
            format!(
                "{IDEMPOTENCY_HEADER} must be 1 to {IDEMPOTENCY_KEY_MAX} printable ASCII characters without spaces"
            ),
        ));
    }
    Ok(())
}

/// The stored record of an account's idempotency key.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct IdempotencyRecord {
    pk: String,
    sk: String,
    account_id: Uuid,
    /// UUIDv5 of the request body as serialized back from [`NewEvents`] (so spacing and
    /// key order do not matter).
    fingerprint: Uuid,
    /// Time of the first request: the create time of its events that gave none.
    create_time: String,
    /// Epoch seconds after which DynamoDB TTL removes the record.
    expires_at: i64,
}

/// Claims `key` for a request with body `fingerprint` at `now`, or finds the request
/// that claimed it: the same body answers that request's record, another body is 40010.
/// An expired record that TTL has not removed yet is claimed over.
async fn claim_key(
    svc: &Services,
    account_id: Uuid,
    key: &str,
    fingerprint: Uuid,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<IdempotencyRecord, ApiError> {
    let pk = keys::idempotency_pk(account_id, key);
    let sk = keys::IDEMPOTENCY_EVENTS_SK;
    let epoch = now.timestamp();
    let values: Item = HashMap::from([
        (":account".to_string(), s(&account_id.to_string())),
        (":fingerprint".to_string(), s(&fingerprint.to_string())),
        (":time".to_string(), s(&timestamps::format(now))),
        (
            ":expires".to_string(),
            AttributeValue::N((epoch + IDEMPOTENCY_TTL_SECONDS).to_string()),
        ),
        (":now".to_string(), AttributeValue::N(epoch.to_string())),
    ]);
    // A record that vanishes or expires between the claim and the read is claimed again.
    for _ in 0..3 {
        let claimed = svc
            .table
            .update(
                &pk,
                sk,
                "SET account_id = :account, fingerprint = :fingerprint, create_time = :time, \
                 expires_at = :expires",
                Some("attribute_not_exists(pk) OR expires_at < :now"),
                values.clone(),
            )
            .await?;
        let item = match claimed {
            Some(item) => item,
            None => match svc.table.get(&pk, sk).await? {
                Some(item) => item,
                None => continue,
            },
        };
        let record: IdempotencyRecord = from_item(item)?;
        if record.expires_at < epoch {
            continue;
        }
        if record.fingerprint != fingerprint {
            return Err(ApiError::new(
                ErrorCode::IdempotencyKeyReused,
                format!(
                    "{IDEMPOTENCY_HEADER} '{key}' was used at {} with another request body",
                    record.create_time
                ),
            ));
        }
        return Ok(record);
    }
    Err(ApiError::internal(
        "idempotency key",
        format!("the record of key '{key}' kept changing"),
    ))
}

/// Checks every event of `batch` and builds its record; `event_id` names the event at
/// each index and `now` is the create time of events that give none.
fn new_records(
    svc: &Services,
    batch: &NewEvents,
    now: &str,
    event_id: impl Fn(usize) -> Uuid,
) -> Result<Vec<EventRecord>, ApiError> {
    batch
        .events
        .iter()
        .enumerate()
        .map(|(i, new)| {
            validate(svc, batch.account_id, new.clone(), event_id(i), now)
                .map_err(|err| ApiError::new(err.code, format!("events[{i}]: {}", err.detail)))
        })
        .collect()
}

fn validate(
    svc: &Services,
    account_id: Uuid,
    new: NewEvent,
    event_id: Uuid,
    now: &str,
) -> Result<EventRecord, ApiError> {
    check_text("source", new.source.as_deref(), USER_DATA_MAX)?;
    check_text("external_id", new.external_id.as_deref(), SHORT_TEXT_MAX)?;
    check_text("user_data", new.user_data.as_deref(), USER_DATA_MAX)?;
    check_text("track_id", new.track_id.as_deref(), SHORT_TEXT_MAX)?;
    let tags = new.tags.unwrap_or_default();
    if tags.len() > TAGS_MAX {
        return Err(ApiError::bad_json(format!("at most {TAGS_MAX} tags")));
    }
    for tag in &tags {
        if tag.is_empty() {
            return Err(ApiError::bad_json("tags must not be empty"));
        }
        check_text("tags[]", Some(tag), SHORT_TEXT_MAX)?;
    }
    if new.gender.is_some_and(|g| g > 1) {
        return Err(ApiError::bad_json("'gender' must be 0 or 1"));
    }
    if new.age.is_some_and(|a| a > 200) {
        return Err(ApiError::bad_json("'age' must be in 0..=200"));
    }
    if let Some(emotion) = &new.emotion
        && !EMOTIONS.contains(&emotion.as_str())
    {
        return Err(ApiError::bad_json(format!(
            "'emotion' must be one of {EMOTIONS:?}"
        )));
    }
    if let Some(location) = &new.location {
        for (field, value) in [
            ("location.city", &location.city),
            ("location.area", &location.area),
            ("location.district", &location.district),
            ("location.street", &location.street),
            ("location.house_number", &location.house_number),
        ] {
            check_text(field, value.as_deref(), SHORT_TEXT_MAX)?;
        }
        if let Some(geo) = location.geo_position
            && (!(-180.0..=180.0).contains(&geo.longitude)
                || !(-90.0..=90.0).contains(&geo.latitude))
        {
            return Err(ApiError::bad_json(
                "'location.geo_position' must have longitude in -180..=180 and latitude in -90..=90",
            ));
        }
    }
    if new.descriptor.is_none() && new.descriptor_version.is_some() {
        return Err(ApiError::bad_json(
            "'descriptor_version' given without 'descriptor'",
        ));
    }
    let descriptor = new
        .descriptor
        .as_ref()
        .map(|raw| Descriptor::from_json(raw, new.descriptor_version, &svc.config))
        .transpose()?;
    let time = |field: &str, raw: Option<String>| -> Result<Option<String>, ApiError> {
        raw.map(|raw| {
            timestamps::parse(&raw)
                .map(timestamps::format)
                .ok_or_else(|| {
                    ApiError::bad_json(format!("'{field}' is not an RFC 3339 date-time"))
                })
        })
        .transpose()
    };
    let create_time = time("create_time", new.create_time)?.unwrap_or_else(|| now.to_string());
    let end_time = time("end_time", new.end_time)?.unwrap_or_else(|| create_time.clone());
    if end_time < create_time {
        return Err(ApiError::bad_json("'end_time' is before 'create_time'"));
    }
    let gsi1sk = keys::time_sort_key(&create_time, event_id);
    let version = descriptor.as_ref().map(|d| d.version);
    let (gsi3pk, gsi3sk) = keys::descriptor_index(account_id, "EVENT", version, &gsi1sk);
    Ok(EventRecord {
        pk: keys::event_pk(event_id),
        sk: keys::EVENT_SK.into(),
        gsi1pk: keys::account_partition(account_id, "EVENT"),
        gsi1sk,
        gsi3pk,
        gsi3sk,
        event: Event {
            event_id,
            account_id,
            create_time,
            end_time,
            source: new.source,
            handler_id: new.handler_id,
            external_id: new.external_id,
            user_data: new.user_data.unwrap_or_default(),
            tags,
            track_id: new.track_id,
            stream_id: new.stream_id,
            gender: new.gender,
            age: new.age,
            emotion: new.emotion,
            location: new.location,
            face_id: new.face_id,
            descriptor_version: version,
        },
        descriptor: descriptor.as_ref().map(Descriptor::to_le_bytes),
        image: None,
    })
}

/// The stored events of `account_id` among `event_ids` (missing ones are absent).
pub async fn records(
    svc: &Services,
    account_id: Uuid,
    event_ids: &[Uuid],
) -> Result<Vec<EventRecord>, ApiError> {
    let keys: Vec<(String, String)> = event_ids
        .iter()
        .map(|&id| (keys::event_pk(id), keys::EVENT_SK.to_string()))
        .collect();
    let mut found = Vec::with_capacity(event_ids.len());
    for item in svc.table.batch_get(&keys).await? {
        let record: EventRecord = from_item(item)?;
        if record.event.account_id == account_id {
            found.push(record);
        }
    }
    Ok(found)
}

/// Deletes events by id, with their samples; ids that are gone already are fine. The
/// caller has checked that they belong to the account.
///
/// The events are read first because a sample's key names the event's account; see
/// [`delete_records`] for the order of the deletes.
pub async fn delete_many(svc: &Services, event_ids: &[Uuid]) -> Result<(), ApiError> {
    let keys: Vec<(String, String)> = event_ids
        .iter()
        .map(|&id| (keys::event_pk(id), keys::EVENT_SK.to_string()))
        .collect();
    let records = svc
        .table
        .batch_get(&keys)
        .await?
        .into_iter()
        .map(from_item)
        .collect::<Result<Vec<EventRecord>, _>>()?;
    delete_records(svc, &records).await
}

/// Deletes events already read, then their sample objects (`DeleteObjects` in batches,
/// whether or not the records had a sample, so an upload racing the delete is removed
/// too). A crash between the two leaves orphan objects under the account's prefix that
/// no record refers to; a retry no longer finds those events and leaves them.
pub async fn delete_records(svc: &Services, records: &[EventRecord]) -> Result<(), ApiError> {
    let doomed = records
        .iter()
        .map(|r| (r.pk.clone(), r.sk.clone()))
        .collect();
    svc.table.batch_write(Vec::new(), doomed).await?;
    let samples: Vec<String> = records
        .iter()
        .map(|r| images::event_sample_key(r.event.account_id, r.event.event_id))
        .collect();
    blobs::delete_many(svc, &samples).await
}

/// The stored event if it belongs to `account_id`.
pub async fn record(
    svc: &Services,
    account_id: Uuid,
    event_id: Uuid,
) -> Result<EventRecord, ApiError> {
    let item = svc
        .table
        .get(&keys::event_pk(event_id), keys::EVENT_SK)
        .await?
        .ok_or_else(|| ApiError::event_not_found(event_id))?;
    let record: EventRecord = from_item(item)?;
    if record.event.account_id != account_id {
        return Err(ApiError::event_not_found(event_id));
    }
    Ok(record)
}

/// One event of `account_id`.
pub async fn get(svc: &Services, account_id: Uuid, event_id: Uuid) -> Result<Event, ApiError> {
    Ok(record(svc, account_id, event_id).await?.event)
}

/// One page of the events matching `filter`, newest first.
pub async fn list(svc: &Services, filter: &EventFilter, page: Page) -> Result<EventPage, ApiError> {
    let mut buffer = PageBuffer::new(page);
    visit_matching(svc, filter, |record| buffer.offer(record.event)).await?;
    Ok(EventPage {
        events: buffer.into_items(),
    })
}

/// Number of events matching `filter`.
pub async fn count(svc: &Services, filter: &EventFilter) -> Result<Count, ApiError> {
    let mut count = 0;
    visit_matching(svc, filter, |_| {
        count += 1;
        ControlFlow::Continue(())
    })
    .await?;
    Ok(Count { count })
}

/// Hands every event matching `filter` to `visit`, newest first, until it breaks.
/// Reads the account's events in the create-time range (one index partition).
pub async fn visit_matching(
    svc: &Services,
    filter: &EventFilter,
    visit: impl FnMut(EventRecord) -> ControlFlow<()>,
) -> Result<(), ApiError> {
    let query = TableQuery {
        index: Some(keys::GSI1),
        partition: keys::account_partition(filter.account_id, "EVENT"),
        range: super::faces::time_range_keys(&filter.create_time),
        descending: true,
    };
    svc.table
        .for_each_matching(&query, |r: &EventRecord| filter.matches(&r.event), visit)
        .await
}
