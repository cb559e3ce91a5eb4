//! The engine relies on DynamoDB applying the writes to one item one after another: a
//! subtask ends with a conditional update that only one delivery can win, and its count
//! is an `ADD` on the task item that heartbeats also update. These tests hold the local
//! stack (LocalStack, whose DynamoDB is DynamoDB Local) to that; moto_server, the
//! emulator used before, lost one of two concurrent `ADD`s on an item.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use fanout_e2e::stack;
use uuid::Uuid;

const WRITERS: usize = 16;
const ADDS_EACH: usize = 50;

fn key(pk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([
        ("pk".to_string(), AttributeValue::S(pk.to_string())),
        ("sk".to_string(), AttributeValue::S("ATOMICITY".to_string())),
    ])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_adds_on_one_item_are_all_applied() {
    let svc = &stack().services;
    let table = svc.config.table.clone();
    let pk = format!("TEST#{}", Uuid::new_v4());
    let mut writers = tokio::task::JoinSet::new();
    for writer in 0..WRITERS {
        let (db, table, pk) = (svc.aws.dynamodb.clone(), table.clone(), pk.clone());
        writers.spawn(async move {
            for _ in 0..ADDS_EACH {
                // Counters and an unrelated SET in one item, as a subtask's count and a
                // heartbeat meet on the task item.
                let expression = if writer % 3 == 0 {
                    "ADD done_a :one, done_b :one SET beat = :now"
                } else {
                    "ADD done_a :one, done_b :one"
                };
                let mut update = db
                    .update_item()
                    .table_name(&table)
                    .set_key(Some(key(&pk)))
                    .update_expression(expression)
                    .expression_attribute_values(":one", AttributeValue::N("1".into()));
                if writer % 3 == 0 {
                    update = update
                        .expression_attribute_values(":now", AttributeValue::S(writer.to_string()));
                }
                update.send().await.expect("update_item");
            }
        });
    }
    while let Some(done) = writers.join_next().await {
        done.expect("writer");
    }
    let item = svc
        .aws
        .dynamodb
        .get_item()
        .table_name(&table)
        .set_key(Some(key(&pk)))
        .consistent_read(true)
        .send()
        .await
        .expect("get_item")
        .item
        .expect("item");
    let expected = (WRITERS * ADDS_EACH).to_string();
    assert_eq!(item["done_a"].as_n().unwrap(), &expected);
    assert_eq!(item["done_b"].as_n().unwrap(), &expected);
    delete(&pk).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn one_of_many_concurrent_conditional_updates_wins() {
    let svc = &stack().services;
    let table = svc.config.table.clone();
    for round in 0..20 {
        let pk = format!("TEST#{}", Uuid::new_v4());
        svc.aws
            .dynamodb
            .put_item()
            .table_name(&table)
            .set_item(Some({
                let mut item = key(&pk);
                item.insert("state".into(), AttributeValue::S("pending".into()));
                item
            }))
            .send()
            .await
            .expect("put_item");
        let mut racers = tokio::task::JoinSet::new();
        for racer in 0..WRITERS {
            let (db, table, pk) = (svc.aws.dynamodb.clone(), table.clone(), pk.clone());
            racers.spawn(async move {
                let result = db
                    .update_item()
                    .table_name(&table)
                    .set_key(Some(key(&pk)))
                    .update_expression("SET #state = :done, winner = :racer ADD wins :one")
                    .condition_expression("#state = :pending")
                    .expression_attribute_names("#state", "state")
                    .expression_attribute_values(":done", AttributeValue::S("done".into()))
                    .expression_attribute_values(":pending", AttributeValue::S("pending".into()))
                    .expression_attribute_values(":racer", AttributeValue::N(racer.to_string()))
                    .expression_attribute_values(":one", AttributeValue::N("1".into()))
                    .send()
                    .await;
                match result {
                    Ok(_) => true,
                    Err(err)
                        if err
                            .as_service_error()
                            .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                    {
                        false
                    }
                    Err(err) => panic!("update_item: {err:?}"),
                }
            });
        }
        let mut winners = 0;
        while let Some(won) = racers.join_next().await {
            winners += usize::from(won.expect("racer"));
        }
        assert_eq!(
            winners, 1,
            "round {round}: {winners} conditional updates won"
        );
        delete(&pk).await;
    }
}

async fn delete(pk: &str) {
    let svc = &stack().services;
    svc.aws
        .dynamodb
        .delete_item()
        .table_name(&svc.config.table)
        .set_key(Some(key(pk)))
        .send()
        .await
        .expect("delete_item");
}
