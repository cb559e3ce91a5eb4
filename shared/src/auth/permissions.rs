//! What a token may do: per resource, a subset of the four actions, as LUNA's token
//! permissions are written (`{"faces": ["view", "creation"], ...}`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// A kind of record a route reads or writes.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Resource {
    /// Faces and their descriptors.
    Faces,
    /// Lists and their memberships.
    Lists,
    /// Events.
    Events,
    /// Face avatars and event samples.
    Images,
    /// Tasks, their subtasks and results.
    Tasks,
    /// Task errors.
    Errors,
    /// The account's tokens.
    Tokens,
    /// The ClearML surface (`/clearml/`): its tasks, projects, queues, workers, events.
    Clearml,
    /// The ML orchestrator (`/orchestrator/`): problems, algos, data, uplets, storage.
    Orchestrator,
    /// The LUNA Video Agent surface: video tasks (`/1/videosdk`, `/1/video/tasks`),
    /// streams and their logs.
    Video,
}

impl Resource {
    /// Every resource, in the order the API documents them.
    pub const ALL: [Resource; 10] = [
        Resource::Faces,
        Resource::Lists,
        Resource::Events,
        Resource::Images,
        Resource::Tasks,
        Resource::Errors,
        Resource::Tokens,
        Resource::Clearml,
        Resource::Orchestrator,
        Resource::Video,
    ];

    /// The name used in permissions.
    pub fn name(self) -> &'static str {
        match self {
            Resource::Faces => "faces",
            Resource::Lists => "lists",
            Resource::Events => "events",
            Resource::Images => "images",
            Resource::Tasks => "tasks",
            Resource::Errors => "errors",
            Resource::Tokens => "tokens",
            Resource::Clearml => "clearml",
            Resource::Orchestrator => "orchestrator",
            Resource::Video => "video",
        }
    }
}

impl fmt::Display for Resource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a route does with its resource.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Read.
    View,
    /// Create.
    Creation,
    /// Change.
    Modification,
    /// Delete.
    Deletion,
}

impl Action {
    /// Every action.
    pub const ALL: [Action; 4] = [
        Action::View,
        Action::Creation,
        Action::Modification,
        Action::Deletion,
    ];

    /// The name used in permissions.
    pub fn name(self) -> &'static str {
        match self {
            Action::View => "view",
            Action::Creation => "creation",
            Action::Modification => "modification",
            Action::Deletion => "deletion",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The actions a token may take, per resource; a resource left out allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(transparent)]
#[schema(value_type = BTreeMap<String, Vec<Action>>, example = json!({"faces": ["view", "creation"], "tasks": ["view"]}))]
pub struct Permissions(pub BTreeMap<Resource, BTreeSet<Action>>);

impl Permissions {
    /// Every action on every resource.
    pub fn all() -> Permissions {
        Permissions(
            Resource::ALL
                .iter()
                .map(|r| (*r, Action::ALL.iter().copied().collect()))
                .collect(),
        )
    }

    /// Whether `action` on `resource` is allowed.
    pub fn allows(&self, resource: Resource, action: Action) -> bool {
        self.0
            .get(&resource)
            .is_some_and(|actions| actions.contains(&action))
    }

    /// Whether everything `other` allows, this allows too.
    pub fn covers(&self, other: &Permissions) -> bool {
        other
            .0
            .iter()
            .all(|(resource, actions)| actions.iter().all(|action| self.allows(*resource, *action)))
    }

    /// The same permissions without resources that allow nothing (so equal sets of
    /// rights compare and store alike).
    pub fn normalized(mut self) -> Permissions {
        self.0.retain(|_, actions| !actions.is_empty());
        self
    }

    /// The compact form carried in the authorizer's context: `faces:vcmd,tasks:v`.
    pub fn to_compact(&self) -> String {
        self.0
            .iter()
            .filter(|(_, actions)| !actions.is_empty())
            .map(|(resource, actions)| {
                let letters: String = actions.iter().map(|a| letter(*a)).collect();
                format!("{}:{letters}", resource.name())
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Reads [`Permissions::to_compact`]'s form; `None` when it is not that form.
    pub fn from_compact(text: &str) -> Option<Permissions> {
        let mut map = BTreeMap::new();
        for part in text.split(',').filter(|p| !p.is_empty()) {
            let (name, letters) = part.split_once(':')?;
            let resource = Resource::ALL.into_iter().find(|r| r.name() == name)?;
            let actions = letters
                .chars()
                .map(|c| Action::ALL.into_iter().find(|a| letter(*a) == c))
                .collect::<Option<BTreeSet<_>>>()?;
            map.insert(resource, actions);
        }
        Some(Permissions(map))
    }
}

fn letter(action: Action) -> char {
    match action {
        Action::View => 'v',
        Action::Creation => 'c',
        Action::Modification => 'm',
        Action::Deletion => 'd',
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_form_round_trips() {
        let all = Permissions::all();
        assert_eq!(Permissions::from_compact(&all.to_compact()), Some(all));
        let some: Permissions =
            serde_json::from_str(r#"{"faces": ["view", "deletion"], "tasks": ["view"]}"#).unwrap();
        assert_eq!(some.to_compact(), "faces:vd,tasks:v");
        assert_eq!(Permissions::from_compact("faces:vd,tasks:v"), Some(some));
        assert_eq!(Permissions::from_compact(""), Some(Permissions::default()));
        for bad in ["faces", "faces:x", "robots:v", "faces:v,tasks"] {
            assert_eq!(Permissions::from_compact(bad), None, "{bad}");
        }
    }

    #[test]
    fn covers_is_inclusion() {
        let all = Permissions::all();
        let view: Permissions = serde_json::from_str(r#"{"faces": ["view"]}"#).unwrap();
        assert!(all.covers(&view));
        assert!(!view.covers(&all));
        assert!(view.covers(&Permissions::default()));
        assert!(view.allows(Resource::Faces, Action::View));
        assert!(!view.allows(Resource::Faces, Action::Creation));
        assert!(!view.allows(Resource::Lists, Action::View));
    }

    #[test]
    fn unknown_resources_and_actions_are_refused() {
        assert!(serde_json::from_str::<Permissions>(r#"{"robots": ["view"]}"#).is_err());
        assert!(serde_json::from_str::<Permissions>(r#"{"faces": ["fly"]}"#).is_err());
    }
}
