//! Lambda function for the `get_face_avatar` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("get_face_avatar").await
}
