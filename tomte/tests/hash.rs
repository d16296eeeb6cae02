//! The hash example: a CPU-bound pool checked against python3's hashlib, from many clients at
//! once, over every instance.

mod common;

use std::time::Duration;

use common::*;

/// h_rounds as python3's hashlib computes it.
fn expected(data: &str, rounds: u32) -> String {
    let script = "import hashlib,sys,json\n\
                  h=sys.argv[1].encode()\n\
                  for _ in range(int(sys.argv[2])): h=hashlib.sha256(h).digest()\n\
                  print(json.dumps(h.hex()))";
    python(script, &[data, &rounds.to_string()]).as_str().unwrap().to_owned()
}

fn sha256(d: &Daemon, data: &str, rounds: i64) -> serde_json::Value {
    let params = serde_json::json!({ "data": data, "rounds": rounds }).to_string();
    call(d, "hash.sha256", &params)
}

#[test]
fn hash_sha256_answers_what_hashlib_computes_from_every_instance_of_its_pool() {
    let d = Daemon::new("hash", &[]).start();
    let _reaper = pids(&d);
    until("two instances looping", Duration::from_secs(20), || {
        let pool = worker(&d, "hasher");
        pool["size"] == 2 && pool["instances"].as_array().unwrap().iter().all(|i| i["state"] == "looping")
    });
    assert_eq!(sha256(&d, "abc", 0)["result"], "616263");
    assert_eq!(sha256(&d, "", 0)["result"], "");
    for (data, rounds) in [("abc", 1), ("tomte ✓", 2), ("x", 1000)] {
        assert_eq!(sha256(&d, data, rounds)["result"], expected(data, rounds as u32), "{data} × {rounds}");
    }
    // 16 clients at once, each answer checked, the work spread over both processes.
    let want = expected("load", 5000);
    let clients: Vec<_> = (0..16)
        .map(|_| {
            let stream = d.connect();
            std::thread::spawn(move || {
                let mut r = std::io::BufReader::new(stream);
                (0..10)
                    .map(|id| {
                        let line =
                            format!(r#"{{"jsonrpc":"2.0","method":"hash.sha256","params":["load",5000],"id":{id}}}"#);
                        json(&ndjson(&mut r, &line))["result"].as_str().map(str::to_owned)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for c in clients {
        assert!(c.join().unwrap().iter().all(|a| a.as_deref() == Some(want.as_str())));
    }
    let pool = worker(&d, "hasher");
    for i in pool["instances"].as_array().unwrap() {
        assert!(i["asks"].as_u64().unwrap() >= 10, "both instances hashed: {pool}");
    }
    // Refused, naming the parameter, before any worker sees it.
    for (params, names) in [
        (r#"{"data":"a","rounds":-1}"#, "'rounds'"),
        (r#"{"data":"a","rounds":10000001}"#, "'rounds'"),
        (r#"{"data":"a","rounds":"many"}"#, "'rounds'"),
        (r#"{"data":1,"rounds":1}"#, "'data'"),
        (r#"{"data":"a"}"#, "'rounds'"),
    ] {
        let refused = call(&d, "hash.sha256", params);
        assert_eq!(refused["error"]["code"], -32602, "{params}: {refused}");
        assert!(refused["error"]["data"].as_str().unwrap().contains(names), "{params}: {refused}");
    }
    let big = format!(r#"{{"data":"{}","rounds":1}}"#, "a".repeat((1 << 20) + 1));
    let refused = call(&d, "hash.sha256", &big);
    assert!(refused["error"]["data"].as_str().unwrap_or("").contains("'data'"), "{refused}");
}
