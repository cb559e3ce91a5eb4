//! Fanout's HTTP surface. The route table ([`routes::ROUTES`]) is defined once; the one
//! Lambda binary (`lambda`) serves the route its function's `FANOUT_FUNCTION` names
//! through [`lambda::run_from_env`], and the `gateway` binary serves all of them over
//! plain HTTP for local development. Both pass the same `lambda_http::Request` through
//! [`dispatch::dispatch`].

pub mod access;
pub mod cli;
pub mod dispatch;
pub mod gateway;
pub mod handlers;
pub mod lambda;
pub mod openapi;
pub mod request;
pub mod routes;
