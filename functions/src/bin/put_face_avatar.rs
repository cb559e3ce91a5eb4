//! Lambda function for the `put_face_avatar` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("put_face_avatar").await
}
