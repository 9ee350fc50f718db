use super::*;
use crate::transport::Connection;
use serde_json::json;

fn ini(src: &str) -> Inventory {
    Inventory::from_ini_str(src, Path::new("test.ini")).unwrap()
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

const PATTERNS: &str = "
lone
[web]
web1
web2
web3
[db]
db1
db2
[prod]
web1
db1
[staging]
web3
db2
";

#[test]
fn patterns_union_exclusion_intersection() {
    let inv = ini(PATTERNS);
    let sel = |p: &str| inv.select(p).unwrap();
    assert_eq!(
        sel("all"),
        names(&["lone", "web1", "web2", "web3", "db1", "db2"])
    );
    assert_eq!(sel("*"), sel("all"));
    assert_eq!(
        sel("web:db"),
        names(&["web1", "web2", "web3", "db1", "db2"])
    );
    assert_eq!(
        sel("db,web"),
        names(&["db1", "db2", "web1", "web2", "web3"])
    );
    assert_eq!(sel("web:!prod"), names(&["web2", "web3"]));
    assert_eq!(sel("web:&prod"), names(&["web1"]));
    // exclusions and intersections apply after every plain part, wherever they are written
    assert_eq!(sel("!prod:web:db"), names(&["web2", "web3", "db2"]));
    assert_eq!(sel("!web"), names(&["lone", "db1", "db2"]));
    assert_eq!(sel("&staging"), names(&["web3", "db2"]));
    assert_eq!(sel("web*"), names(&["web1", "web2", "web3"]));
    assert_eq!(sel("*2"), names(&["web2", "db2"]));
    assert_eq!(sel("db?"), names(&["db1", "db2"]));
    assert_eq!(sel("~^(lone|db1)$"), names(&["lone", "db1"]));
    assert_eq!(sel("web[0]"), names(&["web1"]));
    assert_eq!(sel("web[-1]"), names(&["web3"]));
    assert_eq!(sel("web[1:]"), names(&["web2", "web3"]));
    assert_eq!(sel("web[0:1]"), names(&["web1", "web2"]));
    assert!(inv.select("web[9]").is_err());
    assert_eq!(sel("ungrouped"), names(&["lone"]));
    assert_eq!(sel("web1"), names(&["web1"]));
}

#[test]
fn unknown_pattern_names_warn_and_match_nothing() {
    let inv = ini(PATTERNS);
    let s = inv.select_with_warnings("nope:web1").unwrap();
    assert_eq!(s.hosts, names(&["web1"]));
    assert_eq!(
        s.warnings,
        vec!["Could not match supplied host pattern, ignoring: nope".to_string()]
    );
    let s = inv.select_with_warnings("web:!nope").unwrap();
    assert_eq!(s.hosts.len(), 3);
    assert_eq!(s.warnings.len(), 1);
    assert!(inv.select("~(unclosed").is_err());
}

#[test]
fn limit_restricts_a_selection() {
    let inv = ini(PATTERNS);
    let s = inv
        .select_limited("all", Some("prod:staging:!db2"))
        .unwrap();
    assert_eq!(s.hosts, names(&["web1", "web3", "db1"]));
    let list = inv.to_ansible_list_limited(Some("db")).unwrap();
    assert_eq!(list["prod"], json!({"hosts": ["db1"]}));
    assert_eq!(
        list.get("web"),
        None,
        "a group without selected hosts is left out"
    );
}

#[test]
fn merge_order_all_parent_child_host() {
    let inv = ini("
[child]
h1 who=host
h2
[parent:children]
child
[child:vars]
who=child
child_only=1
[parent:vars]
who=parent
parent_only=1
[all:vars]
who=all
all_only=1
");
    let v = inv.host_vars("h1");
    assert_eq!(v["who"], json!("host"));
    assert_eq!(v["child_only"], json!(1));
    assert_eq!(v["parent_only"], json!(1));
    assert_eq!(v["all_only"], json!(1));
    assert_eq!(inv.host_vars("h2")["who"], json!("child"));
    assert_eq!(inv.group_names("h1"), names(&["child", "parent"]));
    assert!(inv.host_vars("nobody").is_empty());
}

#[test]
fn same_depth_groups_merge_by_priority_then_name() {
    let inv = ini("
[b]
h
[a]
h
[c]
h
[a:vars]
x=a
[b:vars]
x=b
");
    assert_eq!(
        inv.host_vars("h")["x"],
        json!("b"),
        "b sorts after a, so it wins"
    );
    let inv = ini("
[b]
h
[a]
h
[a:vars]
x=a
ansible_group_priority=5
[b:vars]
x=b
");
    assert_eq!(
        inv.host_vars("h")["x"],
        json!("a"),
        "higher priority merges last"
    );
    assert!(!inv.host_vars("h").contains_key("ansible_group_priority"));
    assert!(Inventory::from_ini_str(
        "[a]\nh\n[a:vars]\nansible_group_priority=high\n",
        Path::new("p.ini")
    )
    .is_err());
}

#[test]
fn ini_values_are_typed_like_ansible() {
    let inv = ini("
[g]
h a=1 b=True c=\"x y\" d=007 e='[1, 2]' f=None g=yes
[g:vars]
s=FALSE
n=42
q=\"quoted\"
");
    let v = inv.host_vars("h");
    assert_eq!(v["a"], json!(1));
    assert_eq!(v["b"], json!(true));
    assert_eq!(v["c"], json!("x y"));
    assert_eq!(v["d"], json!("007"));
    assert_eq!(v["e"], json!([1, 2]));
    assert_eq!(v["f"], json!(null));
    assert_eq!(v["g"], json!("yes"));
    // [g:vars] values go through literal_eval too (checked with ansible-core 2.19)
    assert_eq!(v["s"], json!("FALSE"));
    assert_eq!(v["n"], json!(42));
    assert_eq!(v["q"], json!("quoted"));
}

#[test]
fn ungrouped_and_children_bookkeeping() {
    let inv = ini("
early
late
[g]
late
[p:children]
g
");
    let groups = inv.groups();
    assert_eq!(groups["ungrouped"], names(&["early"]));
    assert_eq!(groups["p"], names(&["late"]));
    assert_eq!(groups["all"], names(&["early", "late"]));
    assert_eq!(inv.group_children("all"), names(&["ungrouped", "p"]));
    assert_eq!(inv.group_names("early"), names(&["ungrouped"]));
    assert_eq!(inv.hosts(), names(&["early", "late"]));
}

#[test]
fn first_port_wins_and_ranges_expand() {
    let inv = ini("[a]\nh:2201\nn[1:3:2]:2222\n[b]\nh:2202\n");
    assert_eq!(inv.host_vars("h")["ansible_port"], json!(2201));
    assert_eq!(inv.hosts(), names(&["h", "n1", "n3"]));
    assert_eq!(inv.host_vars("n3")["ansible_port"], json!(2222));
}

#[test]
fn errors_carry_file_and_line() {
    let cases = [
        ("[web]\nh\n[web:what]\n", 3, "unknown type"),
        ("[web]\nh[01:5]\n", 2, "equal-length"),
        ("[a:children]\nb\n[b:children]\na\n", 4, "cycle"),
        ("[a]\nh\n[web servers]\n", 3, "section"),
        ("[p:children]\nmissing\n", 2, "undefined group"),
        ("[g:vars]\nx=1\n", 1, "undefined group"),
        ("h x\n", 1, "key=value"),
    ];
    for (src, line, what) in cases {
        let e = Inventory::from_ini_str(src, Path::new("inv/hosts.ini")).unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains(&format!("inv/hosts.ini:{line}:")),
            "{src:?}: {msg}"
        );
        assert!(msg.contains(what), "{src:?}: {msg}");
    }
    let yaml_cases = [
        ("all:\n  hosts:\n    a:\n   b:\n", 4, "YAML error"),
        ("all:\n  hosts:\n    a:\n    a:\n", 4, "duplicated key"),
        (
            "all:\n  children:\n    x:\n      children:\n        x:\n",
            5,
            "child of itself",
        ),
        ("all:\n  hosts:\n    'n[a:3]':\n", 3, "range"),
        ("- a\n", 1, "mapping"),
    ];
    for (src, line, what) in yaml_cases {
        let e = Inventory::from_yaml_str(src, Path::new("inv.yml")).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains(&format!("inv.yml:{line}:")), "{src:?}: {msg}");
        assert!(msg.contains(what), "{src:?}: {msg}");
    }
}

#[test]
fn yaml_inventory_shape() {
    let inv = Inventory::from_yaml_str(
        "
all:
  vars: {ntp: pool, enabled: yes}
  children:
    web:
      hosts:
        web[1:2]: {http_port: 80}
        'edge:2222':
      vars: {tier: front}
    ha:
      children:
        web:
  hosts:
    solo:
",
        Path::new("inv.yml"),
    )
    .unwrap();
    assert_eq!(inv.hosts(), names(&["solo", "web1", "web2", "edge"]));
    assert_eq!(inv.host_vars("edge")["ansible_port"], json!(2222));
    assert_eq!(inv.host_vars("web1")["enabled"], json!(true));
    assert_eq!(inv.host_vars("web2")["http_port"], json!(80));
    assert_eq!(inv.group_names("web1"), names(&["ha", "web"]));
    assert_eq!(inv.groups()["ungrouped"], names(&["solo"]));
}

#[test]
fn vars_files_and_playbook_precedence() {
    let d = tempfile::tempdir().unwrap();
    let root = d.path();
    std::fs::write(
        root.join("hosts"),
        "[web]\nw1 h=inline\n[web:vars]\ng=inline\n",
    )
    .unwrap();
    std::fs::create_dir_all(root.join("group_vars/web")).unwrap();
    std::fs::create_dir_all(root.join("host_vars")).unwrap();
    std::fs::write(root.join("group_vars/all.yml"), "g: all_file\nlevel: all\n").unwrap();
    std::fs::write(root.join("group_vars/web/a.yml"), "level: web\nlist: [1]\n").unwrap();
    std::fs::write(root.join("group_vars/web/b.json"), "{\"list\": [2]}").unwrap();
    std::fs::write(root.join("host_vars/w1"), "h: file\n").unwrap();
    let pb = root.join("playbook");
    std::fs::create_dir_all(pb.join("group_vars")).unwrap();
    std::fs::write(pb.join("group_vars/web.yaml"), "level: playbook\n").unwrap();

    let mut inv = Inventory::load(&[root.join("hosts")]).unwrap();
    let v = inv.host_vars("w1");
    // group_vars/all (a file) beats inline group vars; group_vars/web beats group_vars/all
    assert_eq!(v["g"], json!("all_file"));
    assert_eq!(v["level"], json!("web"));
    assert_eq!(
        v["list"],
        json!([2]),
        "files of a directory merge in name order"
    );
    assert_eq!(
        v["h"],
        json!("file"),
        "host_vars file beats inline host vars"
    );
    inv.add_playbook_vars(&pb).unwrap();
    assert_eq!(inv.host_vars("w1")["level"], json!("playbook"));

    std::fs::write(root.join("group_vars/all.yml"), "a: [1\n").unwrap();
    let e = Inventory::load(&[root.join("hosts")])
        .unwrap_err()
        .to_string();
    assert!(e.contains("group_vars/all.yml:"), "{e}");
}

#[test]
fn missing_source_and_host_lists() {
    let e = Inventory::load(&[PathBuf::from("/nonexistent/inv.ini")]).unwrap_err();
    assert!(matches!(e, InventoryError::Missing { .. }), "{e}");
    let inv = Inventory::load(&[PathBuf::from("a.example,b:2222,")]).unwrap();
    assert_eq!(inv.hosts(), names(&["a.example", "b"]));
    assert_eq!(inv.host_vars("b")["ansible_port"], json!(2222));
}

#[test]
fn connection_variables() {
    let inv = ini("
[nodes]
n1 ansible_host=10.0.0.1 ansible_port=2222 ansible_user=ops ansible_ssh_pass=pw
n2 ansible_ssh_host=10.0.0.2 ansible_private_key_file=/k ansible_become=yes ansible_become_pass=s
n3 ansible_connection=local darkport_root=/srv/dp ansible_become=False
n4 ansible_port=70000
n5 ansible_connection=winrm
[nodes:vars]
ansible_become_user=root
");
    let c1 = inv.connection("n1").unwrap();
    assert_eq!(c1.host, "10.0.0.1");
    assert_eq!(c1.port, 2222);
    assert_eq!(c1.user, "ops");
    assert_eq!(c1.password.as_deref(), Some("pw"));
    assert_eq!(c1.connection, Connection::Ssh);
    assert!(!c1.become_default);
    let c2 = inv.connection("n2").unwrap();
    assert_eq!(c2.host, "10.0.0.2");
    assert_eq!(c2.port, 22);
    assert_eq!(c2.key_file, Some(PathBuf::from("/k")));
    assert!(c2.become_default);
    assert_eq!(c2.become_.user.as_deref(), Some("root"));
    assert_eq!(c2.become_.password.as_deref(), Some("s"));
    let c3 = inv.connection("n3").unwrap();
    assert_eq!(c3.connection, Connection::Local);
    assert_eq!(c3.host, "n3");
    assert!(!c3.become_default);
    assert!(inv
        .connection("n4")
        .unwrap_err()
        .to_string()
        .contains("ansible_port"));
    assert!(inv.connection("n5").is_err());
    assert!(matches!(
        inv.connection("zz"),
        Err(InventoryError::UnknownHost { .. })
    ));
}

/// A small deterministic PRNG for the fuzz-style tests (no extra crates).
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn fixture_texts() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/inventory");
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(t) = std::fs::read_to_string(&p) {
                out.push(t);
            }
        }
    }
    out.sort();
    out
}

const TOKENS: &[&str] = &[
    "[",
    "]",
    ":",
    "=",
    "\n",
    " ",
    "'",
    "\"",
    "#",
    ";",
    "\\",
    "[a:c]",
    "[01:10:3]",
    ":children",
    ":vars",
    "{",
    "}",
    "- ",
    "  ",
    "hosts:",
    "children:",
    "vars:",
    "&a",
    "*a",
    "!",
    "~",
    "<<:",
    "0x",
    "1e3",
    "None",
    "True",
    "...",
    "(",
    ")",
    ",",
    "\t",
    "\r",
    "é",
    "\u{2028}",
];

/// Random bytes and mutated fixtures must give Ok or a clean error, never a panic.
#[test]
fn fuzz_parsers_never_panic() {
    let texts = fixture_texts();
    assert!(texts.len() > 20);
    let mut rng = Rng(0x9e3779b97f4a7c15);
    for round in 0..fuzz_rounds() {
        let mut s: String = if round % 4 == 0 {
            let n = rng.below(200);
            let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
            String::from_utf8_lossy(&bytes).into_owned()
        } else {
            texts[rng.below(texts.len())].clone()
        };
        for _ in 0..rng.below(6) {
            let mut cut = rng.below(s.len() + 1);
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            match rng.below(3) {
                0 => s.insert_str(cut, TOKENS[rng.below(TOKENS.len())]),
                1 => {
                    let mut end = (cut + rng.below(8)).min(s.len());
                    while !s.is_char_boundary(end) {
                        end -= 1;
                    }
                    s.replace_range(cut..end, "");
                }
                _ => {
                    let mut end = (cut + rng.below(40)).min(s.len());
                    while !s.is_char_boundary(end) {
                        end -= 1;
                    }
                    let dup = s[cut..end].to_string();
                    s.insert_str(cut, &dup);
                }
            }
        }
        for inv in [
            Inventory::from_ini_str(&s, Path::new("f.ini")),
            Inventory::from_yaml_str(&s, Path::new("f.yml")),
        ]
        .into_iter()
        .flatten()
        {
            let list = inv.to_ansible_list();
            assert!(list["all"]["children"].is_array() && list["_meta"]["hostvars"].is_object());
            for h in inv.hosts().iter().take(5) {
                let _ = inv.host_vars(h);
                let _ = inv.connection(h);
            }
            let _ = inv.graph("all", true);
        }
        let line = s.lines().next().unwrap_or("");
        let _ = pylit::shlex_split(line);
        let _ = pylit::literal_eval(line);
        let _ = hostpat::expand_hostpattern(line);
        let inv = ini(PATTERNS);
        let _ = inv.select(line);
    }
}

/// `DARKPORT_FUZZ_ROUNDS` raises the number of fuzz rounds for a longer local run.
fn fuzz_rounds() -> usize {
    std::env::var("DARKPORT_FUZZ_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000)
}
