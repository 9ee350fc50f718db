//! Expected bytes below are what ansible-core 2.19 (and community.general 11.4.2 for
//! ini_file) wrote for the same input and arguments on this machine.

use super::*;
use serde_json::json;

fn args(v: Value) -> Args {
    v.as_object().unwrap().clone()
}

fn li(f: &str, v: Value) -> (String, String, bool) {
    let o = lineinfile_apply(f, &args(v)).unwrap();
    (o.text, o.msg, o.changed)
}

#[test]
fn lineinfile_lookaround_and_backrefs() {
    let (n, m, c) = li(
        "a=1\nb=2\nc=3\n",
        json!({"regexp": "^b(?!=9)", "line": "b=9"}),
    );
    assert_eq!(
        (n.as_str(), m.as_str(), c),
        ("a=1\nb=9\nc=3\n", "line replaced", true)
    );
    let (n, _, _) = li("a=1\nc=3\n", json!({"regexp": "(?<=c)=3", "line": "c=4"}));
    assert_eq!(n, "a=1\nc=4\n");
    let (n, _, _) = li(
        "port 80\nhost x\n",
        json!({"regexp": "^port (\\d+)$", "line": "listen \\1 \\g<1>", "backrefs": true}),
    );
    assert_eq!(n, "listen 80 80\nhost x\n");
    let (n, _, _) = li(
        "host x\n",
        json!({"regexp": "^host (?P<h>\\w+)", "line": "server \\g<h>;", "backrefs": true}),
    );
    assert_eq!(n, "server x;\n");
    let (n, m, c) = li(
        "a\n",
        json!({"regexp": "^no (\\d)", "line": "x \\1", "backrefs": true}),
    );
    assert_eq!((n.as_str(), m.as_str(), c), ("a\n", "", false));
    let (n, _, _) = li("q\n", json!({"regexp": "^(?P<c>q)(?P=c)?$", "line": "qq"}));
    assert_eq!(n, "qq\n");
    // Python's \Z is the very end: the line's "\n" is in the way, so the line is added.
    let (n, _, _) = li("L 1\n", json!({"regexp": "^L [\\d.]+\\Z", "line": "L 0"}));
    assert_eq!(n, "L 1\nL 0\n");
}

#[test]
fn lineinfile_positions() {
    let f = "x\n[s]\ny\n[s]\nz";
    let (n, _, _) = li(
        f,
        json!({"line": "NEW", "insertafter": "^\\[s\\]$", "firstmatch": true}),
    );
    assert_eq!(n, "x\n[s]\nNEW\ny\n[s]\nz");
    let (n, _, _) = li(f, json!({"line": "NEW", "insertafter": "^\\[s\\]$"}));
    assert_eq!(n, "x\n[s]\ny\n[s]\nNEW\nz");
    let (n, _, _) = li("one\ntwo\n", json!({"line": "zero", "insertbefore": "BOF"}));
    assert_eq!(n, "zero\none\ntwo\n");
    let (n, _, _) = li("one\ntwo", json!({"line": "three", "insertafter": "EOF"}));
    assert_eq!(n, "one\ntwo\nthree\n");
    let o = lineinfile_apply(
        "keep me\nremove foo here\nfoo again\n",
        &args(json!({"search_string": "foo", "state": "absent"})),
    )
    .unwrap();
    assert_eq!(
        (o.text.as_str(), o.msg.as_str()),
        ("keep me\n", "2 line(s) removed")
    );
    assert_eq!(o.extra["found"], json!(2));
    let (n, m, _) = li("a\nb", json!({"line": "b"}));
    assert_eq!((n.as_str(), m.as_str()), ("a\nb\n", "line replaced"));
    let e = lineinfile_apply("", &args(json!({"regexp": "(?<=a", "line": "x"}))).unwrap_err();
    assert!(
        e.to_string().contains("lineinfile: regexp \"(?<=a\""),
        "{e}"
    );
}

#[test]
fn blockinfile_semantics() {
    let o = blockinfile_apply(Some("a\nb\n"), &args(json!({"block": "x\ny"}))).unwrap();
    assert_eq!(
        o.text,
        "a\nb\n# BEGIN ANSIBLE MANAGED BLOCK\nx\ny\n# END ANSIBLE MANAGED BLOCK\n"
    );
    assert_eq!(o.msg, "Block inserted");
    let again = blockinfile_apply(Some(&o.text), &args(json!({"block": "x\ny"}))).unwrap();
    assert!(!again.changed);
    let o = blockinfile_apply(
        Some("a\n<!-- START cfg -->\nold\n<!-- STOP cfg -->\nz\n"),
        &args(json!({"marker": "<!-- {mark} cfg -->", "marker_begin": "START", "marker_end": "STOP", "block": "new1\nnew2\n"})),
    )
    .unwrap();
    assert_eq!(
        o.text,
        "a\n<!-- START cfg -->\nnew1\nnew2\n<!-- STOP cfg -->\nz\n"
    );
    let o = blockinfile_apply(
        Some("a\nb\n"),
        &args(json!({"block": "x", "insertafter": "^a", "append_newline": true, "prepend_newline": true})),
    )
    .unwrap();
    assert_eq!(
        o.text,
        "a\n\n# BEGIN ANSIBLE MANAGED BLOCK\nx\n# END ANSIBLE MANAGED BLOCK\n\nb\n"
    );
    let f = "a\n# BEGIN ANSIBLE MANAGED BLOCK\nold\n# END ANSIBLE MANAGED BLOCK\nb\n";
    let o = blockinfile_apply(Some(f), &args(json!({"block": ""}))).unwrap();
    assert_eq!(
        (o.text.as_str(), o.msg.as_str()),
        ("a\nb\n", "Block removed")
    );
    let o = blockinfile_apply(None, &args(json!({"block": ""}))).unwrap();
    assert_eq!(
        (o.text.as_str(), o.msg.as_str(), o.changed),
        ("", "File created", true)
    );
}

#[test]
fn replace_semantics() {
    let r = |f: &str, v: Value| replace_apply(f, &args(v)).unwrap();
    let o = r(
        "foo=1\nbar=2\nfoo=3\n",
        json!({"regexp": "^foo=(\\d)$", "replace": "foo=\\1\\1"}),
    );
    assert_eq!(
        (o.text.as_str(), o.msg.as_str()),
        ("foo=11\nbar=2\nfoo=33\n", "2 replacements made")
    );
    let o = r(
        "a b\nc d\n",
        json!({"regexp": "(\\w) (\\w)", "replace": "\\2-\\g<1>\\n"}),
    );
    assert_eq!(o.text, "b-a\n\nd-c\n\n");
    let f = "[x]\nk=1\n[y]\nk=1\n[z]\nk=1\n";
    let o = r(
        f,
        json!({"after": "\\[x\\]", "before": "\\[z\\]", "regexp": "k=1", "replace": "k=2"}),
    );
    assert_eq!(o.text, "[x]\nk=2\n[y]\nk=2\n[z]\nk=1\n");
    let o = r("xx\n", json!({"regexp": "x*", "replace": "-"}));
    assert_eq!(
        (o.text.as_str(), o.msg.as_str()),
        ("--\n-", "3 replacements made")
    );
    let o = r("a  \nb \n", json!({"regexp": "\\s+$", "replace": ""}));
    assert_eq!(o.text, "a\nb");
    let o = r(
        "price 10 USD\n",
        json!({"regexp": "\\d+(?= USD)", "replace": "N"}),
    );
    assert_eq!(o.text, "price N USD\n");
    let e = replace_apply("a", &args(json!({"regexp": "a", "replace": "\\q"}))).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Unable to process replace due to error: bad escape \\q at position 0"
    );
}

#[test]
fn ini_semantics() {
    let i = |f: Option<&str>, v: Value| ini_apply(f, &args(v)).unwrap();
    let o = i(None, json!({"section": "s", "option": "k", "value": "v"}));
    assert_eq!(
        (o.text.as_str(), o.msg.as_str()),
        ("\n[s]\nk = v\n", "section and option added")
    );
    let o = i(
        Some("[s]\nk = 1\nk = 2\nk = 3\n"),
        json!({"section": "s", "option": "k", "value": "2"}),
    );
    assert_eq!(o.text, "[s]\nk = 2\n");
    let o = i(
        Some("[s]\nk = 1\n"),
        json!({"section": "s", "option": "k", "values": ["1", "5", "7"]}),
    );
    assert_eq!(o.text, "[s]\nk = 1\nk = 5\nk = 7\n");
    let o = i(
        Some("top = 1\n[s]\nk = 1"),
        json!({"option": "top", "value": "2"}),
    );
    assert_eq!(o.text, "top = 2\n[s]\nk = 1\n");
    let o = i(
        Some("[s]\nk = 1\n[t]\nx = 2\n[u]\ny=3\n"),
        json!({"section": "t", "state": "absent"}),
    );
    assert_eq!(
        (o.text.as_str(), o.msg.as_str()),
        ("[s]\nk = 1\n[u]\ny=3\n", "section removed")
    );
    let o = i(
        Some("[s]\nk = 1\n"),
        json!({"section": "s", "option": "j", "value": "v", "no_extra_spaces": true}),
    );
    assert_eq!(o.text, "[s]\nk = 1\nj=v\n");
    let o = i(
        Some("[s]\nk = 1\n"),
        json!({"section": "s", "option": "flag", "allow_no_value": true}),
    );
    assert_eq!(o.text, "[s]\nk = 1\nflag\n");
    let o = i(
        Some("[s]\r\nk = 1\r\n"),
        json!({"section": "s", "option": "j", "value": "2"}),
    );
    assert_eq!(o.text, "[s]\nk = 1\nj = 2\n");
    let o = i(
        Some("[s]\nk = 1\n"),
        json!({"section": "s", "option": "k", "value": "1"}),
    );
    assert_eq!((o.msg.as_str(), o.changed), ("OK", false));
}
