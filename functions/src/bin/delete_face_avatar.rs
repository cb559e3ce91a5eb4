//! Lambda function for the `delete_face_avatar` route.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    fanout_functions::lambda::run("delete_face_avatar").await
}
