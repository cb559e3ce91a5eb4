//! A local HTTP server that serves the whole route table with the same handlers and the
//! same request/response types as Lambda, for development and end-to-end tests.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use lambda_http::{Body, RequestExt};
use tokio::net::TcpListener;

use fanout::Services;

use crate::access;
use crate::dispatch::{dispatch, refused, refused_at, unrouted};
use crate::routes::{self, Match};

/// Serves connections from `listener` until the process ends.
pub async fn serve(svc: Arc<Services>, listener: TcpListener) -> std::io::Result<()> {
    loop {
        let (stream, peer) = listener.accept().await?;
        let svc = svc.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let svc = svc.clone();
                async move { Ok::<_, Infallible>(handle(&svc, req, peer).await) }
            });
            if let Err(err) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%err, "connection closed with an error");
            }
        });
    }
}

/// Turns a hyper request into the Lambda request type, routes it, and back.
async fn handle(
    svc: &Services,
    req: hyper::Request<Incoming>,
    peer: SocketAddr,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = req.into_parts();
    let bytes = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(err) => {
            tracing::warn!(%err, %peer, "could not read request body");
            Bytes::new()
        }
    };
    let body = if bytes.is_empty() {
        Body::Empty
    } else {
        match String::from_utf8(bytes.to_vec()) {
            Ok(text) => Body::Text(text),
            Err(err) => Body::Binary(err.into_bytes()),
        }
    };
    let mut query: HashMap<String, Vec<String>> = HashMap::new();
    for (name, value) in form_urlencoded::parse(parts.uri.query().unwrap_or("").as_bytes()) {
        query
            .entry(name.into_owned())
            .or_default()
            .push(value.into_owned());
    }
    let found = routes::find(&parts.method, parts.uri.path());
    let request = lambda_http::Request::from_parts(parts, body).with_query_string_parameters(query);
    let response = match found {
        Match::Found(route, params) => {
            let params: HashMap<String, String> = params.into_iter().collect();
            let request = request.with_path_parameters(params);
            // What API Gateway's Lambda authorizer does before it invokes the function.
            match access::authorize_locally(svc, route, &request).await {
                Ok(None) => dispatch(svc, route, request).await,
                Ok(Some(verdict)) => {
                    let request = access::with_context(request, verdict.to_context());
                    dispatch(svc, route, request).await
                }
                Err(err) => refused_at(route, &request, &err),
            }
        }
        Match::UnknownTaskKind(kind) => refused(&request, &routes::unknown_task_kind(&kind)),
        Match::MethodNotAllowed => unrouted(&request, true),
        Match::NotFound => unrouted(&request, false),
    };
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}
