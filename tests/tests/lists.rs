//! Lists and attaching faces to them.

use fanout_e2e::{account, stack};
use serde_json::json;

async fn new_list(acc: &str) -> String {
    let answer = stack()
        .post(
            "/1/lists",
            &json!({"account_id": acc, "user_data": "staff"}),
        )
        .await;
    assert_eq!(answer.status, 201, "{}", answer.text);
    answer.json["list_id"].as_str().unwrap().to_string()
}

async fn new_faces(acc: &str, n: usize) -> Vec<String> {
    let mut ids = Vec::new();
    for _ in 0..n {
        let answer = stack().post("/1/faces", &json!({"account_id": acc})).await;
        ids.push(answer.json["face_id"].as_str().unwrap().to_string());
    }
    ids
}

#[tokio::test]
async fn attach_and_detach_change_the_face_count() {
    let acc = account();
    let list = new_list(&acc).await;
    let faces = new_faces(&acc, 5).await;
    let path = format!("/1/lists/{list}?account_id={acc}");
    let attached = stack()
        .patch(&path, &json!({"action": "attach", "face_ids": faces}))
        .await;
    assert_eq!(attached.status, 204, "{}", attached.text);
    assert_eq!(stack().get(&path).await.json["face_count"], 5);
    // Attaching again is idempotent.
    stack()
        .patch(&path, &json!({"action": "attach", "face_ids": &faces[..2]}))
        .await;
    assert_eq!(stack().get(&path).await.json["face_count"], 5);

    let face = stack()
        .get(&format!("/1/faces/{}?account_id={acc}", faces[0]))
        .await;
    assert_eq!(face.json["lists"], json!([list]));

    let detached = stack()
        .patch(&path, &json!({"action": "detach", "face_ids": &faces[..3]}))
        .await;
    assert_eq!(detached.status, 204);
    let got = stack().get(&path).await;
    assert_eq!(got.json["face_count"], 2);
    assert_eq!(got.json["user_data"], "staff");
    let face = stack()
        .get(&format!("/1/faces/{}?account_id={acc}", faces[0]))
        .await;
    assert_eq!(face.json["lists"], json!([]));
}

#[tokio::test]
async fn attaching_a_missing_face_changes_nothing() {
    let acc = account();
    let list = new_list(&acc).await;
    let mut faces = new_faces(&acc, 3).await;
    let foreign = new_faces(&account(), 1).await;
    faces.extend(foreign.clone());
    let path = format!("/1/lists/{list}?account_id={acc}");
    let answer = stack()
        .patch(&path, &json!({"action": "attach", "face_ids": faces}))
        .await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.error_code(), 22004);
    assert!(
        answer.json["detail"]
            .as_str()
            .unwrap()
            .contains(&foreign[0])
    );
    assert_eq!(stack().stored_in_list(&list).await, 1, "only the list item");
}

#[tokio::test]
async fn patch_list_rejects_bad_bodies() {
    let acc = account();
    let list = new_list(&acc).await;
    let path = format!("/1/lists/{list}?account_id={acc}");
    let too_many: Vec<String> = (0..1001)
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    for body in [
        json!({"action": "attach", "face_ids": []}),
        json!({"action": "attach", "face_ids": too_many}),
        json!({"action": "merge", "face_ids": [uuid::Uuid::new_v4()]}),
        json!({"action": "attach", "face_ids": ["nope"]}),
        json!({"action": "attach"}),
    ] {
        let answer = stack().patch(&path, &body).await;
        assert_eq!(answer.status, 400, "{body}");
        assert_eq!(answer.error_code(), 12027, "{body}");
    }
    assert_eq!(stack().stored_in_list(&list).await, 1);
}

#[tokio::test]
async fn deleting_a_list_keeps_its_faces() {
    let acc = account();
    let list = new_list(&acc).await;
    let faces = new_faces(&acc, 2).await;
    let path = format!("/1/lists/{list}?account_id={acc}");
    stack()
        .patch(&path, &json!({"action": "attach", "face_ids": faces}))
        .await;
    assert_eq!(stack().delete(&path).await.status, 204);
    assert_eq!(stack().get(&path).await.error_code(), 22003);
    assert_eq!(stack().stored_in_list(&list).await, 0);
    assert_eq!(stack().stored(&acc, "FACE").await, 2);
    let face = stack()
        .get(&format!("/1/faces/{}?account_id={acc}", faces[0]))
        .await;
    assert_eq!(face.json["lists"], json!([]));
}

#[tokio::test]
async fn listing_lists_filters_and_pages() {
    let acc = account();
    let first = new_list(&acc).await;
    let other = stack()
        .post(
            "/1/lists",
            &json!({"account_id": acc, "user_data": "guests"}),
        )
        .await;
    let second = other.json["list_id"].as_str().unwrap().to_string();
    let all = stack().get(&format!("/1/lists?account_id={acc}")).await;
    let ids: Vec<&str> = all.json["lists"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["list_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, vec![second.as_str(), first.as_str()]);
    let staff = stack()
        .get(&format!("/1/lists?account_id={acc}&user_data=staff"))
        .await;
    assert_eq!(staff.json["lists"].as_array().unwrap().len(), 1);
    let by_id = stack()
        .get(&format!("/1/lists?account_id={acc}&list_ids={second}"))
        .await;
    assert_eq!(by_id.json["lists"][0]["list_id"], second.as_str());
    let page2 = stack()
        .get(&format!("/1/lists?account_id={acc}&page=2&page_size=1"))
        .await;
    assert_eq!(page2.json["lists"][0]["list_id"], first.as_str());
}

#[tokio::test]
async fn face_created_with_missing_list_is_not_stored() {
    let acc = account();
    let foreign_list = new_list(&account()).await;
    let answer = stack()
        .post(
            "/1/faces",
            &json!({"account_id": acc, "lists": [foreign_list]}),
        )
        .await;
    assert_eq!(answer.status, 404);
    assert_eq!(answer.error_code(), 22005);
    assert_eq!(stack().stored(&acc, "FACE").await, 0);
}

/// The linker's way of attaching (`faces::link_existing`): faces that do not exist, or
/// belong to another account, are reported missing and leave no membership behind; a
/// list that does not exist is a 22003 and leaves no membership at all.
#[tokio::test]
async fn linking_skips_missing_and_foreign_faces_and_needs_the_list() {
    use fanout::objects::faces::link_existing;
    use uuid::Uuid;
    let svc = &stack().services;
    let acc = account();
    let list = new_list(&acc).await;
    let ours = new_faces(&acc, 150).await;
    let foreign = new_faces(&account(), 1).await;
    let mut ids: Vec<Uuid> = ours.iter().map(|id| id.parse().unwrap()).collect();
    let unknown = Uuid::new_v4();
    ids.insert(40, unknown);
    ids.insert(120, foreign[0].parse().unwrap());
    let no_stop = || Ok(());
    let (acc_id, list_id): (Uuid, Uuid) = (acc.parse().unwrap(), list.parse().unwrap());
    let linked = link_existing(svc, acc_id, list_id, &ids, &no_stop)
        .await
        .unwrap();
    assert_eq!(linked.linked.len(), 150);
    assert_eq!(linked.missing, vec![unknown, foreign[0].parse().unwrap()]);
    assert_eq!(
        stack().stored_in_list(&list).await,
        151,
        "the list and 150 memberships"
    );
    let path = format!("/1/lists/{list}?account_id={acc}");
    assert_eq!(stack().get(&path).await.json["face_count"], 150);

    let gone = Uuid::new_v4();
    let err = link_existing(svc, acc_id, gone, &ids[..10], &no_stop)
        .await
        .unwrap_err();
    assert_eq!(err.code, fanout::error::ErrorCode::ListNotFound);
    assert_eq!(stack().stored_in_list(&gone.to_string()).await, 0);
}

/// Faces of `acc` without descriptors, through the bulk loader.
async fn bulk_faces(acc: &str, n: usize) -> Vec<String> {
    let account_id: uuid::Uuid = acc.parse().unwrap();
    let batch = (0..n)
        .map(|_| fanout::objects::faces::NewFace {
            account_id,
            descriptor: None,
            descriptor_version: None,
            external_id: None,
            user_data: None,
            event_id: None,
            avatar: None,
            lists: None,
        })
        .collect();
    fanout::objects::faces::create_batch(&stack().services, batch)
        .await
        .unwrap()
        .iter()
        .map(uuid::Uuid::to_string)
        .collect()
}

/// An attach of many faces is written in several transactions. A face deleted while they
/// run must not turn the answer into 22004 ("nothing was changed") after earlier
/// transactions committed: either the delete came first and nothing changed, or the
/// attach answers 204 with every other face linked and the deleted one in no list.
/// The delete is timed into the middle of the attach (half of a measured attach), and
/// the test insists that at least one attempt landed there.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_face_deleted_during_a_long_attach_leaves_a_true_answer() {
    let acc = account();
    let mut faces = bulk_faces(&acc, 400).await;
    faces.sort();
    let started = std::time::Instant::now();
    let warmup = new_list(&acc).await;
    let answer = stack()
        .patch(
            &format!("/1/lists/{warmup}?account_id={acc}"),
            &json!({"action": "attach", "face_ids": faces}),
        )
        .await;
    assert_eq!(answer.status, 204, "{}", answer.text);
    let attach_time = started.elapsed();

    let mut landed_inside = false;
    for fraction in [0.5, 0.3, 0.7, 0.4, 0.6, 0.2] {
        // The faces are attached in id order: the last one is in the last transaction.
        let victim = faces.pop().unwrap();
        let list = new_list(&acc).await;
        let path = format!("/1/lists/{list}?account_id={acc}");
        let body = json!({"action": "attach", "face_ids": faces.iter().chain([&victim]).collect::<Vec<_>>()});
        let attach = tokio::spawn(async move {
            let answer = stack().patch(&path, &body).await;
            (answer, std::time::Instant::now())
        });
        tokio::time::sleep(attach_time.mul_f64(fraction)).await;
        let deleted = stack()
            .delete(&format!("/1/faces/{victim}?account_id={acc}"))
            .await;
        assert_eq!(deleted.status, 204, "{}", deleted.text);
        let delete_done = std::time::Instant::now();
        let (answer, attach_done) = attach.await.unwrap();
        let stored = stack().stored_in_list(&list).await;
        if answer.status == 404 {
            assert_eq!(answer.error_code(), 22004, "{}", answer.text);
            assert_eq!(
                stored, 1,
                "22004 after {stored} items were stored: not 'nothing'"
            );
            continue;
        }
        assert_eq!(answer.status, 204, "{}", answer.text);
        assert_eq!(stored, 1 + faces.len(), "every face but the deleted one");
        let members = stack()
            .get(&format!(
                "/1/faces?account_id={acc}&list_id={list}&page_size=100&face_ids={victim}"
            ))
            .await;
        assert_eq!(
            members.json["faces"],
            json!([]),
            "the deleted face is listed"
        );
        if delete_done < attach_done {
            landed_inside = true;
            break;
        }
    }
    assert!(
        landed_inside,
        "no delete landed inside an attach ({attach_time:?})"
    );
}
