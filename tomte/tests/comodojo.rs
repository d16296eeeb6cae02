//! comodojo/daemon 1.x framing on real `comodojo+unix://` and `comodojo+tcp://` listeners: the
//! bytes captured from the PHP daemon (`comodojo-live.md` §2.1) as vectors in both directions, a
//! PHP client written here with PHP's own `serialize()`, hostile frames that must not hurt anyone
//! else, `tomte::client` and `tomtectl --comodojo`.
//!
//! Where tomte answers differently from the PHP daemon on purpose, the test says so: the protocol
//! is chosen per request (PHP's switched to JSON for good after the first JSON request), XML
//! faults have the same declaration as XML results, and whitespace-only lines are ignored (PHP's
//! hung up).

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use tomte::client::{Client, ClientError, Protocol};
use tomte::net::Address;
use tomte_rpc::{comodojo, xmlrpc, Args, Value};

// Captured from comodojo/daemon 1.0.1 on PHP 8.2 (base64 lines, without their CRLF).
const GREETER: &str = "YToyOntzOjY6InN0YXR1cyI7czo5OiJjb25uZWN0ZWQiO3M6NzoidmVyc2lvbiI7czozOiIxLjAiO30=";
const JSON_ECHO_REQUEST: &str = "YToyOntzOjEyOiJjb250ZW50X3R5cGUiO3M6MTY6ImFwcGxpY2F0aW9uL2pzb24iO3M6NzoibWVzc2FnZSI7czo2MjoieyJqc29ucnBjIjoiMi4wIiwibWV0aG9kIjoibXkuZWNobyIsInBhcmFtcyI6WyJoZWxsbyJdLCJpZCI6MX0iO30=";
const JSON_ECHO_RESPONSE: &str = "YToyOntzOjY6InN0YXR1cyI7YjoxO3M6NzoibWVzc2FnZSI7czo0MToieyJqc29ucnBjIjoiMi4wIiwicmVzdWx0IjoiaGVsbG8iLCJpZCI6MX0iO30=";
const XML_LIST_REQUEST: &str = "YToyOntzOjEyOiJjb250ZW50X3R5cGUiO3M6ODoidGV4dC94bWwiO3M6NzoibWVzc2FnZSI7czoxMDc6Ijw/eG1sIHZlcnNpb249IjEuMCI/Pgo8bWV0aG9kQ2FsbD48bWV0aG9kTmFtZT5zeXN0ZW0ubGlzdE1ldGhvZHM8L21ldGhvZE5hbWU+PHBhcmFtcz48L3BhcmFtcz48L21ldGhvZENhbGw+Ijt9";
const NOTIFICATION_REQUEST: &str = "YToyOntzOjEyOiJjb250ZW50X3R5cGUiO3M6MTY6ImFwcGxpY2F0aW9uL2pzb24iO3M6NzoibWVzc2FnZSI7czo1NToieyJqc29ucnBjIjoiMi4wIiwibWV0aG9kIjoibXkuZWNobyIsInBhcmFtcyI6WyJoZWxsbyJdfSI7fQ==";
const NOTIFICATION_RESPONSE: &str = "YToyOntzOjY6InN0YXR1cyI7YjoxO3M6NzoibWVzc2FnZSI7Tjt9";
const JSON_UNKNOWN_REQUEST: &str = "YToyOntzOjEyOiJjb250ZW50X3R5cGUiO3M6MTY6ImFwcGxpY2F0aW9uL2pzb24iO3M6NzoibWVzc2FnZSI7czo1NToieyJqc29ucnBjIjoiMi4wIiwibWV0aG9kIjoibm8uc3VjaCIsInBhcmFtcyI6W10sImlkIjoyfSI7fQ==";
const JSON_UNKNOWN_RESPONSE: &str = "YToyOntzOjY6InN0YXR1cyI7YjoxO3M6NzoibWVzc2FnZSI7czo3NzoieyJqc29ucnBjIjoiMi4wIiwiZXJyb3IiOnsiY29kZSI6LTMyNjAxLCJtZXNzYWdlIjoiTWV0aG9kIG5vdCBmb3VuZCJ9LCJpZCI6Mn0iO30=";
const XML_UNKNOWN_REQUEST: &str = "YToyOntzOjEyOiJjb250ZW50X3R5cGUiO3M6ODoidGV4dC94bWwiO3M6NzoibWVzc2FnZSI7czo5NjoiPD94bWwgdmVyc2lvbj0iMS4wIj8+CjxtZXRob2RDYWxsPjxtZXRob2ROYW1lPm5vLnN1Y2g8L21ldGhvZE5hbWU+PHBhcmFtcz48L3BhcmFtcz48L21ldGhvZENhbGw+Ijt9";
/// XML-RPC `my.echo("hello")`: the request PHP's daemon answered `{}` once a JSON request had
/// switched it to JSON for good.
const XML_ECHO_REQUEST: &str = "YToyOntzOjEyOiJjb250ZW50X3R5cGUiO3M6ODoidGV4dC94bWwiO3M6NzoibWVzc2FnZSI7czoxNDg6Ijw/eG1sIHZlcnNpb249IjEuMCI/Pgo8bWV0aG9kQ2FsbD48bWV0aG9kTmFtZT5teS5lY2hvPC9tZXRob2ROYW1lPjxwYXJhbXM+PHBhcmFtPjx2YWx1ZT48c3RyaW5nPmhlbGxvPC9zdHJpbmc+PC92YWx1ZT48L3BhcmFtPjwvcGFyYW1zPjwvbWV0aG9kQ2FsbD4iO30=";
/// What PHP's daemon answered that request in XML mode (comodojo-live.md §2.2, "xml my.echo hello").
const XML_ECHO_RESPONSE_TEXT: &str = "a:2:{s:6:\"status\";b:1;s:7:\"message\";s:141:\"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><params><param><value><string>hello</string></value></param></params></methodResponse>\";}";

/// The decoded `system.listMethods` answer of the PHP daemon up to its 10th method: tomte has
/// more built-ins (daemon.status, worker.start, …) after these, so only this prefix is shared.
const XML_LIST_PREFIX: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><params><param><value><array><data><value><string>system.getCapabilities</string></value><value><string>system.listMethods</string></value><value><string>system.methodHelp</string></value><value><string>system.methodSignature</string></value><value><string>system.multicall</string></value><value><string>daemon.shutdown</string></value><value><string>worker.list</string></value><value><string>worker.status</string></value><value><string>worker.pause</string></value><value><string>worker.resume</string></value>";

/// A PHP-serialized response frame, as PHP would write it: `{status, message}`.
fn response_frame(status: bool, message: Option<&str>) -> String {
    let message = match message {
        Some(m) => format!("s:{}:\"{m}\";", m.len()),
        None => "N;".to_owned(),
    };
    let body = format!("a:2:{{s:6:\"status\";b:{};s:7:\"message\";{message}}}", u8::from(status));
    format!("{}\r\n", b64(body.as_bytes()))
}

/// A PHP-serialized request frame, as PHP would write it, around any serialized text.
fn raw_frame(serialized: &str) -> String {
    format!("{}\r\n", b64(serialized.as_bytes()))
}

/// One comodojo connection, read frame by frame with the line terminators kept.
struct Wire {
    r: BufReader<UnixStream>,
}

impl Wire {
    /// Connects without reading anything.
    fn open(sock: &PathBuf) -> Wire {
        let s = UnixStream::connect(sock).expect("connect to the comodojo socket");
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.set_write_timeout(Some(Duration::from_secs(20))).unwrap();
        Wire { r: BufReader::new(s) }
    }

    /// Connects and checks the greeter, byte for byte.
    fn greeted(sock: &PathBuf) -> Wire {
        let mut w = Wire::open(sock);
        assert_eq!(w.line(), format!("{GREETER}\r\n"));
        w
    }

    fn send(&mut self, bytes: &str) {
        self.r.get_mut().write_all(bytes.as_bytes()).unwrap();
    }

    /// The next frame, CRLF included.
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.r.read_line(&mut line).expect("read a frame");
        assert!(line.ends_with("\r\n"), "a frame ends with CRLF: {line:?}");
        line
    }

    /// Sends a frame line (CRLF added) and returns the answer frame.
    fn exchange(&mut self, b64_line: &str) -> String {
        self.send(&format!("{b64_line}\r\n"));
        self.line()
    }

    /// The status and message of the next frame.
    fn decoded(&mut self) -> (bool, Option<String>) {
        let line = self.line();
        let (status, message) = comodojo::decode_response(line.trim_end().as_bytes()).expect("a response frame");
        (status, message.map(|m| text(&m)))
    }
}

/// The echo daemon with a `comodojo+unix://` listener besides its native one.
fn comodojo_daemon(extra: &[&str]) -> (Daemon, PathBuf) {
    let d = Daemon::new("echo", extra);
    let csock = d.dir.path("c.sock");
    let d = d.add_args(&["--socket", &format!("comodojo+unix://{}", csock.display())]).start();
    (d, csock)
}

#[test]
fn wire_vectors_byte_for_byte() {
    let (d, csock) = comodojo_daemon(&[]);
    let mut w = Wire::greeted(&csock);
    // The greeter is 82 bytes on the wire, as PHP's.
    assert_eq!(GREETER.len() + 2, 82);

    assert_eq!(w.exchange(JSON_ECHO_REQUEST), format!("{JSON_ECHO_RESPONSE}\r\n"));
    assert_eq!(w.exchange(NOTIFICATION_REQUEST), format!("{NOTIFICATION_RESPONSE}\r\n"));
    assert_eq!(w.exchange(JSON_UNKNOWN_REQUEST), format!("{JSON_UNKNOWN_RESPONSE}\r\n"));

    // system.listMethods: PHP's 10 first methods, then tomte's other built-ins, then my.echo.
    let line = w.exchange(XML_LIST_REQUEST);
    let (status, message) = comodojo::decode_response(line.trim_end().as_bytes()).unwrap();
    let message = text(&message.unwrap());
    assert!(status);
    assert!(message.starts_with(XML_LIST_PREFIX), "{message}");
    assert!(
        message.ends_with(
            "<value><string>my.echo</string></value></data></array></value></param></params></methodResponse>"
        ),
        "{message}"
    );
    assert_eq!(line, response_frame(true, Some(&message)), "framed exactly as PHP frames it");

    // An unknown method in XML: PHP wrote faults with a lower-case `utf-8` declaration and no
    // newline; tomte writes them like its results. The frame around it is PHP's.
    let fault = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>-32601</int></value></member><member><name>faultString</name><value><string>Method not found</string></value></member></struct></value></fault></methodResponse>";
    assert_eq!(w.exchange(XML_UNKNOWN_REQUEST), response_frame(true, Some(fault)));

    // Not sticky: XML after JSON on the same connection gets PHP's XML-mode answer, not `{}`.
    assert_eq!(w.exchange(JSON_ECHO_REQUEST), format!("{JSON_ECHO_RESPONSE}\r\n"));
    assert_eq!(w.exchange(XML_ECHO_REQUEST), raw_frame(XML_ECHO_RESPONSE_TEXT));
    assert_eq!(w.exchange(JSON_ECHO_REQUEST), format!("{JSON_ECHO_RESPONSE}\r\n"));
    // …and on a new connection after JSON elsewhere.
    let mut fresh = Wire::greeted(&csock);
    assert_eq!(fresh.exchange(XML_ECHO_REQUEST), raw_frame(XML_ECHO_RESPONSE_TEXT));

    // A frame ending in LF only is accepted, as PHP's `trim()` accepted it.
    fresh.send(&format!("{JSON_ECHO_REQUEST}\n"));
    assert_eq!(fresh.line(), format!("{JSON_ECHO_RESPONSE}\r\n"));

    // A server error: a frame that cannot be read gets status false with the reason, framed as
    // PHP frames its exception text, and the connection stays usable.
    let line = w.exchange("!!!notbase64!!!");
    let (status, message) = comodojo::decode_response(line.trim_end().as_bytes()).unwrap();
    let message = text(&message.unwrap());
    assert!(!status);
    assert!(message.starts_with("invalid frame: not base64"), "{message}");
    assert_eq!(line, response_frame(false, Some(&message)));
    assert_eq!(w.exchange(JSON_ECHO_REQUEST), format!("{JSON_ECHO_RESPONSE}\r\n"));
    drop(d);
}

#[test]
fn many_requests_per_connection_pipelined_in_both_protocols() {
    let (d, csock) = comodojo_daemon(&[]);
    let mut w = Wire::greeted(&csock);
    // 300 requests in one write, alternating JSON and XML, answered in order.
    let mut batch = String::new();
    for i in 0..300 {
        let mut frame = Vec::new();
        if i % 2 == 0 {
            let json = format!(r#"{{"jsonrpc":"2.0","method":"my.echo","params":["n{i}"],"id":{i}}}"#);
            comodojo::encode_request("application/json", json.as_bytes(), &mut frame);
        } else {
            let mut xml = Vec::new();
            xmlrpc::encode_call("my.echo", &[Value::from(format!("n{i}"))], &mut xml).unwrap();
            comodojo::encode_request("text/xml", &xml, &mut frame);
        }
        batch.push_str(&text(&frame));
    }
    w.send(&batch);
    for i in 0..300 {
        let (status, message) = w.decoded();
        let message = message.unwrap();
        assert!(status);
        if i % 2 == 0 {
            assert_eq!(json(&message), json(&format!(r#"{{"jsonrpc":"2.0","result":"n{i}","id":{i}}}"#)));
        } else {
            assert_eq!(xmlrpc::decode_response(message.as_bytes()).unwrap(), Ok(Value::from(format!("n{i}"))));
        }
    }
    // A JSON batch and an `application/json; charset=utf-8` content type.
    let mut frame = Vec::new();
    let batch = r#"[{"jsonrpc":"2.0","method":"my.echo","params":["a"],"id":7},{"jsonrpc":"2.0","method":"my.echo","params":["b"]},{"jsonrpc":"2.0","method":"no.such","id":8}]"#;
    comodojo::encode_request("Application/JSON; charset=utf-8", batch.as_bytes(), &mut frame);
    w.send(&text(&frame));
    let (status, message) = w.decoded();
    assert!(status);
    let v = json(&message.unwrap());
    assert_eq!(v[0]["result"], "a");
    assert_eq!(v[1]["error"]["code"], -32601);
    // Named parameters (PHP's daemon crashed on them).
    let mut frame = Vec::new();
    let named = r#"{"jsonrpc":"2.0","method":"my.echo","params":{"message":"named"},"id":9}"#;
    comodojo::encode_request("application/json", named.as_bytes(), &mut frame);
    w.send(&text(&frame));
    assert_eq!(json(&w.decoded().1.unwrap())["result"], "named");
    // Whitespace-only lines are skipped (PHP's daemon hung up on an empty line).
    w.send("\r\n  \r\n");
    assert_eq!(w.exchange(JSON_ECHO_REQUEST), format!("{JSON_ECHO_RESPONSE}\r\n"));
    drop(d);
}

/// Bad frames, each on its own connection, while a keeper connection keeps being answered.
#[test]
fn hostile_frames_are_refused_and_memory_stays_bounded() {
    let (d, csock) = comodojo_daemon(&["--max-message", "65536"]);
    let pid = d.pid().unwrap();
    let mut keeper = Client::connect_with(&Address::unix(&csock), Protocol::ComodojoJson).unwrap();
    keeper.set_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut check_keeper = |after: &str| {
        let v = keeper.call("my.echo", &Args::Positional(vec![Value::from(after)])).unwrap().unwrap();
        assert_eq!(v, Value::from(after));
    };

    let json_echo = r#"{"jsonrpc":"2.0","method":"my.echo","params":["x"],"id":1}"#;
    let frame_of = |message: &str| {
        format!(
            "a:2:{{s:12:\"content_type\";s:16:\"application/json\";s:7:\"message\";s:{}:\"{message}\";}}",
            message.len()
        )
    };
    // Deep, but small enough for the frame limit of this daemon.
    let deep_php = format!("{}N;{}", "a:1:{i:0;".repeat(5_000), "}".repeat(5_000));
    // Frames answered with status false: (what, line without CRLF, text the reason contains).
    let refused: Vec<(&str, String, &str)> = vec![
        ("truncated base64", JSON_ECHO_REQUEST[..JSON_ECHO_REQUEST.len() - 5].to_owned(), "not base64"),
        ("base64 cut at a quantum", JSON_ECHO_REQUEST[..100].to_owned(), "not PHP-serialized"),
        ("not base64", "!!!notbase64!!!".into(), "not base64"),
        ("not serialized", b64(b"hello world"), "not PHP-serialized"),
        (
            "an object for the message",
            b64(br#"a:2:{s:12:"content_type";s:16:"application/json";s:7:"message";O:8:"stdClass":0:{}}"#),
            "objects",
        ),
        ("an object as the frame", b64(br#"O:8:"stdClass":0:{}"#), "objects"),
        (
            "an object nested in an array",
            b64(br#"a:1:{s:7:"message";a:1:{i:0;O:8:"stdClass":1:{s:1:"a";i:1;}}}"#),
            "objects",
        ),
        (
            "a custom-serialized object",
            b64(br#"a:1:{s:7:"message";C:11:"ArrayObject":21:{x:i:0;a:0:{};m:a:0:{}}}"#),
            "PHP-serialized",
        ),
        ("a string longer than said", b64(frame_of(json_echo).replace("s:58:", "s:50:").as_bytes()), "PHP-serialized"),
        ("a string shorter than said", b64(frame_of(json_echo).replace("s:58:", "s:70:").as_bytes()), "PHP-serialized"),
        ("a key length off by one", b64(frame_of(json_echo).replace("s:12:", "s:13:").as_bytes()), "PHP-serialized"),
        ("a huge declared length", b64(br#"a:1:{s:7:"message";s:999999999999:"x";}"#), "PHP-serialized"),
        ("a huge declared count", b64(br#"a:999999999999:{s:7:"message";s:0:"";}"#), "PHP-serialized"),
        ("5 000-deep arrays", b64(deep_php.as_bytes()), "PHP-serialized"),
        ("an unknown key", b64(br#"a:2:{s:7:"message";s:0:"";s:4:"evil";b:1;}"#), "unknown key"),
        ("trailing garbage", b64(format!("{}xyz", frame_of(json_echo)).as_bytes()), "PHP-serialized"),
    ];
    for (what, line, reason) in &refused {
        let mut w = Wire::greeted(&csock);
        w.send(&format!("{line}\r\n"));
        let (status, message) = w.decoded();
        let message = message.unwrap_or_default();
        assert!(!status, "{what}: status must be false, got {message}");
        assert!(message.starts_with("invalid frame: ") && message.contains(reason), "{what}: {message}");
        // The connection stays usable.
        assert_eq!(w.exchange(JSON_ECHO_REQUEST), format!("{JSON_ECHO_RESPONSE}\r\n"), "after {what}");
        check_keeper(what);
    }

    // Good frames carrying bad RPC payloads: answered with status true and the RPC's own error.
    let mut lol = String::from("<?xml version=\"1.0\"?><!DOCTYPE lolz [<!ENTITY lol \"lol\">");
    for i in 1..10 {
        let prev = if i == 1 { "&lol;".to_owned() } else { format!("&lol{};", i - 1) };
        lol.push_str(&format!("<!ENTITY lol{i} \"{}\">", prev.repeat(10)));
    }
    lol.push_str("]><methodCall><methodName>my.echo</methodName><params><param><value><string>&lol9;</string></value></param></params></methodCall>");
    // 10 000-deep XML is tried over HTTP (tests/xmlrpc.rs); here it must fit the frame limit.
    let deep_xml = format!(
        "<methodCall><methodName>my.echo</methodName><params><param>{}{}</param></params></methodCall>",
        "<value><array><data>".repeat(1_400),
        "</data></array></value>".repeat(1_400)
    );
    let payloads: Vec<(&str, &str, String, &str)> = vec![
        ("billion laughs", "text/xml", lol, "<int>-32700</int>"),
        ("external entity", "text/xml", "<?xml version=\"1.0\"?><!DOCTYPE m [<!ENTITY x SYSTEM \"file:///etc/passwd\">]><methodCall><methodName>my.echo</methodName><params><param><value>&x;</value></param></params></methodCall>".into(), "<int>-32700</int>"),
        ("malformed XML", "text/xml", "<methodCall><methodName>my.echo</method".into(), "<int>-32700</int>"),
        ("1 400-deep XML", "text/xml", deep_xml, "<int>-32700</int>"),
        ("malformed JSON", "application/json", r#"{"jsonrpc":"2.0","method":""#.into(), "-32700"),
    ];
    for (what, ct, payload, expected) in &payloads {
        let mut w = Wire::greeted(&csock);
        let mut frame = Vec::new();
        comodojo::encode_request(ct, payload.as_bytes(), &mut frame);
        w.send(&text(&frame));
        let (status, message) = w.decoded();
        let message = message.unwrap();
        assert!(status, "{what}");
        assert!(message.contains(expected), "{what}: {message}");
        assert!(!message.contains("root:") && !message.contains("lollol"), "{what} leaked: {message}");
        assert_eq!(w.exchange(JSON_ECHO_REQUEST), format!("{JSON_ECHO_RESPONSE}\r\n"), "after {what}");
        check_keeper(what);
    }

    // A frame that never ends: past the limit the client gets a `status: false` frame saying so
    // (if it still reads: the kernel may reset the connection first) and the connection closes.
    for _ in 0..3 {
        let mut w = Wire::greeted(&csock);
        let chunk = "QUFB".repeat(4096);
        let started = Instant::now();
        let mut sent = 0;
        while sent < 4 << 20 {
            match w.r.get_mut().write(chunk.as_bytes()) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => {
                    assert!(matches!(e.kind(), ErrorKind::BrokenPipe | ErrorKind::ConnectionReset), "{e}");
                    break;
                }
            }
            assert!(started.elapsed() < Duration::from_secs(20), "the daemon neither read nor closed");
        }
        assert!(sent > 65536, "closed after only {sent} bytes");
        let mut rest = Vec::new();
        match w.r.read_to_end(&mut rest) {
            Ok(_) if rest.is_empty() => {}
            Ok(_) => {
                let line = text(&rest);
                let (status, message) = tomte_rpc::comodojo::decode_response(line.trim_end().as_bytes()).unwrap();
                assert!(!status, "{line}");
                assert!(text(&message.unwrap()).contains("exceeds the limit"), "{line}");
            }
            Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "the connection must be closed: {e}"),
        }
        check_keeper("endless frame");
    }
    // Just under the limit is still served (a 60 000-byte message in a 80 000-byte line).
    let big = "m".repeat(60_000);
    assert_eq!(
        keeper.call("my.echo", &Args::Positional(vec![Value::from(big.as_str())])).unwrap().unwrap(),
        Value::from(big)
    );

    let rss = vm_rss_kb(pid);
    eprintln!("daemon VmRSS after hostile frames: {rss} kB");
    assert!(rss < 64 * 1024, "daemon VmRSS {rss} kB after hostile frames");
    assert!(alive(pid));
}

/// The PHP side of the test: PHP's own serialize(), base64_encode(), stream_socket_client(),
/// fgets(), base64_decode() and unserialize(), as comodojo's SocketTransport uses them.
const PHP_CLIENT: &str = r#"
$path = $argv[1];
function frame($a) { return base64_encode(serialize($a)) . "\r\n"; }
function read_frame($s) {
    $line = fgets($s);
    if ($line === false) { fwrite(STDERR, "no frame\n"); exit(3); }
    return unserialize(base64_decode(trim($line)), ["allowed_classes" => false]);
}
function connect($path) {
    $s = stream_socket_client("unix://" . $path, $errno, $errstr, 5);
    if (!$s) { fwrite(STDERR, "connect: $errstr\n"); exit(2); }
    stream_set_timeout($s, 20);
    return $s;
}
$out = [];
// As SocketTransport::performCall does: connect, greeter, one request, one response, close.
$s = connect($path);
$out["greeter"] = read_frame($s);
fwrite($s, frame(["content_type" => "application/json", "message" => json_encode(
    ["jsonrpc" => "2.0", "method" => "my.echo", "params" => ["h\u{e9}llo \u{2603} from php"], "id" => 1])]));
$r = read_frame($s);
$out["json_status"] = $r["status"];
$out["json"] = json_decode($r["message"], true);
fclose($s);

$s = connect($path);
read_frame($s);
$xml = "<?xml version=\"1.0\"?>\n<methodCall><methodName>my.echo</methodName><params><param><value><string>"
    . htmlspecialchars("<php> & xml \u{e9}", ENT_XML1) . "</string></value></param></params></methodCall>";
fwrite($s, frame(["content_type" => "text/xml", "message" => $xml]));
$r = read_frame($s);
$out["xml_status"] = $r["status"];
$out["xml"] = $r["message"];
// More on the same connection: JSON after XML, a notification, an RPC error, a bad frame.
fwrite($s, frame(["content_type" => "application/json", "message" => '{"jsonrpc":"2.0","method":"system.listMethods","id":2}']));
$out["list"] = json_decode(read_frame($s)["message"], true)["result"];
fwrite($s, frame(["content_type" => "application/json", "message" => '{"jsonrpc":"2.0","method":"my.echo","params":["n"]}']));
$out["notification"] = read_frame($s);
fwrite($s, frame(["content_type" => "application/json", "message" => '{"jsonrpc":"2.0","method":"my.echo","params":[5],"id":3}']));
$out["invalid_params"] = json_decode(read_frame($s)["message"], true)["error"]["code"];
fwrite($s, base64_encode(serialize(new ArrayObject([1]))) . "\r\n");
$out["object"] = read_frame($s);
fwrite($s, frame(["content_type" => "application/json", "message" => '{"jsonrpc":"2.0","method":"daemon.shutdown","params":[],"id":4}']));
$out["shutdown"] = json_decode(read_frame($s)["message"], true)["result"];
fclose($s);
echo json_encode($out), "\n";
"#;

#[test]
fn a_php_client_using_phps_own_serialize() {
    if Command::new("php").arg("-v").output().is_err() {
        eprintln!("SKIPPED: php not installed (CI installs php-cli); the PHP client test did not run");
        return;
    }
    let (d, csock) = comodojo_daemon(&[]);
    let pid = d.pid().unwrap();
    let out = Command::new("php")
        .args(["-d", "error_reporting=-1", "-d", "display_errors=stderr", "-r", PHP_CLIENT, "--"])
        .arg(&csock)
        .output()
        .unwrap();
    assert!(out.status.success(), "php failed:\n{}\n{}", text(&out.stdout), text(&out.stderr));
    assert!(out.stderr.is_empty(), "PHP warnings: {}", text(&out.stderr));
    let v = json(text(&out.stdout).trim());
    assert_eq!(v["greeter"], json(r#"{"status":"connected","version":"1.0"}"#));
    assert_eq!(v["json_status"], true);
    assert_eq!(v["json"], json(r#"{"jsonrpc":"2.0","result":"h\u00e9llo \u2603 from php","id":1}"#));
    assert_eq!(v["xml_status"], true);
    let xml = v["xml"].as_str().unwrap();
    assert_eq!(xmlrpc::decode_response(xml.as_bytes()).unwrap(), Ok(Value::from("<php> & xml \u{e9}")), "{xml}");
    assert_eq!(v["list"].as_array().unwrap().last().unwrap(), "my.echo");
    assert_eq!(v["notification"], json(r#"{"status":true,"message":null}"#));
    assert_eq!(v["invalid_params"], -32602);
    assert_eq!(v["object"]["status"], false);
    assert!(v["object"]["message"].as_str().unwrap().contains("objects"), "{}", v["object"]);
    // comodojo's daemon.shutdown answers 0, then the daemon goes.
    assert_eq!(v["shutdown"], 0);
    assert!(wait_for(Duration::from_secs(10), || !alive(pid)), "daemon.shutdown must stop the daemon");
}

#[test]
fn tomte_client_speaks_every_protocol() {
    let port = free_port();
    let (d, csock) = comodojo_daemon(&["--socket", &format!("comodojo+tcp://127.0.0.1:{port}")]);
    let comodojo_unix: Address = format!("comodojo+unix://{}", csock.display()).parse().unwrap();
    let comodojo_tcp: Address = format!("comodojo+tcp://127.0.0.1:{port}").parse().unwrap();
    let native = Address::unix(&d.sock);
    let bare_comodojo = Address::unix(&csock);
    let cases = [
        (&native, Protocol::Json),
        (&native, Protocol::Xml),
        (&comodojo_unix, Protocol::ComodojoJson),
        (&comodojo_unix, Protocol::ComodojoXml),
        (&comodojo_tcp, Protocol::ComodojoJson),
        (&comodojo_tcp, Protocol::ComodojoXml),
        (&bare_comodojo, Protocol::ComodojoJson),
        (&bare_comodojo, Protocol::ComodojoXml),
    ];
    for (address, protocol) in cases {
        let mut c = Client::connect_with(address, protocol).unwrap();
        c.set_timeout(Some(Duration::from_secs(20))).unwrap();
        for i in 0..50 {
            let s = format!("{protocol:?} \u{e9} <&> {i}");
            let v = c.call("my.echo", &Args::Positional(vec![Value::from(s.as_str())])).unwrap().unwrap();
            assert_eq!(v, Value::from(s), "{address} {protocol:?}");
        }
        let f = c.call("no.such", &Args::default()).unwrap().unwrap_err();
        assert_eq!((f.code, f.message.as_str()), (-32601, "Method not found"), "{address} {protocol:?}");
        let list = c.call("system.listMethods", &Args::default()).unwrap().unwrap();
        assert!(matches!(&list, Value::Array(a) if a.last() == Some(&Value::from("my.echo"))));
    }
    // connect() follows the address: comodojo framing for a comodojo+ address.
    assert_eq!(Client::connect(&comodojo_unix).unwrap().protocol(), Protocol::ComodojoJson);
    assert_eq!(Client::connect(&native).unwrap().protocol(), Protocol::Json);
    assert!(matches!(Client::connect_with(&comodojo_tcp, Protocol::Xml), Err(ClientError::WrongDialect { .. })));
}

#[test]
fn tomte_client_reports_status_false_and_bad_greeters() {
    let dir = TempDir::new("fake");
    // A fake comodojo server: the greeter it is given, then `status: false` to every request.
    let serve = |name: &str, greeter: String| {
        let path = dir.path(name);
        let listener = UnixListener::bind(&path).unwrap();
        std::thread::spawn(move || {
            let (s, _) = listener.accept().unwrap();
            let mut r = BufReader::new(s);
            r.get_mut().write_all(greeter.as_bytes()).unwrap();
            let mut line = String::new();
            while r.read_line(&mut line).unwrap_or(0) > 0 {
                r.get_mut().write_all(response_frame(false, Some("Bad validation type")).as_bytes()).unwrap();
                line.clear();
            }
        });
        Address::unix(path)
    };
    let address = serve("ok.sock", format!("{GREETER}\r\n"));
    let mut c = Client::connect_with(&address, Protocol::ComodojoXml).unwrap();
    let f = c.call("my.echo", &Args::Positional(vec![Value::from("x")])).unwrap().unwrap_err();
    assert_eq!((f.code, f.message.as_str()), (-32300, "Transport error"));
    assert_eq!(f.full_message(), "Transport error: Bad validation type");

    // comodojo's client refuses a greeter whose status is not "connected", or whose version is
    // not 1.0; so does this one.
    let busy = raw_frame(r#"a:2:{s:6:"status";s:4:"busy";s:7:"version";s:3:"1.0";}"#);
    let e = Client::connect_with(&serve("busy.sock", busy), Protocol::ComodojoJson).err().unwrap();
    assert!(matches!(&e, ClientError::Greeter { why, .. } if why.contains("busy")), "{e}");
    let v2 = raw_frame(r#"a:2:{s:6:"status";s:9:"connected";s:7:"version";s:3:"2.0";}"#);
    let e = Client::connect_with(&serve("v2.sock", v2), Protocol::ComodojoJson).err().unwrap();
    assert!(matches!(&e, ClientError::Greeter { why, .. } if why.contains("2.0")), "{e}");
    assert!(e.to_string().contains(&dir.path("").display().to_string()), "names the address: {e}");
}

#[test]
fn tomtectl_speaks_comodojo() {
    let port = free_port();
    let (d, csock) = comodojo_daemon(&["--socket", &format!("comodojo+tcp://127.0.0.1:{port}")]);
    let ctl = |args: &[&str]| Command::new(binary("tomtectl")).args(args).output().unwrap();
    let prefixed = format!("comodojo+unix://{}", csock.display());
    let bare = format!("unix://{}", csock.display());
    let tcp = format!("comodojo+tcp://127.0.0.1:{port}");
    let bare_tcp = format!("tcp://127.0.0.1:{port}");
    let ways: [&[&str]; 6] = [
        &["--socket", &prefixed],
        &["--socket", &prefixed, "--xml"],
        &["--comodojo", "--socket", &bare],
        &["--comodojo", "--xml", "--socket", &bare],
        &["--socket", &tcp, "--xml"],
        &["--comodojo", "--socket", &bare_tcp],
    ];
    for way in ways {
        let run = |args: &[&str]| ctl(&[way, args].concat());
        let out = run(&["call", "my.echo", "hello comodojo"]);
        assert!(out.status.success(), "{way:?}: {}", text(&out.stderr));
        assert_eq!(text(&out.stdout).trim(), "\"hello comodojo\"", "{way:?}");
        let out = run(&["methods"]);
        assert!(out.status.success(), "{way:?}: {}", text(&out.stderr));
        // Over TCP, an anonymous client is not listed what it may not call (control).
        let over_tcp = way.iter().any(|a| a.contains("tcp://"));
        assert!(text(&out.stdout).contains("my.echo"), "{way:?}");
        assert_eq!(text(&out.stdout).contains("daemon.shutdown"), !over_tcp, "{way:?}");
        let out = run(&["help", "my.echo"]);
        assert!(text(&out.stdout).contains("my.echo(string) -> string"), "{way:?}: {}", text(&out.stdout));
        let out = run(&["call", "no.such"]);
        assert_eq!(out.status.code(), Some(1), "{way:?}");
        let err = text(&out.stderr);
        assert!(err.contains("-32601") && err.contains("Method not found"), "{way:?}: {err}");
        let out = run(&["--json", "status"]);
        assert_eq!(json(&text(&out.stdout))["pid"], d.pid().unwrap(), "{way:?}");
    }
    // Where nothing listens: exit 2, saying where it tried.
    let gone = format!("comodojo+unix://{}", d.dir.path("nothing.sock").display());
    let out = ctl(&["--socket", &gone, "status"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains(&gone), "{}", text(&out.stderr));
    // A native listener sends no greeter: exit 2 with a sentence, not a hang.
    let started = Instant::now();
    let out = ctl(&["--comodojo", "--socket", &format!("unix://{}", d.sock.display()), "status"]);
    assert_eq!(out.status.code(), Some(2));
    let err = text(&out.stderr);
    assert!(err.contains("did not greet") && err.contains(&d.sock.display().to_string()), "{err}");
    assert!(started.elapsed() < Duration::from_secs(15));
}
