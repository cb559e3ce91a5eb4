//! The one place where every error the API can return is declared.
//!
//! Each [`ErrorCode`] carries its LUNA error code, HTTP status and short description;
//! an [`ApiError`] adds the detail filled in with the values of one occurrence. Handlers
//! return `ApiError`s and a single function renders them, so tests can assert codes rather
//! than strings. Codes follow the LUNA platform numbering (generic 1xx/12xxx, faces 22xxx,
//! events 23xxx, tasks 28xxx).

use serde::Serialize;
use utoipa::ToSchema;

/// Documentation page of an error code, as LUNA links them.
const ERROR_LINK_BASE: &str =
    "https://docs.visionlabs.ai/info/luna/troubleshooting/errors-description/code-";

/// Every error the API can answer with: LUNA code, HTTP status and short description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    /// Unexpected failure inside the service or one of its dependencies.
    Internal,
    /// A query parameter has a value of the wrong type or out of range.
    BadQuery,
    /// Unknown route or method.
    BadRoute,
    /// A required query parameter is missing.
    RequiredParamsNotFound,
    /// A query parameter the route does not know.
    UnsupportedParam,
    /// The JSON body is malformed or does not match the schema.
    BadJson,
    /// The JSON body is an empty object where fields are required.
    EmptyJson,
    /// The request has no body where one is required.
    NoData,
    /// `Luna-Request-Id` is not `<10 digits>,<uuid>` (a Fanout code: LUNA documents none).
    BadRequestId,
    /// A dependency (DynamoDB, SQS, S3) is unreachable.
    DependencyUnavailable,
    /// Face lookup by id failed.
    FaceNotFound,
    /// List lookup by id failed.
    ListNotFound,
    /// Some of several faces do not exist (or belong to another account).
    FacesNotFound,
    /// Some of several lists do not exist (or belong to another account).
    ListsNotFound,
    /// Event lookup by id failed.
    EventNotFound,
    /// Task lookup by id failed.
    TaskNotFound,
    /// Task error lookup by id failed.
    TaskErrorNotFound,
    /// The task is done but its result object is gone.
    TaskResultNotFound,
    /// The task has not finished yet.
    TaskResultNotReady,
    /// The task ended without a result (failed).
    TaskResultImpossible,
    /// The task was cancelled, so it has no result.
    TaskCancelled,
    /// Only pending, running or collecting tasks can be cancelled (a Fanout code).
    TaskNotCancellable,
    /// A subtask kept failing until its attempts ran out (a Fanout code).
    SubtaskAttemptsExhausted,
    /// A report was asked of a clustering task that has not ended in done.
    ReportStatusUnsupported,
    /// A report was asked of a clustering task that has no result.
    ReportWithoutResult,
    /// An uploaded image is larger than the service stores (a Fanout code).
    ImageTooLarge,
    /// An uploaded image is neither JPEG nor PNG (a Fanout code).
    ImageUnsupported,
    /// The object has no stored image (a Fanout code).
    ImageNotFound,
    /// A task would fan out past a documented cap (a Fanout code; see
    /// [`crate::kinds::limits`]).
    TaskLimitExceeded,
    /// A page lies deeper than listings page (a Fanout code; see
    /// [`crate::query::PAGE_DEPTH_MAX`]).
    PageTooDeep,
    /// An `Idempotency-Key` header that is empty, too long or not printable ASCII (a
    /// Fanout code).
    BadIdempotencyKey,
    /// An `Idempotency-Key` already used by the account with another request body (a
    /// Fanout code; 422 as the IETF Idempotency-Key draft answers a reused key).
    IdempotencyKeyReused,
    /// No `Authorization: Bearer <token>` header on a route that needs one (a Fanout
    /// code).
    Unauthenticated,
    /// The bearer token is malformed, unknown or revoked (a Fanout code).
    BadToken,
    /// The bearer token's expiration time has passed (a Fanout code).
    TokenExpired,
    /// The token lacks the permission the route needs (a Fanout code).
    PermissionDenied,
    /// The request names an account other than the token's (a Fanout code).
    ForeignAccount,
    /// The route is for admin accounts only (a Fanout code).
    AdminOnly,
    /// The request body is larger than the route accepts (a Fanout code).
    BodyTooLarge,
    /// The token sent more requests this minute than it may (a Fanout code).
    RateLimited,
    /// No account with this id (a Fanout code).
    AccountNotFound,
    /// No token with this id visible to the caller (a Fanout code).
    TokenNotFound,
    /// An account with this id exists already (a Fanout code).
    AccountExists,
    /// No orchestrator document (or blob in its storage) with this uuid in the account
    /// (a Fanout code).
    DocumentNotFound,
    /// An orchestrator document with this uuid exists already (a Fanout code).
    DocumentExists,
    /// A learnuplet or preduplet is not in the state the call needs: claimed already,
    /// not runnable, or not claimed (a Fanout code).
    UpletConflict,
    /// A video cannot be read or analysed: not a video, corrupt, unreachable, over the
    /// size limit (LUNA's "Stream processing error").
    VideoProcessing,
    /// A video task was cancelled while it ran, so it has no result.
    VideoTaskCancelled,
    /// A synchronous `videosdk` request whose video is longer than a synchronous answer
    /// allows (a Fanout code: send it with `deferred_task.enable`).
    VideoTooLongForSync,
    /// No stream with this id in the account (a Fanout code).
    StreamNotFound,
}

impl ErrorCode {
    /// The numeric LUNA error code.
    pub fn code(self) -> u32 {
        match self {
            ErrorCode::Internal => 1,
            ErrorCode::BadQuery => 101,
            ErrorCode::BadRoute => 106,
            ErrorCode::RequiredParamsNotFound => 12014,
            ErrorCode::UnsupportedParam => 12018,
            ErrorCode::BadJson => 12027,
            ErrorCode::EmptyJson => 12005,
            ErrorCode::NoData => 12030,
            ErrorCode::BadRequestId => 40001,
            ErrorCode::DependencyUnavailable => 28000,
            ErrorCode::FaceNotFound => 22002,
            ErrorCode::ListNotFound => 22003,
            ErrorCode::FacesNotFound => 22004,
            ErrorCode::ListsNotFound => 22005,
            ErrorCode::EventNotFound => 23001,
            ErrorCode::TaskNotFound => 28001,
            ErrorCode::TaskErrorNotFound => 28003,
            ErrorCode::TaskResultNotFound => 28017,
            ErrorCode::TaskResultNotReady => 28018,
            ErrorCode::TaskResultImpossible => 28020,
            ErrorCode::TaskCancelled => 28025,
            ErrorCode::TaskNotCancellable => 40002,
            ErrorCode::SubtaskAttemptsExhausted => 40003,
            ErrorCode::ReportStatusUnsupported => 28015,
            ErrorCode::ReportWithoutResult => 28016,
            ErrorCode::ImageTooLarge => 40004,
            ErrorCode::ImageUnsupported => 40005,
            ErrorCode::ImageNotFound => 40006,
            ErrorCode::TaskLimitExceeded => 40007,
            ErrorCode::PageTooDeep => 40008,
            ErrorCode::BadIdempotencyKey => 40009,
            ErrorCode::IdempotencyKeyReused => 40010,
            ErrorCode::Unauthenticated => 40011,
            ErrorCode::BadToken => 40012,
            ErrorCode::TokenExpired => 40013,
            ErrorCode::PermissionDenied => 40014,
            ErrorCode::ForeignAccount => 40015,
            ErrorCode::AdminOnly => 40016,
            ErrorCode::BodyTooLarge => 40017,
            ErrorCode::RateLimited => 40018,
            ErrorCode::AccountNotFound => 40019,
            ErrorCode::TokenNotFound => 40020,
            ErrorCode::AccountExists => 40021,
            ErrorCode::DocumentNotFound => 40022,
            ErrorCode::DocumentExists => 40023,
            ErrorCode::UpletConflict => 40024,
            ErrorCode::VideoProcessing => 45001,
            ErrorCode::VideoTaskCancelled => 45003,
            ErrorCode::VideoTooLongForSync => 40025,
            ErrorCode::StreamNotFound => 40026,
        }
    }

    /// The code whose number is `code`, if one is declared.
    pub fn from_code(code: u32) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|c| c.code() == code)
    }

    /// The HTTP status this error is answered with.
    pub fn status(self) -> u16 {
        match self {
            ErrorCode::Internal | ErrorCode::SubtaskAttemptsExhausted => 500,
            ErrorCode::DependencyUnavailable => 502,
            ErrorCode::BadRoute => 404,
            ErrorCode::FaceNotFound
            | ErrorCode::ListNotFound
            | ErrorCode::FacesNotFound
            | ErrorCode::ListsNotFound
            | ErrorCode::EventNotFound
            | ErrorCode::TaskNotFound
            | ErrorCode::TaskErrorNotFound
            | ErrorCode::TaskResultNotFound
            | ErrorCode::TaskResultNotReady
            | ErrorCode::TaskResultImpossible
            | ErrorCode::TaskCancelled
            | ErrorCode::ImageNotFound
            | ErrorCode::AccountNotFound
            | ErrorCode::TokenNotFound
            | ErrorCode::DocumentNotFound
            | ErrorCode::StreamNotFound => 404,
            ErrorCode::Unauthenticated | ErrorCode::BadToken | ErrorCode::TokenExpired => 401,
            ErrorCode::PermissionDenied | ErrorCode::ForeignAccount | ErrorCode::AdminOnly => 403,
            ErrorCode::ImageTooLarge | ErrorCode::BodyTooLarge => 413,
            ErrorCode::RateLimited => 429,
            ErrorCode::AccountExists | ErrorCode::DocumentExists | ErrorCode::UpletConflict => 409,
            ErrorCode::ImageUnsupported => 415,
            ErrorCode::IdempotencyKeyReused => 422,
            ErrorCode::BadQuery
            | ErrorCode::RequiredParamsNotFound
            | ErrorCode::UnsupportedParam
            | ErrorCode::BadJson
            | ErrorCode::EmptyJson
            | ErrorCode::NoData
            | ErrorCode::BadRequestId
            | ErrorCode::TaskNotCancellable
            | ErrorCode::ReportStatusUnsupported
            | ErrorCode::ReportWithoutResult
            | ErrorCode::TaskLimitExceeded
            | ErrorCode::PageTooDeep
            | ErrorCode::BadIdempotencyKey
            | ErrorCode::VideoProcessing
            | ErrorCode::VideoTaskCancelled
            | ErrorCode::VideoTooLongForSync => 400,
        }
    }

    /// The short description (`desc`) shared by every occurrence.
    pub fn desc(self) -> &'static str {
        match self {
            ErrorCode::Internal => "Internal server error",
            ErrorCode::BadQuery => "Bad/incomplete query",
            ErrorCode::BadRoute => "Invalid http request",
            ErrorCode::RequiredParamsNotFound => "Required parameters not found",
            ErrorCode::UnsupportedParam => "Unsupported param",
            ErrorCode::BadJson => "Failed to validate input json",
            ErrorCode::EmptyJson => "Empty json",
            ErrorCode::NoData => "Request does not contain data",
            ErrorCode::BadRequestId => "Bad format of Luna-Request-Id header",
            ErrorCode::DependencyUnavailable => "Dependency unavailable",
            ErrorCode::FaceNotFound => "Object not found",
            ErrorCode::ListNotFound => "Object not found",
            ErrorCode::FacesNotFound => "Object not found",
            ErrorCode::ListsNotFound => "Object not found",
            ErrorCode::EventNotFound => "Object not found",
            ErrorCode::TaskNotFound => "Object not found",
            ErrorCode::TaskErrorNotFound => "Object not found",
            ErrorCode::TaskResultNotFound => "Object not found",
            ErrorCode::TaskResultNotReady => "Object not found",
            ErrorCode::TaskResultImpossible => "Object not found",
            ErrorCode::TaskCancelled => "Task has been cancelled",
            ErrorCode::TaskNotCancellable => "Bad/incomplete input data",
            ErrorCode::SubtaskAttemptsExhausted => "Subtask failed",
            ErrorCode::ReportStatusUnsupported => "Bad/incomplete input data",
            ErrorCode::ReportWithoutResult => "Bad/incomplete input data",
            ErrorCode::ImageTooLarge => "Image is too large",
            ErrorCode::ImageUnsupported => "Unsupported image format",
            ErrorCode::ImageNotFound => "Object not found",
            ErrorCode::TaskLimitExceeded => "Task exceeds a service limit",
            ErrorCode::PageTooDeep => "Page beyond the listing depth",
            ErrorCode::BadIdempotencyKey => "Bad format of Idempotency-Key header",
            ErrorCode::IdempotencyKeyReused => "Idempotency-Key reused with another request",
            ErrorCode::Unauthenticated => "Authentication required",
            ErrorCode::BadToken => "Invalid token",
            ErrorCode::TokenExpired => "Token expired",
            ErrorCode::PermissionDenied => "Permission denied",
            ErrorCode::ForeignAccount => "Account not accessible with this token",
            ErrorCode::AdminOnly => "Admin account required",
            ErrorCode::BodyTooLarge => "Request body too large",
            ErrorCode::RateLimited => "Too many requests",
            ErrorCode::AccountNotFound => "Object not found",
            ErrorCode::TokenNotFound => "Object not found",
            ErrorCode::AccountExists => "Object already exists",
            ErrorCode::DocumentNotFound => "Object not found",
            ErrorCode::DocumentExists => "Object already exists",
            ErrorCode::UpletConflict => "Uplet not in the required state",
            ErrorCode::VideoProcessing => "Stream processing error",
            ErrorCode::VideoTaskCancelled => "Task cancelled during execution",
            ErrorCode::VideoTooLongForSync => "Video too long for a synchronous request",
            ErrorCode::StreamNotFound => "Object not found",
        }
    }

    /// Every declared code, for documentation and the registry's own tests.
    pub const ALL: [ErrorCode; 50] = [
        ErrorCode::Internal,
        ErrorCode::BadQuery,
        ErrorCode::BadRoute,
        ErrorCode::RequiredParamsNotFound,
        ErrorCode::UnsupportedParam,
        ErrorCode::BadJson,
        ErrorCode::EmptyJson,
        ErrorCode::NoData,
        ErrorCode::BadRequestId,
        ErrorCode::DependencyUnavailable,
        ErrorCode::FaceNotFound,
        ErrorCode::ListNotFound,
        ErrorCode::FacesNotFound,
        ErrorCode::ListsNotFound,
        ErrorCode::EventNotFound,
        ErrorCode::TaskNotFound,
        ErrorCode::TaskErrorNotFound,
        ErrorCode::TaskResultNotFound,
        ErrorCode::TaskResultNotReady,
        ErrorCode::TaskResultImpossible,
        ErrorCode::TaskCancelled,
        ErrorCode::TaskNotCancellable,
        ErrorCode::SubtaskAttemptsExhausted,
        ErrorCode::ReportStatusUnsupported,
        ErrorCode::ReportWithoutResult,
        ErrorCode::ImageTooLarge,
        ErrorCode::ImageUnsupported,
        ErrorCode::ImageNotFound,
        ErrorCode::TaskLimitExceeded,
        ErrorCode::PageTooDeep,
        ErrorCode::BadIdempotencyKey,
        ErrorCode::IdempotencyKeyReused,
        ErrorCode::Unauthenticated,
        ErrorCode::BadToken,
        ErrorCode::TokenExpired,
        ErrorCode::PermissionDenied,
        ErrorCode::ForeignAccount,
        ErrorCode::AdminOnly,
        ErrorCode::BodyTooLarge,
        ErrorCode::RateLimited,
        ErrorCode::AccountNotFound,
        ErrorCode::TokenNotFound,
        ErrorCode::AccountExists,
        ErrorCode::DocumentNotFound,
        ErrorCode::DocumentExists,
        ErrorCode::UpletConflict,
        ErrorCode::VideoProcessing,
        ErrorCode::VideoTaskCancelled,
        ErrorCode::VideoTooLongForSync,
        ErrorCode::StreamNotFound,
    ];
}

/// One occurrence of an error: its code and the detail with the values filled in.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code:?} ({}): {detail}", code.code())]
pub struct ApiError {
    /// What went wrong, from the registry.
    pub code: ErrorCode,
    /// The message with this occurrence's values.
    pub detail: String,
}

/// The JSON body of every error response.
#[derive(Debug, Clone, Serialize, serde::Deserialize, ToSchema, PartialEq, Eq)]
pub struct ErrorBody {
    /// Numeric LUNA error code.
    pub error_code: u32,
    /// Short description shared by all errors with this code.
    pub desc: String,
    /// Description with the values of this occurrence.
    pub detail: String,
    /// Documentation page for the code.
    pub link: String,
}

impl ApiError {
    /// An error with a detail message.
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        ApiError {
            code,
            detail: detail.into(),
        }
    }

    /// A failure of DynamoDB, SQS or S3; the cause goes to the log, not to the client.
    pub fn internal(context: &str, cause: impl std::fmt::Display) -> Self {
        tracing::error!(context, %cause, "internal error");
        ApiError::new(
            ErrorCode::Internal,
            format!("Internal server error: {context}"),
        )
    }

    /// `Face with id '{id}' not found`.
    pub fn face_not_found(id: impl std::fmt::Display) -> Self {
        ApiError::new(
            ErrorCode::FaceNotFound,
            format!("Face with id '{id}' not found"),
        )
    }

    /// `List with id '{id}' not found`.
    pub fn list_not_found(id: impl std::fmt::Display) -> Self {
        ApiError::new(
            ErrorCode::ListNotFound,
            format!("List with id '{id}' not found"),
        )
    }

    /// `Event with id '{id}' not found`.
    pub fn event_not_found(id: impl std::fmt::Display) -> Self {
        ApiError::new(
            ErrorCode::EventNotFound,
            format!("Event with id '{id}' not found"),
        )
    }

    /// `Task with id '{id}' not found`.
    pub fn task_not_found(id: u64) -> Self {
        ApiError::new(
            ErrorCode::TaskNotFound,
            format!("Task with id '{id}' not found"),
        )
    }

    /// A JSON body that fails validation, with the reason.
    pub fn bad_json(reason: impl std::fmt::Display) -> Self {
        ApiError::new(
            ErrorCode::BadJson,
            format!("Failed to validate input json. Message: {reason}"),
        )
    }

    /// A query parameter with a bad value.
    pub fn bad_query(param: &str, reason: impl std::fmt::Display) -> Self {
        ApiError::new(
            ErrorCode::BadQuery,
            format!("Bad/incomplete query: parameter '{param}': {reason}"),
        )
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        self.code.status()
    }

    /// The JSON body for this error.
    pub fn body(&self) -> ErrorBody {
        let code = self.code.code();
        ErrorBody {
            error_code: code,
            desc: self.code.desc().to_string(),
            detail: self.detail.clone(),
            link: format!("{ERROR_LINK_BASE}{code}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique() {
        let codes: HashSet<u32> = ErrorCode::ALL.iter().map(|c| c.code()).collect();
        assert_eq!(codes.len(), ErrorCode::ALL.len());
    }

    #[test]
    fn client_errors_are_4xx_and_failures_5xx() {
        for code in ErrorCode::ALL {
            let status = code.status();
            let server_side = matches!(
                code,
                ErrorCode::Internal
                    | ErrorCode::DependencyUnavailable
                    | ErrorCode::SubtaskAttemptsExhausted
            );
            assert_eq!(server_side, status >= 500, "{code:?} -> {status}");
            assert!((400..600).contains(&status));
        }
    }

    #[test]
    fn body_carries_code_desc_detail_and_link() {
        let body = ApiError::face_not_found("abc").body();
        assert_eq!(body.error_code, 22002);
        assert_eq!(body.desc, "Object not found");
        assert_eq!(body.detail, "Face with id 'abc' not found");
        assert!(body.link.ends_with("code-22002"));
    }
}
