//! What the vector kinds (cross_match, clustering, roc) share: the object sets they
//! compare, the *collect* stage that writes the sets' descriptors into compact blocks in
//! S3, and the tiles of the *match* stage.
//!
//! Stage 0 (collect) lists the objects of each set that have a descriptor of the task's
//! version and splits them into blocks of `objects_per_block`; each collect subtask reads
//! its objects, writes one [`Block`] of unit descriptors to S3 and outputs the block's
//! reference and ids. Stage 1 (match) has one subtask per tile — a pair of blocks — that
//! reads both blocks and runs the kernel; a subtask's memory is two blocks and the
//! kernel's scratch, whatever the input size. The merge reads tile outputs one reference
//! block at a time. A failed collect subtask fails the task: a result without some of its
//! objects would look complete and be wrong.

use std::collections::HashMap;
use std::ops::ControlFlow;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use uuid::Uuid;

use super::limits::{self, OBJECTS_PER_SET_MAX, TileShape, VectorPlan};
use super::linker::ObjectsType;
use super::{SubtaskContext, TaskContext, event_filter, face_filter, to_json};
use crate::Services;
use crate::config::Config;
use crate::error::{ApiError, ErrorCode};
use crate::objects::{events, faces};
use crate::query::TimeRange;
use crate::store::dynamo::TableQuery;
use crate::store::{blobs, keys};
use crate::tasks::model::SubtaskRecord;
use crate::timestamps;
use crate::vectors::block::Block;
use crate::vectors::kernel::{self, Neighbour};

/// Most objects in one block (one side of a tile).
pub const OBJECTS_PER_BLOCK_MAX: usize = 10_000;

/// Objects per block unless the content says otherwise: a tile of two such blocks of
/// 512-float descriptors reads 20 MB.
pub const OBJECTS_PER_BLOCK_DEFAULT: usize = 5_000;

/// The collect stage.
pub const COLLECT: u32 = 0;

/// The match stage.
pub const MATCH: u32 = 1;

/// A set of objects a vector task compares: the objects type and the filters of its
/// listing (`GET /1/faces` or `GET /1/events`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObjectSet {
    /// Faces or events.
    pub objects_type: ObjectsType,
    /// Filters of the listing, without paging; `create_time__lt` is frozen at creation.
    /// Required (an empty object selects every object of the account).
    pub filters: Map<String, Value>,
    /// Descriptor version of the set; must agree with the task's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub descriptor_version: Option<u32>,
}

impl ObjectSet {
    /// Checks the filters and freezes `create_time__lt` at `now`.
    pub fn validate(&mut self, account_id: Uuid, now: DateTime<Utc>) -> Result<(), ApiError> {
        match self.objects_type {
            ObjectsType::Faces => face_filter(&mut self.filters, account_id, now).map(drop),
            ObjectsType::Events => event_filter(&mut self.filters, account_id, now).map(drop),
        }
    }

    /// Ids of the set's objects that may be selected and have a descriptor of `version`,
    /// newest first, at most `at_most` of them. A set chosen by ids (`face_ids`,
    /// `list_id`) is read and filtered here; any other set is listed through the
    /// descriptor index, keys only, and the collect subtasks apply the rest of the filters
    /// to the records they read anyway (its blocks, and so its tiles, follow the index).
    async fn ids_with_descriptors(
        &self,
        svc: &Services,
        account_id: Uuid,
        now: DateTime<Utc>,
        version: u32,
        at_most: usize,
    ) -> Result<Vec<Uuid>, ApiError> {
        match self.filter(account_id, now)? {
            SetFilter::Faces(filter) => {
                if filter.face_ids.is_none() && filter.list_id.is_none() {
                    let range = &filter.create_time;
                    return indexed_ids(svc, account_id, "FACE", version, range, at_most).await;
                }
                let mut ids = Vec::new();
                faces::visit_matching(svc, &filter, |face| {
                    if face.descriptor_version == Some(version) && face.descriptor.is_some() {
                        ids.push(face.face_id);
                    }
                    if ids.len() < at_most {
                        ControlFlow::Continue(())
                    } else {
                        ControlFlow::Break(())
                    }
                })
                .await?;
                Ok(ids)
            }
            SetFilter::Events(filter) => {
                let range = &filter.create_time;
                indexed_ids(svc, account_id, "EVENT", version, range, at_most).await
            }
        }
    }

    /// The set's filter as it was at task creation (`create_time__lt` frozen then), read by
    /// the planner and again by each collect subtask for the records of its block.
    fn filter(&self, account_id: Uuid, created: DateTime<Utc>) -> Result<SetFilter, ApiError> {
        let mut raw = self.filters.clone();
        Ok(match self.objects_type {
            ObjectsType::Faces => SetFilter::Faces(face_filter(&mut raw, account_id, created)?),
            ObjectsType::Events => SetFilter::Events(event_filter(&mut raw, account_id, created)?),
        })
    }
}

/// The parsed filter of a set.
enum SetFilter {
    Faces(faces::FaceFilter),
    Events(events::EventFilter),
}

/// The ids in the descriptor index of one kind of object of an account, descriptor
/// version and creation-time range, newest first, at most `at_most` of them.
async fn indexed_ids(
    svc: &Services,
    account_id: Uuid,
    kind: &str,
    version: u32,
    created: &TimeRange,
    at_most: usize,
) -> Result<Vec<Uuid>, ApiError> {
    /// What the keys-only index gives back that names the object.
    #[derive(Deserialize)]
    struct Indexed {
        gsi3sk: String,
    }
    let query = TableQuery {
        index: Some(keys::GSI3),
        partition: keys::descriptor_partition(account_id, kind, version),
        range: faces::time_range_keys(created),
        descending: true,
    };
    let mut ids = Vec::new();
    let mut garbled = None;
    svc.table
        .for_each_record(&query, |entry: Indexed| {
            match entry.gsi3sk.rsplit('#').next().map(Uuid::parse_str) {
                Some(Ok(id)) => {
                    ids.push(id);
                    if ids.len() < at_most {
                        ControlFlow::Continue(())
                    } else {
                        ControlFlow::Break(())
                    }
                }
                _ => {
                    garbled = Some(entry.gsi3sk);
                    ControlFlow::Break(())
                }
            }
        })
        .await?;
    match garbled {
        Some(key) => Err(ApiError::internal(
            "descriptor index",
            format!("sort key {key:?} does not end with an object id"),
        )),
        None => Ok(ids),
    }
}

/// The descriptor version of a task: the one its content and sets give, or the configured
/// default. Different versions in one task, or an unknown version, are a 400: descriptors
/// of different versions are never compared.
pub fn descriptor_version(
    config: &Config,
    task: Option<u32>,
    sets: &[&ObjectSet],
) -> Result<u32, ApiError> {
    let mut given = task
        .into_iter()
        .chain(sets.iter().filter_map(|s| s.descriptor_version));
    let first = given.next();
    if let (Some(a), Some(b)) = (first, given.find(|&v| Some(v) != first)) {
        return Err(ApiError::bad_json(format!(
            "content: descriptors of versions {a} and {b} are never compared; give one descriptor_version"
        )));
    }
    let version = first.unwrap_or(config.default_descriptor_version);
    if config.descriptor_length(version).is_none() {
        return Err(ApiError::bad_json(format!(
            "content: descriptor_version {version} is not supported (known: {:?})",
            config.descriptor_versions.keys().collect::<Vec<_>>()
        )));
    }
    Ok(version)
}

/// The version a validated content stored (validation fills it in; the configured default
/// stands in for contents stored before it did).
pub fn stored_version(config: &Config, stored: Option<u32>) -> u32 {
    stored.unwrap_or(config.default_descriptor_version)
}

/// Checks `objects_per_block` (a Fanout extension: smaller blocks, more tiles).
pub fn check_objects_per_block(n: usize) -> Result<(), ApiError> {
    if (1..=OBJECTS_PER_BLOCK_MAX).contains(&n) {
        Ok(())
    } else {
        Err(ApiError::bad_json(format!(
            "content: 'objects_per_block' must be in 1..={OBJECTS_PER_BLOCK_MAX}"
        )))
    }
}

/// Where one block lives and what it holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRef {
    /// Which object set of the task (0 references or objects, 1 candidates).
    pub set: u8,
    /// Block number within the set.
    pub block: u32,
    /// Objects in the block.
    pub count: u32,
    /// Index of the block's first object among all objects of its set.
    pub offset: u32,
}

impl BlockRef {
    /// Key of the block in S3, under the task's prefix.
    pub fn key(&self, task_id: u64) -> String {
        format!(
            "{}blocks/{}-{:06}.bin",
            blobs::task_prefix(task_id),
            self.set,
            self.block
        )
    }

    /// Reads the block.
    pub async fn load(&self, svc: &Services, task_id: u64) -> Result<Block, ApiError> {
        let key = self.key(task_id);
        let bytes = blobs::get(svc, &key)
            .await?
            .ok_or_else(|| ApiError::internal("descriptor block", format!("{key} missing")))?;
        Block::from_bytes(&bytes).map_err(|e| ApiError::internal("descriptor block", e))
    }
}

/// Content of one collect subtask.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollectPart {
    /// The set and number of the block; `count` and `offset` are as planned.
    pub block: BlockRef,
    /// Faces or events.
    pub objects_type: ObjectsType,
    /// The set's filters (`create_time__lt` frozen), checked against each record read;
    /// `None` when the ids are the selection (ROC markup).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filters: Option<Map<String, Value>>,
    /// Descriptor version to read.
    pub descriptor_version: u32,
    /// The objects of the block.
    pub ids: Vec<Uuid>,
}

/// Output of one collect subtask: the block as written (objects deleted since planning
/// are left out) with its ids, in block order, and the track of each event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Collected {
    /// The block; `count` is what it holds.
    pub block: BlockRef,
    /// Ids of the block's objects, in order.
    pub ids: Vec<Uuid>,
    /// `track_id` of each object (events only; `None` for faces).
    pub tracks: Vec<Option<String>>,
}

/// Checks at creation that a vector task of these sets fits the caps of
/// [`limits`] (without reading anything when no count could break them): each set is
/// counted up to
/// [`limits::OBJECTS_COUNTED_AT_CREATION_MAX`] objects, so a task refused here is over a
/// cap for sure; a larger set is checked again by [`plan_collect`].
pub async fn check_at_creation(
    svc: &Services,
    account_id: Uuid,
    now: DateTime<Utc>,
    sets: &[&ObjectSet],
    version: u32,
    plan: VectorPlan,
) -> Result<(), ApiError> {
    // The caps grow with the counts, so when sets of the most objects counted here would
    // pass, any count passes: nothing to read (the planner, which lists the sets anyway,
    // checks again). Listing 2 x 100,000 ids here cost as much as the planner's own listing.
    let most = vec![limits::OBJECTS_COUNTED_AT_CREATION_MAX as u64; sets.len()];
    if plan.check(&most, 0).is_ok() {
        return Ok(());
    }
    let mut counts = Vec::with_capacity(sets.len());
    for objects in sets {
        let ids = objects
            .ids_with_descriptors(
                svc,
                account_id,
                now,
                version,
                limits::OBJECTS_COUNTED_AT_CREATION_MAX,
            )
            .await?;
        counts.push(ids.len() as u64);
    }
    plan.check(&counts, 0)
}

/// Plans the collect stage: blocks of at most `plan.per_block` objects of every set,
/// once the sets' sizes are checked against the caps (nothing is built for a plan over
/// one, and no set is listed past [`OBJECTS_PER_SET_MAX`]).
pub async fn plan_collect(
    task: &TaskContext<'_>,
    sets: &[&ObjectSet],
    version: u32,
    plan: VectorPlan,
) -> Result<Vec<Value>, ApiError> {
    let now = timestamps::parse(&task.task.create_time).unwrap_or_else(timestamps::now);
    let mut listed = Vec::with_capacity(sets.len());
    for objects in sets {
        let ids = objects
            .ids_with_descriptors(
                task.svc,
                task.task.account_id,
                now,
                version,
                OBJECTS_PER_SET_MAX + 1,
            )
            .await?;
        limits::check_objects(ids.len())?;
        listed.push(ids);
    }
    let counts: Vec<u64> = listed.iter().map(|ids| ids.len() as u64).collect();
    plan.check(&counts, task.task.count_task_parts_all)?;
    let mut parts = Vec::new();
    for (set, (objects, ids)) in sets.iter().zip(&listed).enumerate() {
        parts.extend(collect_parts(
            set as u8,
            objects.objects_type,
            Some(&objects.filters),
            ids,
            version,
            plan.per_block,
        )?);
    }
    Ok(parts)
}

/// The collect subtasks of one set of objects given by id (objects without a descriptor
/// of `version`, or not matching `filters`, are left out when their block is written).
pub fn collect_parts(
    set: u8,
    objects_type: ObjectsType,
    filters: Option<&Map<String, Value>>,
    ids: &[Uuid],
    version: u32,
    per_block: usize,
) -> Result<Vec<Value>, ApiError> {
    ids.chunks(per_block.max(1))
        .enumerate()
        .map(|(block, chunk)| {
            to_json(&CollectPart {
                block: BlockRef {
                    set,
                    block: block as u32,
                    count: chunk.len() as u32,
                    offset: (block * per_block) as u32,
                },
                objects_type,
                filters: filters.cloned(),
                descriptor_version: version,
                ids: chunk.to_vec(),
            })
        })
        .collect()
}

/// Runs a collect subtask: reads the objects, writes their block.
pub async fn collect(subtask: &SubtaskContext<'_>) -> Result<Value, ApiError> {
    let part: CollectPart = subtask.content()?;
    let svc = subtask.svc;
    let account_id = subtask.task.account_id;
    let dim = svc
        .config
        .descriptor_length(part.descriptor_version)
        .ok_or_else(|| {
            ApiError::internal(
                "collect",
                format!("unknown descriptor_version {}", part.descriptor_version),
            )
        })?;
    let created = timestamps::parse(&subtask.task.create_time).unwrap_or_else(timestamps::now);
    let filter = part
        .filters
        .clone()
        .map(|filters| {
            ObjectSet {
                objects_type: part.objects_type,
                filters,
                descriptor_version: None,
            }
            .filter(account_id, created)
        })
        .transpose()?;
    let mut block = Block::new(dim);
    let mut tracks = Vec::new();
    let mut keep = |id: Uuid, descriptor: Option<crate::descriptor::Descriptor>, track| {
        if let Some(d) =
            descriptor.filter(|d| d.version == part.descriptor_version && d.values.len() == dim)
        {
            block.push(id, &d.values);
            tracks.push(track);
        }
    };
    // Blocks keep the planned order: batch reads answer in any order.
    let order: HashMap<Uuid, usize> = part
        .ids
        .iter()
        .enumerate()
        .map(|(i, &id)| (id, i))
        .collect();
    let position = |id: Uuid| order.get(&id).copied().unwrap_or(usize::MAX);
    for chunk in part.ids.chunks(1000) {
        subtask.check_cancelled()?;
        match part.objects_type {
            ObjectsType::Faces => {
                let mut found = faces::records(svc, account_id, chunk).await?;
                found.sort_by_key(|f| position(f.face_id));
                for face in found {
                    if let Some(SetFilter::Faces(f)) = &filter
                        && !f.matches(&face)
                    {
                        continue;
                    }
                    keep(face.face_id, face.descriptor(), None);
                }
            }
            ObjectsType::Events => {
                let mut found = events::records(svc, account_id, chunk).await?;
                found.sort_by_key(|e| position(e.event.event_id));
                for event in found {
                    if let Some(SetFilter::Events(f)) = &filter
                        && !f.matches(&event.event)
                    {
                        continue;
                    }
                    let track = event.event.track_id.clone();
                    keep(event.event.event_id, event.descriptor(), track);
                }
            }
        }
    }
    let written = BlockRef {
        count: block.len() as u32,
        ..part.block
    };
    crate::fault::point("before_part_put").await;
    blobs::put(
        svc,
        &written.key(subtask.task.task_id),
        block.to_bytes(),
        "application/octet-stream",
    )
    .await?;
    to_json(&Collected {
        block: written,
        ids: block.ids().to_vec(),
        tracks,
    })
}

/// The blocks the collect stage wrote, per set, in block order, with offsets recomputed
/// from what each block really holds (none when nothing was selected). Fails the task if
/// any collect subtask failed.
pub async fn collected(
    task: &TaskContext<'_>,
    sets: usize,
) -> Result<Vec<Vec<Collected>>, ApiError> {
    let outcomes = task.outcomes::<Collected, CollectPart>(COLLECT).await?;
    if let Some(lost) = outcomes.failed.first() {
        return Err(ApiError::new(
            ErrorCode::SubtaskAttemptsExhausted,
            format!(
                "Collecting block {} of set {} of task '{}' failed; the result would miss its objects",
                lost.block.block, lost.block.set, task.task.task_id
            ),
        ));
    }
    let mut by_set: Vec<Vec<Collected>> = vec![Vec::new(); sets];
    for output in outcomes.outputs {
        if let Some(blocks) = by_set.get_mut(output.block.set as usize) {
            blocks.push(output);
        }
    }
    for blocks in &mut by_set {
        blocks.sort_by_key(|c| c.block.block);
        let mut offset = 0;
        for c in blocks.iter_mut() {
            c.block.offset = offset;
            offset += c.block.count;
        }
    }
    Ok(by_set)
}

/// Content of one match subtask: a tile of two blocks.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Tile {
    /// Rows of the tile (references, or objects).
    pub a: BlockRef,
    /// Columns of the tile (candidates, or objects).
    pub b: BlockRef,
}

impl Tile {
    /// Whether the tile is a block against itself.
    pub fn same(&self) -> bool {
        self.a == self.b
    }

    /// Reads the tile's blocks (once when it is a block against itself).
    pub async fn load(
        &self,
        svc: &Services,
        task_id: u64,
    ) -> Result<(Block, Option<Block>), ApiError> {
        let a = self.a.load(svc, task_id).await?;
        let b = if self.same() {
            None
        } else {
            Some(self.b.load(svc, task_id).await?)
        };
        Ok((a, b))
    }
}

/// Plans the match stage over the collected blocks of each set: its tiles and subtasks
/// are checked against the caps before any tile is built.
pub fn plan_match(
    task: &TaskContext<'_>,
    shape: TileShape,
    sets: &[Vec<Collected>],
) -> Result<Vec<Value>, ApiError> {
    let blocks: Vec<u64> = sets.iter().map(|set| set.len() as u64).collect();
    limits::check_tiles(shape, &blocks)?;
    limits::check_subtasks(task.task.count_task_parts_all, shape.tiles(&blocks))?;
    let first = sets.first().map(Vec::as_slice).unwrap_or_default();
    match shape {
        TileShape::Cross => tiles(first, sets.get(1).map(Vec::as_slice).unwrap_or_default()),
        TileShape::Square => tiles(first, first),
        TileShape::Pairs => pair_tiles(first),
    }
}

/// One tile per (row block, column block): every row object against every column object.
/// More tiles than [`limits::TILES_PER_TASK_MAX`] fail before any is built.
pub fn tiles(rows: &[Collected], columns: &[Collected]) -> Result<Vec<Value>, ApiError> {
    limits::check_tiles(TileShape::Cross, &[rows.len() as u64, columns.len() as u64])?;
    rows.iter()
        .flat_map(|a| columns.iter().map(move |b| (a.block, b.block)))
        .map(|(a, b)| to_json(&Tile { a, b }))
        .collect()
}

/// One tile per pair of blocks i ≤ j of one set: every unordered pair of objects once.
/// More tiles than [`limits::TILES_PER_TASK_MAX`] fail before any is built.
pub fn pair_tiles(blocks: &[Collected]) -> Result<Vec<Value>, ApiError> {
    limits::check_tiles(TileShape::Pairs, &[blocks.len() as u64])?;
    blocks
        .iter()
        .enumerate()
        .flat_map(|(i, a)| blocks[i..].iter().map(move |b| (a.block, b.block)))
        .map(|(a, b)| to_json(&Tile { a, b }))
        .collect()
}

/// The match subtasks of a task, with their tiles, in subtask order (none when the stage
/// was never planned).
pub async fn match_subtasks(
    task: &TaskContext<'_>,
) -> Result<Vec<(SubtaskRecord, Tile)>, ApiError> {
    let mut out = Vec::new();
    for record in task.subtasks(MATCH).await? {
        let tile: Tile = crate::tasks::store::subtask_content(task.svc, &record).await?;
        out.push((record, tile));
    }
    Ok(out)
}

/// Fails the merge when a match subtask did not end done: its pairs would be missing.
pub fn require_done(record: &SubtaskRecord, task_id: u64) -> Result<(), ApiError> {
    if record.subtask.status == crate::tasks::model::SubtaskStatus::Done {
        return Ok(());
    }
    Err(ApiError::new(
        ErrorCode::SubtaskAttemptsExhausted,
        format!(
            "Match subtask {} of task '{task_id}' failed; the result would miss its pairs",
            record.subtask.subtask_id
        ),
    ))
}

/// Output of a top-k tile: per row of the tile's first block, its best rows of the second.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TileBest {
    /// One list per row, best first.
    pub lists: Vec<Vec<Neighbour>>,
}

/// Runs a top-k tile: each row of block `a` against block `b`.
pub async fn top_k_tile(
    subtask: &SubtaskContext<'_>,
    limit: usize,
    threshold: f32,
    skip_same_id: bool,
) -> Result<Value, ApiError> {
    let tile: Tile = subtask.content()?;
    let (a, b) = tile.load(subtask.svc, subtask.task.task_id).await?;
    subtask.check_cancelled()?;
    let lists = off_runtime(move || {
        crate::fault::point_blocking("inside_tile_kernel");
        let b = b.as_ref().unwrap_or(&a);
        kernel::top_k(&a, b, limit, threshold, skip_same_id)
    })
    .await?;
    to_json(&TileBest { lists })
}

/// Runs CPU-bound work (a tile's kernel) on the blocking pool instead of the async
/// runtime, whose threads must stay free for the lease heartbeats: on a one-vCPU task a
/// kernel on the runtime would let leases lapse (a second delivery of the same tile).
pub async fn off_runtime<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| ApiError::internal("tile kernel", e))
}

/// Each row of `references`' block with its best `limit` neighbours over every tile of
/// that block: what the merge holds for one reference block at a time.
pub async fn best_of_tiles(
    task: &TaskContext<'_>,
    tiles: &[(SubtaskRecord, Tile)],
    references: &Collected,
    limit: usize,
) -> Result<Vec<Vec<Neighbour>>, ApiError> {
    let mut best: Vec<Vec<Neighbour>> = vec![Vec::new(); references.ids.len()];
    for (record, _) in tiles.iter().filter(|(_, t)| t.a == references.block) {
        require_done(record, task.task.task_id)?;
        let output: TileBest = crate::tasks::store::subtask_output(task.svc, record).await?;
        for (row, more) in best.iter_mut().zip(&output.lists) {
            kernel::merge_top_k(row, more, limit);
        }
    }
    Ok(best)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blocks(set: u8, n: u32) -> Vec<Collected> {
        (0..n)
            .map(|block| Collected {
                block: BlockRef {
                    set,
                    block,
                    count: 1,
                    offset: block,
                },
                ids: vec![Uuid::new_v4()],
                tracks: vec![None],
            })
            .collect()
    }

    #[test]
    fn tiles_past_the_cap_fail_before_any_is_built() {
        let (rows, columns) = (blocks(0, 101), blocks(1, 100));
        let err = tiles(&rows, &columns).unwrap_err();
        assert_eq!(err.code, ErrorCode::TaskLimitExceeded);
        assert!(err.detail.contains("10100 match tiles"), "{}", err.detail);
        assert_eq!(tiles(&rows[..100], &columns).unwrap().len(), 10_000);
        assert_eq!(pair_tiles(&rows).unwrap().len(), 101 * 102 / 2);
        assert!(pair_tiles(&blocks(0, 141)).is_err());
    }
}
